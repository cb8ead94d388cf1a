//! A service account granted a tenant's role: kfp-tenant's own (labelled,
//! made if missing), an adopted one given back, or another's
//! (`default-editor`), of which only the role annotation is written.

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Resource, RoadChange, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::{Action, ResourceChange};
use crate::ports::{ProviderError, ServiceAccount};
use crate::refresh::{Observed, ReadSet};
use crate::tags;

#[async_trait]
impl Resource for ServiceAccount {
    /// The role its annotation names, and the Profile whose namespace holds it.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::IamRole), Address::tenant(ns, Kind::Profile)]
    }

    /// Gaining the role annotation grants, losing it revokes.
    fn road_change(action: Action, before: Option<&Self>, after: Option<&Self>) -> Option<RoadChange> {
        let irsa = |sa: Option<&Self>| sa.is_some_and(|sa| sa.role_arn.is_some());
        match action {
            Action::Create | Action::Update => RoadChange::between(irsa(before), irsa(after)),
            _ => None,
        }
    }

    fn label(&self) -> (&'static str, String) {
        ("service_account", format!("{}/{}", self.namespace, self.name))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("namespace", text(&self.namespace)),
            ("name", text(&self.name)),
            ("role_arn_annotation", Attr::Json(json!(self.role_arn))),
            ("managed_label", Attr::Json(json!(self.managed))),
        ];
        if let Some(c) = &self.cluster {
            v.push(("cluster_label", text(c)));
        }
        v
    }

    fn add_reads(&self, _change: &ResourceChange, reads: &mut ReadSet) {
        reads.service_accounts.insert((self.namespace.clone(), self.name.clone()));
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.service_accounts.get(&(self.namespace.clone(), self.name.clone())).cloned()
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let kube = cx.providers.kube;
        match (cx.change.action, before, after) {
            // kfp-tenant's own service accounts: labels and annotation, made if missing.
            (Action::Create | Action::Update, _, Some(want)) if want.managed => kube.apply_service_account(want, cx.remaining()).await,
            // An adopted account the tenant no longer names: given back.
            (Action::Update, Some(live), Some(want)) if live.managed => kube.release_service_account(&want.namespace, &want.name).await,
            // Another's account (default-editor): only the role annotation, set or removed.
            (Action::Create | Action::Update, _, Some(want)) => {
                kube.annotate_service_account(&want.namespace, &want.name, want.role_arn.as_deref()).await
            }
            (Action::Delete, Some(live), _) => ignore_missing(kube.delete_service_account(&live.namespace, &live.name).await),
            _ => Err(malformed(cx.change)),
        }
    }
}

/// A service account kfp-tenant annotates itself (`role_arn` is `None` for a
/// Pod Identity tenant: labelled, not annotated); `created` is kept from the
/// live one (it records history, not a wish).
pub fn desired_service_account(
    namespace: &str,
    name: &str,
    role_arn: Option<&str>,
    cluster: &str,
    live: Option<&ServiceAccount>,
) -> ServiceAccount {
    ServiceAccount {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        role_arn: role_arn.map(str::to_owned),
        managed: true,
        cluster: Some(tags::cluster_label(cluster)),
        created: live.is_none_or(|sa| sa.created),
    }
}

/// The attributes of a service account that differ, by name.
pub fn service_account_drift(live: &ServiceAccount, want: &ServiceAccount) -> Vec<String> {
    let mut drift = Vec::new();
    if live.role_arn != want.role_arn {
        drift.push("role_arn");
    }
    if live.managed != want.managed || live.cluster != want.cluster {
        drift.push("labels");
    }
    drift.into_iter().map(str::to_owned).collect()
}
