//! Resource addresses: the stable, human-readable names of graph nodes.
//!
//! They sort the way a plan reads: cluster-level data first, then tenant by
//! tenant, each tenant's resources in dependency order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of a per-tenant resource, in dependency order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Derived document, no live state of its own.
    TrustPolicy,
    IamRole,
    S3Policy,
    /// An inline policy on the tenant's role other than its S3 policy, one
    /// per name: the file never asks for one, so the plan removes it (a
    /// tenant's role carries exactly the file's permissions).
    InlinePolicy,
    /// A managed policy attached to the tenant's role, one per policy ARN:
    /// attached when `managedPolicies` lists it, detached otherwise.
    PolicyAttachment,
    Profile,
    /// A service account the tenant grants the role to, one per name:
    /// `default-editor` (annotated by the Kubeflow plugin, restored by
    /// kfp-tenant when it drifts), or another that kfp-tenant creates or
    /// adopts and annotates itself.
    ServiceAccount,
    /// An EKS Pod Identity association binding one of the tenant's service
    /// accounts to its role, one per service account (Pod Identity tenants).
    PodIdentity,
    /// The keys kfp-tenant owns in one of the tenant's pipeline ConfigMaps
    /// (`kfp-launcher`, `artifact-repositories`), one per ConfigMap name:
    /// where its pipelines write, inside its grant.
    PipelineConfig,
    /// The statement of the road a tenant leaves (`irsa` or `podIdentity`),
    /// still in its role's trust policy so that no pod is left without a
    /// road during the move: removed once nothing uses that road any more.
    TrustStatement,
    /// A role kfp-tenant made for the tenant under an earlier name or path:
    /// deleted, with its inline policy, once nothing points at it.
    DeposedRole,
}

impl Kind {
    /// The kinds every tenant has one of; service accounts and deposed roles
    /// come one per name.
    pub const PER_TENANT: [Kind; 4] = [Kind::TrustPolicy, Kind::IamRole, Kind::S3Policy, Kind::Profile];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TrustPolicy => "trust_policy",
            Kind::IamRole => "iam_role",
            Kind::S3Policy => "s3_policy",
            Kind::InlinePolicy => "inline_policy",
            Kind::PolicyAttachment => "policy_attachment",
            Kind::Profile => "profile",
            Kind::ServiceAccount => "service_account",
            Kind::PodIdentity => "pod_identity",
            Kind::PipelineConfig => "pipeline_config",
            Kind::TrustStatement => "trust_statement",
            Kind::DeposedRole => "deposed_role",
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
    /// `cluster_identity`: kfp-tenant's identity record in the cluster,
    /// written by the first apply. Cluster-level: destroy never deletes it.
    ClusterIdentity,
    /// `cognito_user["alice@example.com"]`: the Cognito user who owns the
    /// Profiles of that e-mail, one per owner however many tenants they
    /// own. Their Profiles wait for it ([`crate::order`]).
    CognitoUser { email: String },
    /// `tenant["ns"].<kind>`, or `tenant["ns"].<kind>["name"]` for service
    /// accounts and deposed roles.
    Tenant { namespace: String, kind: Kind, name: Option<String> },
}

impl Address {
    pub fn tenant(namespace: &str, kind: Kind) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind, name: None }
    }

    pub fn service_account(namespace: &str, name: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::ServiceAccount, name: Some(name.to_owned()) }
    }

    pub fn deposed_role(namespace: &str, name: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::DeposedRole, name: Some(name.to_owned()) }
    }

    /// An inline policy `name` on the tenant's role, other than its S3 policy.
    pub fn inline_policy(namespace: &str, name: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::InlinePolicy, name: Some(name.to_owned()) }
    }

    /// The attachment of managed policy `arn` to the tenant's role.
    pub fn policy_attachment(namespace: &str, arn: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::PolicyAttachment, name: Some(arn.to_owned()) }
    }

    pub fn pod_identity(namespace: &str, service_account: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::PodIdentity, name: Some(service_account.to_owned()) }
    }

    /// kfp-tenant's keys in the tenant's ConfigMap `name`.
    pub fn pipeline_config(namespace: &str, name: &str) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::PipelineConfig, name: Some(name.to_owned()) }
    }

    /// The trust statement of `road` in the tenant's role.
    pub fn trust_statement(namespace: &str, road: crate::spec::Road) -> Self {
        Address::Tenant { namespace: namespace.to_owned(), kind: Kind::TrustStatement, name: Some(road.as_str().to_owned()) }
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
            Address::OidcProvider => f.write_str("oidc_provider"),
            Address::ClusterIdentity => f.write_str("cluster_identity"),
            Address::CognitoUser { email } => write!(f, "cognito_user[{email:?}]"),
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
            "cluster_identity" => return Ok(Address::ClusterIdentity),
            _ => {}
        }
        let bad = || format!("{s:?} is not a resource address");
        if let Some(email) = s.strip_prefix("cognito_user[\"").and_then(|e| e.strip_suffix("\"]")) {
            return Ok(Address::CognitoUser { email: email.to_owned() });
        }
        let rest = s.strip_prefix("tenant[\"").ok_or_else(bad)?;
        let (namespace, kind) = rest.split_once("\"].").ok_or_else(bad)?;
        if let Some(name) = kind.strip_prefix("service_account[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::service_account(namespace, name));
        }
        if let Some(name) = kind.strip_prefix("deposed_role[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::deposed_role(namespace, name));
        }
        if let Some(name) = kind.strip_prefix("inline_policy[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::inline_policy(namespace, name));
        }
        if let Some(arn) = kind.strip_prefix("policy_attachment[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::policy_attachment(namespace, arn));
        }
        if let Some(name) = kind.strip_prefix("pod_identity[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::pod_identity(namespace, name));
        }
        if let Some(name) = kind.strip_prefix("pipeline_config[\"").and_then(|n| n.strip_suffix("\"]")) {
            return Ok(Address::pipeline_config(namespace, name));
        }
        if let Some(road) = kind.strip_prefix("trust_statement[\"").and_then(|n| n.strip_suffix("\"]")) {
            let road =
                [crate::spec::Road::Irsa, crate::spec::Road::PodIdentity].into_iter().find(|r| r.as_str() == road).ok_or_else(bad)?;
            return Ok(Address::trust_statement(namespace, road));
        }
        let kind = Kind::PER_TENANT.into_iter().find(|k| k.as_str() == kind).ok_or_else(bad)?;
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
            Address::deposed_role("team-a", "old-role"),
            Address::pod_identity("team-a", "runner"),
            Address::trust_statement("team-a", crate::spec::Road::Irsa),
            Address::pipeline_config("team-a", "kfp-launcher"),
            Address::ClusterIdentity,
            Address::CognitoUser { email: "alice@example.com".into() },
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
