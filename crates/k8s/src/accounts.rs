//! Service accounts between kube's type and core's: what kfp-tenant reads of
//! one (its role annotation and markers) and the server-side apply
//! configuration of the metadata it writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use kfp_tenant_core::ports::ServiceAccount as TenantServiceAccount;
use kfp_tenant_core::tags;
use serde_json::{Value, json};

use crate::{ROLE_ARN_ANNOTATION, profile};

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
