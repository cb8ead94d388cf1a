//! An EKS Pod Identity association of one service account: created (or
//! adopted when a cut-off run made it with kfp-tenant's tags), repointed,
//! recreated to adopt another's (EKS's update cannot tag), deleted.

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Resource, RoadChange, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::{Action, ResourceChange};
use crate::ports::{ErrorKind, PodIdentityApi, PodIdentityAssociation, ProviderError};
use crate::refresh::{Observed, ReadSet};
use crate::tags;
use std::collections::BTreeMap;

#[async_trait]
impl Resource for PodIdentityAssociation {
    /// The role it hands out, and the Profile whose namespace holds its service account.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::IamRole), Address::tenant(ns, Kind::Profile)]
    }

    /// It waits for its Profile only when the Profile is created (its
    /// namespace is made then); otherwise it is a grant that the Profile's
    /// change may have to wait for.
    fn waits_for_dependency(action: Action, dependency: &Address, theirs: Action) -> bool {
        action == Action::Delete || dependency.kind() != Some(Kind::Profile) || matches!(theirs, Action::Create | Action::Replace)
    }

    /// Made or repointed, it grants; deleted, it revokes.
    fn road_change(action: Action, _before: Option<&Self>, _after: Option<&Self>) -> Option<RoadChange> {
        match action {
            Action::Create | Action::Update | Action::Replace => Some(RoadChange::Grant),
            Action::Delete => Some(RoadChange::Revoke),
            Action::NoOp => None,
        }
    }

    fn label(&self) -> (&'static str, String) {
        ("eks_pod_identity_association", format!("{}/{}", self.namespace, self.service_account))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("namespace", text(&self.namespace)),
            ("service_account", text(&self.service_account)),
            ("role_arn", Attr::Json(json!(self.role_arn))),
            ("tags", Attr::Json(json!(self.tags))),
        ];
        if !self.id.is_empty() {
            v.insert(0, ("association_id", text(&self.id)));
        }
        v
    }

    fn add_reads(&self, _change: &ResourceChange, reads: &mut ReadSet) {
        reads.pod_identity = true;
        reads.namespaces.insert(self.namespace.clone());
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.associations.get(&(self.namespace.clone(), self.service_account.clone())).cloned()
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let (pods, cluster) = (cx.providers.pod_identity, cx.plan.cluster.name.as_str());
        match (cx.change.action, before, after) {
            (Action::Create, _, Some(want)) => create_association(pods, cluster, want).await,
            (Action::Update, Some(live), Some(want)) => {
                pods.update_pod_identity_association(cluster, &live.id, want.role_arn.as_deref().unwrap_or_default()).await
            }
            (Action::Replace, Some(live), Some(want)) => {
                ignore_missing(pods.delete_pod_identity_association(cluster, &live.id).await)?;
                create_association(pods, cluster, want).await
            }
            (Action::Delete, Some(live), _) => ignore_missing(pods.delete_pod_identity_association(cluster, &live.id).await),
            _ => Err(malformed(cx.change)),
        }
    }
}

/// The tags kfp-tenant puts on a Pod Identity association it creates: its
/// ownership markers, as on its roles.
pub fn association_tags(cluster: &str, namespace: &str) -> BTreeMap<String, String> {
    tags::role_tags(&BTreeMap::new(), cluster, namespace)
}

/// Creates an association. EKS refuses a second one for the same service
/// account; if the one found carries kfp-tenant's markers for this cluster
/// (made by a run cut off before its answer came back), it is adopted and
/// pointed at the role, else the refusal stands with the fix.
async fn create_association(pods: &dyn PodIdentityApi, cluster: &str, want: &PodIdentityAssociation) -> Result<(), ProviderError> {
    let error = match pods.create_pod_identity_association(cluster, want).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind == ErrorKind::AlreadyExists => e,
        Err(e) => return Err(e),
    };
    let listed = pods.list_pod_identity_associations(cluster).await?;
    let Some(found) = listed.iter().find(|a| a.namespace == want.namespace && a.service_account == want.service_account) else {
        return Err(error);
    };
    let Some(found) = pods.describe_pod_identity_association(cluster, &found.id).await? else {
        return Err(error);
    };
    if !tags::is_managed_role(&found.tags, cluster) {
        return Err(ProviderError::new(
            ErrorKind::AlreadyExists,
            "CreatePodIdentityAssociation",
            format!("{}/{}", want.namespace, want.service_account),
            format!(
                "service account {}/{} got EKS Pod Identity association {} from someone else since the plan was made; run plan again (it names the fix)",
                want.namespace, want.service_account, found.id
            ),
        ));
    }
    match want.role_arn.as_deref() {
        Some(role) if found.role_arn.as_deref() != Some(role) => pods.update_pod_identity_association(cluster, &found.id, role).await,
        _ => Ok(()),
    }
}
