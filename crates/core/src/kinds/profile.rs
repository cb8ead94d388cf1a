//! A Kubeflow Profile: written whole with server-side apply; deleting one
//! waits for its controller's finalizer and for its namespace to go.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Attr, Cx, Resource, ignore_missing, malformed, text};
use crate::plan::{Action, ResourceChange, State};
use crate::ports::{Profile, ProviderError};
use crate::refresh::{Observed, ReadSet};

#[async_trait]
impl Resource for Profile {
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
