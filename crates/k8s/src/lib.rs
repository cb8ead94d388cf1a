//! kfp-tenant's Kubernetes provider: core's [`KubernetesApi`] on kube, and
//! the Lease that keeps two applies off one cluster ([`lock`]).
//!
//! A Kubeflow `Profile` (kubeflow.org/v1, cluster-scoped) is a typed custom
//! resource here ([`KubeflowProfile`]). kfp-tenant owns the whole spec of the
//! Profiles it manages: it writes them with server-side apply under one field
//! manager (`kfp-tenant`), forcing ownership, and removes with a merge patch
//! whatever another manager added that the apply would leave. Every object
//! it makes or owns carries `app.kubernetes.io/managed-by=kfp-tenant` and
//! the cluster label `kfp-tenant/cluster`; in the tenants' pipeline
//! ConfigMaps, which it shares, it writes only its keys (`config_maps`).
//!
//! The profile controller writes no ready condition. [`Kube::wait_ready`]
//! (through the port) therefore waits for what makes a tenant usable: the
//! namespace with the owner annotation, and `default-editor` annotated with
//! the role ARN. The waits of a run share four watches (`watches`) rather
//! than polling per tenant, and ask the API server directly only until
//! those have listed, and every `resync`. Every wait takes its bound from
//! the caller and ends with [`ErrorKind::Timeout`](kfp_tenant_core::ports::ErrorKind::Timeout).

mod accounts;
mod client;
mod config_maps;
mod counter;
mod eks_auth;
mod errors;
mod hook;
pub mod lock;
mod namespaces;
mod profile;
mod readiness;
mod record;
mod tenants;
mod watches;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use kfp_tenant_core::ports::{
    AccountQuery, BearerToken, ClusterRecord, ConfigMap as TenantConfigMap, KubeEndpoint, KubernetesApi, Namespace as TenantNamespace,
    Profile, ProviderResult, ServiceAccount as TenantServiceAccount,
};
use kube::Client;

pub(crate) use crate::client::pem;
use crate::watches::Watches;

pub use crate::accounts::account_manifest;
pub use crate::config_maps::config_map_manifest;
pub use crate::counter::{Counted, RequestCounter};
pub use crate::errors::provider_error;
pub use crate::lock::{LeaseGuard, LockError, LockInfo, LockOptions};
pub use crate::profile::{KubeflowProfile, Owner, Plugin, ProfileSpec, from_resource, to_resource};
pub use crate::tenants::{TenantResource, Triggers, now_rfc3339};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "kfp-tenant";
pub use kfp_tenant_core::spec::ROLE_ARN_ANNOTATION;
/// kfp-tenant's identity record: a ConfigMap in `kube-system`.
pub const RECORD_NAMESPACE: &str = "kube-system";
pub const RECORD_NAME: &str = "kfp-tenant-cluster";
/// Where the cluster is; everything left `None` comes from the standard chain
/// (KUBECONFIG, ~/.kube/config, in-cluster).
#[derive(Clone, Debug)]
pub struct KubeOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Interval of the readiness and deletion polls.
    pub poll: Duration,
    /// How often a wait served by the watches asks the API server itself.
    pub resync: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions { kubeconfig: None, context: None, poll: Duration::from_millis(250), resync: Duration::from_secs(10) }
    }
}

/// Connecting to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot load the Kubernetes configuration (set --kubeconfig, KUBECONFIG or --context)")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
}

/// The Kubernetes side of one cluster.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    options: KubeOptions,
    counter: RequestCounter,
    endpoint: KubeEndpoint,
    /// `--eks-auth`: the task renewing the token, stopped with the last clone.
    renew: Option<std::sync::Arc<eks_auth::AbortOnDrop>>,
    /// The waits' shared watches, started by the first wait, stopped with
    /// the last clone.
    watches: std::sync::Arc<tokio::sync::OnceCell<Watches>>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube").field("options", &self.options).field("server", &self.endpoint.server).finish_non_exhaustive()
    }
}

#[async_trait]
impl KubernetesApi for Kube {
    fn endpoint(&self) -> KubeEndpoint {
        self.endpoint.clone()
    }

    async fn cluster_record(&self) -> ProviderResult<Option<ClusterRecord>> {
        self.cluster_record_impl().await
    }

    async fn record_cognito_user(&self, pool: &str, email: &str, created: bool) -> ProviderResult<()> {
        self.record_cognito_user_impl(pool, email, created).await
    }

    async fn write_cluster_record(&self, record: &ClusterRecord) -> ProviderResult<()> {
        self.write_cluster_record_impl(record).await
    }

    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>> {
        self.list_profiles_impl().await
    }

    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()> {
        self.apply_profile_impl(profile).await
    }

    async fn delete_profile(&self, name: &str, timeout: Duration) -> ProviderResult<()> {
        self.delete_profile_impl(name, timeout).await
    }

    async fn wait_ready(&self, profile: &Profile, timeout: Duration) -> ProviderResult<()> {
        self.wait_ready_impl(profile, timeout).await
    }

    async fn list_namespaces(&self) -> ProviderResult<Vec<TenantNamespace>> {
        self.list_namespaces_impl().await
    }

    async fn get_namespace(&self, name: &str) -> ProviderResult<Option<TenantNamespace>> {
        self.get_namespace_impl(name).await
    }

    async fn list_service_accounts(&self, which: AccountQuery<'_>) -> ProviderResult<Vec<TenantServiceAccount>> {
        self.list_service_accounts_impl(which).await
    }

    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<TenantServiceAccount>> {
        self.get_service_account_impl(namespace, name).await
    }

    async fn apply_service_account(&self, account: &TenantServiceAccount, timeout: Duration) -> ProviderResult<()> {
        self.apply_service_account_impl(account, timeout).await
    }

    async fn annotate_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) -> ProviderResult<()> {
        self.annotate_service_account_impl(namespace, name, role_arn).await
    }

    async fn release_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.release_service_account_impl(namespace, name).await
    }

    async fn delete_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.delete_service_account_impl(namespace, name).await
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audience: &str,
        expires_in: Duration,
    ) -> ProviderResult<Option<BearerToken>> {
        self.request_token_impl(namespace, name, audience, expires_in).await
    }

    async fn list_config_maps(&self, name: &str) -> ProviderResult<Vec<TenantConfigMap>> {
        self.config_maps_named(name).await
    }

    async fn apply_config_map(&self, config: &TenantConfigMap, timeout: Duration) -> ProviderResult<()> {
        self.apply_config_map_keys(config, timeout).await
    }
}
