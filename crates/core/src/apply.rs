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
use crate::plan::{Action, Plan, ResourceChange, State};
pub use crate::ports::Providers;

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

/// The order apply walks a plan in, as addresses: every edge of [`graph`],
/// those that depend on a change's direction or a state's content included
/// (what `kfp-tenant graph PLAN` draws).
pub fn order(plan: &Plan) -> Dag<Address> {
    let walked = graph(plan);
    let mut dag = Dag::default();
    let ids: BTreeMap<_, _> = walked.nodes().map(|(id, change)| (id, dag.add_node(change.address.clone()))).collect();
    for (before, after) in walked.edges() {
        dag.add_edge(ids[&before], ids[&after]);
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
            let mut result = crate::kinds::execute(plan, change, providers, deadline).await;
            if let (Ok(()), true, Some(State::Profile(want))) = (&result, options.wait, &change.after) {
                // Waiting for the controller is no call: another resource may start.
                slots.release(id);
                result = providers.kube.wait_ready(want, crate::kinds::remaining(deadline)).await;
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
