//! Plans: what apply will do, as plain data.
//!
//! [`plan`] and [`plan_destroy`] are pure functions of a [`Desired`] and an
//! [`Observed`]. A [`Plan`] fixes every name, ARN and document, so apply has
//! no choices left; it also keeps a fingerprint of each resource as it was
//! observed, so that a saved plan applied later can be refused when the world
//! moved ([`check_fresh`]). [`Reason`] is for display: apply never reads it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::address::{Address, Kind};
use crate::policy;
use crate::ports::{InlinePolicy, OidcProvider, Profile, ProfilePlugin, Role, ServiceAccount};
use crate::refresh::Observed;
use crate::spec::{Desired, Tenant, policy_name};
use crate::tags;

/// Version of the saved plan and of `--json` output.
pub const FORMAT_VERSION: &str = "1.0";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub mode: Mode,
    pub cluster: ClusterContext,
    /// One per managed resource, no-ops included, sorted by address.
    pub changes: Vec<ResourceChange>,
    /// Things the operator should know that change nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Apply,
    Destroy,
}

/// The cluster-level facts the plan was made from (its data sources).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterContext {
    pub name: String,
    pub region: String,
    pub bucket: String,
    pub account_id: String,
    pub partition: String,
    pub oidc_issuer: String,
    pub oidc_provider_arn: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Delete, then create.
    Replace,
    Delete,
}

impl Action {
    /// Terraform's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// Why an action was chosen. For display only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// The resource does not exist.
    Missing,
    /// These attributes differ from the desired state.
    Drift { attributes: Vec<String> },
    /// The role's path changed; IAM cannot move a role.
    PathChanged,
    /// The owner changed; the profile controller never changes the owner of an
    /// existing namespace.
    OwnerChanged,
    /// The role is replaced, and its inline policies go with it.
    RoleReplaced,
    /// kfp-tenant takes over a resource it did not create.
    Adopt,
    /// The tenant is no longer in the tenants file (prune).
    Pruned,
    /// Destroy was asked for.
    Destroy,
    /// Its namespace is deleted and made again with the Profile.
    NamespaceRecreated,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("it does not exist"),
            Reason::Drift { attributes } => write!(f, "it differs from the tenants file in {}", attributes.join(", ")),
            Reason::PathChanged => f.write_str("the role path changed, and IAM cannot move a role"),
            Reason::OwnerChanged => f.write_str("the owner changed, and the profile controller never changes the owner of an existing namespace: the namespace and everything in it is recreated"),
            Reason::RoleReplaced => f.write_str("its role is replaced"),
            Reason::Adopt => f.write_str("it exists without kfp-tenant's markers and is adopted"),
            Reason::Pruned => f.write_str("its tenant is no longer in the tenants file"),
            Reason::Destroy => f.write_str("destroy was requested"),
            Reason::NamespaceRecreated => f.write_str("its namespace is recreated with the Profile"),
        }
    }
}

/// A resource's state, as observed (`before`) or as it will be (`after`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum State {
    Role(Role),
    S3Policy(InlinePolicy),
    Profile(Profile),
    ServiceAccount(ServiceAccount),
    OidcProvider(OidcProvider),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: Address,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub before: Option<State>,
    pub after: Option<State>,
    /// Fingerprint of `before` as observed.
    pub observed: String,
}

impl Plan {
    pub fn change(&self, address: &Address) -> Option<&ResourceChange> {
        self.changes.binary_search_by(|c| c.address.cmp(address)).ok().map(|i| &self.changes[i])
    }

    /// Whether applying would do anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    /// (add, change, destroy) in Terraform's counting: a replace is one add
    /// and one destroy.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::NoOp => {}
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
            }
        }
        s
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

/// A reason not to plan at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProblem {
    /// The resource concerned, when there is one.
    pub address: Option<Address>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = &self.address {
            write!(f, "{a}: ")?;
        }
        write!(f, "{}; {}", self.message, self.fix)
    }
}

/// Every problem that stopped planning.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PlanError {
    pub problems: Vec<PlanProblem>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "cannot plan: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Take over same-named resources that lack kfp-tenant's markers.
    pub adopt: bool,
    /// Delete managed tenants that are no longer desired. The refresh must
    /// have listed managed roles ([`crate::refresh::ReadSet::managed_roles`]).
    pub prune: bool,
    /// Create the account's IAM OIDC provider for the cluster when missing,
    /// instead of stopping.
    pub create_oidc_provider: bool,
}

