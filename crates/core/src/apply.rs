//! Carrying out a [`Plan`]: a walk of the resource graph.
//!
//! Within a tenant the role comes before its inline policy and its Profile
//! (which names the role's ARN); deletions run the other way round, and a
//! deposed role goes last, once nothing points at it. Tenants do not depend
//! on each other, so a failure in one skips only that tenant's dependent
//! resources while the others carry on. Every call apply makes is fixed by
//! the plan: it reads no reason and chooses no name.
//!
//! Time is bounded: [`ApplyOptions::timeout`] is one deadline for every wait
//! of the run (readiness, a Profile's deletion, a namespace the controller
//! has yet to make), and a wait that reaches it fails with
//! [`ErrorKind::Timeout`], which nothing retries. A [`Stop`] ends the run
//! early: nothing new starts, what runs gets [`ApplyOptions::grace`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::address::{Address, Kind};
use crate::graph::{Dag, Slots, Stop, Visit};
use crate::plan::{Action, Plan, ResourceChange, State, role_drift};
pub use crate::ports::Providers;
use crate::ports::{ErrorKind, IamApi, PodIdentityApi, PodIdentityAssociation, ProviderError, Role};
use crate::tags;

pub const DEFAULT_PARALLELISM: usize = 10;

/// How apply runs.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Changes in flight at once (at least one).
    pub parallelism: usize,
    /// After creating or updating a Profile, wait for the controller to make
    /// it usable.
    pub wait: bool,
    /// Every wait of the run ends by this long after apply starts.
    pub timeout: Duration,
    /// Ends the run early when stopped.
    pub stop: Stop,
    /// How long changes in flight may still finish after a stop.
    pub grace: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: DEFAULT_PARALLELISM,
            wait: false,
            timeout: Duration::from_secs(300),
            stop: Stop::default(),
            grace: Duration::from_secs(5),
        }
    }
}

/// How one resource's change ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Done,
    Failed {
        error: String,
    },
    /// Not attempted because a resource it depends on failed.
    Skipped {
        because: Address,
    },
    /// Not attempted because the run was interrupted.
    NotStarted,
    /// In flight when the run was interrupted and its grace ran out: it may
    /// or may not have taken effect (the next plan shows which).
    Interrupted,
}

/// The outcome of every change that was not a no-op, by address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcomes: BTreeMap<Address, (Action, Outcome)>,
}

impl Report {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.values().filter(|(_, o)| f(o)).count()
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped { .. }))
    }

    /// Changes that an interrupt kept from running or from finishing.
    pub fn interrupted(&self) -> usize {
        self.count(|o| matches!(o, Outcome::NotStarted | Outcome::Interrupted))
    }

    pub fn is_success(&self) -> bool {
        self.count(|o| *o != Outcome::Done) == 0
    }
}

