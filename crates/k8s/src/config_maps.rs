//! A tenant's pipeline ConfigMaps (`kfp-launcher`, `artifact-repositories`)
//! between kube's type and core's, and the server-side apply configuration
//! of the keys kfp-tenant owns in them. The ConfigMaps are shared: KFP's
//! pipelines-profile-controller may have made them, and its keys stay.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kfp_tenant_core::ports::{ConfigMap as TenantConfigMap, ProviderResult};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{FIELD_MANAGER, Kube, provider_error};

fn config_map_from(cm: &ConfigMap) -> TenantConfigMap {
    TenantConfigMap {
        namespace: cm.metadata.namespace.clone().unwrap_or_default(),
        name: cm.metadata.name.clone().unwrap_or_default(),
        data: cm.data.clone().unwrap_or_default(),
        annotations: cm.metadata.annotations.clone().unwrap_or_default(),
    }
}

/// The apply configuration of exactly kfp-tenant's keys: no labels (the
/// ConfigMap may be another's), its data keys and annotations. Also what
/// `render --out` writes.
pub fn config_map_manifest(config: &TenantConfigMap) -> Value {
    let mut metadata = json!({"name": config.name, "namespace": config.namespace});
    if !config.annotations.is_empty() {
        metadata["annotations"] = json!(config.annotations);
    }
    let mut manifest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
    if !config.data.is_empty() {
        manifest["data"] = json!(config.data);
    }
    manifest
}

impl Kube {
    pub(crate) async fn config_maps_named(&self, name: &str) -> ProviderResult<Vec<TenantConfigMap>> {
        let api: Api<ConfigMap> = Api::all(self.client.clone());
        let mut found = Vec::new();
        let mut params = ListParams::default().fields(&format!("metadata.name={name}")).limit(500);
        loop {
            let page = api.list(&params).await.map_err(|e| provider_error("ListConfigMaps", &format!("config maps {name}"), e))?;
            found.extend(page.items.iter().map(config_map_from));
            match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(found),
            }
        }
    }

    /// Forced: the keys KFP's controller wrote (with a create of its own)
    /// become kfp-tenant's. An apply naming nothing gives them all back, and
    /// never creates the ConfigMap: an empty `kfp-launcher` made by a release
    /// would keep KFP's controller from making its own (its create would
    /// fail), so a missing one is left missing, and the apply carries the
    /// resourceVersion read (one deleted or changed meanwhile is a conflict
    /// for the next plan, not a new object).
    pub(crate) async fn apply_config_map_keys(&self, config: &TenantConfigMap, timeout: Duration) -> ProviderResult<()> {
        let target = format!("config map {}/{}", config.namespace, config.name);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &config.namespace);
        let mut manifest = config_map_manifest(config);
        if config.data.is_empty() && config.annotations.is_empty() {
            // Listed by name rather than read: the RBAC that lists them suffices.
            let params = ListParams::default().fields(&format!("metadata.name={}", config.name));
            let found = api.list(&params).await.map_err(|e| provider_error("ListConfigMaps", &target, e))?;
            let Some(version) = found.items.into_iter().next().and_then(|cm| cm.metadata.resource_version) else { return Ok(()) };
            manifest["metadata"]["resourceVersion"] = json!(version);
        } else {
            self.wait_for_namespace("ApplyConfigMap", &target, &config.namespace, timeout).await?;
        }
        api.patch(&config.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&manifest))
            .await
            .map(drop)
            .map_err(|e| provider_error("ApplyConfigMap", &target, e))
    }
}
