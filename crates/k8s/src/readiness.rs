//! What a tenant still waits for: the controller's namespace (with the
//! owner annotation), its service accounts and the role annotation; and what
//! a Profile being deleted waits for, by its finalizers.

use k8s_openapi::api::core::v1::Namespace;
use kfp_tenant_core::ports::{Profile, ProviderResult};
use kube::Api;

use crate::errors::provider_error;
use crate::{Kube, ROLE_ARN_ANNOTATION};

/// What still keeps a tenant from being usable, or `None` when it is ready.
pub(crate) async fn not_ready(kube: &Kube, profile: &Profile) -> ProviderResult<Option<String>> {
    let target = format!("namespace {}", profile.name);
    let namespaces: Api<Namespace> = Api::all(kube.client.clone());
    let Some(ns) = namespaces.get_opt(&profile.name).await.map_err(|e| provider_error("GetNamespace", &target, e))? else {
        return Ok(Some(format!("namespace {} does not exist yet; is the Kubeflow profile controller running?", profile.name)));
    };
    let owner = ns.metadata.annotations.as_ref().and_then(|a| a.get("owner"));
    if owner != Some(&profile.owner) {
        return Ok(Some(format!(
            "namespace {} has owner {:?}, not {:?} (the controller never changes the owner of an existing namespace)",
            profile.name, owner, profile.owner
        )));
    }
    let accounts = kube.accounts(&profile.name);
    for sa in ["default-editor", "default-viewer"] {
        if accounts.get_opt(sa).await.map_err(|e| provider_error("GetServiceAccount", &target, e))?.is_none() {
            return Ok(Some(format!(
                "service account {}/{sa} does not exist yet; is the Kubeflow profile controller running?",
                profile.name
            )));
        }
    }
    if let Some(arn) = profile.role_arn() {
        let editor = accounts.get_opt("default-editor").await.map_err(|e| provider_error("GetServiceAccount", &target, e))?;
        let annotation = editor.as_ref().and_then(|sa| sa.metadata.annotations.as_ref()).and_then(|a| a.get(ROLE_ARN_ANNOTATION));
        if annotation.map(String::as_str) != Some(arn) {
            return Ok(Some(format!(
                "service account {}/default-editor has {ROLE_ARN_ANNOTATION}={annotation:?}, not {arn:?}; is the Kubeflow profile controller running?",
                profile.name
            )));
        }
    }
    Ok(None)
}

/// Who a Profile that is being deleted still waits for, by its finalizers.
pub(crate) fn waiting_for(name: &str, finalizers: &[String]) -> String {
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
