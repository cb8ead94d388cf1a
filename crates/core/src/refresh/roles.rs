//! The roles and inline policies one refresh needs, read one of two ways:
//!
//! - **per role**: ListRoles pages (kfp-tenant's roles are found by the
//!   description it writes, then GetRole for their tags), then per tenant
//!   GetRole, ListRolePolicies, ListAttachedRolePolicies and GetRolePolicy
//!   for each inline policy (as Terraform refreshes a role with its
//!   exclusive policies): about `roles / 1,000 + 4 × tenants` calls, each
//!   its own port call (retried and paced on its own).
//! - **bulk**: GetAccountAuthorizationDetails (`Filter=Role`: trust policy,
//!   tags, path, permissions boundary, inline policies and attached managed
//!   policies of 1,000 roles a page) joined by name with ListRoles (description and maximum session
//!   duration, which the first lacks): about `2 × roles / 1,000` calls,
//!   whatever the number of tenants. A role present in only one of the two
//!   answers (created or deleted between them) is read per role.
//!
//! [`RefreshMode::Auto`] asks GetAccountSummary how many roles the account
//! has and takes the cheaper way. Both give the same [`RoleState`] (a
//! property test holds them to it), but for one case: per role, a
//! kfp-tenant role that is not in the file and whose description someone
//! changed is not found, since ListRoles has no tags; bulk finds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;

use super::{RefreshError, limited, reading};
use crate::policy::PolicyDocument;
use crate::ports::{IamApi, Role, RoleDetail, RoleListing};
use crate::spec::policy_name;
use crate::tags;

/// How refresh reads the account's roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefreshMode {
    /// GetRole and GetRolePolicy per tenant.
    PerRole,
    /// Every role of the account in pages of 1,000.
    Bulk,
    /// The cheaper of the two for this account and this many tenants.
    #[default]
    Auto,
}

impl RefreshMode {
    pub const NAMES: [&'static str; 3] = ["per-role", "bulk", "auto"];
}

impl fmt::Display for RefreshMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefreshMode::PerRole => "per-role",
            RefreshMode::Bulk => "bulk",
            RefreshMode::Auto => "auto",
        })
    }
}

impl FromStr for RefreshMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-role" => Ok(RefreshMode::PerRole),
            "bulk" => Ok(RefreshMode::Bulk),
            "auto" => Ok(RefreshMode::Auto),
            other => Err(format!("unknown refresh mode {other:?}; use one of {}", RefreshMode::NAMES.join(", "))),
        }
    }
}

/// Roles IAM lists in one page.
const PAGE: u64 = 1000;

/// What a full page of GetAccountAuthorizationDetails (1,000 roles) weighs
/// against a small call (GetRole). A page carries every document of its
/// roles: on moto a full one takes as long as about 130 GetRole calls (1.7 s
/// for 2,000 roles against 6.5 ms a GetRole; BENCHMARKS.md, B6). But
/// per-role calls overlap `parallelism` at a time, and every one of them
/// counts against IAM's per-API rate, which throttles long before a page
/// does. A page weighs one call plus its share of 50 by the roles it holds
/// (GetAccountSummary gives their number): a 10-role account's page weighs
/// 1, a full page 51. Real IAM's page time is not measured here.
const BULK_PAGE_WEIGHT: u64 = 50;

/// A tenant's role read per role: GetRole, ListRolePolicies,
/// ListAttachedRolePolicies, and GetRolePolicy for its one inline policy.
const CALLS_PER_ROLE: u64 = 4;

fn pages(roles: u64) -> u64 {
    roles.div_ceil(PAGE).max(1)
}

