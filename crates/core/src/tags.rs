//! Ownership markers: how kfp-tenant recognises what it created, and for
//! which EKS cluster.
//!
//! A role carries three tags; a Profile and a service account carry two
//! labels (`managed-by` and the cluster). Whatever lacks them is not
//! kfp-tenant's, and whatever names another cluster is that cluster's: the
//! plan refuses to change or delete either unless the operator adopts it
//! explicitly. Objects an earlier kfp-tenant wrote with `managed-by` but no
//! cluster label are migrated by an ordinary plan, shown as a label change.

use std::collections::BTreeMap;

/// Prefix reserved for kfp-tenant's tag keys and label keys.
pub const PREFIX: &str = "kfp-tenant/";
pub const MANAGED_BY: &str = "kfp-tenant/managed-by";
/// The role tag, and the Kubernetes label, naming the EKS cluster an object
/// was made for.
pub const CLUSTER: &str = "kfp-tenant/cluster";
pub const NAMESPACE: &str = "kfp-tenant/namespace";
pub const MANAGER: &str = "kfp-tenant";
/// The role tag naming the KubeflowTenant a tenant is declared by (its
/// name, the namespace); a tenants file's roles carry none.
pub const KUBEFLOW_TENANT: &str = "kfp-tenant/kubeflowtenant";
/// The tags kfp-tenant may put on a role: the three markers and [`KUBEFLOW_TENANT`].
pub const MARKER_COUNT: usize = 4;

/// Label on every Kubernetes object kfp-tenant writes, next to [`CLUSTER`].
pub const PROFILE_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation on a service account that kfp-tenant created (not adopted).
pub const CREATED_ANNOTATION: &str = "kfp-tenant/created";

/// The operator's tags plus the ownership markers, as the role should carry them.
pub fn role_tags(user: &BTreeMap<String, String>, cluster: &str, namespace: &str) -> BTreeMap<String, String> {
    let mut tags = user.clone();
    tags.insert(MANAGED_BY.to_owned(), MANAGER.to_owned());
    tags.insert(CLUSTER.to_owned(), cluster.to_owned());
    tags.insert(NAMESPACE.to_owned(), namespace.to_owned());
    tags
}

/// The KubeflowTenant a managed role's tags say declares its tenant, if any.
pub fn kubeflow_tenant(tags: &BTreeMap<String, String>) -> Option<&str> {
    tags.get(KUBEFLOW_TENANT).map(String::as_str)
}

/// Whether a role's tags mark it as kfp-tenant's for this cluster.
pub fn is_managed_role(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(MANAGED_BY).map(String::as_str) == Some(MANAGER) && tags.get(CLUSTER).map(String::as_str) == Some(cluster)
}

/// The cluster label's value for an EKS cluster name. EKS names run to 100
/// characters and may end in `-` or `_`; a label value is at most 63 and
/// ends alphanumeric. Names that fit are used as they are, others are
/// shortened with a hash of the whole name, so the value stays unique.
pub fn cluster_label(cluster: &str) -> String {
    let fits = cluster.len() <= 63 && cluster.ends_with(|c: char| c.is_ascii_alphanumeric());
    if fits {
        return cluster.to_owned();
    }
    let hash = crate::fnv::hash(cluster.as_bytes());
    let head: String = cluster.chars().take(40).collect::<String>().trim_end_matches(['-', '_']).to_owned();
    format!("{head}-{hash:016x}")
}

/// Whose a Kubernetes object is, by its labels, from this run's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// kfp-tenant's, for this cluster.
    Ours,
    /// kfp-tenant's, written before objects recorded their cluster.
    Legacy,
    /// kfp-tenant's, for another EKS cluster (the label's value).
    OtherCluster(String),
    /// Not kfp-tenant's.
    Foreign,
}

/// Classifies an object by its `managed-by` label and its cluster label.
pub fn ownership(managed: bool, cluster: Option<&str>, this_cluster: &str) -> Ownership {
    match (managed, cluster) {
        (false, _) => Ownership::Foreign,
        (true, None) => Ownership::Legacy,
        (true, Some(c)) if c == cluster_label(this_cluster) => Ownership::Ours,
        (true, Some(c)) => Ownership::OtherCluster(c.to_owned()),
    }
}

/// The description kfp-tenant gives its roles. Its ending,
/// [`role_description_marker`], lets a listing of every role in the account
/// find kfp-tenant's for a cluster without reading each role's tags.
pub fn role_description(namespace: &str, cluster: &str) -> String {
    format!("Kubeflow tenant {namespace} {}", role_description_marker(cluster))
}

pub fn role_description_marker(cluster: &str) -> String {
    format!("on EKS cluster {cluster} (managed by kfp-tenant)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_labels_are_valid_label_values() {
        assert_eq!(cluster_label("demo"), "demo");
        let long = format!("{}_", "a".repeat(99));
        let label = cluster_label(&long);
        assert!(label.len() <= 63 && label.ends_with(|c: char| c.is_ascii_alphanumeric()), "{label}");
        assert_ne!(cluster_label(&format!("{}-", "a".repeat(99))), label, "different names, different labels");
    }

    #[test]
    fn ownership_by_labels() {
        assert_eq!(ownership(true, Some("demo"), "demo"), Ownership::Ours);
        assert_eq!(ownership(true, None, "demo"), Ownership::Legacy);
        assert_eq!(ownership(true, Some("other"), "demo"), Ownership::OtherCluster("other".into()));
        assert_eq!(ownership(false, Some("demo"), "demo"), Ownership::Foreign);
    }
}