/// Told about each resource as apply works, e.g. to draw progress.
pub trait Progress: Send + Sync {
    fn started(&self, _address: &Address, _action: Action) {}
    fn finished(&self, _address: &Address, _action: Action, _outcome: &Outcome, _elapsed: Duration) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {}

/// The graph of a plan's changes, edges in the order apply must respect:
/// [`Address::dependencies`], reversed where the dependent is deleted. Three
/// orders are not in those edges, because they depend on names or on the
/// direction of a change:
/// - a deposed role, and a road's retired trust statement, come after every
///   other change of their tenant (the Profile, the service accounts and the
///   associations stop using them first); the deposed role last;
/// - a road's grants come before the other road's revocations in the same
///   tenant ([`road_change`]), so that a tenant moving between IRSA and Pod
///   Identity always has one that admits its service accounts;
/// - an association waits for its Profile only when the Profile is created
///   (its namespace is made then); otherwise it is a grant that the
///   Profile's change may have to wait for.
pub fn graph(plan: &Plan) -> Dag<&ResourceChange> {
    let mut dag = Dag::default();
    let mut ids = BTreeMap::new();
    for change in &plan.changes {
        ids.insert(&change.address, dag.add_node(change));
    }
    let last = |kind: Option<Kind>| match kind {
        Some(Kind::TrustStatement) => 1,
        Some(Kind::DeposedRole) => 2,
        _ => 0,
    };
    // Each tenant's changes, so that the orders between them cost a
    // tenant's changes, not the whole plan's, however many tenants move.
    let mut by_tenant: BTreeMap<&str, Vec<&ResourceChange>> = BTreeMap::new();
    for change in &plan.changes {
        if let Some(ns) = change.address.namespace() {
            by_tenant.entry(ns).or_default().push(change);
        }
    }
    let tenant = |change: &ResourceChange| change.address.namespace().and_then(|ns| by_tenant.get(ns)).map_or(&[][..], Vec::as_slice);
    for change in &plan.changes {
        let me = ids[&change.address];
        let rank = last(change.address.kind());
        if rank > 0 {
            for other in tenant(change).iter().filter(|o| last(o.address.kind()) < rank) {
                dag.add_edge(ids[&other.address], me);
            }
            continue;
        }
        // A Profile waits for its owner's Cognito user; a user deleted goes after its Profiles.
        if let Some(State::Profile(p)) = change.after.as_ref().or(change.before.as_ref())
            && let Some(&user) = ids.get(&Address::CognitoUser { email: p.owner.clone() })
        {
            if dag.node(user).action == Action::Delete {
                dag.add_edge(me, user);
            } else {
                dag.add_edge(user, me);
            }
        }
        if road_change(change) == Some(RoadChange::Revoke) {
            for other in tenant(change).iter().filter(|c| road_change(c) == Some(RoadChange::Grant)) {
                dag.add_edge(ids[&other.address], me);
            }
        }
        for dependency in planned_dependencies(&change.address, &ids) {
            let them = ids[&dependency];
            let theirs = dag.node(them).action;
            if change.address.kind() == Some(Kind::PodIdentity)
                && change.action != Action::Delete
                && dependency.kind() == Some(Kind::Profile)
                && !matches!(theirs, Action::Create | Action::Replace)
            {
                continue;
            }
            // A deletion goes before what it depends on only when that goes
            // too; otherwise after it, like any change (an association
            // deleted while its role gains IRSA's statement comes after it).
            if change.action == Action::Delete && theirs == Action::Delete {
                dag.add_edge(me, them);
            } else {
                dag.add_edge(them, me);
            }
        }
    }
    dag
}

/// Whether a change gives a road to AWS to the tenant's pods or takes one away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoadChange {
    Grant,
    Revoke,
}