/// Plans the changes that make the live state match `desired`.
pub fn plan(desired: &Desired, observed: &Observed, options: PlanOptions) -> Result<Plan, PlanError> {
    let need = if options.create_oidc_provider { ProviderNeed::CreateIfMissing } else { ProviderNeed::Require };
    let mut planner = Planner::new(desired, observed, need)?;
    for tenant in &desired.tenants {
        planner.tenant(tenant, options.adopt);
    }
    if options.prune {
        planner.prune();
    }
    planner.finish(Mode::Apply)
}

/// Plans deleting every tenant of `desired` that exists. Never touches the
/// cluster-level data sources, nor anything without kfp-tenant's markers.
pub fn plan_destroy(desired: &Desired, observed: &Observed) -> Result<Plan, PlanError> {
    let mut planner = Planner::new(desired, observed, ProviderNeed::NotNeeded)?;
    for tenant in &desired.tenants {
        planner.delete_tenant(&tenant.namespace, &tenant.role_name, &tenant.policy_name, Reason::Destroy);
    }
    planner.finish(Mode::Destroy)
}

/// The live state of the resource a change is about, from a new refresh.
fn current(change: &ResourceChange, observed: &Observed) -> Option<State> {
    match change.before.as_ref().or(change.after.as_ref())? {
        State::Role(r) => observed.roles.get(&r.name).cloned().map(State::Role),
        State::S3Policy(p) => observed.policies.get(&(p.role_name.clone(), p.policy_name.clone())).map(|d| {
            State::S3Policy(InlinePolicy { role_name: p.role_name.clone(), policy_name: p.policy_name.clone(), document: d.clone() })
        }),
        State::Profile(p) => observed.profiles.get(&p.name).cloned().map(State::Profile),
        State::ServiceAccount(sa) => {
            observed.service_accounts.get(&(sa.namespace.clone(), sa.name.clone())).cloned().map(State::ServiceAccount)
        }
        State::OidcProvider(p) => {
            observed.oidc.provider_arn.clone().map(|arn| State::OidcProvider(OidcProvider { issuer_url: p.issuer_url.clone(), arn }))
        }
    }
}

/// What changed since a saved plan was made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct StalePlan {
    pub changed: Vec<Address>,
}

impl fmt::Display for StalePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the saved plan is stale: ")?;
        let names: Vec<String> = self.changed.iter().map(Address::to_string).collect();
        write!(f, "{} changed since it was made; run plan again", names.join(", "))
    }
}

/// Refuses a plan whose resources no longer look as they did when it was made.
pub fn check_fresh(plan: &Plan, observed: &Observed) -> Result<(), StalePlan> {
    let mut changed: Vec<Address> =
        plan.changes.iter().filter(|c| fingerprint(current(c, observed).as_ref()) != c.observed).map(|c| c.address.clone()).collect();
    let need = match plan.mode {
        _ if plan.change(&Address::OidcProvider).is_some() => ProviderNeed::CreateIfMissing,
        Mode::Apply => ProviderNeed::Require,
        Mode::Destroy => ProviderNeed::NotNeeded,
    };
    let context = context(&plan.cluster.name, &plan.cluster.region, &plan.cluster.bucket, observed, need).map(|(c, _)| c);
    if context.as_ref().ok() != Some(&plan.cluster) {
        changed.insert(0, Address::ClusterOidc);
    }
    if changed.is_empty() { Ok(()) } else { Err(StalePlan { changed }) }
}

/// A stable fingerprint (FNV-1a, 64 bits) of a state's canonical JSON.
pub fn fingerprint(state: Option<&State>) -> String {
    let Some(state) = state else { return "absent".to_owned() };
    let value = serde_json::to_value(state).expect("invariant: states serialize");
    let text = policy::canonicalize(&value).to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// What a plan needs of the account's IAM OIDC provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProviderNeed {
    /// Roles trust it: it must exist.
    Require,
    /// It must exist, or be created first (`--create-oidc-provider`).
    CreateIfMissing,
    /// Deleting tenants does not need it, so a missing provider never keeps
    /// kfp-tenant from removing what it made.
    NotNeeded,
}