/// The way `mode` resolves to for an account of `roles` roles and `tenants`
/// roles to read, with the weighed cost of both ways.
pub fn choose(mode: RefreshMode, roles: u64, tenants: u64) -> RefreshMode {
    match mode {
        RefreshMode::Auto => {
            let per_role = pages(roles) + CALLS_PER_ROLE * tenants;
            // Both listings (GetAccountAuthorizationDetails and ListRoles), weighed by the roles they carry.
            let bulk = 2 * (pages(roles) + roles * BULK_PAGE_WEIGHT / PAGE);
            if bulk < per_role { RefreshMode::Bulk } else { RefreshMode::PerRole }
        }
        fixed => fixed,
    }
}

/// The roles and inline policies a plan looks at.
#[derive(Debug, Default)]
pub(super) struct RoleState {
    /// Roles that exist, by the name they were asked for.
    pub roles: BTreeMap<String, Role>,
    /// Every inline policy of those roles, by (role, policy).
    pub policies: BTreeMap<(String, String), PolicyDocument>,
    /// The managed policies attached to those roles, by role.
    pub attachments: BTreeMap<String, BTreeSet<String>>,
    /// The roles tagged as kfp-tenant's for this cluster, by name.
    pub managed: Vec<Role>,
}

/// Reads the roles in `wanted` ((role, inline policy) pairs) and every role
/// kfp-tenant manages for `cluster`, with their inline policies.
pub(super) async fn read(
    wanted: &BTreeSet<(String, String)>,
    cluster: &str,
    iam: &dyn IamApi,
    slots: &Semaphore,
    parallelism: usize,
    mode: RefreshMode,
) -> Result<RoleState, RefreshError> {
    let mode = match mode {
        RefreshMode::Auto => {
            let roles = limited(slots, iam.role_count()).await.map_err(reading("the account summary (GetAccountSummary)"))?;
            let chosen = choose(mode, roles, wanted.len() as u64);
            tracing::debug!(
                roles,
                tenants = wanted.len(),
                "refresh reads IAM roles {}",
                match chosen {
                    RefreshMode::Bulk => "in bulk (GetAccountAuthorizationDetails + ListRoles)",
                    _ => "one by one (GetRole + GetRolePolicy)",
                }
            );
            chosen
        }
        fixed => fixed,
    };
    let reader = Reader { cluster, iam, slots, parallelism };
    match mode {
        RefreshMode::Bulk => reader.bulk(wanted).await,
        _ => reader.per_role(wanted).await,
    }
}

/// What every read of one refresh shares: the cluster whose roles are
/// kfp-tenant's, the port, and the run's call slots.
struct Reader<'a> {
    cluster: &'a str,
    iam: &'a dyn IamApi,
    slots: &'a Semaphore,
    parallelism: usize,
}

