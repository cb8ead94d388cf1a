//! Reading live state through the ports: the only place planning touches IO.
//!
//! A [`ReadSet`] says what to read: derived from a [`Desired`] for a new plan,
//! or from a saved [`Plan`] to check that it is still fresh. [`refresh`] reads
//! the cluster-level facts once, every Profile with one list call, and per
//! tenant one GetRole and (when the role exists) one GetRolePolicy.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::policy::PolicyDocument;
use crate::ports::{CallerIdentity, ClusterApi, ClusterOidc, IamApi, Profile, ProfileApi, ProviderError, Role, ServiceAccount};
use crate::spec::{Desired, policy_name};
use crate::tags;

/// What one refresh reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    pub cluster: String,
    /// (role name, inline policy name) per tenant.
    pub roles: BTreeSet<(String, String)>,
    /// Namespaces whose Profile matters; a missing one makes refresh ask
    /// whether the namespace exists without it.
    pub namespaces: BTreeSet<String>,
    /// (namespace, name) of the service accounts kfp-tenant annotates.
    pub service_accounts: BTreeSet<(String, String)>,
    /// Also list every role kfp-tenant manages for this cluster (prune).
    pub managed_roles: bool,
}

impl ReadSet {
    pub fn for_desired(desired: &Desired, prune: bool) -> Self {
        ReadSet {
            cluster: desired.cluster.name.clone(),
            roles: desired.tenants.iter().map(|t| (t.role_name.clone(), t.policy_name.clone())).collect(),
            namespaces: desired.tenants.iter().map(|t| t.namespace.clone()).collect(),
            service_accounts: desired
                .tenants
                .iter()
                .flat_map(|t| t.extra_service_accounts().map(|sa| (t.namespace.clone(), sa.to_owned())))
                .collect(),
            managed_roles: prune,
        }
    }
}

/// Live state as read, the input of [`crate::plan::plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub identity: CallerIdentity,
    pub oidc: ClusterOidc,
    /// Roles that exist, by name.
    pub roles: BTreeMap<String, Role>,
    /// Inline policies that exist, by (role, policy).
    pub policies: BTreeMap<(String, String), PolicyDocument>,
    /// Every Profile of the cluster, by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Namespaces asked for that exist without a Profile.
    pub bare_namespaces: BTreeSet<String>,
    /// Service accounts that exist, by (namespace, name).
    pub service_accounts: BTreeMap<(String, String), ServiceAccount>,
    /// Roles tagged as kfp-tenant's for this cluster (only when asked for).
    pub managed_roles: Vec<Role>,
}

/// A read failed; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}")]
pub struct RefreshError {
    /// What was being read, e.g. `IAM role team-a-kf-role`.
    pub what: String,
    #[source]
    pub source: ProviderError,
}

fn reading(what: impl Into<String>) -> impl FnOnce(ProviderError) -> RefreshError {
    let what = what.into();
    move |source| RefreshError { what, source }
}

/// Reads everything in `reads`, at most `parallelism` tenants at a time.
pub async fn refresh(
    reads: &ReadSet,
    cluster: &dyn ClusterApi,
    iam: &dyn IamApi,
    profiles: &dyn ProfileApi,
    parallelism: usize,
) -> Result<Observed, RefreshError> {
    let (identity, oidc, listed) =
        futures_util::join!(cluster.caller_identity(), cluster.cluster_oidc(&reads.cluster), profiles.list_profiles());
    let identity = identity.map_err(reading("the caller identity"))?;
    let oidc = oidc.map_err(reading(format!("EKS cluster {}", reads.cluster)))?;
    let profiles_by_name: BTreeMap<String, Profile> =
        listed.map_err(reading("Profiles"))?.into_iter().map(|p| (p.name.clone(), p)).collect();

    // With prune, the listing already returns whole roles: they are not read again.
    let mut managed_roles = Vec::new();
    let mut role_reads = reads.roles.clone();
    if reads.managed_roles {
        managed_roles = iam.list_managed_roles("/", &reads.cluster).await.map_err(reading("managed IAM roles"))?;
        for role in &managed_roles {
            if let Some(ns) = role.tags.get(tags::NAMESPACE) {
                role_reads.insert((role.name.clone(), policy_name(ns)));
            }
        }
    }
    let listed: BTreeMap<&str, &Role> = managed_roles.iter().map(|r| (r.name.as_str(), r)).collect();

    let tenant_reads = stream::iter(role_reads.iter().map(|(role_name, policy)| {
        let known = listed.get(role_name.as_str()).map(|r| (*r).clone());
        async move {
            let role = match known {
                Some(role) => Some(role),
                None => iam.get_role(role_name).await.map_err(reading(format!("IAM role {role_name}")))?,
            };
            let document = match &role {
                Some(_) => iam
                    .get_role_policy(role_name, policy)
                    .await
                    .map_err(reading(format!("inline policy {policy} of IAM role {role_name}")))?,
                None => None,
            };
            Ok::<_, RefreshError>((role_name.clone(), policy.clone(), role, document))
        }
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>();

    let missing: Vec<&String> = reads.namespaces.iter().filter(|ns| !profiles_by_name.contains_key(*ns)).collect();
    let namespace_reads = stream::iter(missing.into_iter().map(|ns| async move {
        let exists = profiles.namespace_exists(ns).await.map_err(reading(format!("namespace {ns}")))?;
        Ok::<_, RefreshError>((ns.clone(), exists))
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>();

    let account_reads = stream::iter(reads.service_accounts.iter().map(|(ns, name)| async move {
        profiles.get_service_account(ns, name).await.map_err(reading(format!("service account {ns}/{name}")))
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>();

    let (tenant_results, namespace_results, account_results) = futures_util::join!(tenant_reads, namespace_reads, account_reads);
    let mut observed = Observed {
        identity,
        oidc,
        roles: BTreeMap::new(),
        policies: BTreeMap::new(),
        profiles: profiles_by_name,
        bare_namespaces: namespace_results?.into_iter().filter(|(_, exists)| *exists).map(|(ns, _)| ns).collect(),
        service_accounts: account_results?.into_iter().flatten().map(|sa| ((sa.namespace.clone(), sa.name.clone()), sa)).collect(),
        managed_roles,
    };
    for (role_name, policy, role, document) in tenant_results? {
        if let Some(role) = role {
            observed.roles.insert(role_name.clone(), role);
        }
        if let Some(document) = document {
            observed.policies.insert((role_name, policy), document);
        }
    }
    Ok(observed)
}