/// The cluster-level facts, and whether the provider is to be created.
fn context(name: &str, region: &str, bucket: &str, observed: &Observed, need: ProviderNeed) -> Result<(ClusterContext, bool), PlanProblem> {
    let host = observed.oidc.issuer_host();
    let (provider_arn, create) = match (&observed.oidc.provider_arn, need) {
        (Some(arn), _) => (arn.clone(), false),
        (None, ProviderNeed::NotNeeded) => (String::new(), false),
        (None, ProviderNeed::CreateIfMissing) => {
            (format!("arn:{}:iam::{}:oidc-provider/{host}", observed.identity.partition, observed.identity.account_id), true)
        }
        (None, ProviderNeed::Require) => {
            return Err(PlanProblem {
                address: Some(Address::ClusterOidc),
                message: format!(
                    "the account {} has no IAM OIDC provider for the cluster's issuer {}, so no pod could assume a tenant role",
                    observed.identity.account_id, observed.oidc.issuer_url
                ),
                fix: format!(
                    "create it with `eksctl utils associate-iam-oidc-provider --cluster {name} --region {region} --approve`, or let kfp-tenant create it with --create-oidc-provider"
                ),
            });
        }
    };
    let cluster = ClusterContext {
        name: name.to_owned(),
        region: region.to_owned(),
        bucket: bucket.to_owned(),
        account_id: observed.identity.account_id.clone(),
        partition: observed.identity.partition.clone(),
        oidc_issuer: observed.oidc.issuer_url.clone(),
        oidc_provider_arn: provider_arn,
    };
    Ok((cluster, create))
}

/// The role as kfp-tenant creates it for `tenant`.
pub fn desired_role(tenant: &Tenant, cluster: &ClusterContext) -> Role {
    let issuer_host = cluster.oidc_issuer.strip_prefix("https://").unwrap_or(&cluster.oidc_issuer);
    Role {
        name: tenant.role_name.clone(),
        path: tenant.role_path.clone(),
        arn: format!("arn:{}:iam::{}:role{}{}", cluster.partition, cluster.account_id, tenant.role_path, tenant.role_name),
        trust_policy: policy::trust_policy(
            &cluster.partition,
            &cluster.account_id,
            issuer_host,
            &tenant.namespace,
            &tenant.service_accounts,
        ),
        description: Some(format!("Kubeflow tenant {} on EKS cluster {} (managed by kfp-tenant)", tenant.namespace, cluster.name)),
        tags: tags::role_tags(&tenant.tags, &cluster.name, &tenant.namespace),
        max_session_duration: tenant.max_session_duration.unwrap_or(crate::spec::DEFAULT_MAX_SESSION_DURATION),
        permissions_boundary: tenant.permissions_boundary.clone(),
    }
}

pub fn desired_s3_policy(tenant: &Tenant, cluster: &ClusterContext) -> InlinePolicy {
    InlinePolicy {
        role_name: tenant.role_name.clone(),
        policy_name: tenant.policy_name.clone(),
        document: policy::s3_policy(&cluster.partition, &cluster.bucket, &tenant.s3_access),
    }
}

pub fn desired_profile(tenant: &Tenant, role_arn: &str) -> Profile {
    Profile {
        name: tenant.namespace.clone(),
        owner: tenant.owner.clone(),
        plugins: vec![ProfilePlugin::aws_iam(role_arn)],
        resource_quota: tenant.resource_quota.clone(),
        managed: true,
    }
}

struct Planner<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    cluster: ClusterContext,
    changes: BTreeMap<Address, ResourceChange>,
    problems: Vec<PlanProblem>,
    warnings: Vec<String>,
}

impl<'a> Planner<'a> {
    fn new(desired: &'a Desired, observed: &'a Observed, need: ProviderNeed) -> Result<Self, PlanError> {
        let c = &desired.cluster;
        let (cluster, create) = context(&c.name, &c.region, &c.bucket, observed, need).map_err(|p| PlanError { problems: vec![p] })?;
        let mut planner = Planner { desired, observed, cluster, changes: BTreeMap::new(), problems: Vec::new(), warnings: Vec::new() };
        if create {
            let provider = OidcProvider { issuer_url: observed.oidc.issuer_url.clone(), arn: planner.cluster.oidc_provider_arn.clone() };
            planner.push(Address::OidcProvider, Action::Create, Some(Reason::Missing), None, Some(State::OidcProvider(provider)));
        }
        Ok(planner)
    }

