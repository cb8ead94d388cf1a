//! A cluster's Kubernetes API in memory ([`FakeKube`]), with an instant
//! Kubeflow profile controller: a Profile's namespace (owner annotation),
//! `default-editor` (annotated with the plugin's role ARN) and
//! `default-viewer` appear with it and go with it.
//!
//! For the real kube client, the HTTP fake in [`crate::apiserver`] and a
//! real kube-apiserver ([`crate::backend`]) are the ones to use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kfp_tenant_core::ports::{
    AccountQuery, BearerToken, ClusterRecord, ConfigMap, ErrorKind, KubeEndpoint, KubernetesApi, Namespace, Profile, ProviderError,
    ProviderResult, ServiceAccount,
};

use crate::aws::{fake_ca, fake_endpoint};
use crate::faults::{Calls, Faults, Meter};
use crate::lock;

/// Profiles, their namespaces and service accounts, and the identity record, in memory.
#[derive(Clone, Debug)]
pub struct FakeKube {
    meter: Meter,
    state: Arc<Mutex<KubeState>>,
}

#[derive(Debug)]
struct KubeState {
    endpoint: KubeEndpoint,
    record: Option<ClusterRecord>,
    profiles: BTreeMap<String, Profile>,
    namespaces: BTreeMap<String, Namespace>,
    accounts: BTreeMap<(String, String), ServiceAccount>,
    config_maps: BTreeMap<(String, String), ConfigMap>,
    /// The data keys and annotations kfp-tenant's applies own, per ConfigMap
    /// (server-side apply's field ownership, as far as a ConfigMap needs it).
    applied: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)>,
    /// The profile controller is down: Profiles are stored, nothing follows.
    controller_down: bool,
}

impl KubeState {
    /// What the Kubeflow profile controller makes for a Profile.
    fn reconcile(&mut self, profile: &Profile) {
        let ns = profile.name.clone();
        self.namespaces.entry(ns.clone()).or_insert_with(|| Namespace {
            name: ns.clone(),
            owner: Some(profile.owner.clone()),
            terminating: false,
        });
        for sa in ["default-editor", "default-viewer"] {
            self.accounts.entry((ns.clone(), sa.to_owned())).or_insert_with(|| ServiceAccount {
                namespace: ns.clone(),
                name: sa.to_owned(),
                role_arn: None,
                managed: false,
                cluster: None,
                created: false,
            });
        }
        if let (Some(arn), Some(editor)) = (profile.role_arn(), self.accounts.get_mut(&(ns, "default-editor".to_owned()))) {
            editor.role_arn = Some(arn.to_owned());
        }
    }
}

impl FakeKube {
    /// The Kubernetes API of EKS cluster `cluster` as [`crate::FakeCluster`]
    /// describes it: same endpoint and CA, so the run is bound by them.
    pub fn new(calls: Calls, cluster: &str) -> Self {
        let endpoint = KubeEndpoint {
            server: fake_endpoint(cluster),
            certificate_authority: Some(fake_ca(cluster)),
            context: Some(cluster.to_owned()),
            from_eks: false,
        };
        let state = KubeState {
            endpoint,
            record: None,
            profiles: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            accounts: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            applied: BTreeMap::new(),
            controller_down: false,
        };
        FakeKube { meter: Meter::new(calls, Faults::default()), state: Arc::new(Mutex::new(state)) }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.meter.set_faults(faults);
    }

    /// Points the client elsewhere: another server, another CA.
    pub fn set_endpoint(&self, endpoint: KubeEndpoint) {
        lock(&self.state).endpoint = endpoint;
    }

    pub fn record(&self) -> Option<ClusterRecord> {
        lock(&self.state).record.clone()
    }

    pub fn set_record(&self, record: Option<ClusterRecord>) {
        lock(&self.state).record = record;
    }

    /// Every Profile, by name (for comparing whole states).
    pub fn profiles(&self) -> BTreeMap<String, Profile> {
        lock(&self.state).profiles.clone()
    }

    /// Every service account, by (namespace, name).
    pub fn service_accounts(&self) -> BTreeMap<(String, String), ServiceAccount> {
        lock(&self.state).accounts.clone()
    }

    /// Puts a Profile in place behind the tool's back; the controller acts on it.
    pub fn insert_profile(&self, profile: Profile) {
        let mut state = lock(&self.state);
        state.reconcile(&profile);
        state.profiles.insert(profile.name.clone(), profile);
    }

    /// A namespace without a Profile, with this owner annotation.
    pub fn insert_namespace(&self, name: &str, owner: Option<&str>) {
        let namespace = Namespace { name: name.to_owned(), owner: owner.map(str::to_owned), terminating: false };
        lock(&self.state).namespaces.insert(name.to_owned(), namespace);
    }

    pub fn edit_profile(&self, name: &str, edit: impl FnOnce(&mut Profile)) {
        if let Some(p) = lock(&self.state).profiles.get_mut(name) {
            edit(p);
        }
    }

    pub fn profile(&self, name: &str) -> Option<Profile> {
        lock(&self.state).profiles.get(name).cloned()
    }

