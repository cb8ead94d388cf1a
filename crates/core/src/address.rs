//! Resource addresses: the stable, human-readable names of graph nodes.
//!
//! They sort the way a plan reads: cluster-level data first, then tenant by
//! tenant, each tenant's resources in dependency order.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a per-tenant resource, in dependency order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Derived document, no live state of its own.
    TrustPolicy,
    IamRole,
    S3Policy,
    Profile,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TrustPolicy => "trust_policy",
            Kind::IamRole => "iam_role",
            Kind::S3Policy => "s3_policy",
            Kind::Profile => "profile",
        }
    }
}

/// Where a node sits in the graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Address {
    /// `data.caller_identity`: account id and partition.
    CallerIdentity,
    /// `data.cluster_oidc`: the cluster's issuer and the account's IAM OIDC provider.
    ClusterOidc,
    /// `tenant["ns"].<kind>`.
    Tenant { namespace: String, kind: Kind },
}

impl Address {
    pub fn tenant(namespace: &str, kind: Kind) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind }
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
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::CallerIdentity => f.write_str("data.caller_identity"),
            Address::ClusterOidc => f.write_str("data.cluster_oidc"),
            Address::Tenant { namespace, kind } => write!(f, "tenant[{namespace:?}].{}", kind.as_str()),
        }
    }
}
