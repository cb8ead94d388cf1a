//! A tenant's pipeline config: the keys kfp-tenant owns in the `kfp-launcher`
//! ConfigMap (where KFP v2 runs write artifacts, and how they reach S3: with
//! the pod's own credentials) and in Argo's `artifact-repositories` (the
//! default repository for each step's outputs and logs). Only those keys
//! are written, by server-side apply; other keys, KFP's own included, stay.
//! A release (the tenant opts out) gives the keys back and keeps the
//! ConfigMap; destroy and prune leave them to the namespace's deletion.
//! An annotation beside the keys (`kfp-tenant/owned-keys`) says which are
//! kfp-tenant's, to kubectl readers and to the next plan.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Planned, Resource, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::{Action, ClusterContext, Reason, ResourceChange, State};
use crate::policy::S3Access;
use crate::ports::{ARTIFACT_REPOSITORIES, ConfigMap, LAUNCHER_CONFIG, OWNED_KEYS_ANNOTATION, PIPELINE_CONFIG_MAPS, ProviderError};
use crate::refresh::{Observed, ReadSet};
use crate::spec::Tenant;

/// The `kfp-launcher` key naming where runs write.
pub const PIPELINE_ROOT_KEY: &str = "defaultPipelineRoot";
/// The `kfp-launcher` key saying how each store is reached.
pub const PROVIDERS_KEY: &str = "providers";
/// The repository kfp-tenant writes in `artifact-repositories`: the key KFP's
/// own controller uses, so that there is one default, the tenant's.
pub const REPOSITORY_KEY: &str = "default-namespaced";
/// The annotation naming Argo's default repository of a namespace.
pub const DEFAULT_REPOSITORY_ANNOTATION: &str = "workflows.argoproj.io/default-artifact-repository";

/// The regional S3 endpoint, without a scheme (as KFP and Argo take it).
pub fn s3_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("s3.{region}.{suffix}")
}

/// The keys kfp-tenant owns in the tenant's two ConfigMaps, for a tenant
/// whose pipeline root is `root` (a key under `bucket`).
pub fn desired_pipeline_config(tenant: &Tenant, root: &str, bucket: &str, region: &str) -> [ConfigMap; 2] {
    let endpoint = s3_endpoint(region);
    // JSON is YAML: KFP and Argo parse these values with a YAML parser.
    let providers = json!({"s3": {"default": {"endpoint": endpoint, "region": region, "credentials": {"fromEnv": true}}}});
    let key_format = format!(
        "{root}/logs/{{{{workflow.name}}}}/{{{{workflow.creationTimestamp.Y}}}}/{{{{workflow.creationTimestamp.m}}}}/{{{{workflow.creationTimestamp.d}}}}/{{{{pod.name}}}}"
    );
    let repository = json!({
        "archiveLogs": true,
        "s3": {"bucket": bucket, "endpoint": endpoint, "region": region, "keyFormat": key_format, "useSDKCreds": true},
    });
    let map = |name: &str, data: BTreeMap<String, String>, mut annotations: BTreeMap<String, String>| {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        annotations.insert(OWNED_KEYS_ANNOTATION.to_owned(), keys.join(","));
        ConfigMap { namespace: tenant.namespace.clone(), name: name.to_owned(), data, annotations }
    };
    [
        map(
            LAUNCHER_CONFIG,
            BTreeMap::from([
                (PIPELINE_ROOT_KEY.to_owned(), format!("s3://{bucket}/{root}")),
                (PROVIDERS_KEY.to_owned(), providers.to_string()),
            ]),
            BTreeMap::new(),
        ),
        map(
            ARTIFACT_REPOSITORIES,
            BTreeMap::from([(REPOSITORY_KEY.to_owned(), repository.to_string())]),
            BTreeMap::from([(DEFAULT_REPOSITORY_ANNOTATION.to_owned(), REPOSITORY_KEY.to_owned())]),
        ),
    ]
}

