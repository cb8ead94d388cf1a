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
    ClusterSpec, DEFAULT_SERVICE_ACCOUNT, DEFAULT_TRUST_POLICY_QUOTA, Desired, MAX_POD_IDENTITY_ASSOCIATIONS, MAX_TRUST_POLICY_QUOTA, Road,
    S3AccessMode, Source, Tenant, TenantDefaults, TenantInput, TenantsFile, default_role_name, policy_name,
};
use crate::tags;

mod rules;
mod values;
use rules::{Validator, default_pipeline_root, nested_roots, overlapping_prefixes};
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

pub use crate::limits::*;

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
    let cluster_ok = v.cluster_name("cluster", &file.cluster);
    v.region("region", &file.region);
    v.bucket("bucket", &file.bucket);
    let quota = trust_policy_quota(&mut v, file.trust_policy_quota);
    defaults(&mut v, &file.defaults);
    // No tenants is a configuration like any other (Terraform plans an
    // empty one): nothing to create, and with --prune every tenant of the
    // cluster goes, after the usual plan and confirmation.
    let mut walk = Walk { file, cluster_ok, quota, namespaces: BTreeMap::new(), role_names: BTreeMap::new() };
    let mut tenants: Vec<Tenant> = file.tenants.iter().enumerate().map(|(i, t)| walk.tenant(&mut v, i, t)).collect();

    overlapping_prefixes(&mut v, &tenants);
    let explicit: Vec<bool> = file.tenants.iter().map(|t| t.pipeline_root.is_some()).collect();
    nested_roots(&mut v, &tenants, &explicit);
    let associations: usize = tenants.iter().filter(|t| t.road == Road::PodIdentity).map(|t| t.service_accounts.len()).sum();
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

/// The trust policy quota in force: IAM's default unless the file sets a
/// raised one (within what IAM grants).
fn trust_policy_quota(v: &mut Validator, set: Option<usize>) -> usize {
    let quota = set.unwrap_or(DEFAULT_TRUST_POLICY_QUOTA);
    if quota < DEFAULT_TRUST_POLICY_QUOTA {
        v.problem(
            "trustPolicyQuota",
            format!("{quota} is below IAM's default of {DEFAULT_TRUST_POLICY_QUOTA}"),
            "leave it out, or set the raised quota of your account",
        );
        return DEFAULT_TRUST_POLICY_QUOTA;
    }
    if quota > MAX_TRUST_POLICY_QUOTA {
        v.problem(
            "trustPolicyQuota",
            format!("{quota} is above IAM's largest trust policy quota, {MAX_TRUST_POLICY_QUOTA}"),
            format!("set the quota your account has (Service Quotas, IAM's role trust policy length), at most {MAX_TRUST_POLICY_QUOTA}"),
        );
        return MAX_TRUST_POLICY_QUOTA;
    }
    quota
}

/// The `defaults` block, each field as a tenant's would be checked.
fn defaults(v: &mut Validator, d: &TenantDefaults) {
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
}

/// The tenants entries in order, with what the earlier ones took.
struct Walk<'f> {
    file: &'f TenantsFile,
    /// The cluster name is valid (a default role name is made from it).
    cluster_ok: bool,
    quota: usize,
    namespaces: BTreeMap<&'f str, usize>,
    role_names: BTreeMap<String, usize>,
}

impl<'f> Walk<'f> {
    /// One tenant entry checked, and filled in from the defaults.
    fn tenant(&mut self, v: &mut Validator, i: usize, t: &'f TenantInput) -> Tenant {
        let (file, d) = (self.file, &self.file.defaults);
        let at = |field: &str| format!("tenants[{i}].{field}");
        let errors_before = v.problems.len();
        v.namespace(&at("namespace"), &t.namespace);
        if let Some(first) = self.namespaces.insert(&t.namespace, i) {
            v.problem(
                at("namespace"),
                format!("namespace {} is already used by tenants[{first}]", shown(&t.namespace)),
                "give every tenant its own namespace",
            );
        }
        v.email(&at("owner"), &t.owner);
        let (role_name, policy) = self.names(v, i, t);
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
        let s3_access = s3_access(v, &at, t, d);
        let tags = role_tags(v, &at, t, d);
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
        let pipeline_root = pipeline_root(v, &at, file, t, &s3_access);
        if v.problems.len() == errors_before {
            // Sizes are only meaningful once the names are valid.
            self.sizes(v, &at, t, identity, &service_accounts, &s3_access);
        }
        Tenant {
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
            pipeline_root,
            source: Source::File,
        }
    }

