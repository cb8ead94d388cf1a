//! Saved plans against the world as it is now: the reads that refresh a
//! plan's resources, and the fingerprints that tell whether any changed.

use std::fmt;

use crate::address::Address;
use crate::identity::Proof;
use crate::plan::planner::{ProviderNeed, context, observed_user};
use crate::plan::{DeposedRole, Mode, Plan, Reason, ResourceChange, State};
use crate::policy;
use crate::ports::{InlinePolicy, OidcProvider};
use crate::refresh::{Observed, ReadSet, UserReads};
use crate::spec::policy_name;

/// Everything a plan's changes were computed from.
pub fn reads_of(plan: &Plan) -> ReadSet {
    // A plan that records a vouched binding was made with --bind-cluster.
    let vouched = plan.changes.iter().any(|c| matches!(c.reason, Some(Reason::Bind { proof: Proof::Vouched })));
    let mut reads = ReadSet { cluster: plan.cluster.name.clone(), vouched, ..Default::default() };
    for change in &plan.changes {
        match change.before.as_ref().or(change.after.as_ref()) {
            Some(State::Role(r)) => {
                let ns = change.address.namespace().unwrap_or_default();
                reads.roles.insert((r.name.clone(), policy_name(ns)));
            }
            Some(State::S3Policy(p)) => {
                reads.roles.insert((p.role_name.clone(), p.policy_name.clone()));
            }
            Some(State::InlinePolicy(p)) => {
                let ns = change.address.namespace().unwrap_or_default();
                reads.roles.insert((p.role_name.clone(), policy_name(ns)));
            }
            Some(State::PolicyAttachment(a)) => {
                let ns = change.address.namespace().unwrap_or_default();
                reads.roles.insert((a.role_name.clone(), policy_name(ns)));
            }
            Some(State::Profile(p)) => {
                reads.namespaces.insert(p.name.clone());
                if let Some(State::Profile(want)) = &change.after {
                    reads.owners.insert(want.name.clone(), want.owner.clone());
                }
            }
            Some(State::ServiceAccount(sa)) => {
                reads.service_accounts.insert((sa.namespace.clone(), sa.name.clone()));
            }
            Some(State::PodIdentity(a)) => {
                reads.pod_identity = true;
                reads.namespaces.insert(a.namespace.clone());
            }
            Some(State::TrustStatement(t)) => {
                let ns = change.address.namespace().unwrap_or_default();
                reads.roles.insert((t.role_name.clone(), policy_name(ns)));
            }
            Some(State::CognitoUser(u)) => {
                let users = reads.cognito.get_or_insert_with(|| UserReads { user_pool_id: u.user_pool_id.clone(), ..Default::default() });
                users.emails.insert(u.email.clone());
                users.delete_users |= change.action == crate::plan::Action::Delete;
            }
            // Listed, always.
            Some(State::DeposedRole(_)) => {}
            // Read with the cluster, always.
            Some(State::OidcProvider(_) | State::ClusterRecord(_)) | None => {}
        }
    }
    reads
}

/// The live state of the resource a change is about, from a new refresh.
fn current(change: &ResourceChange, observed: &Observed) -> Option<State> {
    match change.before.as_ref().or(change.after.as_ref())? {
        State::Role(r) => observed.roles.get(&r.name).cloned().map(State::Role),
        State::S3Policy(p) => observed.policies.get(&(p.role_name.clone(), p.policy_name.clone())).map(|d| {
            State::S3Policy(InlinePolicy { role_name: p.role_name.clone(), policy_name: p.policy_name.clone(), document: d.clone() })
        }),
        State::InlinePolicy(p) => observed.policies.get(&(p.role_name.clone(), p.policy_name.clone())).map(|d| {
            State::InlinePolicy(InlinePolicy { role_name: p.role_name.clone(), policy_name: p.policy_name.clone(), document: d.clone() })
        }),
        State::PolicyAttachment(a) => observed
            .attachments
            .get(&a.role_name)
            .is_some_and(|arns| arns.contains(&a.policy_arn))
            .then(|| State::PolicyAttachment(a.clone())),
        State::Profile(p) => observed.profiles.get(&p.name).cloned().map(State::Profile),
        State::ServiceAccount(sa) => {
            observed.service_accounts.get(&(sa.namespace.clone(), sa.name.clone())).cloned().map(State::ServiceAccount)
        }
        State::OidcProvider(p) => observed
            .cluster
            .oidc
            .provider_arn
            .clone()
            .map(|arn| State::OidcProvider(OidcProvider { issuer_url: p.issuer_url.clone(), arn })),
        State::ClusterRecord(_) => observed.record.clone().map(State::ClusterRecord),
        State::CognitoUser(u) => observed_user(observed, &u.user_pool_id, &u.email).map(State::CognitoUser),
        State::PodIdentity(a) => {
            observed.associations.get(&(a.namespace.clone(), a.service_account.clone())).cloned().map(State::PodIdentity)
        }
        // No state of its own: the role's change carries its trust policy's fingerprint.
        State::TrustStatement(t) => observed.roles.get(&t.role_name).map(|_| State::TrustStatement(t.clone())),
        State::DeposedRole(d) => observed.roles.get(&d.role.name).map(|role| {
            let policy = d.policy.as_ref().and_then(|p| {
                let document = observed.policies.get(&(p.role_name.clone(), p.policy_name.clone()))?;
                Some(InlinePolicy { role_name: p.role_name.clone(), policy_name: p.policy_name.clone(), document: document.clone() })
            });
            let (other_policies, attached_policies) =
                role_permissions(observed, &role.name, d.policy.as_ref().map(|p| p.policy_name.as_str()));
            State::DeposedRole(DeposedRole { role: role.clone(), policy, other_policies, attached_policies })
        }),
    }
}

/// A role's inline policies other than `except`, and its attached managed
/// policies, as refresh read them.
pub(crate) fn role_permissions(observed: &Observed, role: &str, except: Option<&str>) -> (Vec<InlinePolicy>, Vec<String>) {
    let inline = observed
        .policies
        .range((role.to_owned(), String::new())..)
        .take_while(|((r, _), _)| r == role)
        .filter(|((_, name), _)| Some(name.as_str()) != except)
        .map(|((r, name), document)| InlinePolicy { role_name: r.clone(), policy_name: name.clone(), document: document.clone() })
        .collect();
    let attached = observed.attachments.get(role).into_iter().flatten().cloned().collect();
    (inline, attached)
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
    let mut changed: Vec<Address> = plan
        .changes
        .iter()
        .filter(|c| fingerprint(current(c, observed).as_ref()) != c.observed_fingerprint)
        .map(|c| c.address.clone())
        .collect();
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
    let mut hash = crate::fnv::Hasher::default();
    serde_json::to_writer(&mut hash, &policy::canonicalize(&value)).expect("invariant: hashing cannot fail");
    format!("{:016x}", hash.0)
}
