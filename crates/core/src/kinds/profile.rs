//! A Kubeflow Profile: written whole with server-side apply; deleting one
//! waits for its controller's finalizer and for its namespace to go.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Attr, Cx, Resource, RoadChange, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::{Action, ResourceChange, State};
use crate::ports::ProfilePlugin;
use crate::ports::{Profile, ProviderError};
use crate::refresh::{Observed, ReadSet};
use crate::spec::{Road, Tenant};
use crate::tags;

#[async_trait]
impl Resource for Profile {
    /// The role whose ARN its plugin names.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::IamRole)]
    }

    /// Gaining IRSA's plugin grants, losing it revokes; a replacement
    /// recreates the namespace (and its pods) and is neither.
    fn road_change(action: Action, before: Option<&Self>, after: Option<&Self>) -> Option<RoadChange> {
        let irsa = |p: Option<&Self>| p.is_some_and(|p| p.role_arn().is_some());
        match action {
            Action::Create | Action::Update => RoadChange::between(irsa(before), irsa(after)),
            _ => None,
        }
    }

    /// Its owner's Cognito user: the owner signs in before the namespace is theirs.
    fn waits_for(&self) -> Option<Address> {
        Some(owner_user(&self.owner))
    }

    fn label(&self) -> (&'static str, String) {
        ("profile", self.name.clone())
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("owner", text(&self.owner)),
            ("plugins", Attr::Json(serde_json::to_value(&self.plugins).unwrap_or(Value::Null))),
            ("managed_label", Attr::Json(json!(self.managed))),
        ];
        if let Some(c) = &self.cluster {
            v.push(("cluster_label", text(c)));
        }
        if let Some(q) = &self.resource_quota {
            v.push(("resource_quota", Attr::Json(serde_json::to_value(q).unwrap_or(Value::Null))));
        }
        v
    }

    /// Its namespace too, when the owner changes (the annotation decides).
    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        reads.namespaces.insert(self.name.clone());
        if let Some(State::Profile(want)) = &change.after {
            reads.owners.insert(want.name.clone(), want.owner.clone());
        }
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.profiles.get(&self.name).cloned()
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let kube = cx.providers.kube;
        match (cx.change.action, before, after) {
            (Action::Create | Action::Update, _, Some(want)) => kube.apply_profile(want).await,
            (Action::Replace, Some(live), Some(want)) => {
                ignore_missing(kube.delete_profile(&live.name, cx.remaining()).await)?;
                kube.apply_profile(want).await
            }
            (Action::Delete, Some(live), _) => ignore_missing(kube.delete_profile(&live.name, cx.remaining()).await),
            _ => Err(malformed(cx.change)),
        }
    }
}

pub fn desired_profile(tenant: &Tenant, role_arn: &str, cluster: &str) -> Profile {
    Profile {
        name: tenant.namespace.clone(),
        owner: tenant.owner.clone(),
        // A Pod Identity tenant's Profile has no plugin: its binding is an EKS
        // association, and an IRSA annotation would win over it.
        plugins: match tenant.road {
            Road::Irsa => vec![ProfilePlugin::aws_iam(role_arn)],
            Road::PodIdentity => Vec::new(),
        },
        resource_quota: tenant.resource_quota.clone(),
        managed: true,
        cluster: Some(tags::cluster_label(cluster)),
    }
}

/// The attributes of a Profile that differ, by name.
pub fn profile_drift(live: &Profile, want: &Profile) -> Vec<String> {
    let mut drift = Vec::new();
    if live.owner != want.owner {
        drift.push("owner");
    }
    if live.plugins != want.plugins {
        drift.push("plugins");
    }
    if live.resource_quota != want.resource_quota {
        drift.push("resource_quota");
    }
    if live.managed != want.managed || live.cluster != want.cluster {
        drift.push("labels");
    }
    drift.into_iter().map(str::to_owned).collect()
}

/// The Cognito user of a Profile's owner: what a Profile waits for when the
/// plan (or the file's graph) has it.
pub(crate) fn owner_user(owner: &str) -> Address {
    Address::CognitoUser { email: owner.to_owned() }
}