    /// The tenant's role name (its own or the default) and inline policy name.
    fn names(&mut self, v: &mut Validator, i: usize, t: &TenantInput) -> (String, String) {
        let at = |field: &str| format!("tenants[{i}].{field}");
        let role_name = match &t.role_name {
            Some(name) => {
                v.role_name(&at("roleName"), name, false);
                name.clone()
            }
            None => {
                let name = default_role_name(&t.namespace, &self.file.cluster);
                // A bad cluster name is one problem, not one more per tenant.
                if self.cluster_ok {
                    v.role_name(&at("roleName"), &name, true);
                }
                name
            }
        };
        if let Some(first) = self.role_names.insert(role_name.to_ascii_lowercase(), i) {
            v.problem(
                at("roleName"),
                format!("role name {} is already used by tenants[{first}] (IAM role names are case-insensitive)", shown(&role_name)),
                "set a distinct roleName",
            );
        }
        let policy = policy_name(&t.namespace);
        if policy.len() > MAX_POLICY_NAME {
            v.problem(
                at("namespace"),
                format!("inline policy name {} is over {MAX_POLICY_NAME} characters", shown(&policy)),
                "use a shorter namespace",
            );
        }
        (role_name, policy)
    }

    /// The trust and S3 policies' sizes against IAM's limits. The issuer is
    /// not known before IO, but its length is: EKS issuers have one shape.
    fn sizes(&self, v: &mut Validator, at: &dyn Fn(&str) -> String, t: &TenantInput, identity: Road, sas: &[String], s3: &S3Access) {
        let file = self.file;
        let partition = partition_of_region(&file.region);
        let issuer = example_issuer_host(&file.region);
        let trust = match identity {
            Road::Irsa => policy::trust_policy(partition, "123456789012", &issuer, &t.namespace, sas),
            Road::PodIdentity => {
                let arn = format!("arn:{partition}:eks:{}:123456789012:cluster/{}", file.region, file.cluster);
                policy::pod_identity_trust("123456789012", &arn, &t.namespace, sas)
            }
        };
        let quota = self.quota;
        if trust.minified_len() > quota {
            v.problem(
                at("serviceAccounts"),
                format!("the trust policy would be {} characters, over the quota of {quota}", trust.minified_len()),
                "list fewer service accounts, or raise the IAM quota and set trustPolicyQuota",
            );
        }
        let s3 = policy::s3_policy(partition, &file.bucket, s3);
        if s3.minified_len() > MAX_INLINE_POLICIES {
            v.problem(
                at("s3Prefix"),
                format!("the S3 policy would be {} characters, over IAM's {MAX_INLINE_POLICIES}", s3.minified_len()),
                "use a shorter s3Prefix",
            );
        }
    }
}

/// What a tenant's role may read and write in the bucket: its own prefix,
/// the defaults' template for a prefix tenant, or the bucket.
fn s3_access(v: &mut Validator, at: &dyn Fn(&str) -> String, t: &TenantInput, d: &TenantDefaults) -> S3Access {
    let mode = t.s3_access.or(d.s3_access).unwrap_or(S3AccessMode::Scoped);
    let templated = match (&t.s3_prefix, mode, &d.s3_prefix) {
        (None, S3AccessMode::Prefix, Some(template)) if template.contains(NAMESPACE_PLACEHOLDER) => {
            Some(template.replace(NAMESPACE_PLACEHOLDER, &t.namespace))
        }
        _ => None,
    };
    match (mode, templated.as_ref().or(t.s3_prefix.as_ref())) {
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
    }
}

/// The operator's tags on the tenant's role (the defaults', then its own),
/// with room for kfp-tenant's markers.
fn role_tags(v: &mut Validator, at: &dyn Fn(&str) -> String, t: &TenantInput, d: &TenantDefaults) -> BTreeMap<String, String> {
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
    tags
}

/// Where the tenant's pipelines write: its own root, the default one, or
/// none when it opted out of the pipeline config.
fn pipeline_root(v: &mut Validator, at: &dyn Fn(&str) -> String, file: &TenantsFile, t: &TenantInput, s3: &S3Access) -> Option<String> {
    match (t.pipeline_config.or(file.defaults.pipeline_config).unwrap_or(true), &t.pipeline_root) {
        (true, Some(uri)) => v.pipeline_root(&at("pipelineRoot"), uri, &file.bucket, s3),
        (true, None) => Some(default_pipeline_root(&t.namespace, s3)),
        (false, Some(_)) => {
            v.problem(
                at("pipelineRoot"),
                "pipelineRoot is set but pipelineConfig is false",
                "remove pipelineRoot, or set pipelineConfig: true",
            );
            None
        }
        (false, None) => None,
    }
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
mod tests;
