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
//! ConfigMaps, which it shares, it writes only its keys ([`config_maps`]).
//!
//! The profile controller writes no ready condition. [`Kube::wait_ready`]
//! (through the port) therefore waits for what makes a tenant usable: the
//! namespace with the owner annotation, and `default-editor` annotated with
//! the role ARN. The waits of a run share four watches ([`watches`]) rather
//! than polling per tenant, and ask the API server directly only until
//! those have listed, and every `resync`. Every wait takes its bound from
//! the caller and ends with [`ErrorKind::Timeout`].

mod accounts;
mod client;
mod config_maps;
mod counter;
mod eks_auth;
mod errors;
mod hook;
pub mod lock;
mod profile;
mod readiness;
mod tenants;
mod watches;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kfp_tenant_core::ports::{
    AccountQuery, BearerToken, ClusterRecord, ConfigMap as TenantConfigMap, ErrorKind, KubeEndpoint, KubernetesApi,
    Namespace as TenantNamespace, Profile, ProviderError, ProviderResult, ServiceAccount as TenantServiceAccount,
};
use kfp_tenant_core::tags;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::accounts::{account_config, account_from};
pub(crate) use crate::client::pem;
use crate::readiness::{not_ready, not_ready_watched, waiting_for};
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
const COGNITO_KEY_PREFIX: &str = "cognito-user.";

/// A ConfigMap data key for a user (keys allow `[-._a-zA-Z0-9]`, e-mails more).
fn cognito_key(pool: &str, email: &str) -> String {
    let hash = kfp_tenant_core::fnv::hash(format!("{pool} {email}").as_bytes());
    format!("{COGNITO_KEY_PREFIX}{hash:016x}")
}

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

impl Kube {
    /// Waits, at most `timeout`, for namespace `namespace`: the profile
    /// controller makes it some time after the Profile.
    pub(crate) async fn wait_for_namespace(&self, operation: &str, target: &str, namespace: &str, timeout: Duration) -> ProviderResult<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let missing = || format!("namespace {namespace} does not exist yet; is the Kubeflow profile controller running?");
        self.wait(
            operation,
            target,
            timeout,
            |watches| watches.namespace(namespace).is_none().then(missing),
            || async {
                let found = namespaces.get_opt(namespace).await.map_err(|e| provider_error("GetNamespace", target, e))?;
                Ok(found.is_none().then(missing))
            },
        )
        .await
    }
}

#[async_trait]
impl KubernetesApi for Kube {
    fn endpoint(&self) -> KubeEndpoint {
        self.endpoint.clone()
    }

