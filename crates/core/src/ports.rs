//! Provider ports: what the engine needs from AWS and Kubernetes, in the
//! domain's words. `kfp-tenant-aws` and `kfp-tenant-k8s` implement them on the
//! real clients, `kfp-tenant-testkit` in memory. No SDK or kube type crosses
//! this boundary.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::PolicyDocument;
use crate::spec::ResourceQuota;

/// Who the AWS credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerIdentity {
    pub account_id: String,
    /// `aws`, `aws-cn`, `aws-us-gov`: taken from the caller ARN.
    pub partition: String,
    pub arn: String,
}

impl CallerIdentity {
    /// Splits `arn:<partition>:sts::<account>:...`.
    pub fn from_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, partition, _service, _region, account) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (prefix == "arn" && !partition.is_empty() && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()))
            .then(|| CallerIdentity { account_id: account.to_owned(), partition: partition.to_owned(), arn: arn.to_owned() })
    }
}

/// The cluster's OIDC issuer and the account's IAM OIDC provider for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterOidc {
    /// As EKS reports it, with `https://`.
    pub issuer_url: String,
    /// `None` when the account has no IAM OIDC provider for the issuer: every
    /// AssumeRoleWithWebIdentity would then fail at run time.
    pub provider_arn: Option<String>,
}

impl ClusterOidc {
    /// The issuer without its scheme, as trust policies name it.
    pub fn issuer_host(&self) -> &str {
        self.issuer_url.strip_prefix("https://").unwrap_or(&self.issuer_url)
    }
}

/// The account's IAM OIDC provider for a cluster's issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    /// With `https://`.
    pub issuer_url: String,
    pub arn: String,
}

/// An IAM role as it is (read) or should be (desired).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub trust_policy: PolicyDocument,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Seconds; IAM's default is 3600.
    pub max_session_duration: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
}

/// A role's inline policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinePolicy {
    pub role_name: String,
    pub policy_name: String,
    pub document: PolicyDocument,
}

/// A plugin entry of a Profile (`spec.plugins[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfilePlugin {
    pub kind: String,
    pub spec: Value,
}

pub const AWS_IAM_PLUGIN: &str = "AwsIamForServiceAccount";

impl Profile {
    /// The role ARN its `AwsIamForServiceAccount` plugin names.
    pub fn role_arn(&self) -> Option<&str> {
        self.plugins.iter().find(|p| p.kind == AWS_IAM_PLUGIN).and_then(|p| p.spec.get("awsIamRole")).and_then(Value::as_str)
    }
}

impl ProfilePlugin {
    /// The plugin kfp-tenant writes: annotate only, kfp-tenant owns the trust policy.
    pub fn aws_iam(role_arn: &str) -> Self {
        ProfilePlugin { kind: AWS_IAM_PLUGIN.to_owned(), spec: serde_json::json!({"awsIamRole": role_arn, "annotateOnly": true}) }
    }
}

/// A Kubeflow Profile (kubeflow.org/v1, cluster-scoped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// `spec.owner.name` (kind `User`).
    pub owner: String,
    #[serde(default)]
    pub plugins: Vec<ProfilePlugin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota: Option<ResourceQuota>,
    /// Carries kfp-tenant's label.
    pub managed: bool,
}

/// A service account in a tenant's namespace that kfp-tenant annotates with
/// the tenant's role (the Kubeflow plugin annotates only `default-editor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    /// `eks.amazonaws.com/role-arn`.
    pub role_arn: Option<String>,
    /// Carries kfp-tenant's label.
    pub managed: bool,
}

