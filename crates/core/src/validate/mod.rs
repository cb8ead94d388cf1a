//! Validation of a [`TenantsFile`] before any IO, like a compiler: every
//! problem is collected, each names its field and how to fix it.
//!
//! Whatever IAM or Kubernetes would reject, and whatever moto would wrongly
//! accept (over-long role names, bad characters, bad paths), is rejected here,
//! so bad input never reaches a provider.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::policy::{self, S3Access};
use crate::spec::{
    ClusterSpec, DEFAULT_SERVICE_ACCOUNT, DEFAULT_TRUST_POLICY_QUOTA, Desired, MAX_POD_IDENTITY_ASSOCIATIONS, Road, S3AccessMode, Tenant,
    TenantsFile, default_role_name, policy_name,
};
use crate::tags;

mod limits;
mod rules;
mod values;
use rules::{Validator, overlapping_prefixes};
pub use rules::{is_dns1123_label, unknown_targets};
pub use values::{is_quota_quantity, is_quota_resource, key_prefix_problem};

/// What `defaults.s3Prefix` replaces with each tenant's namespace.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// One problem with the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputProblem {
    /// Path of the field in the tenants file, e.g. `tenants[2].roleName`.
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.field, self.message, self.fix)
    }
}

/// Every problem found, in the order of the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidInput {
    pub problems: Vec<InputProblem>,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "the tenants file has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

pub use limits::*;

