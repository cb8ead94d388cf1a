//! What the tenants file asks for, resource by resource, one place for each
//! rule. How a live resource differs from it lives with its kind
//! (`crate::kinds`: `role_drift`, `profile_drift`, `service_account_drift`),
//! and apply's calls follow from the same differences.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::plan::ClusterContext;
use crate::policy::{self, PolicyDocument};
use crate::ports::{InlinePolicy, Profile, ProfilePlugin, Role, ServiceAccount};
use crate::spec::{DEFAULT_MAX_SESSION_DURATION, Road, Tenant};
use crate::tags;

/// The role as kfp-tenant creates it for `tenant`, trusting the tenant's road alone.
pub fn desired_role(tenant: &Tenant, cluster: &ClusterContext) -> Role {
    Role {
        name: tenant.role_name.clone(),
        path: tenant.role_path.clone(),
        arn: format!("arn:{}:iam::{}:role{}{}", cluster.partition, cluster.account_id, tenant.role_path, tenant.role_name),
        trust_policy: road_trust(tenant.road, tenant, cluster),
        description: Some(tags::role_description(&tenant.namespace, &cluster.name)),
        tags: tags::role_tags(&tenant.tags, &cluster.name, &tenant.namespace),
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
    let statements = |d: &PolicyDocument| -> Vec<Value> {
        match &d.as_json()["Statement"] {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            one => vec![one.clone()],
        }
    };
    let mut all = statements(first);
    all.extend(statements(second));
    PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": all}))
}

/// The tags kfp-tenant puts on a Pod Identity association it creates: its
/// ownership markers, as on its roles.
pub fn association_tags(cluster: &str, namespace: &str) -> BTreeMap<String, String> {
    tags::role_tags(&BTreeMap::new(), cluster, namespace)
}

pub fn desired_s3_policy(tenant: &Tenant, cluster: &ClusterContext) -> InlinePolicy {
    InlinePolicy {
        role_name: tenant.role_name.clone(),
        policy_name: tenant.policy_name.clone(),
        document: policy::s3_policy(&cluster.partition, &cluster.bucket, &tenant.s3_access),
    }
}

pub fn desired_profile(tenant: &Tenant, role_arn: &str, cluster: &str) -> Profile {
    Profile {
        name: tenant.namespace.clone(),
        owner: tenant.owner.clone(),
        // A Pod Identity tenant's Profile has no plugin: its binding is an EKS
        // association, and an IRSA annotation would win over it.
        plugins: match tenant.road {
            Road::Irsa => vec![ProfilePlugin::aws_iam(role_arn)],
            Road::PodIdentity => Vec::new(),
        },
        resource_quota: tenant.resource_quota.clone(),
        managed: true,
        cluster: Some(tags::cluster_label(cluster)),
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
