//! Provider ports: what the engine needs from AWS and Kubernetes, in the
//! domain's words. `kfp-tenant-aws` and `kfp-tenant-k8s` implement them on the
//! real clients, `kfp-tenant-testkit` in memory. No SDK or kube type crosses
//! this boundary.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::policy::PolicyDocument;

mod kubernetes;
pub use kubernetes::*;

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

/// What EKS says of a cluster (DescribeCluster), and the account's IAM OIDC
/// provider for its issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EksCluster {
    pub arn: String,
    /// The Kubernetes API server's URL.
    pub endpoint: String,
    /// The cluster's CA certificate as EKS gives it: base64 of PEM.
    pub certificate_authority: Option<String>,
    pub oidc: ClusterOidc,
}

/// A bearer token for the Kubernetes API of an EKS cluster, as
/// `aws eks get-token` makes it. Never printed: its Debug says nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    pub value: String,
    /// How long after it was made the token is accepted.
    pub valid_for: Duration,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(.., valid for {:?})", self.valid_for)
    }
}

/// Makes bearer tokens for a cluster's Kubernetes API from AWS credentials.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self) -> ProviderResult<BearerToken>;
}

/// Credentials STS hands out for an assumed role. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TemporaryCredentials({}, ..)", self.access_key_id)
    }
}

/// What AssumeRoleWithWebIdentity answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumedRole {
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub credentials: TemporaryCredentials,
}

/// An IAM OIDC provider as GetOpenIDConnectProvider describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProviderDetails {
    /// Without `https://`, as IAM keeps it.
    pub url: String,
    pub client_ids: Vec<String>,
    pub thumbprints: Vec<String>,
}

/// A user of an Amazon Cognito user pool, as a Profile's owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// Cognito's username: the e-mail in a pool with separate usernames
    /// (kfp-tenant creates users under their e-mail), a UUID in a pool whose
    /// usernames are e-mails (`UsernameAttributes=[email]`).
    pub username: String,
    pub email: String,
    /// `UserStatus`, e.g. `FORCE_CHANGE_PASSWORD` until the first sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The users of Cognito user pools (the pool id names its region).
#[async_trait]
pub trait UserDirectoryApi: Send + Sync {
    /// The users of `pool` whose `email` attribute is exactly `email`
    /// (ListUsers with the filter `email = "..."`, paged): whatever the pool
    /// uses as usernames.
    async fn find_users(&self, pool: &str, email: &str) -> ProviderResult<Vec<DirectoryUser>>;
    /// AdminCreateUser under `email`, with the attributes `email` and
    /// `email_verified=true`; Cognito e-mails its invitation (with a
    /// temporary password of its own) unless `invite` is false. Fails with
    /// [`ErrorKind::AlreadyExists`] when the username is taken.
    async fn create_user(&self, pool: &str, email: &str, invite: bool) -> ProviderResult<DirectoryUser>;
    async fn delete_user(&self, pool: &str, username: &str) -> ProviderResult<()>;
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

/// A role as GetAccountAuthorizationDetails gives it: no description and no
/// session duration, but tags and inline policies in the same page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDetail {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub trust_policy: PolicyDocument,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub inline_policies: Vec<InlinePolicy>,
    /// The ARNs of the managed policies attached to it.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
}

/// A role as ListRoles gives it: no tags and no permissions boundary, but
/// the description and the maximum session duration that
/// GetAccountAuthorizationDetails lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleListing {
    pub name: String,
    pub path: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds.
    pub max_session_duration: u32,
}

/// A role's inline policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinePolicy {
    pub role_name: String,
    pub policy_name: String,
    pub document: PolicyDocument,
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

/// An error and its sources on one line, by `Display` only (an SDK's `Debug`
/// output is for its developers), each cause once: a cause whose text is
/// already in the line is left out.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

impl ProviderError {
    /// The message is kept to one line (an error is one line of the
    /// service's words): runs of white space with a line break become one
    /// space, and a message over 500 characters is cut.
    pub fn new(kind: ErrorKind, operation: impl Into<String>, target: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.contains(['\n', '\r']) {
            message = message.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        }
        if message.chars().count() > MAX_MESSAGE {
            message = format!("{}...", message.chars().take(MAX_MESSAGE).collect::<String>());
        }
        ProviderError { kind, operation: operation.into(), target: target.into(), message }
    }
}