    fn push(&mut self, address: Address, action: Action, reason: Option<Reason>, before: Option<State>, after: Option<State>) {
        let observed = fingerprint(before.as_ref());
        self.changes.insert(address.clone(), ResourceChange { address, action, reason, before, after, observed });
    }

    fn refuse(&mut self, address: Address, message: String, fix: impl Into<String>) {
        self.problems.push(PlanProblem { address: Some(address), message, fix: fix.into() });
    }

    fn tenant(&mut self, tenant: &Tenant, adopt: bool) {
        let ns = tenant.namespace.as_str();
        let role_addr = Address::tenant(ns, Kind::IamRole);
        let want_role = desired_role(tenant, &self.cluster);
        let quota = self.desired.cluster.trust_policy_quota;
        if want_role.trust_policy.minified_len() > quota {
            self.refuse(
                Address::tenant(ns, Kind::TrustPolicy),
                format!(
                    "the trust policy is {} characters with the cluster's issuer, over the quota of {quota}",
                    want_role.trust_policy.minified_len()
                ),
                "list fewer service accounts, or raise the IAM quota and set trustPolicyQuota",
            );
        }
        let live_role = self.observed.roles.get(&tenant.role_name);
        let role_action = match live_role {
            None => {
                self.push(role_addr, Action::Create, Some(Reason::Missing), None, Some(State::Role(want_role.clone())));
                Action::Create
            }
            Some(live) => {
                let managed = tags::is_managed_role(&live.tags, &self.cluster.name);
                if !managed && !adopt {
                    self.refuse(
                        role_addr.clone(),
                        format!(
                            "IAM role {} exists but was not created by kfp-tenant for cluster {} (tags: {})",
                            live.name,
                            self.cluster.name,
                            describe_tags(&live.tags)
                        ),
                        "choose another roleName, or take it over with --adopt",
                    );
                }
                if live.path != want_role.path {
                    if !managed {
                        self.refuse(
                            role_addr.clone(),
                            format!("IAM role {} has path {} but the tenant asks for {}", live.name, live.path, want_role.path),
                            format!("set rolePath: {} to adopt it", live.path),
                        );
                    }
                    self.push(
                        role_addr,
                        Action::Replace,
                        Some(Reason::PathChanged),
                        Some(State::Role(live.clone())),
                        Some(State::Role(want_role.clone())),
                    );
                    Action::Replace
                } else {
                    // An unchanged document is held once, shared by before and after.
                    let mut want_role = want_role.clone();
                    if live.trust_policy == want_role.trust_policy {
                        want_role.trust_policy = live.trust_policy.clone();
                    }
                    let drift = role_drift(live, &want_role);
                    let (action, reason) = match (drift.is_empty(), managed) {
                        (true, _) => (Action::NoOp, None),
                        (false, true) => (Action::Update, Some(Reason::Drift { attributes: drift })),
                        (false, false) => (Action::Update, Some(Reason::Adopt)),
                    };
                    self.push(role_addr, action, reason, Some(State::Role(live.clone())), Some(State::Role(want_role.clone())));
                    action
                }
            }
        };

        let mut want_policy = desired_s3_policy(tenant, &self.cluster);
        let live_policy = self.observed.policies.get(&(tenant.role_name.clone(), tenant.policy_name.clone())).map(|d| InlinePolicy {
            role_name: tenant.role_name.clone(),
            policy_name: tenant.policy_name.clone(),
            document: d.clone(),
        });
        let (action, reason) = match (&live_policy, role_action) {
            (_, Action::Replace) => (Action::Create, Some(Reason::RoleReplaced)),
            (None, _) => (Action::Create, Some(Reason::Missing)),
            (Some(live), _) if live.document == want_policy.document => {
                want_policy.document = live.document.clone();
                (Action::NoOp, None)
            }
            (Some(_), _) => (Action::Update, Some(Reason::Drift { attributes: vec!["document".to_owned()] })),
        };
        self.push(
            Address::tenant(ns, Kind::S3Policy),
            action,
            reason,
            live_policy.map(State::S3Policy),
            Some(State::S3Policy(want_policy)),
        );

        let profile_addr = Address::tenant(ns, Kind::Profile);
        let want_profile = desired_profile(tenant, &want_role.arn);
        let profile_action = match self.observed.profiles.get(ns) {
            None => {
                if self.observed.bare_namespaces.contains(ns) {
                    self.refuse(
                        profile_addr.clone(),
                        format!(
                            "namespace {ns} exists without a Profile, and the profile controller refuses to take over an existing namespace"
                        ),
                        "delete the namespace or choose another one for this tenant",
                    );
                }
                self.push(profile_addr, Action::Create, Some(Reason::Missing), None, Some(State::Profile(want_profile)));
                Action::Create
            }
            Some(live) => {
                if !live.managed && !adopt {
                    self.refuse(
                        profile_addr.clone(),
                        format!(
                            "Profile {ns} exists but was not created by kfp-tenant (no {}={} label)",
                            tags::PROFILE_LABEL,
                            tags::MANAGER
                        ),
                        "choose another namespace, or take it over with --adopt",
                    );
                }
                let drift = profile_drift(live, &want_profile);
                let (action, reason) = if live.owner != want_profile.owner {
                    (Action::Replace, Some(Reason::OwnerChanged))
                } else if drift.is_empty() {
                    (Action::NoOp, None)
                } else if live.managed {
                    (Action::Update, Some(Reason::Drift { attributes: drift }))
                } else {
                    (Action::Update, Some(Reason::Adopt))
                };
                self.push(profile_addr, action, reason, Some(State::Profile(live.clone())), Some(State::Profile(want_profile)));
                action
            }
        };

        for name in tenant.extra_service_accounts() {
            let address = Address::service_account(ns, name);
            let want =
                ServiceAccount { namespace: ns.to_owned(), name: name.to_owned(), role_arn: Some(want_role.arn.clone()), managed: true };
            let live = self.observed.service_accounts.get(&(ns.to_owned(), name.to_owned()));
            let (action, reason) = match live {
                _ if profile_action == Action::Replace => (Action::Create, Some(Reason::NamespaceRecreated)),
                None => (Action::Create, Some(Reason::Missing)),
                Some(live) if *live == want => (Action::NoOp, None),
                Some(live) if live.managed => (Action::Update, Some(Reason::Drift { attributes: vec!["role_arn".to_owned()] })),
                Some(_) => {
                    if !adopt {
                        self.refuse(
                            address.clone(),
                            format!(
                                "service account {ns}/{name} exists but was not created by kfp-tenant (no {}={} label)",
                                tags::PROFILE_LABEL,
                                tags::MANAGER
                            ),
                            "remove it from serviceAccounts, or take it over with --adopt",
                        );
                    }
                    (Action::Update, Some(Reason::Adopt))
                }
            };
            self.push(address, action, reason, live.cloned().map(State::ServiceAccount), Some(State::ServiceAccount(want)));
        }
    }

