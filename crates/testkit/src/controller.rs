//! The Kubeflow profile controller, as far as kfp-tenant's tenants meet it,
//! on kube-runtime: it runs against the fake API server and against a real
//! kube-apiserver alike, so both backends see one controller.
//!
//! What the real one (kubeflow/dashboard, components/profile-controller) does
//! for a Profile with `AwsIamForServiceAccount` and `annotateOnly: true`, and
//! this one does too:
//! - adds its finalizer `profile-finalizer`;
//! - creates the namespace with the `owner` annotation and a controller owner
//!   reference to the Profile (`blockOwnerDeletion`); a namespace that exists
//!   with another owner makes the Profile fail (a `Failed` status condition);
//! - creates the service accounts `default-editor` and `default-viewer`, also
//!   owned by the Profile, and annotates `default-editor` with the plugin's
//!   role ARN on every reconcile (it owns that annotation: a change by hand
//!   is undone at once);
//! - on deletion revokes its plugins (nothing to do with `annotateOnly`) and
//!   removes its finalizer. The namespace goes through the owner reference:
//!   kube-controller-manager's garbage collector deletes it (a foreground
//!   deletion of the Profile waits for that), as on a real cluster.
//!
//! Not modelled: RoleBindings, the Istio AuthorizationPolicy and the
//! ResourceQuota, which kfp-tenant neither reads nor writes.
//!
//! With `pipelines`, it also plays KFP's pipelines-profile-controller as
//! metacontroller runs it (a DecoratorController on namespaces, children
//! with `updateStrategy: OnDelete`, resynced): in each Profile's namespace it
//! creates `kfp-launcher` (a MinIO root and `clusterDomain`) and
//! `artifact-repositories` (KFP's in-cluster store with static keys), owned
//! by the namespace, as the field manager `metacontroller`. As metacontroller's
//! `manageChildren` does, a child it does not own is created again on every
//! resync and the `AlreadyExists` answer swallowed; one it owns is never
//! updated (OnDelete); one deleted is made again at the next resync. Not
//! modelled: metacontroller's server-side-apply mode (off by default), which
//! would take the keys back on every sync after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Config, CustomResource, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const PROFILE_FINALIZER: &str = "profile-finalizer";
pub use kfp_tenant_core::spec::ROLE_ARN_ANNOTATION;
/// The service accounts the controller makes in every Profile's namespace.
pub const SERVICE_ACCOUNTS: [&str; 2] = ["default-editor", "default-viewer"];

