//! An IAM role of a tenant: its trust policy, description, session,
//! boundary and tags. Replacing it (a new path) removes the old role's
//! policies first, as IAM requires.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Resource, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::ClusterContext;
use crate::plan::{Action, ResourceChange, State};
use crate::policy::{self, PolicyDocument};
use crate::ports::{IamApi, ProviderError, Role};
use crate::refresh::{Observed, ReadSet};
use crate::spec::policy_name;
use crate::spec::{DEFAULT_MAX_SESSION_DURATION, Road, Source, Tenant};
use crate::tags;

#[async_trait]
impl Resource for Role {
    /// Its trust policy.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::TrustPolicy)]
    }

    fn label(&self) -> (&'static str, String) {
        ("iam_role", self.name.clone())
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("arn", text(&self.arn)),
            ("path", text(&self.path)),
            ("trust_policy", Attr::Document(self.trust_policy.clone())),
            ("max_session_duration", Attr::Json(json!(self.max_session_duration))),
            ("tags", Attr::Json(json!(self.tags))),
        ];
        if let Some(d) = &self.description {
            v.insert(2, ("description", text(d)));
        }
        if let Some(b) = &self.permissions_boundary {
            v.push(("permissions_boundary", text(b)));
        }
        v
    }

    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        let ns = change.address.namespace().unwrap_or_default();
        reads.roles.insert((self.name.clone(), policy_name(ns)));
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.roles.get(&self.name).cloned()
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let iam = cx.providers.iam;
        match (cx.change.action, before, after) {
            (Action::Create, _, Some(want)) => iam.create_role(want).await.map(drop),
            (Action::Update, Some(live), Some(want)) => update_role(iam, live, want).await,
            (Action::Replace, Some(live), Some(want)) => {
                // The old role's policies go with it (the plan shows each; their
                // own changes put back what the file asks for).
                let ns = cx.change.address.namespace().unwrap_or_default();
                for old in cx.plan.changes.iter().filter(|c| c.address.namespace() == Some(ns)) {
                    match old.before.as_ref() {
                        Some(State::S3Policy(policy) | State::InlinePolicy(policy)) => {
                            ignore_missing(iam.delete_role_policy(&live.name, &policy.policy_name).await)?;
                        }
                        Some(State::PolicyAttachment(a)) => ignore_missing(iam.detach_role_policy(&live.name, &a.policy_arn).await)?,
                        _ => {}
                    }
                }
                ignore_missing(iam.delete_role(&live.name).await)?;
                iam.create_role(want).await.map(drop)
            }
            (Action::Delete, Some(live), _) => ignore_missing(iam.delete_role(&live.name).await),
            _ => Err(malformed(cx.change)),
        }
    }
}

/// The role as kfp-tenant creates it for `tenant`, trusting the tenant's road alone.
pub fn desired_role(tenant: &Tenant, cluster: &ClusterContext) -> Role {
    let mut tags = tags::role_tags(&tenant.tags, &cluster.name, &tenant.namespace);
    if let Source::KubeflowTenant { .. } = tenant.source {
        tags.insert(tags::KUBEFLOW_TENANT.to_owned(), tenant.namespace.clone());
    }
    Role {
        name: tenant.role_name.clone(),
        path: tenant.role_path.clone(),
        arn: format!("arn:{}:iam::{}:role{}{}", cluster.partition, cluster.account_id, tenant.role_path, tenant.role_name),
        trust_policy: road_trust(tenant.road, tenant, cluster),
        description: Some(tags::role_description(&tenant.namespace, &cluster.name)),
        tags,
        max_session_duration: tenant.max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_DURATION),
        permissions_boundary: tenant.permissions_boundary.clone(),
    }
}

/// The trust policy by which `road` reaches the tenant's role: IRSA's
/// federated statement for the cluster's OIDC issuer, or Pod Identity's
/// service principal narrowed to the cluster, namespace and accounts.
pub fn road_trust(road: Road, tenant: &Tenant, cluster: &ClusterContext) -> PolicyDocument {
    match road {
        Road::Irsa => {
            let issuer_host = cluster.oidc_issuer.strip_prefix("https://").unwrap_or(&cluster.oidc_issuer);
            policy::trust_policy(&cluster.partition, &cluster.account_id, issuer_host, &tenant.namespace, &tenant.service_accounts)
        }
        Road::PodIdentity => policy::pod_identity_trust(&cluster.account_id, &cluster.arn, &tenant.namespace, &tenant.service_accounts),
    }
}

/// Both roads' statements in one trust policy: what a role trusts while its
/// tenant moves from one to the other.
pub fn bridge_trust(first: &PolicyDocument, second: &PolicyDocument) -> PolicyDocument {
    let mut all = first.written_statements();
    all.extend(second.written_statements());
    PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": all}))
}

/// The attributes of a role that differ, by name. The ARN is IAM's to assign.
pub fn role_drift(live: &Role, want: &Role) -> Vec<String> {
    let mut drift = Vec::new();
    if live.trust_policy != want.trust_policy {
        drift.push("trust_policy");
    }
    if live.description != want.description {
        drift.push("description");
    }
    if live.max_session_duration != want.max_session_duration {
        drift.push("max_session_duration");
    }
    if live.permissions_boundary != want.permissions_boundary {
        drift.push("permissions_boundary");
    }
    if live.tags != want.tags {
        drift.push("tags");
    }
    drift.into_iter().map(str::to_owned).collect()
}

/// The IAM calls that turn `live` into `want`: one per attribute that
/// [`role_drift`] finds different.
async fn update_role(iam: &dyn IamApi, live: &Role, want: &Role) -> Result<(), ProviderError> {
    let name = &want.name;
    let drift = role_drift(live, want);
    let differs = |attribute: &str| drift.iter().any(|d| d == attribute);
    if differs("trust_policy") {
        iam.update_trust_policy(name, &want.trust_policy).await?;
    }
    if differs("description") || differs("max_session_duration") {
        iam.update_role(name, want.description.as_deref(), want.max_session_duration).await?;
    }
    if differs("permissions_boundary") {
        iam.set_permissions_boundary(name, want.permissions_boundary.as_deref()).await?;
    }
    if differs("tags") {
        let stale: Vec<String> = live.tags.keys().filter(|k| !want.tags.contains_key(*k)).cloned().collect();
        if !stale.is_empty() {
            iam.untag_role(name, &stale).await?;
        }
        let changed: BTreeMap<String, String> =
            want.tags.iter().filter(|(k, v)| live.tags.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !changed.is_empty() {
            iam.tag_role(name, &changed).await?;
        }
    }
    Ok(())
}
