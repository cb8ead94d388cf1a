//! Service accounts between kube's type and core's: what kfp-tenant reads of
//! one (its role annotation and markers), the server-side apply
//! configuration of the metadata it writes, and the calls: listed
//! cluster-wide, read, applied, annotated, released, deleted, and a token
//! requested (verify).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kfp_tenant_core::ports::{AccountQuery, BearerToken, ErrorKind, ProviderError, ProviderResult, ServiceAccount as TenantServiceAccount};
use kfp_tenant_core::tags;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{FIELD_MANAGER, Kube, ROLE_ARN_ANNOTATION, profile, provider_error};

pub(crate) fn account_from(sa: &ServiceAccount) -> TenantServiceAccount {
    let (managed, cluster) = profile::marks(sa.metadata.labels.as_ref());
    let annotations = sa.metadata.annotations.as_ref();
    TenantServiceAccount {
        namespace: sa.metadata.namespace.clone().unwrap_or_default(),
        name: sa.metadata.name.clone().unwrap_or_default(),
        role_arn: annotations.and_then(|a| a.get(ROLE_ARN_ANNOTATION)).cloned(),
        managed,
        cluster,
        created: annotations.and_then(|a| a.get(tags::CREATED_ANNOTATION)).map(String::as_str) == Some("true"),
    }
}

/// A service account kfp-tenant makes or annotates, as it applies it: its
/// labels (managed-by, cluster), the role annotation, and whether
/// kfp-tenant created it. Also what `render --out` writes.
pub fn account_manifest(account: &TenantServiceAccount) -> Value {
    let mut annotations = BTreeMap::new();
    if let Some(arn) = &account.role_arn {
        annotations.insert(ROLE_ARN_ANNOTATION.to_owned(), arn.clone());
    }
    if account.created {
        annotations.insert(tags::CREATED_ANNOTATION.to_owned(), "true".to_owned());
    }
    account_config(&account.namespace, &account.name, Some(profile::labels(account.cluster.as_deref())), annotations)
}

/// A server-side apply configuration of a service account's metadata.
pub(crate) fn account_config(
    namespace: &str,
    name: &str,
    labels: Option<BTreeMap<String, String>>,
    annotations: BTreeMap<String, String>,
) -> Value {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(labels) = labels {
        metadata["labels"] = json!(labels);
    }
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata})
}

impl Kube {
    pub(crate) async fn list_service_accounts_impl(&self, which: AccountQuery<'_>) -> ProviderResult<Vec<TenantServiceAccount>> {
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

    pub(crate) async fn get_service_account_impl(&self, namespace: &str, name: &str) -> ProviderResult<Option<TenantServiceAccount>> {
        let found = self
            .accounts(namespace)
            .get_opt(name)
            .await
            .map_err(|e| provider_error("GetServiceAccount", &format!("service account {namespace}/{name}"), e))?;
        Ok(found.as_ref().map(account_from))
    }

    pub(crate) async fn apply_service_account_impl(&self, account: &TenantServiceAccount, timeout: Duration) -> ProviderResult<()> {
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
    pub(crate) async fn annotate_service_account_impl(&self, namespace: &str, name: &str, role_arn: Option<&str>) -> ProviderResult<()> {
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
    pub(crate) async fn release_service_account_impl(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        let config = account_config(namespace, name, None, BTreeMap::new());
        self.accounts(namespace)
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&config))
            .await
            .map(drop)
            .map_err(|e| provider_error("ReleaseServiceAccount", &format!("service account {namespace}/{name}"), e))
    }

    pub(crate) async fn delete_service_account_impl(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.accounts(namespace)
            .delete(name, &DeleteParams::default())
            .await
            .map(drop)
            .map_err(|e| provider_error("DeleteServiceAccount", &format!("service account {namespace}/{name}"), e))
    }

    pub(crate) async fn request_token_impl(
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
