//! kfp-tenant's identity record (ConfigMap `kube-system/kfp-tenant-cluster`):
//! the EKS cluster this Kubernetes API is, written by a first apply, and one
//! key per Cognito user kfp-tenant made.

use k8s_openapi::api::core::v1::ConfigMap;
use kfp_tenant_core::ports::{ClusterRecord, ProviderResult};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::{FIELD_MANAGER, Kube, RECORD_NAME, RECORD_NAMESPACE, profile, provider_error};

const COGNITO_KEY_PREFIX: &str = "cognito-user.";

/// A ConfigMap data key for a user (keys allow `[-._a-zA-Z0-9]`, e-mails more).
fn cognito_key(pool: &str, email: &str) -> String {
    let hash = kfp_tenant_core::fnv::hash(format!("{pool} {email}").as_bytes());
    format!("{COGNITO_KEY_PREFIX}{hash:016x}")
}

impl Kube {
    pub(crate) async fn cluster_record_impl(&self) -> ProviderResult<Option<ClusterRecord>> {
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
    pub(crate) async fn record_cognito_user_impl(&self, pool: &str, email: &str, created: bool) -> ProviderResult<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), RECORD_NAMESPACE);
        let key = cognito_key(pool, email);
        let value = if created { json!(format!("{pool} {email}")) } else { serde_json::Value::Null };
        api.patch(RECORD_NAME, &PatchParams::default(), &Patch::Merge(&json!({"data": {key: value}})))
            .await
            .map(drop)
            .map_err(|e| provider_error("RecordCognitoUser", &format!("config map {RECORD_NAMESPACE}/{RECORD_NAME}"), e))
    }

    pub(crate) async fn write_cluster_record_impl(&self, record: &ClusterRecord) -> ProviderResult<()> {
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
}
