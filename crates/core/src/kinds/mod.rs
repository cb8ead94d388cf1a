//! One home per resource kind: what a plan shows of it (its label and
//! attributes), what a saved plan re-reads and fingerprints of it (its
//! reads and its current state), the calls that carry out each of its
//! actions, and its place in apply's order (what it depends on, where it
//! goes in its tenant, whether it grants or revokes a road, what its content
//! makes it wait for); beside it, what the file asks for of it
//! (`desired_*`) and how live state differs (`*_drift`). Render, fresh,
//! apply and `crate::order` reach a kind only through `Resource` and the
//! dispatch below; the planner calls its `desired_*`, `*_drift` and, where
//! a kind plans itself, `plan_*`. Each `State` variant maps to one module:
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
//! Adding a kind: a module here with its `Resource` impl (what the file asks
//! for and how live state differs beside it), its `State` variant in
//! `with_variants!`, its address in `by_kind!`, and a call from the planner.

use async_trait::async_trait;
use serde_json::Value;
use tokio::time::Instant;

use crate::address::{Address, Kind};
use crate::plan::{Action, CognitoUser, DeposedRole, Plan, PolicyAttachment, Reason, ResourceChange, State, TrustStatement};
use crate::policy::PolicyDocument;
use crate::ports::{
    ClusterRecord, ConfigMap, ErrorKind, InlinePolicy, OidcProvider, PodIdentityAssociation, Profile, ProviderError, Providers, Role,
    ServiceAccount,
};
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
pub use pipeline_config::desired_pipeline_config;
pub(crate) use pipeline_config::live_root;
pub(crate) use pipeline_config::plan_pipeline_config;
pub use pod_identity::association_tags;
pub use policies::desired_s3_policy;
pub(crate) use profile::owner_user;
pub use profile::{desired_profile, profile_drift};
pub use role::{bridge_trust, desired_role, road_trust, role_drift};
pub use service_account::{desired_service_account, service_account_drift};

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

/// A change a kind plans; the planner fingerprints what it saw and keeps it.
pub(crate) struct Planned {
    pub address: Address,
    pub action: Action,
    pub reason: Option<Reason>,
    pub before: Option<State>,
    pub after: Option<State>,
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

    // Its order ([`crate::order`] turns these into the edges apply walks and
    // `kfp-tenant graph` draws).

    /// What a resource of this kind at `address` is computed from: the
    /// edges of the resource graph, known from names alone.
    fn dependencies(address: &Address) -> Vec<Address>;
    /// Its place at its tenant's end: a change of place n > 0 comes after
    /// every change of its tenant of a lower place (and then has no other
    /// edge); 0 is anywhere its dependencies allow.
    const PLACE: u8 = 0;
    /// Whether a change of it waits for its dependency's change (`theirs`).
    fn waits_for_dependency(_action: Action, _dependency: &Address, _theirs: Action) -> bool {
        true
    }
    /// Whether a change of it gives its tenant's pods a road to AWS or takes one away.
    fn road_change(_action: Action, _before: Option<&Self>, _after: Option<&Self>) -> Option<RoadChange> {
        None
    }
    /// A resource its content names and waits for, when the plan has it (a
    /// Profile: its owner's Cognito user); when that one is deleted, this
    /// goes first instead.
    fn waits_for(&self) -> Option<Address> {
        None
    }
}

/// Whether a change gives a road to AWS to a tenant's pods or takes one
/// away: in a tenant, every revocation waits for every grant, so that a
/// tenant moving between IRSA and Pod Identity always has a road that admits
/// its service accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoadChange {
    Grant,
    Revoke,
}

