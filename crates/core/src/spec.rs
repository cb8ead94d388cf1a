//! What the operator asks for: the tenants file as written ([`TenantsFile`]),
//! and the same after validation with every default filled in ([`Desired`]).
//!
//! Only [`crate::validate::validate`] turns the first into the second, so a
//! `Desired` is always valid: names fit IAM's limits, no two tenants collide.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::S3Access;

/// The tenants file (YAML or JSON), field for field. Unknown fields are errors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantsFile {
    /// EKS cluster name (the page's CLUSTER_NAME).
    pub cluster: String,
    /// AWS region of the cluster (CLUSTER_REGION).
    pub region: String,
    /// The S3 bucket Kubeflow Pipelines uses (S3_BUCKET).
    pub bucket: String,
    /// Applied to every tenant that does not say otherwise.
    #[serde(default)]
    pub defaults: TenantDefaults,
    /// Largest trust policy IAM accepts in this account, in characters
    /// (2,048 unless the quota was raised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_policy_quota: Option<usize>,
    /// Where the owners sign in: with `cognito`, each tenant's owner is a
    /// user of that pool, made if missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<IdentityProvider>,
    #[serde(default)]
    pub tenants: Vec<TenantInput>,
}

/// The auth provider the Profiles' owners sign in with (the page's step 6).
/// Only Cognito: Dex keeps its users in a ConfigMap of static passwords,
/// which is not kfp-tenant's to write.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cognito: Option<CognitoInput>,
}

/// An Amazon Cognito user pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CognitoInput {
    /// The pool's id, `<region>_<id>`, e.g. `us-west-2_aBcDeFgHi`.
    pub user_pool_id: String,
    /// The pool's region; default the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Cognito e-mails its invitation to a user kfp-tenant creates (default
    /// true); `false` creates the user silently (`MessageAction=SUPPRESS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<bool>,
    /// Destroy and prune delete the users kfp-tenant created and that own
    /// no tenant left in the file (default false: people outlive tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_users: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantDefaults {
    /// How the tenants' pods get their role: `irsa` (the default) or `podIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_access: Option<S3AccessMode>,
    /// The key prefix of tenants with `s3Access: prefix` that set none, as a
    /// template: `{namespace}` becomes the tenant's namespace, e.g.
    /// `private-artifacts/{namespace}/` (upstream multi-user KFP's layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_path: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_duration: Option<u32>,
}

/// How a tenant's pods get its role: the road from a service account to AWS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Identity {
    /// IAM roles for service accounts (the page's way): the role trusts the
    /// cluster's IAM OIDC provider, and the service accounts carry the
    /// `eks.amazonaws.com/role-arn` annotation (the Profile's
    /// `AwsIamForServiceAccount` plugin writes it on `default-editor`).
    #[default]
    Irsa,
    /// EKS Pod Identity: the role trusts `pods.eks.amazonaws.com`, and an
    /// EKS association binds each service account to it; no OIDC provider,
    /// no annotation. Needs the eks-pod-identity-agent add-on.
    PodIdentity,
}

impl Identity {
    /// The other road: where a tenant comes from when it moves.
    pub fn other(self) -> Identity {
        match self {
            Identity::Irsa => Identity::PodIdentity,
            Identity::PodIdentity => Identity::Irsa,
        }
    }

    /// As in the tenants file.
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Irsa => "irsa",
            Identity::PodIdentity => "podIdentity",
        }
    }
}

/// What the tenant's role may do on the bucket, as the file says it: the
/// prefix sits in a separate field. Validation turns it into
/// [`crate::policy::S3Access`], where a prefix mode without a prefix cannot
/// be written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum S3AccessMode {
    /// Object read/write, ListBucket and GetBucketLocation (the page's recommendation).
    Scoped,
    /// `s3:*` on the bucket and its objects (the page's example).
    Full,
    /// Objects under `s3Prefix` only; needs a key layout with the namespace in it.
    Prefix,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantInput {
    /// Profile name and namespace (PROFILE_NAMESPACE).
    pub namespace: String,
    /// Owner's e-mail as the auth provider knows it (PROFILE_USER).
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_path: Option<String>,
    /// Overrides `defaults.identity`. Changing it moves the tenant from one
    /// road to the other as a plan, without a moment where neither works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_access: Option<S3AccessMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota: Option<ResourceQuota>,
    /// Merged over `defaults.tags`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_duration: Option<u32>,
}

/// `spec.resourceQuotaSpec` of the Profile (a core/v1 ResourceQuotaSpec; only
/// `hard` is modelled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuota {
    #[serde(default)]
    pub hard: BTreeMap<String, String>,
}

/// A validated request: one cluster and its tenants, defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub cluster: ClusterSpec,
    /// Sorted by namespace.
    pub tenants: Vec<Tenant>,
    /// Tenants of the file left out by `--target`: not planned, and not
    /// taken for tenants the file dropped.
    pub untargeted: BTreeSet<String>,
    /// The Cognito pool whose users own the Profiles, when the file names one.
    pub cognito: Option<Cognito>,
    /// The owners of the tenants left out by `--target`: a user who owns
    /// one of them is never deleted.
    pub untargeted_owners: BTreeSet<String>,
}

/// A validated [`CognitoInput`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cognito {
    pub user_pool_id: String,
    pub region: String,
    pub invite: bool,
    pub delete_users: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub region: String,
    pub bucket: String,
    pub trust_policy_quota: usize,
}

/// One tenant with every name fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub namespace: String,
    pub owner: String,
    pub role_name: String,
    pub role_path: String,
    pub policy_name: String,
    pub identity: Identity,
    /// Sorted, unique, always non-empty.
    pub service_accounts: Vec<String>,
    pub s3_access: S3Access,
    pub resource_quota: Option<ResourceQuota>,
    /// The operator's tags, without kfp-tenant's ownership markers.
    pub tags: BTreeMap<String, String>,
    pub permissions_boundary: Option<String>,
    pub max_session_duration: Option<u32>,
}

pub const DEFAULT_TRUST_POLICY_QUOTA: usize = 2048;
/// The annotation that gives a service account its IAM role (IRSA): the
/// profile controller writes it on `default-editor`, kfp-tenant on the others.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default-editor";
pub const DEFAULT_MAX_SESSION_DURATION: u32 = 3600;
/// EKS Pod Identity associations per cluster: 5,000, not adjustable (the
/// EKS user guide's service quotas; older pages said 1,000).
pub const MAX_POD_IDENTITY_ASSOCIATIONS: usize = 5000;

impl Tenant {
    /// The service accounts kfp-tenant must annotate itself: all but
    /// `default-editor`, which the Kubeflow plugin annotates.
    pub fn extra_service_accounts(&self) -> impl Iterator<Item = &str> {
        self.service_accounts.iter().map(String::as_str).filter(|sa| *sa != DEFAULT_SERVICE_ACCOUNT)
    }
}

/// The seed page's role name: `<namespace>-<cluster>-role`.
pub fn default_role_name(namespace: &str, cluster: &str) -> String {
    format!("{namespace}-{cluster}-role")
}

/// The seed page's inline policy name: `kf-<namespace>-pipeline-s3`.
pub fn policy_name(namespace: &str) -> String {
    format!("kf-{namespace}-pipeline-s3")
}
