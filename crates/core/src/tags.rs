//! Ownership markers: how kfp-tenant recognises what it created.
//!
//! A role carries three tags; a Profile carries one label. Whatever lacks them
//! is not kfp-tenant's, and the plan refuses to change or delete it unless the
//! operator adopts it explicitly.

use std::collections::BTreeMap;

/// Prefix reserved for kfp-tenant's tag keys.
pub const PREFIX: &str = "kfp-tenant/";
pub const MANAGED_BY: &str = "kfp-tenant/managed-by";
pub const CLUSTER: &str = "kfp-tenant/cluster";
pub const NAMESPACE: &str = "kfp-tenant/namespace";
pub const MANAGER: &str = "kfp-tenant";
pub const MARKER_COUNT: usize = 3;

/// Label on a Profile created by kfp-tenant.
pub const PROFILE_LABEL: &str = "app.kubernetes.io/managed-by";

/// The operator's tags plus the ownership markers, as the role should carry them.
pub fn role_tags(user: &BTreeMap<String, String>, cluster: &str, namespace: &str) -> BTreeMap<String, String> {
    let mut tags = user.clone();
    tags.insert(MANAGED_BY.to_owned(), MANAGER.to_owned());
    tags.insert(CLUSTER.to_owned(), cluster.to_owned());
    tags.insert(NAMESPACE.to_owned(), namespace.to_owned());
    tags
}

/// Whether a role's tags mark it as kfp-tenant's for this cluster.
pub fn is_managed_role(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(MANAGED_BY).map(String::as_str) == Some(MANAGER) && tags.get(CLUSTER).map(String::as_str) == Some(cluster)
}