    pub fn profile_names(&self) -> Vec<String> {
        lock(&self.state).profiles.keys().cloned().collect()
    }

    pub fn service_account(&self, namespace: &str, name: &str) -> Option<ServiceAccount> {
        lock(&self.state).accounts.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Puts a service account in place (or changes it) behind the tool's back.
    /// Stops (`false`) or restarts the instant profile controller. Stopped,
    /// a Profile written makes no namespace and no service account, and
    /// `default-editor` keeps whatever annotation it has.
    pub fn set_controller_running(&self, running: bool) {
        lock(&self.state).controller_down = !running;
    }

    pub fn insert_service_account(&self, account: ServiceAccount) {
        let mut state = lock(&self.state);
        let ns = account.namespace.clone();
        state.namespaces.entry(ns.clone()).or_insert_with(|| Namespace { name: ns, owner: None, terminating: false });
        state.accounts.insert((account.namespace.clone(), account.name.clone()), account);
    }

    /// A ConfigMap as it is now, with every writer's keys.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        lock(&self.state).config_maps.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Another writer (KFP's profile controller, an operator) sets these
    /// keys, making the ConfigMap if needed; kfp-tenant's applies lose them.
    pub fn write_config_map(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let mut state = lock(&self.state);
        let key = (namespace.to_owned(), name.to_owned());
        if let Some((owned, _)) = state.applied.get_mut(&key) {
            for (k, _) in data {
                owned.remove(*k);
            }
        }
        let map = state.config_maps.entry(key).or_insert_with(|| ConfigMap {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            data: BTreeMap::new(),
            annotations: BTreeMap::new(),
        });
        map.data.extend(data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    }

    fn missing(op: &str, what: String) -> ProviderError {
        ProviderError::new(ErrorKind::NotFound, op, what.clone(), format!("{what} not found"))
    }
}

#[async_trait]
impl KubernetesApi for FakeKube {
    fn endpoint(&self) -> KubeEndpoint {
        lock(&self.state).endpoint.clone()
    }

    async fn cluster_record(&self) -> ProviderResult<Option<ClusterRecord>> {
        self.meter.enter("GetClusterRecord", "kube-system/kfp-tenant-cluster").await?;
        Ok(lock(&self.state).record.clone())
    }

    /// Like the real one, an apply of the ARN that keeps the users recorded beside it.
    async fn write_cluster_record(&self, record: &ClusterRecord) -> ProviderResult<()> {
        self.meter.enter("WriteClusterRecord", "kube-system/kfp-tenant-cluster").await?;
        let mut state = lock(&self.state);
        let users = state.record.take().map(|r| r.cognito_users).unwrap_or_default();
        state.record = Some(ClusterRecord { cognito_users: users, ..record.clone() });
        Ok(())
    }

    async fn record_cognito_user(&self, pool: &str, email: &str, created: bool) -> ProviderResult<()> {
        self.meter.enter("RecordCognitoUser", email).await?;
        let mut state = lock(&self.state);
        let Some(record) = state.record.as_mut() else {
            return Err(Self::missing("RecordCognitoUser", "configmaps \"kfp-tenant-cluster\"".to_owned()));
        };
        let key = (pool.to_owned(), email.to_owned());
        if created {
            record.cognito_users.insert(key);
        } else {
            record.cognito_users.remove(&key);
        }
        Ok(())
    }

    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>> {
        self.meter.enter("ListProfiles", "profiles").await?;
        Ok(lock(&self.state).profiles.values().cloned().collect())
    }

    async fn list_namespaces(&self) -> ProviderResult<Vec<Namespace>> {
        self.meter.enter("ListNamespaces", "namespaces").await?;
        Ok(lock(&self.state).namespaces.values().cloned().collect())
    }

    async fn get_namespace(&self, name: &str) -> ProviderResult<Option<Namespace>> {
        self.meter.enter("GetNamespace", name).await?;
        Ok(lock(&self.state).namespaces.get(name).cloned())
    }

    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()> {
        self.meter.enter("ApplyProfile", &profile.name).await?;
        let mut state = lock(&self.state);
        if !state.controller_down {
            state.reconcile(profile);
        }
        state.profiles.insert(profile.name.clone(), profile.clone());
        Ok(())
    }

    async fn delete_profile(&self, name: &str, _timeout: Duration) -> ProviderResult<()> {
        self.meter.enter("DeleteProfile", name).await?;
        let mut state = lock(&self.state);
        match state.profiles.remove(name) {
            Some(_) => {
                state.namespaces.remove(name);
                state.accounts.retain(|(ns, _), _| ns != name);
                state.config_maps.retain(|(ns, _), _| ns != name);
                state.applied.retain(|(ns, _), _| ns != name);
                Ok(())
            }
            None => Err(Self::missing("DeleteProfile", format!("profiles.kubeflow.org {name:?}"))),
        }
    }

    /// The fake's controller is instantaneous: a stored Profile is ready.
    async fn wait_ready(&self, profile: &Profile, _timeout: Duration) -> ProviderResult<()> {
        self.meter.enter("WaitReady", &profile.name).await?;
        match lock(&self.state).profiles.contains_key(&profile.name) {
            true => Ok(()),
            false => Err(Self::missing("WaitReady", format!("profiles.kubeflow.org {:?}", profile.name))),
        }
    }

    async fn list_service_accounts(&self, which: AccountQuery<'_>) -> ProviderResult<Vec<ServiceAccount>> {
        self.meter.enter("ListServiceAccounts", "serviceaccounts").await?;
        let state = lock(&self.state);
        Ok(state
            .accounts
            .values()
            .filter(|sa| match which {
                AccountQuery::All => true,
                AccountQuery::Managed => sa.managed,
                AccountQuery::Named(name) => sa.name == name,
            })
            .cloned()
            .collect())
    }

    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<ServiceAccount>> {
        self.meter.enter("GetServiceAccount", name).await?;
        Ok(lock(&self.state).accounts.get(&(namespace.to_owned(), name.to_owned())).cloned())
    }

    async fn apply_service_account(&self, account: &ServiceAccount, _timeout: Duration) -> ProviderResult<()> {
        self.meter.enter("ApplyServiceAccount", &account.name).await?;
        let mut state = lock(&self.state);
        if !state.namespaces.contains_key(&account.namespace) {
            return Err(Self::missing("ApplyServiceAccount", format!("namespaces {:?}", account.namespace)));
        }
        state.accounts.insert((account.namespace.clone(), account.name.clone()), account.clone());
        Ok(())
    }

    async fn list_config_maps(&self, name: &str) -> ProviderResult<Vec<ConfigMap>> {
        self.meter.enter("ListConfigMaps", name).await?;
        Ok(lock(&self.state).config_maps.values().filter(|c| c.name == name).cloned().collect())
    }

    /// Server-side apply of kfp-tenant's keys: sets them, drops those it set
    /// before and no longer names, keeps every other writer's.
    async fn apply_config_map(&self, config: &ConfigMap, _timeout: Duration) -> ProviderResult<()> {
        self.meter.enter("ApplyConfigMap", &config.name).await?;
        let mut state = lock(&self.state);
        if !state.namespaces.contains_key(&config.namespace) {
            return Err(Self::missing("ApplyConfigMap", format!("namespaces {:?}", config.namespace)));
        }
        let key = (config.namespace.clone(), config.name.clone());
        // A release never creates the ConfigMap.
        if config.data.is_empty() && config.annotations.is_empty() && !state.config_maps.contains_key(&key) {
            return Ok(());
        }
        let (old_data, old_annotations) = state.applied.remove(&key).unwrap_or_default();
        let map = state.config_maps.entry(key.clone()).or_insert_with(|| ConfigMap {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            data: BTreeMap::new(),
            annotations: BTreeMap::new(),
        });
        map.data.retain(|k, _| !old_data.contains(k) || config.data.contains_key(k));
        map.annotations.retain(|k, _| !old_annotations.contains(k) || config.annotations.contains_key(k));
        map.data.extend(config.data.clone());
        map.annotations.extend(config.annotations.clone());
        let owned = (config.data.keys().cloned().collect(), config.annotations.keys().cloned().collect());
        state.applied.insert(key, owned);
        Ok(())
    }

    async fn annotate_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) -> ProviderResult<()> {
        self.meter.enter("AnnotateServiceAccount", name).await?;
        let mut state = lock(&self.state);
        if !state.namespaces.contains_key(namespace) {
            return Err(Self::missing("AnnotateServiceAccount", format!("namespaces {namespace:?}")));
        }
        let account = state.accounts.entry((namespace.to_owned(), name.to_owned())).or_insert_with(|| ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            role_arn: None,
            managed: false,
            cluster: None,
            created: false,
        });
        account.role_arn = role_arn.map(str::to_owned);
        Ok(())
    }

