//! kfp-tenant's Kubernetes provider: core's [`ProfileApi`] on kube, and the
//! Lease that keeps two applies off one cluster.
//!
//! A Kubeflow `Profile` (kubeflow.org/v1, cluster-scoped) is a typed custom
//! resource here ([`KubeflowProfile`]). kfp-tenant owns the whole spec of the
//! Profiles it manages, so it writes them with server-side apply under one
//! field manager (`kfp-tenant`), forcing ownership: what it applied last is
//! exactly what the Profile says, and fields it stopped setting go away.
//!
//! The profile controller writes no ready condition. [`Kube::wait_ready`]
//! (through the port) therefore polls for what makes a tenant usable: the
//! namespace with the owner annotation, and `default-editor` annotated with
//! the role ARN.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kfp_tenant_core::ports::{
    ErrorKind, Profile, ProfileApi, ProfilePlugin, ProviderError, ProviderResult, ServiceAccount as TenantServiceAccount,
};
use kfp_tenant_core::spec::ResourceQuota;
use kfp_tenant_core::tags;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, CustomResource};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "kfp-tenant";
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// `spec` of a Kubeflow Profile.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(group = "kubeflow.org", version = "v1", kind = "Profile", root = "KubeflowProfile", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    pub owner: Owner,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
    /// A core/v1 ResourceQuotaSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota_spec: Option<Value>,
}

/// An rbac Subject; Kubeflow uses `kind: User`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    pub kind: String,
    #[serde(default)]
    pub spec: Value,
}

/// Where the cluster is; everything left `None` comes from the standard chain
/// (KUBECONFIG, ~/.kube/config, in-cluster).
#[derive(Clone, Debug)]
pub struct KubeOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// How long a Profile deletion may take before it is reported as stuck,
    /// and how long a service account waits for the controller to make its
    /// namespace.
    pub delete_timeout: Duration,
    /// Interval of the readiness and deletion polls.
    pub poll: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions { kubeconfig: None, context: None, delete_timeout: Duration::from_secs(300), poll: Duration::from_millis(250) }
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

/// Requests sent, per `METHOD resource` (e.g. `PATCH profiles`).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// `GET profiles` for `/apis/kubeflow.org/v1/profiles/x`, `GET serviceaccounts`
/// for `/api/v1/namespaces/x/serviceaccounts/y`.
fn operation(method: &http::Method, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &segments[..],
    };
    let resource = match rest {
        ["namespaces", _, resource, ..] => resource,
        [resource, ..] => resource,
        [] => &"discovery",
    };
    format!("{method} {resource}")
}

impl<S> tower::Layer<S> for RequestCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted { inner, counter: self.clone() }
    }
}

/// A service that counts the requests passing through it.
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Ok(mut m) = self.counter.0.lock() {
            *m.entry(operation(request.method(), request.uri().path())).or_default() += 1;
        }
        self.inner.call(request)
    }
}

