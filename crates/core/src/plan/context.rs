//! The cluster-level facts a plan is made from (its data sources), and what
//! it needs of the account's IAM OIDC provider: shared by the planner, a
//! saved plan's freshness check, verify and audit.

use crate::address::Address;
use crate::plan::{ClusterContext, PlanProblem};
use crate::refresh::Observed;

/// What a plan needs of the account's IAM OIDC provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderNeed {
    /// Roles trust it: it must exist.
    Require,
    /// It must exist, or be created first (`--create-oidc-provider`).
    CreateIfMissing,
    /// Deleting tenants does not need it, so a missing provider never keeps
    /// kfp-tenant from removing what it made.
    NotNeeded,
}

/// The cluster-level facts, and whether the provider is to be created.
pub fn context(
    name: &str,
    region: &str,
    bucket: &str,
    observed: &Observed,
    need: ProviderNeed,
) -> Result<(ClusterContext, bool), PlanProblem> {
    let oidc = &observed.cluster.oidc;
    let host = oidc.issuer_host();
    let (provider_arn, create) = match (&oidc.provider_arn, need) {
        (Some(arn), _) => (arn.clone(), false),
        (None, ProviderNeed::NotNeeded) => (String::new(), false),
        (None, ProviderNeed::CreateIfMissing) => {
            (format!("arn:{}:iam::{}:oidc-provider/{host}", observed.identity.partition, observed.identity.account_id), true)
        }
        (None, ProviderNeed::Require) => {
            return Err(PlanProblem {
                address: Some(Address::ClusterOidc),
                message: format!(
                    "the account {} has no IAM OIDC provider for the cluster's issuer {}, so no pod could assume a tenant role",
                    observed.identity.account_id, oidc.issuer_url
                ),
                fix: format!(
                    "create it with `eksctl utils associate-iam-oidc-provider --cluster {name} --region {region} --approve`, or let kfp-tenant create it with --create-oidc-provider"
                ),
                refusal: super::Refusal::State,
                adoptable: false,
            });
        }
    };
    let cluster = ClusterContext {
        name: name.to_owned(),
        arn: observed.cluster.arn.clone(),
        region: region.to_owned(),
        bucket: bucket.to_owned(),
        account_id: observed.identity.account_id.clone(),
        partition: observed.identity.partition.clone(),
        oidc_issuer: oidc.issuer_url.clone(),
        oidc_provider_arn: provider_arn,
    };
    Ok((cluster, create))
}
