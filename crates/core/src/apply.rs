//! Carrying out a [`Plan`]: a walk of its changes in the order
//! [`crate::order::walk`] gives them (within a tenant the role before its
//! inline policy and its Profile, which names the role's ARN; deletions the
//! other way round; a deposed role last, once nothing points at it), each
//! carried out by its kind. Tenants do not depend on each other, so a
//! failure in one skips only that tenant's dependent resources while the
//! others carry on. Every call apply makes is fixed by the plan: it reads no
//! reason and chooses no name.
//!
//! Time is bounded: [`ApplyOptions::timeout`] is one deadline for every wait
//! of the run (readiness, a Profile's deletion, a namespace the controller
//! has yet to make), and a wait that reaches it fails with
//! [`ErrorKind::Timeout`](crate::ports::ErrorKind::Timeout), which nothing retries. A [`Stop`] ends the run
//! early: nothing new starts, what runs gets [`ApplyOptions::grace`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::address::Address;
use crate::graph::{Slots, Stop, Visit};
use crate::plan::{Action, Plan, State};
use crate::ports::ErrorKind;
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
        /// How it failed: a wait that ran out is [`ErrorKind::Timeout`].
        #[serde(skip)]
        kind: ErrorKind,
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

/// Applies `plan`, `options.parallelism` resources at a time.
pub async fn apply(plan: &Plan, providers: Providers<'_>, options: &ApplyOptions, progress: &dyn Progress) -> Report {
    let dag = crate::order::walk(plan);
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
            let outcome = match &result {
                Ok(()) => Outcome::Done,
                Err(error) => Outcome::Failed { error: error.to_string(), kind: error.kind },
            };
            progress.finished(&change.address, change.action, &outcome, started.elapsed());
            result
        })
        .await
        .expect("invariant: a plan's graph is acyclic (crate::order)");
    let mut report = Report::default();
    for (id, change) in dag.nodes() {
        if change.action == Action::NoOp {
            continue;
        }
        let outcome = match &visits[id.ordinal()] {
            Visit::Done => Outcome::Done,
            Visit::Failed(error) => Outcome::Failed { error: error.to_string(), kind: error.kind },
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