/// The Kubernetes side of one cluster.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    options: KubeOptions,
    counter: RequestCounter,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Kube {
    /// Reads the configuration like kubectl does. Makes no call.
    pub async fn connect(options: KubeOptions) -> Result<Self, KubeError> {
        let kube_options = KubeConfigOptions { context: options.context.clone(), ..Default::default() };
        let config = match &options.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig { path: path.clone(), source })?;
                Config::from_custom_kubeconfig(file, &kube_options).await.map_err(|e| KubeError::Config(Box::new(e)))?
            }
            None if options.context.is_some() => {
                Config::from_kubeconfig(&kube_options).await.map_err(|e| KubeError::Config(Box::new(e)))?
            }
            None => Config::infer().await.map_err(|e| KubeError::Config(Box::new(e)))?,
        };
        let counter = RequestCounter::default();
        let client = kube::client::ClientBuilder::try_from(config).map_err(KubeError::Client)?.with_layer(&counter).build();
        Ok(Kube { client, options, counter })
    }

    pub fn counter(&self) -> &RequestCounter {
        &self.counter
    }

    fn profiles(&self) -> Api<KubeflowProfile> {
        Api::all(self.client.clone())
    }

    /// Takes the cluster's apply lock, or says who holds it.
    pub async fn lock(&self, lock: &LockOptions) -> Result<LeaseGuard, LockError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &lock.namespace);
        let target = format!("lease {}/{}", lock.namespace, lock.name);
        let now = Timestamp::now();
        let current = api.get_opt(&lock.name).await.map_err(|e| LockError::Api(provider_error("GetLease", &target, e)))?;
        let spec = LeaseSpec {
            holder_identity: Some(lock.holder.clone()),
            lease_duration_seconds: Some(i32::try_from(lock.duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        };
        let result = match current {
            None => {
                let lease =
                    Lease { metadata: kube::api::ObjectMeta { name: Some(lock.name.clone()), ..Default::default() }, spec: Some(spec) };
                api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let held = lease.spec.clone().unwrap_or_default();
                let holder = held.holder_identity.clone().unwrap_or_default();
                let expires = lease_expiry(&held);
                if !holder.is_empty() && holder != lock.holder && expires.is_some_and(|t| t > now) {
                    return Err(LockError::Held { holder, expires_in: expires.map(|t| (t - now).get_seconds().max(0)).unwrap_or(0) });
                }
                let transitions = held.lease_transitions.unwrap_or(0) + i32::from(holder != lock.holder);
                lease.spec = Some(LeaseSpec { lease_transitions: Some(transitions), ..spec });
                api.replace(&lock.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => {}
            // Someone else won the race between our read and our write.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                return Err(LockError::Held { holder: "another kfp-tenant run".to_owned(), expires_in: lock.duration.as_secs() as i64 });
            }
            Err(e) => return Err(LockError::Api(provider_error("AcquireLease", &target, e))),
        }
        let renew = tokio::spawn(renew_lease(api.clone(), lock.clone()));
        Ok(LeaseGuard { api, lock: lock.clone(), renew })
    }
}

fn lease_expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds)).ok()
}

async fn renew_lease(api: Api<Lease>, lock: LockOptions) {
    let every = (lock.duration / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Ok(Some(mut lease)) = api.get_opt(&lock.name).await else { continue };
        let Some(spec) = lease.spec.as_mut() else { continue };
        if spec.holder_identity.as_deref() != Some(lock.holder.as_str()) {
            tracing::warn!(lease = %lock.name, "the apply lock was taken over by {:?}", spec.holder_identity);
            return;
        }
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        if let Err(e) = api.replace(&lock.name, &PostParams::default(), &lease).await {
            tracing::warn!(lease = %lock.name, error = %e, "cannot renew the apply lock");
        }
    }
}

/// Which Lease guards a cluster, and who we are.
#[derive(Clone, Debug)]
pub struct LockOptions {
    pub namespace: String,
    pub name: String,
    /// Shown to whoever finds the lock taken.
    pub holder: String,
    /// A crashed holder blocks others at most this long.
    pub duration: Duration,
}