/// The longest provider message kept whole.
const MAX_MESSAGE: usize = 500;

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
    /// A wait ran out of its time (`--timeout`): never retried.
    Timeout,
    /// The run was interrupted (Ctrl-C) before this call started.
    Cancelled,
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
            ErrorKind::Timeout => "timed out",
            ErrorKind::Cancelled => "cancelled",
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
    /// DescribeCluster, and the account's IAM OIDC provider for its issuer.
    async fn describe_cluster(&self, cluster: &str) -> ProviderResult<EksCluster>;
    /// Creates the IAM OIDC provider for an issuer (audience
    /// `sts.amazonaws.com`), as `eksctl utils associate-iam-oidc-provider`
    /// does. Returns its ARN.
    async fn create_oidc_provider(&self, issuer_url: &str) -> ProviderResult<String>;
    /// The region of `bucket` (S3's HeadBucket, with the caller's own
    /// credentials), `None` when there is no such bucket. A bucket the
    /// caller may not read still names its region (S3 says it in the
    /// refusal's `x-amz-bucket-region`).
    async fn bucket_region(&self, bucket: &str) -> ProviderResult<Option<String>>;
    /// AssumeRoleWithWebIdentity with a service account's token (`verify`).
    async fn assume_role_with_web_identity(&self, role_arn: &str, session: &str, token: &BearerToken) -> ProviderResult<AssumedRole>;
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
    /// The names of the role's inline policies (ListRolePolicies, paged);
    /// empty when there is no such role.
    async fn list_role_policies(&self, role: &str) -> ProviderResult<Vec<String>>;
    /// The ARNs of the managed policies attached to the role
    /// (ListAttachedRolePolicies, paged); empty when there is no such role.
    async fn list_attached_role_policies(&self, role: &str) -> ProviderResult<Vec<String>>;
    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()>;
    /// Fails with [`ErrorKind::NotFound`] when the policy is not attached.
    async fn detach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()>;
    /// Every role of the account with its trust policy, tags, inline
    /// policies and attached managed policies (GetAccountAuthorizationDetails,
    /// Filter=Role: about one call per 1,000 roles).
    async fn account_roles(&self) -> ProviderResult<Vec<RoleDetail>>;
    /// Every role under `path_prefix` as ListRoles gives it (one call per
    /// 1,000 roles).
    async fn list_roles(&self, path_prefix: &str) -> ProviderResult<Vec<RoleListing>>;
    /// How many roles the account has (GetAccountSummary's `Roles`): what
    /// refresh weighs before choosing how to read them.
    async fn role_count(&self) -> ProviderResult<u64>;
    /// `None` when there is no such provider.
    async fn get_oidc_provider(&self, arn: &str) -> ProviderResult<Option<OidcProviderDetails>>;
}

/// An EKS Pod Identity association: the IAM role that a service account's
/// pods get, without an OIDC provider or an annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentityAssociation {
    /// EKS's id (`a-…`).
    pub id: String,
    pub namespace: String,
    pub service_account: String,
    /// `None` in a listing: ListPodIdentityAssociations gives no role, only
    /// DescribePodIdentityAssociation does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Empty in a listing.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// EKS Pod Identity associations of one cluster.
#[async_trait]
pub trait PodIdentityApi: Send + Sync {
    /// Every association of `cluster`, paged, as summaries (no role ARN, no
    /// tags).
    async fn list_pod_identity_associations(&self, cluster: &str) -> ProviderResult<Vec<PodIdentityAssociation>>;
    /// `None` when there is no such association.
    async fn describe_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<Option<PodIdentityAssociation>>;
    /// Fails with [`ErrorKind::AlreadyExists`] when the (namespace, service
    /// account) pair has one already, and with [`ErrorKind::InvalidInput`]
    /// when EKS finds the role missing or not trusting Pod Identity (which
    /// IAM's eventual consistency also causes right after CreateRole).
    async fn create_pod_identity_association(
        &self,
        cluster: &str,
        association: &PodIdentityAssociation,
    ) -> ProviderResult<PodIdentityAssociation>;
    async fn update_pod_identity_association(&self, cluster: &str, id: &str, role_arn: &str) -> ProviderResult<()>;
    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<()>;
}

/// The providers refresh reads through and apply writes through.
#[derive(Clone, Copy)]
pub struct Providers<'a> {
    /// STS and EKS; apply uses it only to create the cluster's IAM OIDC
    /// provider when the plan says so.
    pub cluster: &'a dyn ClusterApi,
    pub iam: &'a dyn IamApi,
    pub kube: &'a dyn KubernetesApi,
    /// EKS Pod Identity associations: refresh reads them only when a tenant
    /// uses Pod Identity or a role trusts it.
    pub pod_identity: &'a dyn PodIdentityApi,
    /// Cognito user pools: read only when the file names one.
    pub directory: &'a dyn UserDirectoryApi,
}

impl std::fmt::Debug for Providers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Providers")
    }
}

/// Objects in S3, with the credentials of an assumed role (`verify`'s probe).
#[async_trait]
pub trait ObjectStoreApi: Send + Sync {
    async fn put_object(&self, credentials: &TemporaryCredentials, bucket: &str, key: &str, body: &[u8]) -> ProviderResult<()>;
    async fn get_object(&self, credentials: &TemporaryCredentials, bucket: &str, key: &str) -> ProviderResult<Vec<u8>>;
    async fn delete_object(&self, credentials: &TemporaryCredentials, bucket: &str, key: &str) -> ProviderResult<()>;
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
