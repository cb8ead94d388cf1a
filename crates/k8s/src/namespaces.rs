//! Namespaces as a tenant sees them: their owner annotation, whether they
//! are being deleted, and the wait for one the profile controller makes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kfp_tenant_core::ports::{Namespace as TenantNamespace, ProviderResult};
use kube::Api;
use kube::api::ListParams;

use crate::{Kube, provider_error};

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

    pub(crate) async fn list_namespaces_impl(&self) -> ProviderResult<Vec<TenantNamespace>> {
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

    pub(crate) async fn get_namespace_impl(&self, name: &str) -> ProviderResult<Option<TenantNamespace>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let found = api.get_opt(name).await.map_err(|e| provider_error("GetNamespace", &format!("namespace {name}"), e))?;
        Ok(found.map(|ns| TenantNamespace {
            name: name.to_owned(),
            owner: ns.metadata.annotations.as_ref().and_then(|a| a.get("owner")).cloned(),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }))
    }
}
