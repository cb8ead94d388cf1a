//! What a tenant still waits for: the controller's namespace (with the
//! owner annotation), its service accounts and the role annotation, asked of
//! the API server or read from the run's watches; and what a Profile being
//! deleted waits for, by its finalizers; and the two waits on them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kfp_tenant_core::ports::{Profile, ProviderResult};
use kube::Api;

use crate::errors::provider_error;
use crate::profile::KubeflowProfile;
use crate::watches::Watches;
use crate::{Kube, ROLE_ARN_ANNOTATION};

impl Kube {
    /// Until the tenant of `profile` is usable, or `timeout`.
    pub(crate) async fn wait_ready_impl(&self, profile: &Profile, timeout: Duration) -> ProviderResult<()> {
        let target = format!("profile {}", profile.name);
        self.wait("WaitReady", &target, timeout, |watches| not_ready_watched(watches, profile), || not_ready(self, profile)).await
    }

    /// Until Profile `name`, being deleted, is gone, or `timeout`: the
    /// controller releases its finalizer, the garbage collector deletes the
    /// namespace (foreground), then the Profile goes.
    pub(crate) async fn wait_deleted(&self, name: &str, timeout: Duration) -> ProviderResult<()> {
        let target = format!("profile {name}");
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
}

/// What still keeps a tenant from being usable, or `None` when it is
/// ready, asking the API server.
async fn not_ready(kube: &Kube, profile: &Profile) -> ProviderResult<Option<String>> {
    let target = format!("namespace {}", profile.name);
    let namespaces: Api<Namespace> = Api::all(kube.client.clone());
    let ns = namespaces.get_opt(&profile.name).await.map_err(|e| provider_error("GetNamespace", &target, e))?;
    if ns.is_none() {
        return Ok(judge(profile, None, None, None));
    }
    let accounts = kube.accounts(&profile.name);
    let editor = accounts.get_opt("default-editor").await.map_err(|e| provider_error("GetServiceAccount", &target, e))?;
    let viewer = accounts.get_opt("default-viewer").await.map_err(|e| provider_error("GetServiceAccount", &target, e))?;
    Ok(judge(profile, ns.as_ref(), editor.as_ref(), viewer.as_ref()))
}

/// The same question answered from the run's watches, without a request.
fn not_ready_watched(watches: &Watches, profile: &Profile) -> Option<String> {
    let (ns, editor, viewer) = (watches.namespace(&profile.name), watches.editor(&profile.name), watches.viewer(&profile.name));
    judge(profile, ns.as_deref(), editor.as_deref(), viewer.as_deref())
}

/// What the namespace and its two service accounts say about the tenant.
fn judge(profile: &Profile, ns: Option<&Namespace>, editor: Option<&ServiceAccount>, viewer: Option<&ServiceAccount>) -> Option<String> {
    let Some(ns) = ns else {
        return Some(format!("namespace {} does not exist yet; is the Kubeflow profile controller running?", profile.name));
    };
    let owner = ns.metadata.annotations.as_ref().and_then(|a| a.get("owner"));
    if owner != Some(&profile.owner) {
        return Some(format!(
            "namespace {} has owner {:?}, not {:?} (the controller never changes the owner of an existing namespace)",
            profile.name, owner, profile.owner
        ));
    }
    for (sa, found) in [("default-editor", editor), ("default-viewer", viewer)] {
        if found.is_none() {
            return Some(format!("service account {}/{sa} does not exist yet; is the Kubeflow profile controller running?", profile.name));
        }
    }
    if let Some(arn) = profile.role_arn() {
        let annotation = editor.and_then(|sa| sa.metadata.annotations.as_ref()).and_then(|a| a.get(ROLE_ARN_ANNOTATION));
        if annotation.map(String::as_str) != Some(arn) {
            return Some(format!(
                "service account {}/default-editor has {ROLE_ARN_ANNOTATION}={annotation:?}, not {arn:?}; is the Kubeflow profile controller running?",
                profile.name
            ));
        }
    }
    None
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
