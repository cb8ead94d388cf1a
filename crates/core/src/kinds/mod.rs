//! One home per resource kind: what a plan shows of it (its label and
//! attributes), what a saved plan re-reads and fingerprints of it (its
//! reads and its current state), and the calls that carry out each of its
//! actions. The planner, render, fresh and apply reach a kind only through
//! [`Resource`] and [`execute`]; each `State` variant maps to one module:
//!
//! | module | states |
//! |---|---|
//! | `role` | `Role` |
//! | `policies` | `S3Policy`, `InlinePolicy` (an inline policy), `PolicyAttachment` |
//! | `profile` | `Profile` |
//! | `service_account` | `ServiceAccount` |
//! | `cluster` | `OidcProvider`, `ClusterRecord` |
//! | `deposed_role` | `DeposedRole` |
//! | `pod_identity` | `PodIdentity` |
//! | `trust_statement` | `TrustStatement` |
//! | `cognito_user` | `CognitoUser` |
//! | `pipeline_config` | `PipelineConfig` |
//!
//! Adding a kind: a module here with its `Resource` impl, its `State`
//! variant, one line in each `match` below, and its planning in `plan`.

use async_trait::async_trait;
use serde_json::Value;
use tokio::time::Instant;

use crate::plan::{Plan, ResourceChange, State};
use crate::policy::PolicyDocument;
use crate::ports::{ErrorKind, ProviderError, Providers};
use crate::refresh::{Observed, ReadSet};

mod cluster;
mod cognito_user;
mod deposed_role;
mod pipeline_config;
mod pod_identity;
mod policies;
mod profile;
mod role;
mod service_account;
mod trust_statement;

pub(crate) use cognito_user::observed_user;
pub(crate) use pipeline_config::live_root;
pub use pipeline_config::{desired_pipeline_config, pipeline_config_drift};
pub use profile::profile_drift;
pub use role::role_drift;
pub use service_account::service_account_drift;

/// An attribute as a plan shows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Attr {
    Text(String),
    Document(PolicyDocument),
    Json(Value),
}

pub(crate) fn text(s: &str) -> Attr {
    Attr::Text(s.to_owned())
}

/// What apply hands a kind to carry out a change.
pub(crate) struct Cx<'a> {
    pub plan: &'a Plan,
    pub change: &'a ResourceChange,
    pub providers: Providers<'a>,
    /// Every wait of the run ends by then.
    pub deadline: Instant,
}

impl Cx<'_> {
    /// What is left of the run's time for a wait.
    pub fn remaining(&self) -> std::time::Duration {
        remaining(self.deadline)
    }
}

/// What is left of a run's time before `deadline`, for a wait.
pub(crate) fn remaining(deadline: Instant) -> std::time::Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// What every kind says of itself.
#[async_trait]
pub(crate) trait Resource: Sized + Send + Sync {
    /// The kind and name a plan shows: `iam_role "team-a-kf-role"`.
    fn label(&self) -> (&'static str, String);
    /// The attributes a plan shows, in order.
    fn attributes(&self) -> Vec<(&'static str, Attr)>;
    /// What a refresh must read for a saved plan's `change` of it.
    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet);
    /// Its live state in a new refresh, to compare with what a saved plan saw.
    fn current(&self, observed: &Observed) -> Option<Self>;
    /// The calls that carry out `cx.change` (`before` and `after` its states).
    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError>;
}

/// Every `State` variant, once: the one list the dispatch below expands.
macro_rules! with_variants {
    ($callback:ident ! ($($args:tt)*)) => {
        $callback!($($args)*; Role, S3Policy, InlinePolicy, PolicyAttachment, Profile, ServiceAccount, OidcProvider, ClusterRecord, DeposedRole, PodIdentity, TrustStatement, CognitoUser, PipelineConfig)
    };
}

/// Runs `$body` with `$s` bound to the state's value and `$wrap` to its
/// variant's constructor, whatever the variant.
macro_rules! each {
    ($state:expr, $s:ident, $wrap:ident, $body:expr; $($variant:ident),*) => {
        match $state {
            $(State::$variant($s) => {
                let $wrap = State::$variant;
                $body
            })*
        }
    };
}

/// Calls the kind's `execute` with the change's two states of one variant.
macro_rules! execute_each {
    ($cx:expr; $($variant:ident),*) => {
        match ($cx.change.before.as_ref(), $cx.change.after.as_ref()) {
            $((before @ (None | Some(State::$variant(_))), after @ (None | Some(State::$variant(_)))) if before.is_some() || after.is_some() => {
                let before = match before { Some(State::$variant(s)) => Some(s), _ => None };
                let after = match after { Some(State::$variant(s)) => Some(s), _ => None };
                Resource::execute($cx, before, after).await
            })*
            _ => Err(malformed($cx.change)),
        }
    };
}

impl State {
    pub(crate) fn label(&self) -> (&'static str, String) {
        with_variants!(each!(self, s, _wrap, s.label()))
    }

    pub(crate) fn attributes(&self) -> Vec<(&'static str, Attr)> {
        with_variants!(each!(self, s, _wrap, s.attributes()))
    }

    pub(crate) fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        with_variants!(each!(self, s, _wrap, s.add_reads(change, reads)))
    }

    pub(crate) fn current(&self, observed: &Observed) -> Option<State> {
        with_variants!(each!(self, s, wrap, s.current(observed).map(wrap)))
    }
}

/// Carries out one change through its kind.
pub(crate) async fn execute(
    plan: &Plan,
    change: &ResourceChange,
    providers: Providers<'_>,
    deadline: Instant,
) -> Result<(), ProviderError> {
    let cx = Cx { plan, change, providers, deadline };
    with_variants!(execute_each!(&cx))
}

/// A change whose states do not fit its action: a hand-edited saved plan.
pub(crate) fn malformed(change: &ResourceChange) -> ProviderError {
    ProviderError::new(
        ErrorKind::InvalidInput,
        "apply",
        change.address.to_string(),
        format!("the plan holds a {:?} without the states it needs; make a new plan", change.action),
    )
}

/// Ignores "not found": what a deletion wanted is so already.
pub(crate) fn ignore_missing(result: Result<(), ProviderError>) -> Result<(), ProviderError> {
    match result {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