/// The controller's own view of a Profile (as the Go controller has its own types).
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize)]
#[kube(group = "kubeflow.org", version = "v1", kind = "Profile", schema = "disabled")]
pub struct ProfileSpec {
    #[serde(default)]
    pub owner: Value,
    #[serde(default)]
    pub plugins: Vec<Value>,
    /// The rest of the spec, kept as it is when the controller writes the Profile back.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// How the controller behaves.
#[derive(Clone, Debug, Default)]
pub struct ControllerOptions {
    /// Waits this long before acting on a change (a slow controller).
    pub delay: Duration,
    /// Only Profiles whose name ends with this are reconciled, so that tests
    /// sharing one real API server each run their own controller.
    pub only_suffix: Option<String>,
    /// Also play KFP's pipelines-profile-controller under metacontroller.
    pub pipelines: bool,
}

/// The field manager of metacontroller's writes.
pub const METACONTROLLER: &str = "metacontroller";

/// A ConfigMap's name, data and annotations.
pub type Child = (&'static str, BTreeMap<String, String>, BTreeMap<String, String>);

/// What KFP 1.10's pipelines-profile-controller writes into a namespace.
pub fn kfp_children(namespace: &str) -> [Child; 2] {
    let repository = json!({"archiveLogs": true, "s3": {
        "endpoint": "seaweedfs.kubeflow:9000", "bucket": "mlpipeline", "insecure": true,
        "keyFormat": format!("private-artifacts/{namespace}/{{{{workflow.name}}}}/{{{{pod.name}}}}"),
        "accessKeySecret": {"name": "mlpipeline-minio-artifact", "key": "accesskey"},
        "secretKeySecret": {"name": "mlpipeline-minio-artifact", "key": "secretkey"},
    }});
    [
        (
            "kfp-launcher",
            BTreeMap::from([
                ("defaultPipelineRoot".to_owned(), format!("minio://mlpipeline/private-artifacts/{namespace}/v2/artifacts")),
                ("clusterDomain".to_owned(), "cluster.local".to_owned()),
            ]),
            BTreeMap::new(),
        ),
        (
            "artifact-repositories",
            BTreeMap::from([("default-namespaced".to_owned(), repository.to_string())]),
            BTreeMap::from([("workflows.argoproj.io/default-artifact-repository".to_owned(), "default-namespaced".to_owned())]),
        ),
    ]
}

/// A running controller; stops when dropped.
#[derive(Debug)]
pub struct ProfileController {
    task: JoinHandle<()>,
}

impl Drop for ProfileController {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client of the cluster a kubeconfig (as text) names.
pub async fn client(kubeconfig: &str) -> Result<Client, String> {
    let file = Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

struct Context {
    client: Client,
    options: ControllerOptions,
}

#[derive(Debug, thiserror::Error)]
#[error("profile controller: {0}")]
struct ReconcileError(#[from] kube::Error);

impl ProfileController {
    /// Starts watching Profiles, their namespaces and service accounts.
    pub async fn start(kubeconfig: &str, options: ControllerOptions) -> Result<Self, String> {
        let client = client(kubeconfig).await?;
        let profiles: Api<Profile> = Api::all(client.clone());
        let controller = Controller::new(profiles, watcher::Config::default())
            .owns(Api::<Namespace>::all(client.clone()), watcher::Config::default())
            .owns(Api::<ServiceAccount>::all(client.clone()), watcher::Config::default());
        let context = Arc::new(Context { client, options });
        let task = tokio::spawn(async move {
            controller
                .run(reconcile, |_, _, _| Action::requeue(Duration::from_millis(200)), context)
                .for_each(|result| async move {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "profile controller");
                    }
                })
                .await;
        });
        Ok(ProfileController { task })
    }
}

fn owner_reference(profile: &Profile) -> OwnerReference {
    OwnerReference {
        api_version: "kubeflow.org/v1".to_owned(),
        kind: "Profile".to_owned(),
        name: profile.name_any(),
        uid: profile.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn has_finalizer(profile: &Profile) -> bool {
    profile.finalizers().iter().any(|f| f == PROFILE_FINALIZER)
}

async fn reconcile(profile: Arc<Profile>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = profile.name_any();
    if ctx.options.only_suffix.as_ref().is_some_and(|s| !name.ends_with(s.as_str())) {
        return Ok(Action::await_change());
    }
    if !ctx.options.delay.is_zero() {
        tokio::time::sleep(ctx.options.delay).await;
    }
    let profiles: Api<Profile> = Api::all(ctx.client.clone());
    // The watch may lag: act on the Profile as it is now.
    let Some(mut profile) = profiles.get_opt(&name).await? else { return Ok(Action::await_change()) };
    if profile.meta().deletion_timestamp.is_some() {
        if has_finalizer(&profile) {
            profile.finalizers_mut().retain(|f| f != PROFILE_FINALIZER);
            profiles.replace(&name, &PostParams::default(), &profile).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer(&profile) {
        profile.finalizers_mut().push(PROFILE_FINALIZER.to_owned());
        profile = profiles.replace(&name, &PostParams::default(), &profile).await?;
    }

    let owner = profile.spec.owner["name"].as_str().unwrap_or_default().to_owned();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(&name).await? {
        None => {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    annotations: Some(BTreeMap::from([("owner".to_owned(), owner.clone())])),
                    labels: Some(BTreeMap::from([
                        ("istio-injection".to_owned(), "enabled".to_owned()),
                        ("app.kubernetes.io/part-of".to_owned(), "kubeflow-profile".to_owned()),
                    ])),
                    owner_references: Some(vec![owner_reference(&profile)]),
                    ..Default::default()
                },
                ..Default::default()
            };
            namespaces.create(&PostParams::default(), &ns).await?;
        }
        Some(ns) if ns.annotations().get("owner") != Some(&owner) => {
            let condition = json!({"status": {"conditions": [{"type": "Failed", "status": "True",
                "message": format!("namespace already exist, but not owned by profile creator {owner}")}]}});
            profiles.patch_status(&name, &PatchParams::default(), &Patch::Merge(&condition)).await?;
            return Ok(Action::await_change());
        }
        // Terminating: wait until it is gone, then make it again.
        Some(ns) if ns.meta().deletion_timestamp.is_some() => return Ok(Action::requeue(Duration::from_millis(200))),
        Some(_) => {}
    }

    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    for sa in SERVICE_ACCOUNTS {
        if accounts.get_opt(sa).await?.is_none() {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(sa.to_owned()),
                    namespace: Some(name.clone()),
                    owner_references: Some(vec![owner_reference(&profile)]),
                    ..Default::default()
                },
                ..Default::default()
            };
            accounts.create(&PostParams::default(), &account).await?;
        }
    }
    let role = profile
        .spec
        .plugins
        .iter()
        .find(|p| p["kind"] == "AwsIamForServiceAccount")
        .and_then(|p| p["spec"]["awsIamRole"].as_str())
        .map(str::to_owned);
    if let Some(role) = role
        && let Some(editor) = accounts.get_opt("default-editor").await?
        && editor.annotations().get(ROLE_ARN_ANNOTATION) != Some(&role)
    {
        let patch = json!({"metadata": {"annotations": {ROLE_ARN_ANNOTATION: role}}});
        accounts.patch("default-editor", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    if ctx.options.pipelines {
        pipelines_children(&ctx.client, &name).await?;
        // metacontroller's resync.
        return Ok(Action::requeue(Duration::from_millis(300)));
    }
    Ok(Action::await_change())
}

/// metacontroller's `manageChildren` for KFP's children, `OnDelete`: a child
/// the namespace owns is left as it is; any other is created, and
/// `AlreadyExists` (one it does not own) swallowed.
async fn pipelines_children(client: &Client, namespace: &str) -> Result<(), ReconcileError> {
    let Some(parent) = Api::<Namespace>::all(client.clone()).get_opt(namespace).await? else { return Ok(()) };
    let Some(uid) = parent.meta().uid.clone() else { return Ok(()) };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for (name, data, annotations) in kfp_children(namespace) {
        let observed = maps.get_opt(name).await?;
        if observed.is_some_and(|cm| cm.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true))) {
            continue;
        }
        let child = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Namespace".to_owned(),
                    name: namespace.to_owned(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let params = PostParams { field_manager: Some(METACONTROLLER.to_owned()), ..Default::default() };
        match maps.create(&params, &child).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => tracing::debug!(name, namespace, "child already exists"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