/// What a tenant's pipeline config needs, given what its Profile does: its
/// keys made, set back when they drift, written again when the namespace is
/// recreated with the Profile, and given back when the tenant opts out.
pub(crate) fn plan_pipeline_config(tenant: &Tenant, profile_action: Action, observed: &Observed, cluster: &ClusterContext) -> Vec<Planned> {
    let ns = tenant.namespace.as_str();
    let mut planned = Vec::new();
    let Some(root) = &tenant.pipeline_root else {
        // Opted out: what kfp-tenant wrote is given back; nothing else is
        // touched. A namespace made again with its Profile has nothing of it.
        if profile_action == Action::Replace {
            return planned;
        }
        for name in PIPELINE_CONFIG_MAPS {
            if let Some(live) = observed.config_maps.get(&(ns.to_owned(), name.to_owned()))
                && live.ours()
            {
                // What is given back: kfp-tenant's keys (others' stay, and are not shown as going).
                let before = Some(State::PipelineConfig(live.owned_part()));
                planned.push(Planned {
                    address: Address::pipeline_config(ns, name),
                    action: Action::Delete,
                    reason: Some(Reason::OptedOut),
                    before,
                    after: None,
                });
            }
        }
        return planned;
    };
    // A Profile whose namespace the controller has not made yet still gets
    // its ConfigMaps planned (their writes wait for the namespace), so that
    // a plan never says "no changes" while they are missing.
    for want in desired_pipeline_config(tenant, root, &cluster.bucket, &cluster.region) {
        let address = Address::pipeline_config(ns, &want.name);
        let live = observed.config_maps.get(&(ns.to_owned(), want.name.clone()));
        let (action, reason, before) = match live {
            // The namespace and everything in it goes with the Profile.
            _ if profile_action == Action::Replace => (Action::Create, Some(Reason::NamespaceRecreated), None),
            None => (Action::Create, Some(Reason::Missing), None),
            Some(live) => {
                let drift = pipeline_config_drift(live, &want);
                let before = Some(State::PipelineConfig(live.keys_of(&want)));
                if drift.is_empty() {
                    (Action::NoOp, None, before)
                } else {
                    (Action::Update, Some(Reason::Drift { attributes: drift }), before)
                }
            }
        };
        planned.push(Planned { address, action, reason, before, after: Some(State::PipelineConfig(want)) });
    }
    planned
}