    async fn cluster_record(&self) -> ProviderResult<Option<ClusterRecord>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), RECORD_NAMESPACE);
        let found = api
            .get_opt(RECORD_NAME)
            .await
            .map_err(|e| provider_error("GetConfigMap", &format!("config map {RECORD_NAMESPACE}/{RECORD_NAME}"), e))?;
        let Some(data) = found.and_then(|cm| cm.data) else { return Ok(None) };
        let Some(cluster_arn) = data.get("clusterArn").cloned() else { return Ok(None) };
        let cognito_users = data
            .iter()
            .filter(|(k, _)| k.starts_with(COGNITO_KEY_PREFIX))
            .filter_map(|(_, v)| v.split_once(' ').map(|(pool, email)| (pool.to_owned(), email.to_owned())))
            .collect();
        Ok(Some(ClusterRecord { cluster_arn, cognito_users }))
    }

    /// One data key per user (`cognito-user.<hash of pool and e-mail>`, the
    /// value `<pool> <e-mail>`), set or removed by a merge patch: users
    /// recorded side by side never overwrite each other, and the identity
    /// record's own apply (another field manager's fields) leaves them.
    async fn record_cognito_user(&self, pool: &str, email: &str, created: bool) -> ProviderResult<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), RECORD_NAMESPACE);
        let key = cognito_key(pool, email);
        let value = if created { json!(format!("{pool} {email}")) } else { serde_json::Value::Null };
        api.patch(RECORD_NAME, &PatchParams::default(), &Patch::Merge(&json!({"data": {key: value}})))
            .await
            .map(drop)
            .map_err(|e| provider_error("RecordCognitoUser", &format!("config map {RECORD_NAMESPACE}/{RECORD_NAME}"), e))
    }

    async fn write_cluster_record(&self, record: &ClusterRecord) -> ProviderResult<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), RECORD_NAMESPACE);
        let config = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RECORD_NAME, "namespace": RECORD_NAMESPACE, "labels": profile::labels(None)},
            "data": {"clusterArn": record.cluster_arn},
        });
        api.patch(RECORD_NAME, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&config))
            .await
            .map(drop)
            .map_err(|e| provider_error("ApplyConfigMap", &format!("config map {RECORD_NAMESPACE}/{RECORD_NAME}"), e))
    }

    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>> {
        let mut profiles = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = self.profiles().list(&params).await.map_err(|e| provider_error("ListProfiles", "profiles.kubeflow.org", e))?;
            profiles.extend(page.items.iter().map(from_resource));
            let token: Option<String> = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            match token {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(profiles),
            }
        }
    }

    async fn list_namespaces(&self) -> ProviderResult<Vec<TenantNamespace>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut found = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.map_err(|e| provider_error("ListNamespaces", "namespaces", e))?;
            found.extend(page.items.iter().map(|ns| TenantNamespace {
                name: ns.metadata.name.clone().unwrap_or_default(),
                owner: ns.metadata.annotations.as_ref().and_then(|a| a.get("owner")).cloned(),
                terminating: ns.metadata.deletion_timestamp.is_some(),
            }));
            match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(found),
            }
        }
    }

    async fn get_namespace(&self, name: &str) -> ProviderResult<Option<TenantNamespace>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let found = api.get_opt(name).await.map_err(|e| provider_error("GetNamespace", &format!("namespace {name}"), e))?;
        Ok(found.map(|ns| TenantNamespace {
            name: name.to_owned(),
            owner: ns.metadata.annotations.as_ref().and_then(|a| a.get("owner")).cloned(),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }))
    }

    /// Server-side apply, forced. An apply leaves alone the fields that other
    /// managers set (a `resourceQuotaSpec` added with kubectl edit, say), and
    /// kfp-tenant owns the whole spec: when the applied spec still differs
    /// from the desired one, a merge patch removes exactly the difference.
    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()> {
        let target = format!("profile {}", profile.name);
        let desired = to_resource(profile);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = self
            .profiles()
            .patch(&profile.name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| provider_error("ApplyProfile", &target, e))?;
        if applied.spec == desired.spec {
            return Ok(());
        }
        let to_json = |spec: &ProfileSpec| serde_json::to_value(spec).unwrap_or(Value::Null);
        let patch = json!({"spec": profile::merge_diff(&to_json(&applied.spec), &to_json(&desired.spec))});
        self.profiles()
            .patch(
                &profile.name,
                &PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..Default::default() },
                &Patch::Merge(&patch),
            )
            .await
            .map(drop)
            .map_err(|e| provider_error("ApplyProfile", &target, e))
    }

    async fn delete_profile(&self, name: &str, timeout: Duration) -> ProviderResult<()> {
        let target = format!("profile {name}");
        self.profiles().delete(name, &DeleteParams::foreground()).await.map_err(|e| provider_error("DeleteProfile", &target, e))?;
        // The controller releases its finalizer, the garbage collector deletes
        // the namespace (foreground), then the Profile goes.
        let left = |p: &KubeflowProfile| waiting_for(name, p.metadata.finalizers.as_deref().unwrap_or_default());
        self.wait(
            "DeleteProfile",
            &target,
            timeout,
            |watches| watches.profile(name).map(|p| left(&p)),
            || async { Ok(self.profiles().get_opt(name).await.map_err(|e| provider_error("GetProfile", &target, e))?.map(|p| left(&p))) },
        )
        .await
    }

    async fn wait_ready(&self, profile: &Profile, timeout: Duration) -> ProviderResult<()> {
        let target = format!("profile {}", profile.name);
        self.wait("WaitReady", &target, timeout, |watches| not_ready_watched(watches, profile), || not_ready(self, profile)).await
    }

    async fn list_service_accounts(&self, which: AccountQuery<'_>) -> ProviderResult<Vec<TenantServiceAccount>> {
        let api: Api<ServiceAccount> = Api::all(self.client.clone());
        let params = match which {
            AccountQuery::All => ListParams::default(),
            AccountQuery::Managed => ListParams::default().labels(&format!("{}={}", tags::PROFILE_LABEL, tags::MANAGER)),
            AccountQuery::Named(name) => ListParams::default().fields(&format!("metadata.name={name}")),
        };
        let mut found = Vec::new();
        let mut params = params.limit(500);
        loop {
            let page = api.list(&params).await.map_err(|e| provider_error("ListServiceAccounts", "service accounts", e))?;
            found.extend(page.items.iter().map(account_from));
            match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(found),
            }
        }
    }

    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<TenantServiceAccount>> {
        let found = self
            .accounts(namespace)
            .get_opt(name)
            .await
            .map_err(|e| provider_error("GetServiceAccount", &format!("service account {namespace}/{name}"), e))?;
        Ok(found.as_ref().map(account_from))
    }

    async fn apply_service_account(&self, account: &TenantServiceAccount, timeout: Duration) -> ProviderResult<()> {
        let target = format!("service account {}/{}", account.namespace, account.name);
        self.wait_for_namespace("ApplyServiceAccount", &target, &account.namespace, timeout).await?;
        let config = account_manifest(account);
        self.accounts(&account.namespace)
            .patch(&account.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&config))
            .await
            .map(drop)
            .map_err(|e| provider_error("ApplyServiceAccount", &target, e))
    }

    /// Setting is a forced apply. Removing is a merge patch: the controller
    /// wrote the annotation with an update of its own, and an apply that
    /// stops naming a field removes it only from the fields its own manager
    /// owns (the real API server keeps the controller's).
    async fn annotate_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) -> ProviderResult<()> {
        let what = format!("service account {namespace}/{name}");
        let Some(arn) = role_arn else {
            let patch = serde_json::json!({"metadata": {"annotations": {ROLE_ARN_ANNOTATION: null}}});
            return self
                .accounts(namespace)
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
                .map_err(|e| provider_error("RemoveRoleAnnotation", &what, e));
        };
        let annotations = BTreeMap::from([(ROLE_ARN_ANNOTATION.to_owned(), arn.to_owned())]);
        let config = account_config(namespace, name, None, annotations);
        self.accounts(namespace)
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&config))
            .await
            .map(drop)
            .map_err(|e| provider_error("AnnotateServiceAccount", &what, e))
    }

    /// An apply that names nothing gives up every field kfp-tenant applied.
    async fn release_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        let config = account_config(namespace, name, None, BTreeMap::new());
        self.accounts(namespace)
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&config))
            .await
            .map(drop)
            .map_err(|e| provider_error("ReleaseServiceAccount", &format!("service account {namespace}/{name}"), e))
    }

    async fn delete_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.accounts(namespace)
            .delete(name, &DeleteParams::default())
            .await
            .map(drop)
            .map_err(|e| provider_error("DeleteServiceAccount", &format!("service account {namespace}/{name}"), e))
    }

    async fn list_config_maps(&self, name: &str) -> ProviderResult<Vec<TenantConfigMap>> {
        self.config_maps_named(name).await
    }

    async fn apply_config_map(&self, config: &TenantConfigMap, timeout: Duration) -> ProviderResult<()> {
        self.apply_config_map_keys(config, timeout).await
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audience: &str,
        expires_in: Duration,
    ) -> ProviderResult<Option<BearerToken>> {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec![audience.to_owned()]),
                expiration_seconds: Some(i64::try_from(expires_in.as_secs()).unwrap_or(600)),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.accounts(namespace).create_token_request(name, &kube::api::PostParams::default(), &request).await {
            Ok(answer) => {
                let token = answer.status.and_then(|s| s.token).ok_or_else(|| {
                    ProviderError::new(
                        ErrorKind::Other,
                        "CreateToken",
                        format!("service account {namespace}/{name}"),
                        "the answer has no token",
                    )
                })?;
                Ok(Some(BearerToken { value: token, valid_for: expires_in }))
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
            Err(e) => Err(provider_error("CreateToken", &format!("service account {namespace}/{name}"), e)),
        }
    }
}