impl LockOptions {
    pub fn new(holder: impl Into<String>) -> Self {
        LockOptions {
            namespace: "kubeflow".to_owned(),
            name: "kfp-tenant-lock".to_owned(),
            holder: holder.into(),
            duration: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another run holds the apply lock: {holder} (it expires in {expires_in}s unless renewed); wait for it to finish, then run again"
    )]
    Held { holder: String, expires_in: i64 },
    #[error("cannot take the apply lock")]
    Api(#[source] ProviderError),
}

/// The apply lock while held; renewed in the background until released.
#[derive(Debug)]
pub struct LeaseGuard {
    api: Api<Lease>,
    lock: LockOptions,
    renew: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    /// Gives the lock up so the next run need not wait for expiry.
    pub async fn release(self) -> ProviderResult<()> {
        self.renew.abort();
        let target = format!("lease {}/{}", self.lock.namespace, self.lock.name);
        match self.api.delete(&self.lock.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(provider_error("DeleteLease", &target, e)),
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// Sorts a kube error into core's kinds.
pub fn provider_error(operation: &str, target: &str, err: kube::Error) -> ProviderError {
    let kind = match &err {
        kube::Error::Api(s) if s.is_not_found() => ErrorKind::NotFound,
        kube::Error::Api(s) if s.is_already_exists() => ErrorKind::AlreadyExists,
        kube::Error::Api(s) if s.is_conflict() => ErrorKind::Conflict,
        kube::Error::Api(s) if s.is_forbidden() || s.code == 401 => ErrorKind::AccessDenied,
        kube::Error::Api(s) if s.is_invalid() || s.code == 400 => ErrorKind::InvalidInput,
        kube::Error::Api(s) if s.code == 429 => ErrorKind::Throttled,
        kube::Error::Api(s) if s.code >= 500 => ErrorKind::Transient,
        kube::Error::HyperError(_) | kube::Error::Service(_) => ErrorKind::Transient,
        _ => ErrorKind::Other,
    };
    let message = match &err {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other if kind == ErrorKind::Transient => {
            format!("{}; is the Kubernetes API reachable? check --kubeconfig, --context or KUBECONFIG", error_chain(other))
        }
        other => error_chain(other),
    };
    ProviderError::new(kind, operation, target, message)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The domain's Profile from the custom resource.
pub fn from_resource(p: &KubeflowProfile) -> Profile {
    let name = p.metadata.name.clone().unwrap_or_default();
    let managed = p.metadata.labels.as_ref().and_then(|l| l.get(tags::PROFILE_LABEL)).map(String::as_str) == Some(tags::MANAGER);
    // `{}` and `{hard: {}}` mean no quota, as does leaving it out.
    let resource_quota =
        p.spec.resource_quota_spec.as_ref().and_then(|q| q.get("hard")).and_then(Value::as_object).filter(|h| !h.is_empty()).map(|hard| {
            ResourceQuota {
                hard: hard.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))).collect(),
            }
        });
    Profile {
        name,
        owner: p.spec.owner.name.clone(),
        plugins: p.spec.plugins.iter().map(|pl| ProfilePlugin { kind: pl.kind.clone(), spec: pl.spec.clone() }).collect(),
        resource_quota,
        managed,
    }
}

/// The custom resource kfp-tenant applies for a Profile.
pub fn to_resource(p: &Profile) -> KubeflowProfile {
    let mut resource = KubeflowProfile::new(
        &p.name,
        ProfileSpec {
            owner: Owner { kind: "User".to_owned(), name: p.owner.clone(), api_group: Some("rbac.authorization.k8s.io".to_owned()) },
            plugins: p.plugins.iter().map(|pl| Plugin { kind: pl.kind.clone(), spec: pl.spec.clone() }).collect(),
            resource_quota_spec: p.resource_quota.as_ref().map(|q| serde_json::json!({"hard": q.hard})),
        },
    );
    resource.metadata.labels = Some(BTreeMap::from([(tags::PROFILE_LABEL.to_owned(), tags::MANAGER.to_owned())]));
    resource
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`.
fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = serde_json::Map::new();
            for (k, old) in a {
                match b.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        patch.insert(k.clone(), merge_diff(old, new));
                    }
                    Some(_) => {}
                }
            }
            for (k, new) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                patch.insert(k.clone(), new.clone());
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}

/// Who a Profile that is being deleted still waits for, by its finalizers.
fn waiting_for(name: &str, finalizers: &[String]) -> String {
    if finalizers.iter().any(|f| f == "profile-finalizer") {
        "its finalizer profile-finalizer is waiting for the Kubeflow profile controller; check that it runs (kubectl -n kubeflow get pods)"
            .to_owned()
    } else if finalizers.iter().any(|f| f == "foregroundDeletion") {
        format!(
            "its namespace is still being deleted (finalizer foregroundDeletion: the garbage collector of kube-controller-manager removes the namespace first); see kubectl get namespace {name}"
        )
    } else {
        format!("finalizers {finalizers:?} remain")
    }
}

/// What still keeps a tenant from being usable, or `None` when it is ready.
async fn not_ready(client: &Client, profile: &Profile) -> ProviderResult<Option<String>> {
    let target = format!("namespace {}", profile.name);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = namespaces.get_opt(&profile.name).await.map_err(|e| provider_error("GetNamespace", &target, e))? else {
        return Ok(Some(format!("namespace {} does not exist yet", profile.name)));
    };
    let owner = ns.metadata.annotations.as_ref().and_then(|a| a.get("owner"));
    if owner != Some(&profile.owner) {
        return Ok(Some(format!(
            "namespace {} has owner {:?}, not {:?} (the controller never changes the owner of an existing namespace)",
            profile.name, owner, profile.owner
        )));
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &profile.name);
    for sa in ["default-editor", "default-viewer"] {
        if accounts.get_opt(sa).await.map_err(|e| provider_error("GetServiceAccount", &target, e))?.is_none() {
            return Ok(Some(format!("service account {}/{sa} does not exist yet", profile.name)));
        }
    }
    if let Some(arn) = profile.role_arn() {
        let editor = accounts.get_opt("default-editor").await.map_err(|e| provider_error("GetServiceAccount", &target, e))?;
        let annotation = editor.as_ref().and_then(|sa| sa.metadata.annotations.as_ref()).and_then(|a| a.get(ROLE_ARN_ANNOTATION));
        if annotation.map(String::as_str) != Some(arn) {
            return Ok(Some(format!(
                "service account {}/default-editor has {ROLE_ARN_ANNOTATION}={annotation:?}, not {arn:?}",
                profile.name
            )));
        }
    }
    Ok(None)
}

#[async_trait]
impl ProfileApi for Kube {
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

    async fn namespace_exists(&self, name: &str) -> ProviderResult<bool> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.get_opt(name).await.map(|ns| ns.is_some()).map_err(|e| provider_error("GetNamespace", &format!("namespace {name}"), e))
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
        let patch = serde_json::json!({"spec": merge_diff(&to_json(&applied.spec), &to_json(&desired.spec))});
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

    async fn delete_profile(&self, name: &str) -> ProviderResult<()> {
        let target = format!("profile {name}");
        self.profiles().delete(name, &DeleteParams::foreground()).await.map_err(|e| provider_error("DeleteProfile", &target, e))?;
        // The controller releases its finalizer, the garbage collector deletes
        // the namespace (foreground), then the Profile goes.
        let deadline = tokio::time::Instant::now() + self.options.delete_timeout;
        loop {
            let Some(left) = self.profiles().get_opt(name).await.map_err(|e| provider_error("GetProfile", &target, e))? else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                let finalizers = left.metadata.finalizers.unwrap_or_default();
                return Err(ProviderError::new(
                    ErrorKind::Transient,
                    "DeleteProfile",
                    target,
                    format!("still there after {}s: {}", self.options.delete_timeout.as_secs(), waiting_for(name, &finalizers)),
                ));
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<TenantServiceAccount>> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let found =
            api.get_opt(name).await.map_err(|e| provider_error("GetServiceAccount", &format!("service account {namespace}/{name}"), e))?;
        Ok(found.map(|sa| TenantServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            role_arn: sa.metadata.annotations.as_ref().and_then(|a| a.get(ROLE_ARN_ANNOTATION)).cloned(),
            managed: sa.metadata.labels.as_ref().and_then(|l| l.get(tags::PROFILE_LABEL)).map(String::as_str) == Some(tags::MANAGER),
        }))
    }

    async fn apply_service_account(&self, account: &TenantServiceAccount) -> ProviderResult<()> {
        let target = format!("service account {}/{}", account.namespace, account.name);
        // The profile controller makes the namespace some time after the Profile.
        let deadline = tokio::time::Instant::now() + self.options.delete_timeout;
        while !self.namespace_exists(&account.namespace).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::new(
                    ErrorKind::NotFound,
                    "ApplyServiceAccount",
                    target,
                    format!("namespace {} still does not exist; is the Kubeflow profile controller running?", account.namespace),
                ));
            }
            tokio::time::sleep(self.options.poll).await;
        }
        let mut annotations = BTreeMap::new();
        if let Some(arn) = &account.role_arn {
            annotations.insert(ROLE_ARN_ANNOTATION.to_owned(), arn.clone());
        }
        let sa = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(account.name.clone()),
                namespace: Some(account.namespace.clone()),
                labels: Some(BTreeMap::from([(tags::PROFILE_LABEL.to_owned(), tags::MANAGER.to_owned())])),
                annotations: Some(annotations),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut value =
            serde_json::to_value(&sa).map_err(|e| ProviderError::new(ErrorKind::Other, "ApplyServiceAccount", &target, e.to_string()))?;
        value["apiVersion"] = serde_json::json!("v1");
        value["kind"] = serde_json::json!("ServiceAccount");
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &account.namespace);
        api.patch(&account.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value))
            .await
            .map(drop)
            .map_err(|e| provider_error("ApplyServiceAccount", &target, e))
    }

    async fn wait_ready(&self, profile: &Profile, timeout: Duration) -> ProviderResult<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Some(missing) = not_ready(&self.client, profile).await? else { return Ok(()) };
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::new(
                    ErrorKind::Transient,
                    "WaitReady",
                    format!("profile {}", profile.name),
                    format!("not ready after {}s: {missing}; is the Kubeflow profile controller running?", timeout.as_secs()),
                ));
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_removes_what_is_not_wanted() {
        let from = serde_json::json!({"owner": {"name": "a"}, "resourceQuotaSpec": {"hard": {"cpu": "64", "memory": "1Gi"}}, "x": 1});
        let to = serde_json::json!({"owner": {"name": "a"}, "resourceQuotaSpec": {"hard": {"cpu": "8"}}});
        let patch = merge_diff(&from, &to);
        assert_eq!(patch, serde_json::json!({"resourceQuotaSpec": {"hard": {"cpu": "8", "memory": null}}, "x": null}));
    }

    #[test]
    fn operations_are_named_by_method_and_resource() {
        assert_eq!(operation(&http::Method::GET, "/apis/kubeflow.org/v1/profiles/x"), "GET profiles");
        assert_eq!(operation(&http::Method::PATCH, "/api/v1/namespaces/x/serviceaccounts/y"), "PATCH serviceaccounts");
        assert_eq!(operation(&http::Method::GET, "/api/v1/namespaces/x"), "GET namespaces");
    }

    #[test]
    fn resource_round_trips_and_empty_quota_is_none() {
        let profile = Profile {
            name: "team-a".into(),
            owner: "alice@example.com".into(),
            plugins: vec![ProfilePlugin::aws_iam("arn:aws:iam::123456789012:role/r")],
            resource_quota: Some(ResourceQuota { hard: [("cpu".into(), "8".into())].into() }),
            managed: true,
        };
        let resource = to_resource(&profile);
        let json = serde_json::to_value(&resource).unwrap();
        assert_eq!(json["apiVersion"], "kubeflow.org/v1");
        assert_eq!(json["kind"], "Profile");
        assert_eq!(json["spec"]["owner"]["kind"], "User");
        assert_eq!(json["spec"]["plugins"][0]["spec"]["annotateOnly"], true);
        assert_eq!(from_resource(&resource), profile);

        let mut bare = resource;
        bare.spec.resource_quota_spec = Some(serde_json::json!({}));
        bare.metadata.labels = None;
        let back = from_resource(&bare);
        assert_eq!((back.resource_quota, back.managed), (None, false));
    }
}