impl Reader<'_> {
    async fn per_role(&self, wanted: &BTreeSet<(String, String)>) -> Result<RoleState, RefreshError> {
        let (cluster, iam, slots, parallelism) = (self.cluster, self.iam, self.slots, self.parallelism);
        // ListRoles has no tags: kfp-tenant's roles are found by the description
        // it writes, and only those are read whole to confirm their tags.
        let marker = tags::role_description_marker(cluster);
        let listed = limited(slots, iam.list_roles("/")).await.map_err(reading("the account's roles (ListRoles)"))?;
        let candidates = listed.into_iter().filter(|l| l.description.as_deref().is_some_and(|d| d.ends_with(&marker)));
        let candidates = stream::iter(
            candidates.map(|l| limited(slots, async move { iam.get_role(&l.name).await.map_err(reading(format!("IAM role {}", l.name))) })),
        )
        .buffer_unordered(parallelism.max(1))
        .try_collect::<Vec<_>>()
        .await?;
        let mut managed: Vec<Role> = candidates.into_iter().flatten().filter(|r| tags::is_managed_role(&r.tags, cluster)).collect();
        managed.sort_by(|a, b| a.name.cmp(&b.name));
        let known: BTreeMap<String, Role> = managed.iter().map(|r| (r.name.clone(), r.clone())).collect();
        let mut state = self.read_each(&with_managed(wanted, &managed), &known).await?;
        state.managed = managed;
        Ok(state)
    }

    /// For each role of the pairs: GetRole (unless `known` has it), then
    /// its inline policies (ListRolePolicies, GetRolePolicy each) and its
    /// attached managed policies (ListAttachedRolePolicies): all of them,
    /// since a tenant's role carries exactly the file's permissions.
    async fn read_each(&self, reads: &BTreeSet<(String, String)>, known: &BTreeMap<String, Role>) -> Result<RoleState, RefreshError> {
        let (iam, slots, parallelism) = (self.iam, self.slots, self.parallelism);
        let names: BTreeSet<&String> = reads.iter().map(|(role, _)| role).collect();
        let read = stream::iter(names.into_iter().map(|role_name| {
            let known = known.get(role_name).cloned();
            async move {
                let role = match known {
                    Some(role) => Some(role),
                    None => limited(slots, iam.get_role(role_name)).await.map_err(reading(format!("IAM role {role_name}")))?,
                };
                if role.is_none() {
                    return Ok::<_, RefreshError>((role_name.clone(), None, Vec::new(), Vec::new()));
                }
                let (policy_names, attached) = futures_util::try_join!(
                    async {
                        limited(slots, iam.list_role_policies(role_name))
                            .await
                            .map_err(reading(format!("the inline policies of IAM role {role_name}")))
                    },
                    async {
                        limited(slots, iam.list_attached_role_policies(role_name))
                            .await
                            .map_err(reading(format!("the managed policies attached to IAM role {role_name}")))
                    },
                )?;
                let mut documents = Vec::new();
                for policy in policy_names {
                    let document = limited(slots, iam.get_role_policy(role_name, &policy))
                        .await
                        .map_err(reading(format!("inline policy {policy} of IAM role {role_name}")))?;
                    // Deleted between the listing and the read: gone.
                    documents.extend(document.map(|d| (policy, d)));
                }
                Ok((role_name.clone(), role, documents, attached))
            }
        }))
        .buffer_unordered(parallelism.max(1))
        .try_collect::<Vec<_>>()
        .await?;
        let mut state = RoleState::default();
        for (role_name, role, documents, attached) in read {
            let Some(role) = role else { continue };
            state.roles.insert(role_name.clone(), role);
            for (policy, document) in documents {
                state.policies.insert((role_name.clone(), policy), document);
            }
            state.attachments.insert(role_name, attached.into_iter().collect());
        }
        Ok(state)
    }

    async fn bulk(&self, wanted: &BTreeSet<(String, String)>) -> Result<RoleState, RefreshError> {
        let (cluster, iam, slots) = (self.cluster, self.iam, self.slots);
        let (details, listings) = futures_util::try_join!(
            limited(slots, async { iam.account_roles().await.map_err(reading("the account's roles (GetAccountAuthorizationDetails)")) }),
            limited(slots, async { iam.list_roles("/").await.map_err(reading("the account's roles (ListRoles)")) }),
        )?;
        // IAM role names are case-insensitive: a file's `Team-A` is IAM's `team-a`.
        let details: HashMap<String, RoleDetail> = details.into_iter().map(|d| (d.name.to_ascii_lowercase(), d)).collect();
        let listings: HashMap<String, RoleListing> = listings.into_iter().map(|l| (l.name.to_ascii_lowercase(), l)).collect();

        let mut managed: Vec<Role> = details
            .values()
            .filter(|d| tags::is_managed_role(&d.tags, cluster))
            .filter_map(|d| listings.get(&d.name.to_ascii_lowercase()).map(|l| joined(d, l)))
            .collect();
        managed.sort_by(|a, b| a.name.cmp(&b.name));
        let reads = with_managed(wanted, &managed);

        let mut state = RoleState::default();
        // Roles in one answer only changed between the two: read them whole.
        let mut unsettled = BTreeSet::new();
        for (role_name, policy) in &reads {
            let key = role_name.to_ascii_lowercase();
            match (details.get(&key), listings.get(&key)) {
                (Some(detail), Some(listing)) => {
                    state.roles.insert(role_name.clone(), joined(detail, listing));
                    for p in &detail.inline_policies {
                        state.policies.insert((role_name.clone(), p.policy_name.clone()), p.document.clone());
                    }
                    state.attachments.insert(role_name.clone(), detail.attached_policies.iter().cloned().collect());
                }
                (None, None) => {}
                _ => {
                    unsettled.insert((role_name.clone(), policy.clone()));
                }
            }
        }
        if !unsettled.is_empty() {
            tracing::debug!(roles = unsettled.len(), "roles changed between the two listings are read one by one");
            let reread = self.read_each(&unsettled, &BTreeMap::new()).await?;
            state.roles.extend(reread.roles);
            state.policies.extend(reread.policies);
            state.attachments.extend(reread.attachments);
        }
        // A managed role that left one of the answers is in `managed` only if
        // its per-role read found it, as ListRoles + GetRole would have.
        state.managed = managed;
        Ok(state)
    }
}