/// Grants: an association made or repointed, a Profile gaining IRSA's
/// plugin, a service account gaining the role annotation. Revocations: an
/// association deleted, a Profile losing the plugin, a service account
/// losing the annotation. A Profile replaced recreates its namespace (and
/// its pods) and counts as neither.
fn road_change(change: &ResourceChange) -> Option<RoadChange> {
    let irsa = |state: Option<&State>| match state {
        Some(State::Profile(p)) => p.role_arn().is_some(),
        Some(State::ServiceAccount(sa)) => sa.role_arn.is_some(),
        _ => false,
    };
    match (change.address.kind()?, change.action) {
        (Kind::PodIdentity, Action::Create | Action::Update | Action::Replace) => Some(RoadChange::Grant),
        (Kind::PodIdentity, Action::Delete) => Some(RoadChange::Revoke),
        (Kind::Profile | Kind::ServiceAccount, Action::Create | Action::Update) => {
            match (irsa(change.before.as_ref()), irsa(change.after.as_ref())) {
                (false, true) => Some(RoadChange::Grant),
                (true, false) => Some(RoadChange::Revoke),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The planned resources `address` depends on, looking through those that
/// are not in the plan (a role depends on the OIDC provider through its trust
/// policy, which is derived, not planned).
fn planned_dependencies<T>(address: &Address, planned: &BTreeMap<&Address, T>) -> Vec<Address> {
    let mut found = Vec::new();
    let mut todo = address.dependencies();
    while let Some(dependency) = todo.pop() {
        if planned.contains_key(&dependency) {
            if !found.contains(&dependency) {
                found.push(dependency);
            }
        } else {
            todo.extend(dependency.dependencies());
        }
    }
    found
}

/// Applies `plan`, `options.parallelism` resources at a time.
pub async fn apply(plan: &Plan, providers: Providers<'_>, options: &ApplyOptions, progress: &dyn Progress) -> Report {
    let dag = graph(plan);
    let deadline = Instant::now() + options.timeout;
    let slots = Slots::default();
    let slots = &slots;
    let visits = dag
        .walk_with_slots(options.parallelism, &options.stop, options.grace, slots, |id, change| async move {
            if change.action == Action::NoOp {
                return Ok(());
            }
            progress.started(&change.address, change.action);
            let started = std::time::Instant::now();
            let mut result = execute(plan, change, providers, deadline).await;
            if let (Ok(()), true, Some(State::Profile(want))) = (&result, options.wait, &change.after) {
                // Waiting for the controller is no call: another resource may start.
                slots.release(id);
                result = providers.kube.wait_ready(want, remaining(deadline)).await;
            }
            let result = result.map_err(|e| e.to_string());
            let outcome = match &result {
                Ok(()) => Outcome::Done,
                Err(error) => Outcome::Failed { error: error.clone() },
            };
            progress.finished(&change.address, change.action, &outcome, started.elapsed());
            result
        })
        .await
        .expect("invariant: a plan's graph is acyclic (edges follow Address::dependencies)");
    let mut report = Report::default();
    for (id, change) in dag.nodes() {
        if change.action == Action::NoOp {
            continue;
        }
        let outcome = match &visits[id.ordinal()] {
            Visit::Done => Outcome::Done,
            Visit::Failed(error) => Outcome::Failed { error: error.clone() },
            Visit::Skipped { because } => {
                let because = dag.node(*because).address.clone();
                progress.finished(&change.address, change.action, &Outcome::Skipped { because: because.clone() }, Duration::ZERO);
                Outcome::Skipped { because }
            }
            Visit::NotStarted => Outcome::NotStarted,
            Visit::Abandoned => Outcome::Interrupted,
        };
        report.outcomes.insert(change.address.clone(), (change.action, outcome));
    }
    report
}

/// What is left of the run's time for a wait.
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn ignore_missing(result: Result<(), ProviderError>) -> Result<(), ProviderError> {
    match result {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

async fn execute(plan: &Plan, change: &ResourceChange, p: Providers<'_>, deadline: Instant) -> Result<(), ProviderError> {
    match (change.action, change.before.as_ref(), change.after.as_ref()) {
        (Action::Create, _, Some(State::Role(want))) => p.iam.create_role(want).await.map(drop),
        (Action::Update, Some(State::Role(live)), Some(State::Role(want))) => update_role(p.iam, live, want).await,
        (Action::Replace, Some(State::Role(live)), Some(State::Role(want))) => {
            // The old role's policies go with it (the plan shows each; their
            // own changes put back what the file asks for).
            let ns = change.address.namespace().unwrap_or_default();
            for old in plan.changes.iter().filter(|c| c.address.namespace() == Some(ns)) {
                match old.before.as_ref() {
                    Some(State::S3Policy(policy) | State::InlinePolicy(policy)) => {
                        ignore_missing(p.iam.delete_role_policy(&live.name, &policy.policy_name).await)?;
                    }
                    Some(State::PolicyAttachment(a)) => ignore_missing(p.iam.detach_role_policy(&live.name, &a.policy_arn).await)?,
                    _ => {}
                }
            }
            ignore_missing(p.iam.delete_role(&live.name).await)?;
            p.iam.create_role(want).await.map(drop)
        }
        (Action::Delete, Some(State::Role(live)), _) => ignore_missing(p.iam.delete_role(&live.name).await),
        (Action::Delete, Some(State::DeposedRole(deposed)), _) => {
            for policy in deposed.policy.iter().chain(&deposed.other_policies) {
                ignore_missing(p.iam.delete_role_policy(&policy.role_name, &policy.policy_name).await)?;
            }
            for arn in &deposed.attached_policies {
                ignore_missing(p.iam.detach_role_policy(&deposed.role.name, arn).await)?;
            }
            ignore_missing(p.iam.delete_role(&deposed.role.name).await)
        }
        (Action::Delete, Some(State::InlinePolicy(live)), _) => {
            ignore_missing(p.iam.delete_role_policy(&live.role_name, &live.policy_name).await)
        }
        (Action::Create, _, Some(State::PolicyAttachment(want))) => p.iam.attach_role_policy(&want.role_name, &want.policy_arn).await,
        (Action::Delete, Some(State::PolicyAttachment(live)), _) => {
            ignore_missing(p.iam.detach_role_policy(&live.role_name, &live.policy_arn).await)
        }
        (Action::Create | Action::Update, _, Some(State::S3Policy(want))) => {
            p.iam.put_role_policy(&want.role_name, &want.policy_name, &want.document).await
        }
        (Action::Delete, Some(State::S3Policy(live)), _) => {
            ignore_missing(p.iam.delete_role_policy(&live.role_name, &live.policy_name).await)
        }
        (Action::Create | Action::Update, _, Some(State::Profile(want))) => p.kube.apply_profile(want).await,
        (Action::Replace, Some(State::Profile(live)), Some(State::Profile(want))) => {
            ignore_missing(p.kube.delete_profile(&live.name, remaining(deadline)).await)?;
            p.kube.apply_profile(want).await
        }
        (Action::Delete, Some(State::Profile(live)), _) => ignore_missing(p.kube.delete_profile(&live.name, remaining(deadline)).await),
        // kfp-tenant's own service accounts: labels and annotation, made if missing.
        (Action::Create | Action::Update, _, Some(State::ServiceAccount(want))) if want.managed => {
            p.kube.apply_service_account(want, remaining(deadline)).await
        }
        // An adopted account the tenant no longer names: given back.
        (Action::Update, Some(State::ServiceAccount(live)), Some(State::ServiceAccount(want))) if live.managed => {
            p.kube.release_service_account(&want.namespace, &want.name).await
        }
        // Another's account (default-editor): only the role annotation, set or removed.
        (Action::Create | Action::Update, _, Some(State::ServiceAccount(want))) => {
            p.kube.annotate_service_account(&want.namespace, &want.name, want.role_arn.as_deref()).await
        }
        (Action::Delete, Some(State::ServiceAccount(live)), _) => {
            ignore_missing(p.kube.delete_service_account(&live.namespace, &live.name).await)
        }
        (Action::Create, _, Some(State::OidcProvider(want))) => match p.cluster.create_oidc_provider(&want.issuer_url).await {
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
            other => other.map(drop),
        },
        (Action::Create, _, Some(State::ClusterRecord(record))) => p.kube.write_cluster_record(record).await,
        (Action::Create, _, Some(State::PodIdentity(want))) => create_association(p.pod_identity, &plan.cluster.name, want).await,
        (Action::Update, Some(State::PodIdentity(live)), Some(State::PodIdentity(want))) => {
            let role = want.role_arn.as_deref().unwrap_or_default();
            p.pod_identity.update_pod_identity_association(&plan.cluster.name, &live.id, role).await
        }
        (Action::Replace, Some(State::PodIdentity(live)), Some(State::PodIdentity(want))) => {
            ignore_missing(p.pod_identity.delete_pod_identity_association(&plan.cluster.name, &live.id).await)?;
            create_association(p.pod_identity, &plan.cluster.name, want).await
        }
        (Action::Delete, Some(State::PodIdentity(live)), _) => {
            ignore_missing(p.pod_identity.delete_pod_identity_association(&plan.cluster.name, &live.id).await)
        }
        (Action::Create, _, Some(State::CognitoUser(want))) => {
            match p.directory.create_user(&want.user_pool_id, &want.email, want.invite).await {
                // Made since the plan, by someone else: used as it is, and not recorded as kfp-tenant's.
                Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
                Ok(_) => p.kube.record_cognito_user(&want.user_pool_id, &want.email, true).await,
            }
        }
        (Action::Delete, Some(State::CognitoUser(live)), _) => {
            if let Some(username) = &live.username {
                ignore_missing(p.directory.delete_user(&live.user_pool_id, username).await)?;
            }
            p.kube.record_cognito_user(&live.user_pool_id, &live.email, false).await
        }
        (Action::Delete, Some(State::TrustStatement(retired)), _) => {
            ignore_missing(p.iam.update_trust_policy(&retired.role_name, &retired.remaining).await)
        }
        (action, _, _) => Err(ProviderError::new(
            ErrorKind::InvalidInput,
            "apply",
            change.address.to_string(),
            format!("the plan holds a {action:?} without the states it needs; make a new plan"),
        )),
    }
}

/// Creates an association. EKS refuses a second one for the same service
/// account; if the one found carries kfp-tenant's markers for this cluster
/// (made by a run cut off before its answer came back), it is adopted and
/// pointed at the role, else the refusal stands with the fix.
async fn create_association(pods: &dyn PodIdentityApi, cluster: &str, want: &PodIdentityAssociation) -> Result<(), ProviderError> {
    let error = match pods.create_pod_identity_association(cluster, want).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind == ErrorKind::AlreadyExists => e,
        Err(e) => return Err(e),
    };
    let listed = pods.list_pod_identity_associations(cluster).await?;
    let Some(found) = listed.iter().find(|a| a.namespace == want.namespace && a.service_account == want.service_account) else {
        return Err(error);
    };
    let Some(found) = pods.describe_pod_identity_association(cluster, &found.id).await? else {
        return Err(error);
    };
    if !tags::is_managed_role(&found.tags, cluster) {
        return Err(ProviderError::new(
            ErrorKind::AlreadyExists,
            "CreatePodIdentityAssociation",
            format!("{}/{}", want.namespace, want.service_account),
            format!(
                "service account {}/{} got EKS Pod Identity association {} from someone else since the plan was made; run plan again (it names the fix)",
                want.namespace, want.service_account, found.id
            ),
        ));
    }
    match want.role_arn.as_deref() {
        Some(role) if found.role_arn.as_deref() != Some(role) => pods.update_pod_identity_association(cluster, &found.id, role).await,
        _ => Ok(()),
    }
}

/// The IAM calls that turn `live` into `want`: one per attribute that
/// [`role_drift`] finds different.
async fn update_role(iam: &dyn IamApi, live: &Role, want: &Role) -> Result<(), ProviderError> {
    let name = &want.name;
    let drift = role_drift(live, want);
    let differs = |attribute: &str| drift.iter().any(|d| d == attribute);
    if differs("trust_policy") {
        iam.update_trust_policy(name, &want.trust_policy).await?;
    }
    if differs("description") || differs("max_session_duration") {
        iam.update_role(name, want.description.as_deref(), want.max_session_duration).await?;
    }
    if differs("permissions_boundary") {
        iam.set_permissions_boundary(name, want.permissions_boundary.as_deref()).await?;
    }
    if differs("tags") {
        let stale: Vec<String> = live.tags.keys().filter(|k| !want.tags.contains_key(*k)).cloned().collect();
        if !stale.is_empty() {
            iam.untag_role(name, &stale).await?;
        }
        let changed: BTreeMap<String, String> =
            want.tags.iter().filter(|(k, v)| live.tags.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !changed.is_empty() {
            iam.tag_role(name, &changed).await?;
        }
    }
    Ok(())
}
