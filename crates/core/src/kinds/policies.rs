//! A role's permissions besides its trust: inline policies (the tenant's S3
//! policy, and any other, which only goes) and managed-policy attachments.

use async_trait::async_trait;

use super::{Attr, Cx, Resource, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::ClusterContext;
use crate::plan::{Action, PolicyAttachment, ResourceChange};
use crate::policy;
use crate::ports::{InlinePolicy, ProviderError};
use crate::refresh::{Observed, ReadSet};
use crate::spec::Tenant;
use crate::spec::policy_name;

#[async_trait]
impl Resource for InlinePolicy {
    /// The role it is on.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::IamRole)]
    }

    fn label(&self) -> (&'static str, String) {
        ("iam_role_policy", format!("{}/{}", self.role_name, self.policy_name))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        vec![("role", text(&self.role_name)), ("name", text(&self.policy_name)), ("document", Attr::Document(self.document.clone()))]
    }

    /// The role's read lists every inline policy it has.
    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        let ns = change.address.namespace().unwrap_or_default();
        reads.roles.insert((self.role_name.clone(), policy_name(ns)));
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        let document = observed.policies.get(&(self.role_name.clone(), self.policy_name.clone()))?;
        Some(InlinePolicy { document: document.clone(), ..self.clone() })
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let iam = cx.providers.iam;
        match (cx.change.action, before, after) {
            (Action::Create | Action::Update, _, Some(want)) => {
                iam.put_role_policy(&want.role_name, &want.policy_name, &want.document).await
            }
            (Action::Delete, Some(live), _) => ignore_missing(iam.delete_role_policy(&live.role_name, &live.policy_name).await),
            _ => Err(malformed(cx.change)),
        }
    }
}

pub fn desired_s3_policy(tenant: &Tenant, cluster: &ClusterContext) -> InlinePolicy {
    InlinePolicy {
        role_name: tenant.role_name.clone(),
        policy_name: tenant.policy_name.clone(),
        document: policy::s3_policy(&cluster.partition, &cluster.bucket, &tenant.s3_access),
    }
}

#[async_trait]
impl Resource for PolicyAttachment {
    /// The role it is attached to.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::IamRole)]
    }

    fn label(&self) -> (&'static str, String) {
        ("iam_role_policy_attachment", format!("{}/{}", self.role_name, self.policy_arn))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        vec![("role", text(&self.role_name)), ("policy_arn", text(&self.policy_arn))]
    }

    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        let ns = change.address.namespace().unwrap_or_default();
        reads.roles.insert((self.role_name.clone(), policy_name(ns)));
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.attachments.get(&self.role_name).is_some_and(|arns| arns.contains(&self.policy_arn)).then(|| self.clone())
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let iam = cx.providers.iam;
        match (cx.change.action, before, after) {
            (Action::Create, _, Some(want)) => iam.attach_role_policy(&want.role_name, &want.policy_arn).await,
            (Action::Delete, Some(live), _) => ignore_missing(iam.detach_role_policy(&live.role_name, &live.policy_arn).await),
            _ => Err(malformed(cx.change)),
        }
    }
}