impl RoadChange {
    /// From whether the road was open before and is after.
    fn between(before: bool, after: bool) -> Option<RoadChange> {
        match (before, after) {
            (false, true) => Some(RoadChange::Grant),
            (true, false) => Some(RoadChange::Revoke),
            _ => None,
        }
    }
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

/// Runs `$body` with `$before` and `$after` bound to the change's two
/// states of one variant, or gives `$otherwise` when they are not.
macro_rules! pair_each {
    ($change:expr, $before:ident, $after:ident, $body:expr, $otherwise:expr; $($variant:ident),*) => {
        match ($change.before.as_ref(), $change.after.as_ref()) {
            $((b @ (None | Some(State::$variant(_))), a @ (None | Some(State::$variant(_)))) if b.is_some() || a.is_some() => {
                let $before = match b { Some(State::$variant(s)) => Some(s), _ => None };
                let $after = match a { Some(State::$variant(s)) => Some(s), _ => None };
                $body
            })*
            _ => $otherwise,
        }
    };
}

/// Runs `$body` with the type alias `$t` naming the kind at `$address`;
/// the data sources and the derived trust policy, which are no kind (they
/// have no state to change), give `$none`.
macro_rules! by_kind {
    (@as $t:ident = $ty:ty, $body:expr) => {{
        type $t = $ty;
        $body
    }};
    ($address:expr, $t:ident => $body:expr, $none:expr) => {
        match $address {
            Address::CallerIdentity | Address::ClusterOidc => $none,
            Address::OidcProvider => by_kind!(@as $t = OidcProvider, $body),
            Address::ClusterIdentity => by_kind!(@as $t = ClusterRecord, $body),
            Address::CognitoUser { .. } => by_kind!(@as $t = CognitoUser, $body),
            Address::Tenant { kind, .. } => match kind {
                Kind::TrustPolicy => $none,
                Kind::IamRole => by_kind!(@as $t = Role, $body),
                Kind::S3Policy | Kind::InlinePolicy => by_kind!(@as $t = InlinePolicy, $body),
                Kind::PolicyAttachment => by_kind!(@as $t = PolicyAttachment, $body),
                Kind::Profile => by_kind!(@as $t = Profile, $body),
                Kind::ServiceAccount => by_kind!(@as $t = ServiceAccount, $body),
                Kind::PodIdentity => by_kind!(@as $t = PodIdentityAssociation, $body),
                Kind::PipelineConfig => by_kind!(@as $t = ConfigMap, $body),
                Kind::TrustStatement => by_kind!(@as $t = TrustStatement, $body),
                Kind::DeposedRole => by_kind!(@as $t = DeposedRole, $body),
            },
        }
    };
}

/// What the resource at `address` is computed from (its kind's
/// [`Resource::dependencies`]). The derived trust policy comes from the
/// account, the cluster's issuer and the account's OIDC provider for it;
/// the data sources from nothing.
pub(crate) fn dependencies(address: &Address) -> Vec<Address> {
    match address {
        Address::Tenant { kind: Kind::TrustPolicy, .. } => vec![Address::CallerIdentity, Address::ClusterOidc, Address::OidcProvider],
        _ => by_kind!(address, T => <T as Resource>::dependencies(address), Vec::new()),
    }
}

/// The kind's [`Resource::PLACE`].
pub(crate) fn place(address: &Address) -> u8 {
    by_kind!(address, T => <T as Resource>::PLACE, 0)
}

/// The kind's [`Resource::waits_for_dependency`].
pub(crate) fn waits_for_dependency(address: &Address, action: Action, dependency: &Address, theirs: Action) -> bool {
    by_kind!(address, T => <T as Resource>::waits_for_dependency(action, dependency, theirs), true)
}

/// The kind's [`Resource::road_change`] for `change`.
pub(crate) fn road_change(change: &ResourceChange) -> Option<RoadChange> {
    with_variants!(pair_each!(change, before, after, Resource::road_change(change.action, before, after), None))
}

/// The kind's [`Resource::waits_for`], from the state the change ends with
/// (or, for a deletion, had).
pub(crate) fn waits_for(change: &ResourceChange) -> Option<Address> {
    change.after.as_ref().or(change.before.as_ref())?.waits_for()
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

    fn waits_for(&self) -> Option<Address> {
        with_variants!(each!(self, s, _wrap, s.waits_for()))
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
    with_variants!(pair_each!(cx.change, before, after, Resource::execute(&cx, before, after).await, Err(malformed(cx.change))))
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
