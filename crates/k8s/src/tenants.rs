//! KubeflowTenant resources (`kubeflowtenants.kfp-tenant.io`) for the
//! controller: listed whole, their finalizer held and dropped, their status
//! written through the status subresource, Events recorded on them, and one
//! stream of "something that matters changed" from the watches the
//! controller needs (the resources themselves, and kfp-tenant's Profiles,
//! service accounts and pipeline ConfigMaps, where drift is repaired at once).

use std::collections::BTreeMap;
use std::pin::Pin;

use futures_util::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Event, ObjectReference, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kfp_tenant_core::crd::{FINALIZER, GROUP, KIND, PLURAL, VERSION};
use kfp_tenant_core::ports::{ARTIFACT_REPOSITORIES, LAUNCHER_CONFIG, ProviderResult};
use kfp_tenant_core::tags;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::{FIELD_MANAGER, Kube, KubeflowProfile, provider_error};

/// A KubeflowTenant as the controller reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantResource {
    /// The tenant's namespace.
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub spec: Value,
    pub status: Value,
    /// Being deleted: its tenant goes (or is retained), then the finalizer.
    pub deleting: bool,
    pub has_finalizer: bool,
}

/// What to do with the controller's finalizer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finalizer {
    Hold,
    Release,
}

fn api_resource() -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: VERSION.to_owned(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.to_owned(),
        plural: PLURAL.to_owned(),
    }
}

fn resource_from(object: &DynamicObject) -> TenantResource {
    TenantResource {
        name: object.name_any(),
        uid: object.metadata.uid.clone().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
        spec: object.data.get("spec").cloned().unwrap_or(Value::Null),
        status: object.data.get("status").cloned().unwrap_or(Value::Null),
        deleting: object.metadata.deletion_timestamp.is_some(),
        has_finalizer: object.finalizers().iter().any(|f| f == FINALIZER),
    }
}

/// A change (not a relist) of a watched object.
fn applied<K: kube::Resource<DynamicType = ()>>(event: Result<watcher::Event<K>, watcher::Error>) -> bool {
    let changed = matches!(event, Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)));
    if let Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) = &event {
        tracing::debug!(kind = %K::kind(&()), name = %o.meta().name.clone().unwrap_or_default(), "a change the controller acts on");
    }
    changed
}

/// A change the controller acts on.
pub type Triggers = Pin<Box<dyn Stream<Item = ()> + Send>>;