    fn delete_tenant(&mut self, ns: &str, role_name: &str, policy: &str, reason: Reason) {
        if let Some(live) = self.observed.profiles.get(ns) {
            let addr = Address::tenant(ns, Kind::Profile);
            if live.managed {
                self.push(addr, Action::Delete, Some(reason.clone()), Some(State::Profile(live.clone())), None);
            } else {
                self.refuse(
                    addr,
                    format!("Profile {ns} was not created by kfp-tenant, so it is not deleted"),
                    "delete it yourself, or remove the tenant from the file",
                );
            }
        }
        let Some(role) = self.observed.roles.get(role_name) else { return };
        let addr = Address::tenant(ns, Kind::IamRole);
        if !tags::is_managed_role(&role.tags, &self.cluster.name) {
            self.refuse(
                addr,
                format!("IAM role {role_name} was not created by kfp-tenant for cluster {}, so it is not deleted", self.cluster.name),
                "delete it yourself, or remove the tenant from the file",
            );
            return;
        }
        if let Some(document) = self.observed.policies.get(&(role_name.to_owned(), policy.to_owned())) {
            let live = InlinePolicy { role_name: role_name.to_owned(), policy_name: policy.to_owned(), document: document.clone() };
            self.push(Address::tenant(ns, Kind::S3Policy), Action::Delete, Some(reason.clone()), Some(State::S3Policy(live)), None);
        }
        self.push(addr, Action::Delete, Some(reason), Some(State::Role(role.clone())), None);
    }