impl ConfigMap {
    /// The live values of the keys `want` sets (absent keys left out), for a
    /// plan's `before`: what kfp-tenant's write changes.
    /// Only what kfp-tenant writes: the data keys its annotation names, that
    /// annotation, and Argo's default-repository annotation.
    pub fn owned_part(&self) -> ConfigMap {
        let owned: Vec<&str> = self.annotations.get(OWNED_KEYS_ANNOTATION).map(|k| k.split(',').collect()).unwrap_or_default();
        ConfigMap {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            data: self.data.iter().filter(|(k, _)| owned.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
            annotations: self
                .annotations
                .iter()
                .filter(|(k, _)| [OWNED_KEYS_ANNOTATION, DEFAULT_REPOSITORY_ANNOTATION].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn keys_of(&self, want: &ConfigMap) -> ConfigMap {
        let pick = |live: &BTreeMap<String, String>, keys: &BTreeMap<String, String>| {
            live.iter().filter(|(k, _)| keys.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        ConfigMap {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            data: pick(&self.data, &want.data),
            annotations: pick(&self.annotations, &want.annotations),
        }
    }
}

#[async_trait]
impl Resource for ConfigMap {
    /// The Profile whose namespace holds it.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::Profile)]
    }

    fn label(&self) -> (&'static str, String) {
        ("config_map", format!("{}/{}", self.namespace, self.name))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![("namespace", text(&self.namespace)), ("name", text(&self.name))];
        // Values that hold JSON (the providers, the repository) are shown as such.
        let data: serde_json::Map<String, serde_json::Value> = self
            .data
            .iter()
            .map(|(key, value)| {
                let shown = serde_json::from_str::<serde_json::Value>(value).ok().filter(|v| v.is_object()).unwrap_or_else(|| json!(value));
                (key.clone(), shown)
            })
            .collect();
        v.push(("data", Attr::Json(serde_json::Value::Object(data))));
        if !self.annotations.is_empty() {
            v.push(("annotations", Attr::Json(json!(self.annotations))));
        }
        v
    }

    fn add_reads(&self, _change: &ResourceChange, reads: &mut ReadSet) {
        reads.config_maps = true;
    }

    /// The live values of the keys the saved plan saw.
    fn current(&self, observed: &Observed) -> Option<Self> {
        let live = observed.config_maps.get(&(self.namespace.clone(), self.name.clone()))?;
        Some(live.keys_of(self))
    }

    async fn execute(cx: &Cx<'_>, _before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let kube = cx.providers.kube;
        match (cx.change.action, &cx.change.before, after) {
            (Action::Create | Action::Update | Action::Replace, _, Some(want)) => kube.apply_config_map(want, cx.remaining()).await,
            // Opted out: kfp-tenant's keys given back, the ConfigMap kept.
            (Action::Delete, Some(crate::plan::State::PipelineConfig(live)), None) => {
                let release = ConfigMap { data: BTreeMap::new(), annotations: BTreeMap::new(), ..live.clone() };
                ignore_missing(kube.apply_config_map(&release, cx.remaining()).await)
            }
            _ => Err(malformed(cx.change)),
        }
    }
}

/// The keys kfp-tenant sets that differ live, by name.
pub fn pipeline_config_drift(live: &ConfigMap, want: &ConfigMap) -> Vec<String> {
    let differ = |live: &BTreeMap<String, String>, want: &BTreeMap<String, String>| {
        want.iter().filter(|(k, v)| live.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    let mut drift = differ(&live.data, &want.data);
    drift.extend(differ(&live.annotations, &want.annotations));
    drift
}

/// What a tenant's S3 grant covers, as a sentence's object.
fn grant_text(bucket: &str, access: &S3Access) -> String {
    match access {
        S3Access::Prefix { prefix } => format!("the objects under s3://{bucket}/{prefix}"),
        S3Access::Scoped | S3Access::Full => format!("the objects of s3://{bucket}"),
    }
}

/// The key under `bucket` where a live `kfp-launcher` sends the tenant's
/// runs, when it lies inside the grant; otherwise why not (naming the root
/// and the grant), as one sentence.
pub(crate) fn live_root(launcher: Option<&ConfigMap>, bucket: &str, access: &S3Access) -> Result<String, String> {
    let grant = grant_text(bucket, access);
    let Some(root) = launcher.and_then(|l| l.data.get(PIPELINE_ROOT_KEY)).filter(|r| !r.is_empty()) else {
        let what = if launcher.is_some() { "has no defaultPipelineRoot" } else { "does not exist" };
        return Err(format!(
            "the {LAUNCHER_CONFIG} ConfigMap {what}, so its runs write to KFP's default minio://mlpipeline/v2/artifacts, not to the tenant's grant ({grant})"
        ));
    };
    let outside =
        |why: &str| Err(format!("its runs write to {root} ({LAUNCHER_CONFIG}'s defaultPipelineRoot), {why} the tenant's grant ({grant})"));
    let Some((root_bucket, key)) = root.strip_prefix("s3://").map(|rest| rest.split_once('/').unwrap_or((rest, ""))) else {
        return outside("another store than");
    };
    if root_bucket != bucket {
        return outside("another bucket than");
    }
    let key = key.trim_end_matches('/');
    match access {
        S3Access::Prefix { prefix } if !format!("{key}/").starts_with(prefix.as_str()) => outside("outside"),
        _ => Ok(key.to_owned()),
    }
}
