//! The Kubernetes side of the ports: Profiles, namespaces and service
//! accounts as a tenant sees them, kfp-tenant's identity record, and the
//! `KubernetesApi` that `kfp-tenant-k8s` implements on kube.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BearerToken, ProviderResult};
use crate::spec::ResourceQuota;

/// Where a Kubernetes client connects, from its own configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeEndpoint {
    /// The API server URL.
    pub server: String,
    /// The CA certificate(s) the client trusts, as PEM text, when configured.
    pub certificate_authority: Option<String>,
    /// The kubeconfig context, for messages.
    pub context: Option<String>,
    /// The client was built from EKS's own description of the cluster
    /// (`--eks-auth`): it cannot be talking to another cluster.
    pub from_eks: bool,
}

/// The identity record kfp-tenant keeps in a cluster: which EKS cluster this
/// Kubernetes API is (ConfigMap `kube-system/kfp-tenant-cluster`), and which
/// Cognito users kfp-tenant created for the cluster's Profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub cluster_arn: String,
    /// (user pool id, e-mail) of each Cognito user kfp-tenant created: the
    /// only users `deleteUsers` may delete.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cognito_users: BTreeSet<(String, String)>,
}

/// A namespace, as far as a tenant cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    /// The `owner` annotation the profile controller writes and checks.
    pub owner: Option<String>,
    pub terminating: bool,
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
    /// Carries kfp-tenant's `managed-by` label.
    pub managed: bool,
    /// kfp-tenant's cluster label: the EKS cluster it was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// A service account in a tenant's namespace that may use the tenant's
/// role: `default-editor`, which the Kubeflow plugin annotates, or one that
/// kfp-tenant creates or adopts and annotates itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    /// `eks.amazonaws.com/role-arn`.
    pub role_arn: Option<String>,
    /// Carries kfp-tenant's `managed-by` label.
    pub managed: bool,
    /// kfp-tenant's cluster label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// kfp-tenant created it (rather than adopting it): removing it from the
    /// tenants file deletes it.
    #[serde(default)]
    pub created: bool,
}

/// KFP's launcher config in a namespace: where a run's artifacts go
/// (`defaultPipelineRoot`) and how the store is reached (`providers`).
pub const LAUNCHER_CONFIG: &str = "kfp-launcher";
/// Argo's artifact repositories in a namespace, where each step's outputs
/// and logs go; the annotation names the default.
pub const ARTIFACT_REPOSITORIES: &str = "artifact-repositories";
/// The ConfigMaps of a tenant's pipeline config, in the order they are planned.
pub const PIPELINE_CONFIG_MAPS: [&str; 2] = [LAUNCHER_CONFIG, ARTIFACT_REPOSITORIES];

/// A ConfigMap that KFP or Argo reads in a tenant's namespace, or the keys
/// of one that kfp-tenant writes (in a plan: only those).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMap {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The annotation kfp-tenant writes beside its keys in a ConfigMap it
/// shares: which data keys are its (comma-separated). It goes with them.
pub const OWNED_KEYS_ANNOTATION: &str = "kfp-tenant/owned-keys";

impl ConfigMap {
    /// kfp-tenant wrote keys into it and has not given them back.
    pub fn ours(&self) -> bool {
        self.annotations.contains_key(OWNED_KEYS_ANNOTATION)
    }
}

/// Which service accounts to list, cluster-wide, in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountQuery<'a> {
    /// Every one (`audit`).
    All,
    /// Those carrying kfp-tenant's `managed-by` label.
    Managed,
    /// Those of this name in every namespace (`default-editor`).
    Named(&'a str),
}

/// The cluster's Kubernetes API: Profiles, the namespaces and service
/// accounts of tenants, and kfp-tenant's identity record.
#[async_trait]
pub trait KubernetesApi: Send + Sync {
    /// Where the client connects, from its configuration; makes no call.
    fn endpoint(&self) -> KubeEndpoint;
    /// kfp-tenant's identity record in the cluster, if there is one.
    async fn cluster_record(&self) -> ProviderResult<Option<ClusterRecord>>;
    async fn write_cluster_record(&self, record: &ClusterRecord) -> ProviderResult<()>;
    /// Records in the identity record that kfp-tenant created (`created`)
    /// Cognito user `email` of `pool`, or takes that back after deleting it;
    /// each user is its own entry, so concurrent records do not collide.
    async fn record_cognito_user(&self, pool: &str, email: &str, created: bool) -> ProviderResult<()>;
    /// Every Profile of the cluster, managed or not: one call for all tenants.
    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>>;
    /// `None` when there is no such namespace (asked only for Profiles to create).
    async fn get_namespace(&self, name: &str) -> ProviderResult<Option<Namespace>>;
    /// Every namespace (`audit`).
    async fn list_namespaces(&self) -> ProviderResult<Vec<Namespace>>;
    /// Creates or updates the Profile to exactly this spec and these labels.
    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()>;
    /// Deletes the Profile and waits, at most `timeout`, until the controller
    /// and the garbage collector have finished with it.
    async fn delete_profile(&self, name: &str, timeout: Duration) -> ProviderResult<()>;
    /// Waits until the controller has made the tenant usable: the namespace
    /// carries the owner, and `default-editor` the role ARN (the controller
    /// writes no ready condition). Fails with [`ErrorKind::Timeout`](crate::ports::ErrorKind::Timeout) after
    /// `timeout`, saying what is missing.
    async fn wait_ready(&self, profile: &Profile, timeout: Duration) -> ProviderResult<()>;
    /// Service accounts across every namespace, in one call.
    async fn list_service_accounts(&self, which: AccountQuery<'_>) -> ProviderResult<Vec<ServiceAccount>>;
    /// `None` when there is no such service account (or no such namespace).
    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<ServiceAccount>>;
    /// Creates the service account if missing (recording that kfp-tenant
    /// created it), sets kfp-tenant's labels and its role annotation; waits,
    /// at most `timeout`, for the namespace if the controller has not made it yet.
    async fn apply_service_account(&self, account: &ServiceAccount, timeout: Duration) -> ProviderResult<()>;
    /// Sets (or removes) only the role annotation of a service account that
    /// is not kfp-tenant's (`default-editor`, which the controller annotates).
    async fn annotate_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) -> ProviderResult<()>;
    /// Takes back what kfp-tenant set on an adopted service account: its
    /// labels and the role annotation. The account stays.
    async fn release_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()>;
    async fn delete_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()>;
    /// The ConfigMaps of this name in every namespace, in one call (paged).
    async fn list_config_maps(&self, name: &str) -> ProviderResult<Vec<ConfigMap>>;
    /// Sets exactly these data keys and annotations of the ConfigMap under
    /// kfp-tenant's field manager (server-side apply, taking them over from
    /// another manager): keys kfp-tenant no longer sets are removed, keys of
    /// other managers stay; nothing given is a release, which never creates
    /// the ConfigMap. Otherwise creates it if missing, waiting, at most
    /// `timeout`, for the namespace.
    async fn apply_config_map(&self, config: &ConfigMap, timeout: Duration) -> ProviderResult<()>;
    /// A short-lived token of the service account for `audience`
    /// (TokenRequest), the token a projected volume gives a pod; `None` when
    /// the account does not exist. Nothing is stored.
    async fn request_token(&self, namespace: &str, name: &str, audience: &str, expires_in: Duration)
    -> ProviderResult<Option<BearerToken>>;
}