    fn prune(&mut self) {
        let wanted: BTreeMap<&str, &Tenant> = self.desired.tenants.iter().map(|t| (t.namespace.as_str(), t)).collect();
        for role in &self.observed.managed_roles {
            let Some(ns) = role.tags.get(tags::NAMESPACE) else { continue };
            match wanted.get(ns.as_str()) {
                None => self.delete_tenant(ns, &role.name, &policy_name(ns), Reason::Pruned),
                Some(t) if t.role_name != role.name => self.warnings.push(format!(
                    "IAM role {} is tagged for tenant {ns}, which now uses role {}; it is left in place: delete it with `aws iam delete-role-policy --role-name {} --policy-name {}` and `aws iam delete-role --role-name {}`",
                    role.name, t.role_name, role.name, policy_name(ns), role.name
                )),
                Some(_) => {}
            }
        }
        for profile in self.observed.profiles.values() {
            let addr = Address::tenant(&profile.name, Kind::Profile);
            if profile.managed && !wanted.contains_key(profile.name.as_str()) && !self.changes.contains_key(&addr) {
                self.push(addr, Action::Delete, Some(Reason::Pruned), Some(State::Profile(profile.clone())), None);
            }
        }
    }

    fn finish(self, mode: Mode) -> Result<Plan, PlanError> {
        if !self.problems.is_empty() {
            return Err(PlanError { problems: self.problems });
        }
        Ok(Plan {
            format_version: FORMAT_VERSION.to_owned(),
            mode,
            cluster: self.cluster,
            changes: self.changes.into_values().collect(),
            warnings: self.warnings,
        })
    }
}

fn describe_tags(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".to_owned();
    }
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// The attributes of a role that differ, by name. The ARN is IAM's to assign.
pub fn role_drift(live: &Role, want: &Role) -> Vec<String> {
    let mut drift = Vec::new();
    if live.trust_policy != want.trust_policy {
        drift.push("trust_policy");
    }
    if live.description != want.description {
        drift.push("description");
    }
    if live.max_session_duration != want.max_session_duration {
        drift.push("max_session_duration");
    }
    if live.permissions_boundary != want.permissions_boundary {
        drift.push("permissions_boundary");
    }
    if live.tags != want.tags {
        drift.push("tags");
    }
    drift.into_iter().map(str::to_owned).collect()
}

pub fn profile_drift(live: &Profile, want: &Profile) -> Vec<String> {
    let mut drift = Vec::new();
    if live.owner != want.owner {
        drift.push("owner");
    }
    if live.plugins != want.plugins {
        drift.push("plugins");
    }
    if live.resource_quota != want.resource_quota {
        drift.push("resource_quota");
    }
    if live.managed != want.managed {
        drift.push("labels");
    }
    drift.into_iter().map(str::to_owned).collect()
}

/// Every resource of these tenants and what it depends on, data sources and
/// derived documents included.
pub fn resource_graph<'a>(namespaces: impl IntoIterator<Item = &'a str>) -> crate::graph::Dag<Address> {
    let mut dag = crate::graph::Dag::default();
    let mut ids = BTreeMap::new();
    let mut addresses = vec![Address::CallerIdentity, Address::ClusterOidc];
    for ns in namespaces {
        addresses.extend(Kind::ALL.into_iter().map(|k| Address::tenant(ns, k)));
    }
    for a in addresses {
        let id = dag.add_node(a.clone());
        ids.insert(a, id);
    }
    for (address, &id) in &ids {
        for dependency in address.dependencies() {
            if let Some(&from) = ids.get(&dependency) {
                dag.add_edge(from, id);
            }
        }
    }
    dag
}

/// Keeps only the tenants named in `targets` (all when it is empty). Never
/// prune a targeted plan: every tenant outside the target would look removed.
pub fn target(desired: &Desired, targets: &[String]) -> Desired {
    let mut d = desired.clone();
    if !targets.is_empty() {
        d.tenants.retain(|t| targets.contains(&t.namespace));
    }
    d
}