impl Kube {
    fn tenant_api(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &api_resource())
    }

    /// Every KubeflowTenant, in pages of 500.
    pub async fn list_tenant_resources(&self) -> ProviderResult<Vec<TenantResource>> {
        let api = self.tenant_api();
        let mut found = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.map_err(|e| provider_error("ListKubeflowTenants", PLURAL, e))?;
            found.extend(page.items.iter().map(resource_from));
            match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(found),
            }
        }
    }

    /// Adds the controller's finalizer (a merge patch guarded by the
    /// resourceVersion); nothing when it is there.
    pub async fn hold_tenant(&self, name: &str) -> ProviderResult<()> {
        self.tenant_finalizer(name, Finalizer::Hold).await
    }

    /// Removes the controller's finalizer, so that the resource goes.
    pub async fn release_tenant(&self, name: &str) -> ProviderResult<()> {
        self.tenant_finalizer(name, Finalizer::Release).await
    }

    async fn tenant_finalizer(&self, name: &str, to: Finalizer) -> ProviderResult<()> {
        let hold = to == Finalizer::Hold;
        let target = format!("kubeflowtenant {name}");
        let api = self.tenant_api();
        let Some(object) = api.get_opt(name).await.map_err(|e| provider_error("GetKubeflowTenant", &target, e))? else {
            return Ok(());
        };
        let mut finalizers: Vec<String> = object.finalizers().to_vec();
        let present = finalizers.iter().any(|f| f == FINALIZER);
        if present == hold {
            return Ok(());
        }
        if hold {
            finalizers.push(FINALIZER.to_owned());
        } else {
            finalizers.retain(|f| f != FINALIZER);
        }
        // The resourceVersion makes a concurrent change a conflict, not a loss.
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| provider_error(if hold { "AddFinalizer" } else { "RemoveFinalizer" }, &target, e))
    }

    /// Sets the resource's status (the status subresource, server-side
    /// apply under kfp-tenant's field manager).
    pub async fn set_tenant_status(&self, name: &str, status: &Value) -> ProviderResult<()> {
        let patch = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": KIND, "metadata": {"name": name}, "status": status});
        self.tenant_api()
            .patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map(drop)
            .map_err(|e| provider_error("UpdateKubeflowTenantStatus", &format!("kubeflowtenant {name}"), e))
    }

    /// A Kubernetes Event on the resource (in `default`, where kubectl looks
    /// for the events of a cluster-scoped object).
    pub async fn record_tenant_event(&self, resource: &TenantResource, warning: bool, reason: &str, message: &str) -> ProviderResult<()> {
        let now = Timestamp::now();
        let event = Event {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!("{}.", resource.name)),
                namespace: Some("default".to_owned()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(format!("{GROUP}/{VERSION}")),
                kind: Some(KIND.to_owned()),
                name: Some(resource.name.clone()),
                uid: Some(resource.uid.clone()),
                ..Default::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.chars().take(1000).collect()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some("kfp-tenant-controller".to_owned()),
            reporting_instance: Some(std::env::var("HOSTNAME").unwrap_or_else(|_| "kfp-tenant".to_owned())),
            action: Some(reason.to_owned()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
            .map_err(|e| provider_error("CreateEvent", &format!("kubeflowtenant {}", resource.name), e))
    }

    /// One item each time something the controller acts on changes: a
    /// KubeflowTenant's spec, deletion or finalizers (not its status, which
    /// the controller writes itself), or any of kfp-tenant's Profiles,
    /// service accounts or pipeline ConfigMaps. A watch that fails is
    /// retried with backoff (kube-runtime's watcher), and relists count as
    /// a change.
    pub fn tenant_triggers(&self) -> Triggers {
        let config = watcher::Config::default();
        let labelled = watcher::Config::default().labels(&format!("{}={}", tags::PROFILE_LABEL, tags::MANAGER));
        let named = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut seen: BTreeMap<String, (i64, bool, bool)> = BTreeMap::new();
        let resources = watcher::watcher(self.tenant_api(), config).default_backoff().filter_map(move |event| {
            let changed = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let r = resource_from(&o);
                    seen.insert(r.name.clone(), (r.generation, r.deleting, r.has_finalizer))
                        != Some((r.generation, r.deleting, r.has_finalizer))
                }
                Ok(watcher::Event::Delete(o)) => seen.remove(&o.name_any()).is_some(),
                Ok(watcher::Event::InitDone) => true,
                Ok(watcher::Event::Init) | Err(_) => false,
            };
            futures_util::future::ready(changed.then_some(()))
        });
        let any = |s: Pin<Box<dyn Stream<Item = bool> + Send>>| s.filter_map(|changed| futures_util::future::ready(changed.then_some(())));
        let profiles = watcher::watcher(Api::<KubeflowProfile>::all(self.client.clone()), labelled.clone()).default_backoff().map(applied);
        let accounts = watcher::watcher(Api::<ServiceAccount>::all(self.client.clone()), labelled).default_backoff().map(applied);
        let launchers = watcher::watcher(Api::<ConfigMap>::all(self.client.clone()), named(LAUNCHER_CONFIG)).default_backoff().map(applied);
        let repositories =
            watcher::watcher(Api::<ConfigMap>::all(self.client.clone()), named(ARTIFACT_REPOSITORIES)).default_backoff().map(applied);
        let others =
            stream::select_all([any(Box::pin(profiles)), any(Box::pin(accounts)), any(Box::pin(launchers)), any(Box::pin(repositories))]);
        Box::pin(stream::select(resources, others))
    }
}

/// The time now as Kubernetes writes it in a status (RFC 3339, UTC).
pub fn now_rfc3339() -> String {
    Timestamp::now().round(k8s_openapi::jiff::Unit::Second).map_or_else(|_| Timestamp::now().to_string(), |t| t.to_string())
}