/// `wanted` and the inline policy of every managed role.
fn with_managed(wanted: &BTreeSet<(String, String)>, managed: &[Role]) -> BTreeSet<(String, String)> {
    let mut reads = wanted.clone();
    reads.extend(managed.iter().filter_map(|r| r.tags.get(tags::NAMESPACE).map(|ns| (r.name.clone(), policy_name(ns)))));
    reads
}

/// The whole role from its two halves.
fn joined(detail: &RoleDetail, listing: &RoleListing) -> Role {
    Role {
        name: detail.name.clone(),
        path: detail.path.clone(),
        arn: detail.arn.clone(),
        trust_policy: detail.trust_policy.clone(),
        description: listing.description.clone(),
        tags: detail.tags.clone(),
        max_session_duration: listing.max_session_duration,
        permissions_boundary: detail.permissions_boundary.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_reads_few_tenants_one_by_one_and_many_in_bulk() {
        // 900 roles: one page each way, 2 x (1 + 45) = 92 weighed calls
        // against 1 + 4 per tenant.
        assert_eq!(choose(RefreshMode::Auto, 900, 1), RefreshMode::PerRole);
        assert_eq!(choose(RefreshMode::Auto, 900, 22), RefreshMode::PerRole);
        assert_eq!(choose(RefreshMode::Auto, 900, 23), RefreshMode::Bulk);
        assert_eq!(choose(RefreshMode::Auto, 2_000, 2_000), RefreshMode::Bulk);
        // 5,000 roles are 5 pages each way: 2 x (5 + 250) = 510 against 5 + 4 per tenant.
        assert_eq!(choose(RefreshMode::Auto, 5_000, 127), RefreshMode::Bulk);
        assert_eq!(choose(RefreshMode::Auto, 5_000, 126), RefreshMode::PerRole);
        // A small account (#25: 10 tenants in a 10-role account made 25 calls
        // per role where bulk needs 6): its pages weigh 1, so bulk wins.
        assert_eq!(choose(RefreshMode::Auto, 10, 10), RefreshMode::Bulk);
        assert_eq!(choose(RefreshMode::Auto, 10, 1), RefreshMode::Bulk);
        assert_eq!(choose(RefreshMode::PerRole, 2_000, 2_000), RefreshMode::PerRole);
        assert_eq!(choose(RefreshMode::Bulk, 10, 1), RefreshMode::Bulk);
    }

    #[test]
    fn modes_parse_from_their_names() {
        for name in RefreshMode::NAMES {
            assert_eq!(name.parse::<RefreshMode>().map(|m| m.to_string()).as_deref(), Ok(name));
        }
        assert!("bulky".parse::<RefreshMode>().unwrap_err().contains("per-role, bulk, auto"));
    }
}
