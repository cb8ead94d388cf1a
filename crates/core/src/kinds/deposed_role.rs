//! A role kfp-tenant made for a tenant under an earlier name or path: it
//! goes last in its tenant, with every policy it carries.

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Resource, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::{Action, DeposedRole, ResourceChange};
use crate::ports::{InlinePolicy, ProviderError};
use crate::refresh::{Observed, ReadSet};

#[async_trait]
impl Resource for DeposedRole {
    /// The Profile that stops naming it.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::Profile)]
    }

    /// Last in its tenant, after a retired trust statement: nothing points
    /// at it any more.
    const PLACE: u8 = 2;

    fn label(&self) -> (&'static str, String) {
        ("iam_role", self.role.name.clone())
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = self.role.attributes();
        if let Some(p) = &self.policy {
            v.push(("inline_policy", text(&p.policy_name)));
            v.push(("inline_policy_document", Attr::Document(p.document.clone())));
        }
        for p in &self.other_policies {
            v.push(("other_inline_policy", text(&p.policy_name)));
            v.push(("other_inline_policy_document", Attr::Document(p.document.clone())));
        }
        if !self.attached_policies.is_empty() {
            v.push(("attached_policies", Attr::Json(json!(self.attached_policies))));
        }
        v
    }

    /// kfp-tenant's roles are listed, always.
    fn add_reads(&self, _change: &ResourceChange, _reads: &mut ReadSet) {}

    fn current(&self, observed: &Observed) -> Option<Self> {
        let role = observed.roles.get(&self.role.name)?;
        let policy = self.policy.as_ref().and_then(|p| {
            let document = observed.policies.get(&(p.role_name.clone(), p.policy_name.clone()))?;
            Some(InlinePolicy { role_name: p.role_name.clone(), policy_name: p.policy_name.clone(), document: document.clone() })
        });
        let (other_policies, attached_policies) =
            observed.role_permissions(&role.name, self.policy.as_ref().map(|p| p.policy_name.as_str()));
        Some(DeposedRole { role: role.clone(), policy, other_policies, attached_policies })
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, _after: Option<&Self>) -> Result<(), ProviderError> {
        let iam = cx.providers.iam;
        match (cx.change.action, before) {
            (Action::Delete, Some(deposed)) => {
                for policy in deposed.policy.iter().chain(&deposed.other_policies) {
                    ignore_missing(iam.delete_role_policy(&policy.role_name, &policy.policy_name).await)?;
                }
                for arn in &deposed.attached_policies {
                    ignore_missing(iam.detach_role_policy(&deposed.role.name, arn).await)?;
                }
                ignore_missing(iam.delete_role(&deposed.role.name).await)
            }
            _ => Err(malformed(cx.change)),
        }
    }
}