    async fn release_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.meter.enter("ReleaseServiceAccount", name).await?;
        let mut state = lock(&self.state);
        let account = state
            .accounts
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| Self::missing("ReleaseServiceAccount", format!("serviceaccounts {name:?}")))?;
        *account = ServiceAccount { role_arn: None, managed: false, cluster: None, created: false, ..account.clone() };
        Ok(())
    }

    async fn delete_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.meter.enter("DeleteServiceAccount", name).await?;
        match lock(&self.state).accounts.remove(&(namespace.to_owned(), name.to_owned())) {
            Some(_) => Ok(()),
            None => Err(Self::missing("DeleteServiceAccount", format!("serviceaccounts {name:?}"))),
        }
    }

    /// An unsigned JWT with the claims Kubernetes puts in, issuer [`crate::ISSUER`].
    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audience: &str,
        expires_in: Duration,
    ) -> ProviderResult<Option<BearerToken>> {
        self.meter.enter("CreateToken", name).await?;
        if !lock(&self.state).accounts.contains_key(&(namespace.to_owned(), name.to_owned())) {
            return Ok(None);
        }
        let claims = serde_json::json!({"iss": crate::ISSUER, "sub": format!("system:serviceaccount:{namespace}:{name}"), "aud": [audience],
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}}});
        Ok(Some(BearerToken { value: crate::apiserver::jwt_unsigned(&claims), valid_for: expires_in }))
    }
}
