//! The statement of a road a tenant leaves, in its role's trust policy:
//! deleting it writes the trust policy the plan fixed without it.

use async_trait::async_trait;

use super::{Attr, Cx, Resource, ignore_missing, malformed, text};
use crate::address::{Address, Kind};
use crate::plan::{Action, ResourceChange, TrustStatement};
use crate::ports::ProviderError;
use crate::refresh::{Observed, ReadSet};
use crate::spec::policy_name;

#[async_trait]
impl Resource for TrustStatement {
    /// The role whose trust policy holds it.
    fn dependencies(address: &Address) -> Vec<Address> {
        let ns = address.namespace().unwrap_or_default();
        vec![Address::tenant(ns, Kind::IamRole)]
    }

    /// After every other change of its tenant: the Profile, the service
    /// accounts and the associations stop using its road first.
    const PLACE: u8 = 1;

    fn label(&self) -> (&'static str, String) {
        ("iam_role_trust_statement", format!("{}/{}", self.role_name, self.road.as_str()))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        vec![("role", text(&self.role_name)), ("road", text(self.road.as_str())), ("statement", Attr::Document(self.statement.clone()))]
    }

    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        let ns = change.address.namespace().unwrap_or_default();
        reads.roles.insert((self.role_name.clone(), policy_name(ns)));
    }

    /// No state of its own: the role's change carries its trust policy's fingerprint.
    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.roles.get(&self.role_name).map(|_| self.clone())
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, _after: Option<&Self>) -> Result<(), ProviderError> {
        match (cx.change.action, before) {
            (Action::Delete, Some(retired)) => {
                ignore_missing(cx.providers.iam.update_trust_policy(&retired.role_name, &retired.remaining).await)
            }
            _ => Err(malformed(cx.change)),
        }
    }
}
