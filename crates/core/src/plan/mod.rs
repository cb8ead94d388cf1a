//! Plans: what apply will do, as plain data.
//!
//! A [`Plan`] fixes every name, ARN and document, so apply has no choices
//! left; it also keeps a fingerprint of each resource as it was observed, so
//! that a saved plan applied later can be refused when the world moved.
//! [`Reason`] is for display: apply never reads it.
//!
//! - `planner`: [`plan`] and [`plan_destroy`], pure functions of a
//!   [`crate::spec::Desired`] and a [`crate::refresh::Observed`];
//! - `fresh`: what a saved plan was made from ([`reads_of`]) and whether
//!   it still holds ([`check_fresh`]).

mod accounts;
mod claims;
pub(crate) mod context;
mod fresh;
pub(crate) mod planner;
mod tenant;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::policy::PolicyDocument;
use crate::ports::{ClusterRecord, InlinePolicy, OidcProvider, PodIdentityAssociation, Profile, Role, ServiceAccount};
use crate::spec::Road;

pub use self::fresh::{StalePlan, check_fresh, fingerprint, reads_of};
pub use self::planner::{plan, plan_destroy, target};
pub use crate::tags::{role_description, role_description_marker};

/// Version of the saved plan and of `--json` output.
pub const FORMAT_VERSION: &str = "2.0";

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
    /// The EKS cluster's ARN, as DescribeCluster gives it.
    pub arn: String,
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
    /// The owner changed, and the namespace's owner annotation names
    /// neither: the profile controller keeps a namespace only for the owner
    /// it names, so the Profile is replaced (only with `--replace`).
    OwnerChanged,
    /// The operator named it with `--replace`.
    ReplaceRequested,
    /// The role is replaced, and its inline policies go with it.
    RoleReplaced,
    /// kfp-tenant takes over a resource it did not create.
    Adopt,
    /// kfp-tenant takes over a resource it made for another EKS cluster.
    AdoptFromCluster { cluster: String },
    /// The tenant is no longer in the tenants file (prune).
    Pruned,
    /// Destroy was asked for.
    Destroy,
    /// Its namespace is deleted and made again with the Profile.
    NamespaceRecreated,
    /// The tenant's role now has another name or path; this one still
    /// grants the tenant's service accounts its S3 policy.
    Deposed { by: String },
    /// The service account is no longer in the tenant's `serviceAccounts`.
    Dropped,
    /// An earlier kfp-tenant wrote it without recording its cluster.
    RecordCluster,
    /// `default-editor`'s role annotation differs; the profile controller
    /// writes it, and kfp-tenant restores it.
    AnnotationDrift,
    /// The namespace exists with the Profile's owner: the controller takes it over.
    TakeOverNamespace,
    /// The cluster has no identity record yet; how the run was bound to it.
    Bind { proof: crate::identity::Proof },
    /// The tenant no longer uses this road to AWS (`identity` changed);
    /// it goes once the other road is in place.
    RoadLeft { road: Road },
    /// A Cognito user kfp-tenant created owns no tenant left in the file,
    /// and the file says `deleteUsers: true`.
    UserLeft,
    /// A permission on a tenant's role that the file does not give: the
    /// role carries exactly the file's (its S3 policy, `managedPolicies`).
    NotInFile,
    /// The tenant's `pipelineConfig` is false: kfp-tenant gives back the
    /// keys it wrote, and the ConfigMap stays.
    OptedOut,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("it does not exist"),
            Reason::Drift { attributes } => write!(f, "it differs from the tenants file in {}", attributes.join(", ")),
            Reason::PathChanged => f.write_str("the role path changed, and IAM cannot move a role"),
            Reason::OwnerChanged => f.write_str("the owner changed, the profile controller keeps a namespace only for the owner its annotation names, and --replace names it: the namespace and everything in it (notebooks, volumes, runs) is deleted and made again"),
            Reason::ReplaceRequested => f.write_str("--replace names it: the namespace and everything in it (notebooks, volumes, runs) is deleted and made again"),
            Reason::RoleReplaced => f.write_str("its role is replaced"),
            Reason::Adopt => f.write_str("it exists without kfp-tenant's markers and is adopted"),
            Reason::AdoptFromCluster { cluster } => write!(f, "kfp-tenant wrote it for EKS cluster {cluster}, and it is adopted for this one"),
            Reason::Pruned => f.write_str("its tenant is no longer in the tenants file"),
            Reason::Destroy => f.write_str("destroy was requested"),
            Reason::NamespaceRecreated => f.write_str("its namespace is recreated with the Profile"),
            Reason::OptedOut => f.write_str("the tenant's pipelineConfig is false: kfp-tenant gives back the keys it wrote, and the ConfigMap and its other keys stay"),
            Reason::Deposed { by } => {
                write!(f, "the tenant's role is now {by}, and this one still lets the tenant's service accounts use its S3 policy")
            }
            Reason::Dropped => f.write_str("it is no longer in the tenant's serviceAccounts"),
            Reason::RecordCluster => f.write_str("an earlier kfp-tenant wrote it without recording its EKS cluster: the cluster label is added"),
            Reason::AnnotationDrift => f.write_str(
                "its role annotation differs; the Kubeflow profile controller writes it on every reconcile, and kfp-tenant restores it now (if it keeps changing, check the controller)",
            ),
            Reason::TakeOverNamespace => {
                f.write_str("it does not exist, and its namespace does, with this owner: the profile controller takes the namespace over")
            }
            Reason::Bind { proof } => write!(f, "the cluster has no kfp-tenant identity record yet, and {proof}"),
            Reason::NotInFile => f.write_str(
                "the tenants file does not give it, and a tenant's role carries exactly the file's permissions (its S3 policy and managedPolicies)",
            ),
            Reason::UserLeft => f.write_str(
                "kfp-tenant created this user, it owns no tenant left in the tenants file, and identityProvider.cognito.deleteUsers is true",
            ),
            Reason::RoadLeft { road } => write!(
                f,
                "the tenant no longer uses {}; this goes only after the tenant's {} grants are in place",
                road_name(*road),
                road_name(road.other())
            ),
        }
    }
}

