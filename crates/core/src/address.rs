//! Resource addresses: the stable, human-readable names of graph nodes.
//!
//! They sort the way a plan reads: cluster-level data first, then tenant by
//! tenant, each tenant's resources in dependency order.

use std::fmt;
use std::str::FromStr;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::graph::Dag;

/// The kind of a per-tenant resource, in dependency order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Derived document, no live state of its own.
    TrustPolicy,
    IamRole,
    S3Policy,
    Profile,
    /// A service account other than `default-editor` that the tenant lists:
    /// kfp-tenant creates and annotates it, since the plugin does not.
    ServiceAccount,
}

impl Kind {
    /// The kinds every tenant has; service accounts come one per name.
    pub const ALL: [Kind; 4] = [Kind::TrustPolicy, Kind::IamRole, Kind::S3Policy, Kind::Profile];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TrustPolicy => "trust_policy",
            Kind::IamRole => "iam_role",
            Kind::S3Policy => "s3_policy",
            Kind::Profile => "profile",
            Kind::ServiceAccount => "service_account",
        }
    }
}

/// Where a node sits in the graph. Serialized as its display form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    /// `data.caller_identity`: account id and partition.
    CallerIdentity,
    /// `data.cluster_oidc`: the cluster's issuer and the account's IAM OIDC provider.
    ClusterOidc,
    /// `oidc_provider`: the account's IAM OIDC provider for the issuer, when
    /// kfp-tenant is asked to create it. Cluster-level: destroy never deletes it.
    OidcProvider,
    /// `tenant["ns"].<kind>`, or `tenant["ns"].service_account["name"]`.
    Tenant { namespace: String, kind: Kind, name: Option<String> },
}

impl Address {
    pub fn tenant(namespace: &str, kind: Kind) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind, name: None }
    }

    pub fn service_account(namespace: &str, name: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::ServiceAccount, name: Some(name.to_owned()) }
    }

    pub fn namespace(&self) -> Option<&str> {
        match self {
            Address::Tenant { namespace, .. } => Some(namespace),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<Kind> {
        match self {
            Address::Tenant { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// What this resource is computed from, i.e. the edges of the resource
    /// graph: the trust policy from the account and the cluster's issuer, the
    /// role from its trust policy, the inline policy and the Profile from the
    /// role (the Profile names its ARN).
    pub fn dependencies(&self) -> Vec<Address> {
        match self {
            Address::CallerIdentity | Address::ClusterOidc => Vec::new(),
            Address::OidcProvider => vec![Address::ClusterOidc],
            Address::Tenant { namespace, kind, .. } => match kind {
                Kind::TrustPolicy => vec![Address::CallerIdentity, Address::ClusterOidc, Address::OidcProvider],
                Kind::IamRole => vec![Address::tenant(namespace, Kind::TrustPolicy)],
                Kind::S3Policy | Kind::Profile => vec![Address::tenant(namespace, Kind::IamRole)],
                // In the Profile's namespace, annotated with the role's ARN.
                Kind::ServiceAccount => vec![Address::tenant(namespace, Kind::IamRole), Address::tenant(namespace, Kind::Profile)],
            },
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::CallerIdentity => f.write_str("data.caller_identity"),
            Address::ClusterOidc => f.write_str("data.cluster_oidc"),
            Address::OidcProvider => f.write_str("oidc_provider"),
            Address::Tenant { namespace, kind, name: None } => write!(f, "tenant[{namespace:?}].{}", kind.as_str()),
            Address::Tenant { namespace, kind, name: Some(name) } => write!(f, "tenant[{namespace:?}].{}[{name:?}]", kind.as_str()),
        }
    }
}

impl FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "data.caller_identity" => return Ok(Address::CallerIdentity),
            "data.cluster_oidc" => return Ok(Address::ClusterOidc),
            "oidc_provider" => return Ok(Address::OidcProvider),
            _ => {}
        }
        let bad = || format!("{s:?} is not a resource address");
        let rest = s.strip_prefix("tenant[\"").ok_or_else(bad)?;
        let (namespace, kind) = rest.split_once("\"].").ok_or_else(bad)?;
        if let Some(name) = kind.strip_prefix("service_account[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::service_account(namespace, name));
        }
        let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind).ok_or_else(bad)?;
        Ok(Address::tenant(namespace, kind))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Every resource of these tenants and what it depends on, data sources and
/// derived documents included.
pub fn resource_graph<'a>(namespaces: impl IntoIterator<Item = &'a str>) -> Dag<Address> {
    let mut dag = Dag::default();
    let mut ids = BTreeMap::new();
    let mut addresses = vec![Address::CallerIdentity, Address::ClusterOidc];
    for ns in namespaces {
        addresses.extend(Kind::ALL.into_iter().map(|k| Address::tenant(ns, k)));
    }
    for a in addresses {
        let id = dag.add_node(a.clone());
        ids.insert(a, id);
    }
    for (address, &id) in &ids {
        for dependency in address.dependencies() {
            if let Some(&from) = ids.get(&dependency) {
                dag.add_edge(from, id);
            }
        }
    }
    dag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for a in [
            Address::CallerIdentity,
            Address::ClusterOidc,
            Address::tenant("team-a", Kind::S3Policy),
            Address::service_account("team-a", "runner"),
        ] {
            assert_eq!(a.to_string().parse::<Address>(), Ok(a));
        }
        assert_eq!(Address::tenant("team-a", Kind::IamRole).to_string(), r#"tenant["team-a"].iam_role"#);
        assert!("tenant[team-a].role".parse::<Address>().is_err());
        assert_eq!(Address::service_account("team-a", "runner").to_string(), r#"tenant["team-a"].service_account["runner"]"#);
        // A tenant's service accounts sort after its other resources.
        assert!(Address::tenant("team-a", Kind::Profile) < Address::service_account("team-a", "a"));
        assert!(Address::service_account("team-a", "z") < Address::tenant("team-b", Kind::TrustPolicy));
    }
}
