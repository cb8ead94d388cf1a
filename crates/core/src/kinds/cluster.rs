//! The cluster-level resources a plan may create: the account's IAM OIDC
//! provider for the cluster's issuer (`--create-oidc-provider`) and
//! kfp-tenant's identity record in the cluster. Neither is ever deleted.

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Resource, malformed, text};
use crate::address::Address;
use crate::plan::{Action, ResourceChange};
use crate::ports::{ClusterRecord, ErrorKind, OidcProvider, ProviderError};
use crate::refresh::{Observed, ReadSet};

#[async_trait]
impl Resource for OidcProvider {
    fn dependencies(_address: &Address) -> Vec<Address> {
        vec![Address::ClusterOidc]
    }

    fn label(&self) -> (&'static str, String) {
        ("iam_openid_connect_provider", self.issuer_url.trim_start_matches("https://").to_owned())
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        vec![("url", text(&self.issuer_url)), ("arn", text(&self.arn)), ("client_ids", Attr::Json(json!(["sts.amazonaws.com"])))]
    }

    /// Read with the cluster, always.
    fn add_reads(&self, _change: &ResourceChange, _reads: &mut ReadSet) {}

    fn current(&self, observed: &Observed) -> Option<Self> {
        let arn = observed.cluster.oidc.provider_arn.clone()?;
        Some(OidcProvider { issuer_url: self.issuer_url.clone(), arn })
    }

    async fn execute(cx: &Cx<'_>, _before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        match (cx.change.action, after) {
            (Action::Create, Some(want)) => match cx.providers.cluster.create_oidc_provider(&want.issuer_url).await {
                Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
                other => other.map(drop),
            },
            _ => Err(malformed(cx.change)),
        }
    }
}

#[async_trait]
impl Resource for ClusterRecord {
    fn dependencies(_address: &Address) -> Vec<Address> {
        Vec::new()
    }

    fn label(&self) -> (&'static str, String) {
        ("config_map", "kube-system/kfp-tenant-cluster".to_owned())
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        vec![("cluster_arn", text(&self.cluster_arn))]
    }

    /// Read with the cluster, always.
    fn add_reads(&self, _change: &ResourceChange, _reads: &mut ReadSet) {}

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed.record.clone()
    }

    async fn execute(cx: &Cx<'_>, _before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        match (cx.change.action, after) {
            (Action::Create, Some(record)) => cx.providers.kube.write_cluster_record(record).await,
            _ => Err(malformed(cx.change)),
        }
    }
}
