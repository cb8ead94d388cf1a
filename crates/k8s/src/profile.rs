//! The Kubeflow Profile as kube sees it (a typed custom resource), the
//! translation to and from core's [`Profile`], and the calls: one listing
//! for all tenants, a server-side apply of the whole spec (a merge patch
//! removing what other managers added), and a deletion (whose wait, like
//! the readiness wait, is `readiness`').

use std::collections::BTreeMap;
use std::time::Duration;

use kfp_tenant_core::ports::{Profile, ProfilePlugin, ProviderResult};
use kfp_tenant_core::spec::ResourceQuota;
use kfp_tenant_core::tags;
use kube::CustomResource;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{FIELD_MANAGER, Kube, provider_error};

/// `spec` of a Kubeflow Profile.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(group = "kubeflow.org", version = "v1", kind = "Profile", root = "KubeflowProfile", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    pub owner: Owner,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
    /// A core/v1 ResourceQuotaSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota_spec: Option<Value>,
}

/// An rbac Subject; Kubeflow uses `kind: User`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    pub kind: String,
    #[serde(default)]
    pub spec: Value,
}

fn label(labels: Option<&BTreeMap<String, String>>, key: &str) -> Option<String> {
    labels.and_then(|l| l.get(key)).cloned()
}

/// kfp-tenant's labels on an object it writes for `cluster` (a label value).
pub fn labels(cluster: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(tags::PROFILE_LABEL.to_owned(), tags::MANAGER.to_owned())]);
    if let Some(cluster) = cluster {
        labels.insert(tags::CLUSTER.to_owned(), cluster.to_owned());
    }
    labels
}

/// Whether an object carries `managed-by=kfp-tenant`, and the cluster label.
pub fn marks(labels: Option<&BTreeMap<String, String>>) -> (bool, Option<String>) {
    (label(labels, tags::PROFILE_LABEL).as_deref() == Some(tags::MANAGER), label(labels, tags::CLUSTER))
}

/// The domain's Profile from the custom resource.
pub fn from_resource(p: &KubeflowProfile) -> Profile {
    let name = p.metadata.name.clone().unwrap_or_default();
    let (managed, cluster) = marks(p.metadata.labels.as_ref());
    // `{}` and `{hard: {}}` mean no quota, as does leaving it out.
    let resource_quota =
        p.spec.resource_quota_spec.as_ref().and_then(|q| q.get("hard")).and_then(Value::as_object).filter(|h| !h.is_empty()).map(|hard| {
            ResourceQuota {
                hard: hard.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))).collect(),
            }
        });
    Profile {
        name,
        owner: p.spec.owner.name.clone(),
        plugins: p.spec.plugins.iter().map(|pl| ProfilePlugin { kind: pl.kind.clone(), spec: pl.spec.clone() }).collect(),
        resource_quota,
        managed,
        cluster,
    }
}

/// The custom resource kfp-tenant applies for a Profile.
pub fn to_resource(p: &Profile) -> KubeflowProfile {
    let mut resource = KubeflowProfile::new(
        &p.name,
        ProfileSpec {
            owner: Owner { kind: "User".to_owned(), name: p.owner.clone(), api_group: Some("rbac.authorization.k8s.io".to_owned()) },
            plugins: p.plugins.iter().map(|pl| Plugin { kind: pl.kind.clone(), spec: pl.spec.clone() }).collect(),
            resource_quota_spec: p.resource_quota.as_ref().map(|q| serde_json::json!({"hard": q.hard})),
        },
    );
    resource.metadata.labels = Some(labels(p.cluster.as_deref()));
    resource
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`.
pub fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = serde_json::Map::new();
            for (k, old) in a {
                match b.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        patch.insert(k.clone(), merge_diff(old, new));
                    }
                    Some(_) => {}
                }
            }
            for (k, new) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                patch.insert(k.clone(), new.clone());
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}

impl Kube {
    pub(crate) async fn list_profiles_impl(&self) -> ProviderResult<Vec<Profile>> {
        let mut profiles = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = self.profiles().list(&params).await.map_err(|e| provider_error("ListProfiles", "profiles.kubeflow.org", e))?;
            profiles.extend(page.items.iter().map(from_resource));
            let token: Option<String> = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            match token {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(profiles),
            }
        }
    }

    /// Server-side apply, forced. An apply leaves alone the fields that other
    /// managers set (a `resourceQuotaSpec` added with kubectl edit, say), and
    /// kfp-tenant owns the whole spec: when the applied spec still differs
    /// from the desired one, a merge patch removes exactly the difference.
    pub(crate) async fn apply_profile_impl(&self, profile: &Profile) -> ProviderResult<()> {
        let target = format!("profile {}", profile.name);
        let desired = to_resource(profile);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = self
            .profiles()
            .patch(&profile.name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| provider_error("ApplyProfile", &target, e))?;
        if applied.spec == desired.spec {
            return Ok(());
        }
        let to_json = |spec: &ProfileSpec| serde_json::to_value(spec).unwrap_or(Value::Null);
        let patch = json!({"spec": merge_diff(&to_json(&applied.spec), &to_json(&desired.spec))});
        self.profiles()
            .patch(
                &profile.name,
                &PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..Default::default() },
                &Patch::Merge(&patch),
            )
            .await
            .map(drop)
            .map_err(|e| provider_error("ApplyProfile", &target, e))
    }

    pub(crate) async fn delete_profile_impl(&self, name: &str, timeout: Duration) -> ProviderResult<()> {
        let target = format!("profile {name}");
        self.profiles().delete(name, &DeleteParams::foreground()).await.map_err(|e| provider_error("DeleteProfile", &target, e))?;
        self.wait_deleted(name, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_removes_what_is_not_wanted() {
        let from = serde_json::json!({"owner": {"name": "a"}, "resourceQuotaSpec": {"hard": {"cpu": "64", "memory": "1Gi"}}, "x": 1});
        let to = serde_json::json!({"owner": {"name": "a"}, "resourceQuotaSpec": {"hard": {"cpu": "8"}}});
        let patch = merge_diff(&from, &to);
        assert_eq!(patch, serde_json::json!({"resourceQuotaSpec": {"hard": {"cpu": "8", "memory": null}}, "x": null}));
    }

    #[test]
    fn resource_round_trips_and_empty_quota_is_none() {
        let profile = Profile {
            name: "team-a".into(),
            owner: "alice@example.com".into(),
            plugins: vec![ProfilePlugin::aws_iam("arn:aws:iam::123456789012:role/r")],
            resource_quota: Some(ResourceQuota { hard: [("cpu".into(), "8".into())].into() }),
            managed: true,
            cluster: Some("demo".into()),
        };
        let resource = to_resource(&profile);
        let json = serde_json::to_value(&resource).unwrap();
        assert_eq!(json["apiVersion"], "kubeflow.org/v1");
        assert_eq!(json["kind"], "Profile");
        assert_eq!(json["metadata"]["labels"]["kfp-tenant/cluster"], "demo");
        assert_eq!(json["spec"]["owner"]["kind"], "User");
        assert_eq!(json["spec"]["plugins"][0]["spec"]["annotateOnly"], true);
        assert_eq!(from_resource(&resource), profile);

        let mut bare = resource;
        bare.spec.resource_quota_spec = Some(serde_json::json!({}));
        bare.metadata.labels = None;
        let back = from_resource(&bare);
        assert_eq!((back.resource_quota, back.managed, back.cluster), (None, false, None));
    }
}