/// A value as an error message shows it: quoted, and cut short when long, so
/// that a 5,000-character mistake does not bury the message.
fn shown(value: &str) -> String {
    const KEEP: usize = 40;
    if value.chars().count() <= 2 * KEEP {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(KEEP).collect();
    format!("{head:?}... ({} characters)", value.chars().count())
}

/// Checks the file and resolves defaults. Nothing here does IO.
pub fn validate(file: &TenantsFile) -> Result<Desired, InvalidInput> {
    let mut v = Validator::default();
    v.cluster_name("cluster", &file.cluster);
    v.region("region", &file.region);
    v.bucket("bucket", &file.bucket);
    let mut quota = file.trust_policy_quota.unwrap_or(DEFAULT_TRUST_POLICY_QUOTA);
    if quota < DEFAULT_TRUST_POLICY_QUOTA {
        v.problem(
            "trustPolicyQuota",
            format!("{quota} is below IAM's default of {DEFAULT_TRUST_POLICY_QUOTA}"),
            "leave it out, or set the raised quota of your account",
        );
        quota = DEFAULT_TRUST_POLICY_QUOTA;
    }
    let d = &file.defaults;
    if let Some(path) = &d.role_path {
        v.role_path("defaults.rolePath", path);
    }
    if let Some(sas) = &d.service_accounts {
        v.service_accounts("defaults.serviceAccounts", sas);
    }
    v.tags("defaults.tags", &d.tags);
    if let Some(arn) = &d.permissions_boundary {
        v.boundary("defaults.permissionsBoundary", arn);
    }
    if let Some(arns) = &d.managed_policies {
        v.managed_policies("defaults.managedPolicies", arns);
    }
    if let Some(secs) = d.max_session_duration {
        v.session("defaults.maxSessionDuration", secs);
    }
    if let Some(template) = &d.s3_prefix {
        v.prefix_template("defaults.s3Prefix", template);
    }
    // No tenants is a configuration like any other (Terraform plans an
    // empty one): nothing to create, and with --prune every tenant of the
    // cluster goes, after the usual plan and confirmation.

    let partition = partition_of_region(&file.region);
    let mut namespaces: BTreeMap<&str, usize> = BTreeMap::new();
    let mut role_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut tenants = Vec::with_capacity(file.tenants.len());
    let mut associations = 0;
    for (i, t) in file.tenants.iter().enumerate() {
        let at = |field: &str| format!("tenants[{i}].{field}");
        let errors_before = v.problems.len();
        v.namespace(&at("namespace"), &t.namespace);
        if let Some(first) = namespaces.insert(&t.namespace, i) {
            v.problem(
                at("namespace"),
                format!("namespace {:?} is already used by tenants[{first}]", t.namespace),
                "give every tenant its own namespace",
            );
        }
        v.email(&at("owner"), &t.owner);

        let role_name = match &t.role_name {
            Some(name) => {
                v.role_name(&at("roleName"), name, false);
                name.clone()
            }
            None => {
                let name = default_role_name(&t.namespace, &file.cluster);
                v.role_name(&at("roleName"), &name, true);
                name
            }
        };
        if let Some(first) = role_names.insert(role_name.to_ascii_lowercase(), i) {
            v.problem(
                at("roleName"),
                format!("role name {role_name:?} is already used by tenants[{first}] (IAM role names are case-insensitive)"),
                "set a distinct roleName",
            );
        }
        let policy = policy_name(&t.namespace);
        if policy.len() > MAX_POLICY_NAME {
            v.problem(
                at("namespace"),
                format!("inline policy name {policy:?} is over {MAX_POLICY_NAME} characters"),
                "use a shorter namespace",
            );
        }
        let role_path = match &t.role_path {
            Some(path) => {
                v.role_path(&at("rolePath"), path);
                path.clone()
            }
            None => d.role_path.clone().unwrap_or_else(|| "/".to_owned()),
        };
        let mut service_accounts = match &t.service_accounts {
            Some(sas) => {
                v.service_accounts(&at("serviceAccounts"), sas);
                sas.clone()
            }
            None => d.service_accounts.clone().unwrap_or_else(|| vec![DEFAULT_SERVICE_ACCOUNT.to_owned()]),
        };
        service_accounts.sort();
        service_accounts.dedup();
        let identity = t.identity.or(d.identity).unwrap_or_default();
        if identity == Road::PodIdentity {
            associations += service_accounts.len();
        }

        let mode = t.s3_access.or(d.s3_access).unwrap_or(S3AccessMode::Scoped);
        // A tenant's own prefix, else the defaults' template for prefix tenants.
        let templated = match (&t.s3_prefix, mode, &d.s3_prefix) {
            (None, S3AccessMode::Prefix, Some(template)) if template.contains(NAMESPACE_PLACEHOLDER) => {
                Some(template.replace(NAMESPACE_PLACEHOLDER, &t.namespace))
            }
            _ => None,
        };
        let s3_access = match (mode, templated.as_ref().or(t.s3_prefix.as_ref())) {
            (S3AccessMode::Prefix, Some(prefix)) => {
                v.s3_prefix(&at("s3Prefix"), prefix);
                S3Access::Prefix { prefix: prefix.clone() }
            }
            (S3AccessMode::Prefix, None) => {
                v.problem(
                    at("s3Prefix"),
                    "s3Access is prefix but no s3Prefix is given",
                    format!(
                        "set s3Prefix, e.g. \"private-artifacts/{}/\", or defaults.s3Prefix: \"private-artifacts/{NAMESPACE_PLACEHOLDER}/\"",
                        t.namespace
                    ),
                );
                S3Access::Scoped
            }
            (_, Some(_)) => {
                v.problem(at("s3Prefix"), "s3Prefix is set but s3Access is not prefix", "set s3Access: prefix, or remove s3Prefix");
                S3Access::Scoped
            }
            (S3AccessMode::Scoped, None) => S3Access::Scoped,
            (S3AccessMode::Full, None) => S3Access::Full,
        };

        v.tags(&at("tags"), &t.tags);
        let mut tags = d.tags.clone();
        tags.extend(t.tags.clone());
        if tags.len() + tags::MARKER_COUNT > MAX_TAGS {
            v.problem(
                at("tags"),
                format!("{} tags plus kfp-tenant's {} ownership tags exceed IAM's {MAX_TAGS} per role", tags.len(), tags::MARKER_COUNT),
                format!("keep at most {} tags per tenant", MAX_TAGS - tags::MARKER_COUNT),
            );
        }
        if let Some(arn) = &t.permissions_boundary {
            v.boundary(&at("permissionsBoundary"), arn);
        }
        let mut managed_policies = match &t.managed_policies {
            Some(arns) => {
                v.managed_policies(&at("managedPolicies"), arns);
                arns.clone()
            }
            None => d.managed_policies.clone().unwrap_or_default(),
        };
        managed_policies.sort();
        managed_policies.dedup();
        if let Some(secs) = t.max_session_duration {
            v.session(&at("maxSessionDuration"), secs);
        }
        if let Some(quota) = &t.resource_quota {
            v.quota(&at("resourceQuota.hard"), &quota.hard);
        }

        if v.problems.len() == errors_before {
            // Sizes are only meaningful once the names are valid. The issuer is
            // not known before IO, but its length is: EKS issuers have one shape.
            let issuer = example_issuer_host(&file.region);
            let trust = match identity {
                Road::Irsa => policy::trust_policy(partition, "123456789012", &issuer, &t.namespace, &service_accounts),
                Road::PodIdentity => {
                    let arn = format!("arn:{partition}:eks:{}:123456789012:cluster/{}", file.region, file.cluster);
                    policy::pod_identity_trust("123456789012", &arn, &t.namespace, &service_accounts)
                }
            };
            if trust.minified_len() > quota {
                v.problem(
                    at("serviceAccounts"),
                    format!("the trust policy would be {} characters, over the quota of {quota}", trust.minified_len()),
                    "list fewer service accounts, or raise the IAM quota and set trustPolicyQuota",
                );
            }
            let s3 = policy::s3_policy(partition, &file.bucket, &s3_access);
            if s3.minified_len() > MAX_INLINE_POLICIES {
                v.problem(
                    at("s3Prefix"),
                    format!("the S3 policy would be {} characters, over IAM's {MAX_INLINE_POLICIES}", s3.minified_len()),
                    "use a shorter s3Prefix",
                );
            }
        }

        tenants.push(Tenant {
            namespace: t.namespace.clone(),
            owner: t.owner.clone(),
            role_name,
            role_path,
            policy_name: policy,
            road: identity,
            service_accounts,
            s3_access,
            resource_quota: t.resource_quota.clone(),
            tags,
            managed_policies,
            permissions_boundary: t.permissions_boundary.clone().or_else(|| d.permissions_boundary.clone()),
            max_session_duration: t.max_session_duration.or(d.max_session_duration),
        });
    }

    overlapping_prefixes(&mut v, &tenants);
    if associations > MAX_POD_IDENTITY_ASSOCIATIONS {
        v.problem(
            "tenants".to_owned(),
            format!(
                "the Pod Identity tenants grant {associations} service accounts, and EKS allows {MAX_POD_IDENTITY_ASSOCIATIONS} Pod Identity associations per cluster (not adjustable)"
            ),
            "move some tenants to identity: irsa, or grant fewer service accounts",
        );
    }
    let cognito = file.identity_provider.as_ref().and_then(|idp| v.identity_provider(idp, &file.region));
    if !v.problems.is_empty() {
        return Err(InvalidInput { problems: v.problems });
    }
    tenants.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(Desired {
        cluster: ClusterSpec {
            name: file.cluster.clone(),
            region: file.region.clone(),
            bucket: file.bucket.clone(),
            trust_policy_quota: quota,
        },
        tenants,
        untargeted: BTreeSet::new(),
        cognito,
        untargeted_owners: BTreeSet::new(),
    })
}

/// The partition a region belongs to; the caller identity is authoritative at
/// plan time, this is for sizing documents before IO.
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

fn example_issuer_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("oidc.eks.{region}.{suffix}/id/{}", "0".repeat(32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::IdentityProvider;
    use crate::spec::TenantInput;

    fn file() -> TenantsFile {
        TenantsFile {
            cluster: "kf".into(),
            region: "us-west-2".into(),
            bucket: "kfp-artifacts".into(),
            tenants: vec![TenantInput { namespace: "team-a".into(), owner: "alice@example.com".into(), ..Default::default() }],
            ..Default::default()
        }
    }

    /// Applies `edit` to a valid file and expects exactly these fields to be named.
    fn check(edit: impl FnOnce(&mut TenantsFile), expected_fields: &[&str]) {
        let mut f = file();
        edit(&mut f);
        let fields: Vec<String> = match validate(&f) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.into_iter().map(|p| p.field).collect(),
        };
        assert_eq!(fields, expected_fields);
    }

    #[test]
    fn a_cognito_pool_id_must_have_cognitos_shape_and_be_in_the_region_looked_in() {
        fn with(id: &str, region: Option<&str>) -> impl FnOnce(&mut TenantsFile) {
            let (id, region) = (id.to_owned(), region.map(str::to_owned));
            move |f: &mut TenantsFile| {
                f.identity_provider =
                    Some(IdentityProvider { cognito: Some(crate::spec::CognitoInput { user_pool_id: id, region, ..Default::default() }) })
            }
        }
        check(with("us-west-2_aBcDeFgHi", None), &[]);
        check(with("aBcDeFgHi", None), &["identityProvider.cognito.userPoolId"]);
        check(with("us-west-2_", None), &["identityProvider.cognito.userPoolId"]);
        check(with("us-west-2_ab/cd", None), &["identityProvider.cognito.userPoolId"]);
        check(with(&format!("us-west-2_{}", "a".repeat(50)), None), &["identityProvider.cognito.userPoolId"]);
        check(with("eu-west-1_aBcDeFgHi", None), &["identityProvider.cognito.userPoolId"]);
        check(with("eu-west-1_aBcDeFgHi", Some("eu-west-1")), &[]);
        check(|f: &mut TenantsFile| f.identity_provider = Some(IdentityProvider::default()), &["identityProvider"]);
        let mut f = file();
        with("eu-west-1_aBcDeFgHi", None)(&mut f);
        let e = validate(&f).unwrap_err();
        assert!(e.to_string().contains("set identityProvider.cognito.region: eu-west-1"), "{e}");
        with("us-west-2_aBcDeFgHi", None)(&mut f);
        let cognito = validate(&f).unwrap().cognito.unwrap();
        assert_eq!(
            (cognito.region.as_str(), cognito.invite, cognito.delete_users),
            ("us-west-2", true, false),
            "invites by default, deletes nothing"
        );
    }

    #[test]
    fn identity_is_irsa_unless_the_defaults_or_the_tenant_say_otherwise() {
        let mut f = file();
        f.tenants.push(TenantInput { namespace: "team-b".into(), owner: "bob@example.com".into(), ..Default::default() });
        assert!(validate(&f).unwrap().tenants.iter().all(|t| t.road == Road::Irsa));
        f.defaults.identity = Some(Road::PodIdentity);
        f.tenants[1].identity = Some(Road::Irsa);
        let roads: Vec<Road> = validate(&f).unwrap().tenants.iter().map(|t| t.road).collect();
        assert_eq!(roads, [Road::PodIdentity, Road::Irsa]);
    }

    #[test]
    fn more_pod_identity_associations_than_eks_allows_per_cluster_are_refused() {
        let accounts = |n: usize| (0..n).map(|i| format!("runner-{i}")).collect::<Vec<_>>();
        // 100 tenants of 50 service accounts: exactly the quota.
        let at = |per_tenant: usize| {
            let mut f = file();
            f.defaults.identity = Some(Road::PodIdentity);
            f.trust_policy_quota = Some(4096);
            f.tenants = (0..100)
                .map(|i| TenantInput {
                    namespace: format!("t{i}"),
                    owner: "o@example.com".into(),
                    service_accounts: Some(accounts(per_tenant)),
                    ..Default::default()
                })
                .collect();
            f
        };
        assert!(validate(&at(50)).is_ok());
        let e = validate(&at(51)).unwrap_err();
        let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["tenants"], "{e}");
        assert!(e.to_string().contains("5100 service accounts") && e.to_string().contains("identity: irsa"), "{e}");
    }

    #[test]
    fn the_defaults_prefix_template_gives_each_prefix_tenant_its_namespace() {
        let mut f = file();
        f.defaults.s3_prefix = Some("private-artifacts/{namespace}/".into());
        f.defaults.s3_access = Some(S3AccessMode::Prefix);
        f.tenants.push(TenantInput { namespace: "team-b".into(), owner: "b@example.com".into(), ..Default::default() });
        f.tenants.push(TenantInput {
            namespace: "team-c".into(),
            owner: "c@example.com".into(),
            s3_prefix: Some("shared/team-c-own/".into()),
            ..Default::default()
        });
        f.tenants.push(TenantInput {
            namespace: "team-d".into(),
            owner: "d@example.com".into(),
            s3_access: Some(S3AccessMode::Scoped),
            ..Default::default()
        });
        let desired = validate(&f).unwrap();
        let prefixes: Vec<S3Access> = desired.tenants.iter().map(|t| t.s3_access.clone()).collect();
        assert_eq!(
            prefixes,
            [
                S3Access::Prefix { prefix: "private-artifacts/team-a/".into() },
                S3Access::Prefix { prefix: "private-artifacts/team-b/".into() },
                S3Access::Prefix { prefix: "shared/team-c-own/".into() },
                S3Access::Scoped,
            ]
        );
    }

    #[test]
    fn prefixes_that_are_equal_or_nested_are_refused() {
        let with = |prefixes: &[&str]| {
            let mut f = file();
            f.tenants = prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| TenantInput {
                    namespace: format!("team-{i}"),
                    owner: "a@example.com".into(),
                    s3_access: Some(S3AccessMode::Prefix),
                    s3_prefix: Some((*p).to_owned()),
                    ..Default::default()
                })
                .collect();
            match validate(&f) {
                Ok(_) => Vec::new(),
                Err(e) => e.problems.into_iter().map(|p| format!("{}: {}", p.field, p.message)).collect(),
            }
        };
        assert_eq!(with(&["private/a/", "private/b/", "private/ab/"]), Vec::<String>::new());
        assert_eq!(
            with(&["private/a/b/", "private/a/", "private/c/", "private/a/c/", "private/c/"]),
            [
                "tenants[1].s3Prefix: \"private/a/\" overlaps \"private/a/b/\" of tenants[0]: each tenant could read and overwrite the other's artifacts",
                "tenants[3].s3Prefix: \"private/a/c/\" overlaps \"private/a/\" of tenants[1]: each tenant could read and overwrite the other's artifacts",
                "tenants[4].s3Prefix: \"private/c/\" overlaps \"private/c/\" of tenants[2]: each tenant could read and overwrite the other's artifacts",
            ]
        );
    }

    #[test]
    fn valid_file_resolves_seed_defaults() {
        let d = validate(&file()).unwrap();
        let t = &d.tenants[0];
        assert_eq!(t.role_name, "team-a-kf-role");
        assert_eq!(t.policy_name, "kf-team-a-pipeline-s3");
        assert_eq!(t.service_accounts, ["default-editor"]);
        assert_eq!(t.role_path, "/");
        assert_eq!(t.s3_access, S3Access::Scoped);
    }

    #[test]
    fn long_default_role_name_suggests_role_name() {
        let mut f = file();
        f.cluster = "c".repeat(60);
        let err = validate(&f).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].field, "tenants[0].roleName");
        assert!(err.problems[0].fix.contains("set roleName"), "{}", err.problems[0]);
    }

    #[test]
    fn bad_fields_are_all_reported() {
        check(|f| f.tenants[0].namespace = "Team_A".into(), &["tenants[0].namespace"]);
        check(|f| f.tenants[0].owner = "alice".into(), &["tenants[0].owner"]);
        check(|f| f.bucket = "Bad_Bucket".into(), &["bucket"]);
        check(|f| f.bucket = "192.168.1.1".into(), &["bucket"]);
        check(|f| f.region = "uswest2".into(), &["region"]);
        check(|f| f.cluster = "-kf".into(), &["cluster"]);
        check(|f| f.tenants[0].role_name = Some("r".repeat(65)), &["tenants[0].roleName"]);
        check(|f| f.tenants[0].role_name = Some("bad/name".into()), &["tenants[0].roleName"]);
        check(|f| f.tenants[0].role_path = Some("kf".into()), &["tenants[0].rolePath"]);
        check(|f| f.tenants[0].service_accounts = Some(vec![]), &["tenants[0].serviceAccounts"]);
        check(|f| f.tenants[0].service_accounts = Some(vec!["pipeline-*".into()]), &["tenants[0].serviceAccounts[0]"]);
        check(|f| f.tenants[0].s3_access = Some(S3AccessMode::Prefix), &["tenants[0].s3Prefix"]);
        check(|f| f.tenants[0].s3_prefix = Some("x/".into()), &["tenants[0].s3Prefix"]);
        // The defaults' template gives prefix tenants without their own a prefix of their own.
        check(
            |f| {
                f.defaults.s3_prefix = Some("private-artifacts/{namespace}/".into());
                f.tenants[0].s3_access = Some(S3AccessMode::Prefix);
            },
            &[],
        );
        check(|f| f.defaults.s3_prefix = Some("private-artifacts/".into()), &["defaults.s3Prefix"]);
        check(|f| f.defaults.s3_prefix = Some("a/{namespace}/{user}/".into()), &["defaults.s3Prefix"]);
        check(|f| f.defaults.s3_prefix = Some("/{namespace}/".into()), &["defaults.s3Prefix"]);
        check(|f| f.tenants[0].max_session_duration = Some(60), &["tenants[0].maxSessionDuration"]);
        check(|f| f.tenants[0].permissions_boundary = Some("boundary".into()), &["tenants[0].permissionsBoundary"]);
        check(
            |f| {
                f.tenants[0].tags.insert("aws:x".into(), "y".into());
            },
            &["tenants[0].tags.aws:x"],
        );
        check(
            |f| {
                f.defaults.tags.insert("kfp-tenant/cluster".into(), "y".into());
            },
            &["defaults.tags.kfp-tenant/cluster"],
        );
        // No tenants is valid: an empty configuration (with --prune, a way to remove all).
        check(|f| f.tenants.clear(), &[]);
        check(|f| f.trust_policy_quota = Some(100), &["trustPolicyQuota"]);
        for reserved in RESERVED_NAMESPACES {
            check(|f| f.tenants[0].namespace = (*reserved).into(), &["tenants[0].namespace"]);
        }
        check(|f| f.tenants[0].namespace = "kubeflow-user-example-com".into(), &[]);
    }

    #[test]
    fn long_values_are_named_by_length_not_echoed() {
        let mut f = file();
        f.tenants[0].s3_access = Some(S3AccessMode::Prefix);
        f.tenants[0].s3_prefix = Some("p".repeat(5000));
        let err = validate(&f).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].message, "the prefix is 5000 characters, over S3's 1,024-character limit for an object key");
        f.tenants[0].s3_prefix = Some(format!("/{}", "p".repeat(100)));
        let message = &validate(&f).unwrap_err().problems[0].message;
        assert!(message.len() < 160 && message.contains("(101 characters)"), "{message}");
    }

    #[test]
    fn duplicates_name_the_first_use() {
        let mut f = file();
        f.tenants.push(f.tenants[0].clone());
        let err = validate(&f).unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["tenants[1].namespace", "tenants[1].roleName"]);
        assert!(err.problems[0].message.contains("tenants[0]"));
    }

    #[test]
    fn role_names_collide_case_insensitively() {
        check(
            |f| {
                f.tenants[0].role_name = Some("Shared".into());
                f.tenants.push(TenantInput {
                    namespace: "b".into(),
                    owner: "b@example.com".into(),
                    role_name: Some("shared".into()),
                    ..Default::default()
                });
            },
            &["tenants[1].roleName"],
        );
    }

    #[test]
    fn trust_policy_over_quota_is_caught_before_io() {
        let many: Vec<String> = (0..40).map(|i| format!("service-account-{i}")).collect();
        check(|f| f.tenants[0].service_accounts = Some(many.clone()), &["tenants[0].serviceAccounts"]);
        check(
            |f| {
                f.tenants[0].service_accounts = Some(many);
                f.trust_policy_quota = Some(4096)
            },
            &[],
        );
    }

    #[test]
    fn too_many_tags_counts_ownership_markers() {
        let tags: BTreeMap<String, String> = (0..48).map(|i| (format!("t{i}"), "v".into())).collect();
        check(|f| f.defaults.tags = tags, &["tenants[0].tags"]);
    }
}