/// What went wrong in a provider, sorted into the kinds the engine acts on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {target}: {message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The API operation, e.g. `CreateRole`.
    pub operation: String,
    /// What it acted on, e.g. `role team-a-kf-role`.
    pub target: String,
    pub message: String,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, operation: impl Into<String>, target: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError { kind, operation: operation.into(), target: target.into(), message: message.into() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// The resource is in a state that forbids the call (DeleteConflict, a
    /// stale resourceVersion).
    Conflict,
    Throttled,
    /// 5xx, timeouts, connection resets.
    Transient,
    AccessDenied,
    InvalidInput,
    LimitExceeded,
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Other => "error",
        };
        f.write_str(s)
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// STS and EKS: the cluster-level facts, read once per run.
#[async_trait]
pub trait ClusterApi: Send + Sync {
    async fn caller_identity(&self) -> ProviderResult<CallerIdentity>;
    async fn cluster_oidc(&self, cluster: &str) -> ProviderResult<ClusterOidc>;
    /// Creates the IAM OIDC provider for an issuer (audience
    /// `sts.amazonaws.com`), as `eksctl utils associate-iam-oidc-provider`
    /// does. Returns its ARN.
    async fn create_oidc_provider(&self, issuer_url: &str) -> ProviderResult<String>;
}

/// IAM roles and their inline policies.
#[async_trait]
pub trait IamApi: Send + Sync {
    /// `None` when there is no such role.
    async fn get_role(&self, name: &str) -> ProviderResult<Option<Role>>;
    /// Creates the role with every attribute of `role` but its ARN, which IAM assigns.
    async fn create_role(&self, role: &Role) -> ProviderResult<Role>;
    async fn update_trust_policy(&self, name: &str, document: &PolicyDocument) -> ProviderResult<()>;
    /// UpdateRole: description and maximum session duration.
    async fn update_role(&self, name: &str, description: Option<&str>, max_session_duration: u32) -> ProviderResult<()>;
    /// Puts (`Some`) or deletes (`None`) the permissions boundary.
    async fn set_permissions_boundary(&self, name: &str, arn: Option<&str>) -> ProviderResult<()>;
    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> ProviderResult<()>;
    async fn untag_role(&self, name: &str, keys: &[String]) -> ProviderResult<()>;
    /// Fails with [`ErrorKind::Conflict`] while policies are still attached.
    async fn delete_role(&self, name: &str) -> ProviderResult<()>;
    async fn get_role_policy(&self, role: &str, policy: &str) -> ProviderResult<Option<PolicyDocument>>;
    async fn put_role_policy(&self, role: &str, policy: &str, document: &PolicyDocument) -> ProviderResult<()>;
    async fn delete_role_policy(&self, role: &str, policy: &str) -> ProviderResult<()>;
    /// Roles under `path_prefix` whose tags mark them as kfp-tenant's for `cluster`.
    async fn list_managed_roles(&self, path_prefix: &str, cluster: &str) -> ProviderResult<Vec<Role>>;
}

/// Kubeflow Profiles on the cluster's Kubernetes API.
#[async_trait]
pub trait ProfileApi: Send + Sync {
    /// Every Profile of the cluster, managed or not: one call for all tenants.
    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>>;
    /// Whether a namespace of this name exists (asked only for Profiles to create).
    async fn namespace_exists(&self, name: &str) -> ProviderResult<bool>;
    /// Creates or updates the Profile to exactly this spec, with kfp-tenant's label.
    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()>;
    /// Deletes the Profile and waits until the controller has finished with it.
    async fn delete_profile(&self, name: &str) -> ProviderResult<()>;
    /// Waits until the controller has made the tenant usable: the namespace
    /// carries the owner, and `default-editor` the role ARN (the controller
    /// writes no ready condition). Fails after `timeout`, saying what is missing.
    async fn wait_ready(&self, profile: &Profile, timeout: std::time::Duration) -> ProviderResult<()>;
    /// `None` when there is no such service account (or no such namespace).
    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<ServiceAccount>>;
    /// Creates the service account if missing, with kfp-tenant's label, and
    /// sets its role annotation; waits for the namespace if the controller
    /// has not made it yet.
    async fn apply_service_account(&self, account: &ServiceAccount) -> ProviderResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_and_account_come_from_the_arn() {
        let id = CallerIdentity::from_arn("arn:aws-us-gov:sts::123456789012:assumed-role/admin/me").unwrap();
        assert_eq!((id.partition.as_str(), id.account_id.as_str()), ("aws-us-gov", "123456789012"));
        assert!(CallerIdentity::from_arn("arn:aws:sts::12:user/x").is_none());
        assert!(CallerIdentity::from_arn("not-an-arn").is_none());
    }
}
