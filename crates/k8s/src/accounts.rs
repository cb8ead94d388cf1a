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