/// How a plan names a road to AWS.
pub fn road_name(road: Road) -> &'static str {
    match road {
        Road::Irsa => "IRSA",
        Road::PodIdentity => "EKS Pod Identity",
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
    ClusterRecord(ClusterRecord),
    /// A deposed role with the inline policy kfp-tenant put on it.
    DeposedRole(DeposedRole),
    /// An EKS Pod Identity association (its `id` is EKS's, empty until created).
    PodIdentity(PodIdentityAssociation),
    /// The statement of a road the tenant leaves, in its role's trust policy.
    TrustStatement(TrustStatement),
    /// A Cognito user who owns Profiles.
    CognitoUser(CognitoUser),
    /// An inline policy on a tenant's role that the file does not ask for.
    InlinePolicy(InlinePolicy),
    /// A managed policy attached to a tenant's role.
    PolicyAttachment(PolicyAttachment),
    /// The keys kfp-tenant owns in one of a tenant's pipeline ConfigMaps.
    PipelineConfig(crate::ports::ConfigMap),
}

/// A managed policy attached to a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyAttachment {
    pub role_name: String,
    pub policy_arn: String,
}

/// A Profile owner's user in a Cognito user pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CognitoUser {
    pub user_pool_id: String,
    pub email: String,
    /// Cognito's username; unknown until Cognito makes the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// kfp-tenant created it (the cluster's identity record says so).
    pub created_by_kfp_tenant: bool,
    /// When it is created: Cognito e-mails its invitation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invite: bool,
}

/// One road's statement in a role's trust policy. Deleting it writes
/// `remaining` as the role's whole trust policy: the plan fixes the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStatement {
    pub role_name: String,
    pub road: Road,
    /// The statement(s) that go.
    pub statement: PolicyDocument,
    /// The trust policy once they are gone: the other road's alone.
    pub remaining: PolicyDocument,
}

/// A role kfp-tenant made for a tenant under an earlier name or path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeposedRole {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<InlinePolicy>,
    /// Its other inline policies, removed with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_policies: Vec<InlinePolicy>,
    /// The managed policies attached to it, detached with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policies: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: Address,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub before: Option<State>,
    pub after: Option<State>,
    /// Fingerprint of `before` as observed, to refuse a stale saved plan.
    /// Serialized as `observed` (saved-plan format 2).
    #[serde(rename = "observed")]
    pub observed_fingerprint: String,
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
        Summary::of(self.changes.iter().map(|c| c.action))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl Summary {
    /// Terraform's counting of `actions`: a replace is one add and one destroy.
    pub fn of(actions: impl IntoIterator<Item = Action>) -> Summary {
        let mut s = Summary::default();
        for action in actions {
            match action {
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

/// A reason not to plan at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProblem {
    /// The resource concerned, when there is one.
    pub address: Option<Address>,
    pub message: String,
    pub fix: String,
    /// What the plan refuses: the live state, or another tenant's claim.
    #[serde(default)]
    pub refusal: Refusal,
    /// `--adopt` would take it over (the CLI says so after the fix; the
    /// controller, which never adopts, does not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adoptable: bool,
}

/// What a plan refuses (the controller's status reasons `Refused` and `Conflict`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// What is live does not allow it (a foreign role, a namespace of another owner).
    #[default]
    State,
    /// Another tenant, or a tenant declared the other way, has it.
    Conflict,
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = &self.address {
            write!(f, "{a}: ")?;
        }
        write!(f, "{}; {}", self.message, self.fix)?;
        if self.adoptable {
            f.write_str(", or take it over with --adopt")?;
        }
        Ok(())
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Take over same-named resources that lack kfp-tenant's markers.
    pub adopt: bool,
    /// Delete managed tenants of this cluster that are no longer in the file.
    pub prune: bool,
    /// Create the account's IAM OIDC provider for the cluster when missing,
    /// instead of stopping.
    pub create_oidc_provider: bool,
    /// Profiles to replace (`--replace 'tenant["ns"].profile'`): deleting a
    /// Profile deletes its namespace and everything in it, so no plan does
    /// it unless the operator names it here.
    pub replace: std::collections::BTreeSet<Address>,
    /// Whether the input lists every tenant of the cluster.
    pub listing: Listing,
}

/// What the input lists: every tenant of the cluster (a tenants file), or
/// some (one tenant from flags): a partial input names no other tenant as
/// missing from it, and so advises no `--prune`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listing {
    #[default]
    Whole,
    Partial,
}
