//! The rules, field by field: each check names the field, what is wrong and
//! the fix, and collects its problem like a compiler error; `validate`
//! (in `mod.rs`) walks the file, fills in defaults and calls these.

use std::collections::{BTreeMap, BTreeSet};

use super::values::{is_quota_quantity, is_quota_resource, key_prefix_problem};
use super::{InputProblem, NAMESPACE_PLACEHOLDER, shown};
use crate::limits::*;
use crate::policy::S3Access;
use crate::spec::{Cognito, DEFAULT_SERVICE_ACCOUNT, Desired, IdentityProvider, Tenant};
use crate::tags;

#[derive(Default)]
pub(super) struct Validator {
    pub(super) problems: Vec<InputProblem>,
}

impl Validator {
    pub(super) fn problem(&mut self, field: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(InputProblem { field: field.into(), message: message.into(), fix: fix.into() });
    }

    /// Whether it is one: a tenant's default role name, made from it, is
    /// judged only when it is.
    pub(super) fn cluster_name(&mut self, field: &str, name: &str) -> bool {
        let ok = !name.is_empty()
            && name.len() <= 100
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            self.problem(
                field,
                format!("{} is not an EKS cluster name", shown(name)),
                "use 1-100 letters, digits, '-' or '_', starting with a letter or digit (CLUSTER_NAME)",
            );
        }
        ok
    }

    /// The `identityProvider` block: a Cognito pool whose id has Cognito's
    /// shape and names the region it is looked for in.
    pub(super) fn identity_provider(&mut self, idp: &IdentityProvider, cluster_region: &str) -> Option<Cognito> {
        let Some(c) = &idp.cognito else {
            self.problem(
                "identityProvider",
                "names no provider",
                "add cognito: {userPoolId: ...}, or remove the block (Dex users are kept by hand, see the README)",
            );
            return None;
        };
        let field = "identityProvider.cognito.userPoolId";
        let id = c.user_pool_id.as_str();
        let shaped = match id.split_once('_') {
            Some((region, rest)) => {
                !region.is_empty()
                    && region.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                    && !rest.is_empty()
                    && rest.chars().all(|ch| ch.is_ascii_alphanumeric())
            }
            None => false,
        };
        if !shaped || id.len() > MAX_USER_POOL_ID {
            self.problem(
                field,
                format!("{} is not a Cognito user pool id", shown(id)),
                "use the pool's id as the console or `aws cognito-idp list-user-pools --max-results 60` shows it, e.g. us-west-2_aBcDeFgHi",
            );
            return None;
        }
        let region = c.region.clone().unwrap_or_else(|| cluster_region.to_owned());
        if let Some(r) = &c.region {
            self.region("identityProvider.cognito.region", r);
        }
        let pool_region = id.split_once('_').map(|(r, _)| r).unwrap_or_default();
        if pool_region != region {
            self.problem(
                field,
                format!("user pool {id} is in region {pool_region}, and the pool is looked for in {region}"),
                format!("set identityProvider.cognito.region: {pool_region}"),
            );
        }
        Some(Cognito {
            user_pool_id: id.to_owned(),
            region,
            invite: c.invite.unwrap_or(true),
            delete_users: c.delete_users.unwrap_or(false),
        })
    }

    pub(super) fn region(&mut self, field: &str, region: &str) {
        let parts: Vec<&str> = region.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            self.problem(field, format!("{} is not an AWS region", shown(region)), "use a region code such as us-west-2 (CLUSTER_REGION)");
        }
    }

    pub(super) fn bucket(&mut self, field: &str, bucket: &str) {
        let chars_ok = bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        let ends_ok = bucket.starts_with(|c: char| c.is_ascii_alphanumeric()) && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        let ip_like = bucket.split('.').count() == 4 && bucket.split('.').all(|p| p.parse::<u8>().is_ok());
        if !(3..=63).contains(&bucket.len()) || !chars_ok || !ends_ok || bucket.contains("..") || ip_like {
            self.problem(
                field,
                format!("{} is not an S3 bucket name", shown(bucket)),
                "use the bucket Kubeflow Pipelines uses: 3-63 lowercase letters, digits, '.' or '-' (S3_BUCKET)",
            );
        }
    }

    pub(super) fn namespace(&mut self, field: &str, name: &str) {
        if !is_dns1123_label(name) {
            self.problem(
                field,
                format!("{} is not a valid namespace", shown(name)),
                "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            );
        } else if RESERVED_NAMESPACES.contains(&name) {
            self.problem(
                field,
                format!("namespace {name} belongs to the cluster itself (Kubernetes, Kubeflow, Istio, cert-manager or Knative) and can never be a tenant"),
                "choose another namespace for this tenant",
            );
        }
    }

    pub(super) fn email(&mut self, field: &str, email: &str) {
        let ok = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !ok {
            self.problem(
                field,
                format!("{} is not an e-mail address", shown(email)),
                "use the owner's e-mail as your auth provider (Dex, Cognito) knows it (PROFILE_USER)",
            );
        }
    }

    pub(super) fn role_name(&mut self, field: &str, name: &str, derived: bool) {
        let chars_ok = name.chars().all(is_iam_name_char);
        if name.is_empty() || !chars_ok {
            let what = if derived { "the default role name" } else { "role name" };
            self.problem(field, format!("{what} {} has characters IAM does not allow", shown(name)), "use letters, digits and +=,.@_-");
        } else if name.len() > MAX_ROLE_NAME {
            if derived {
                self.problem(
                    field,
                    format!(
                        "the default role name {} (<namespace>-<cluster>-role) is {} characters, over IAM's {MAX_ROLE_NAME}",
                        shown(name),
                        name.len()
                    ),
                    "set roleName to a name of at most 64 characters",
                );
            } else {
                self.problem(
                    field,
                    format!("role name {} is {} characters, over IAM's {MAX_ROLE_NAME}", shown(name), name.len()),
                    "shorten it to at most 64 characters",
                );
            }
        }
    }

    pub(super) fn role_path(&mut self, field: &str, path: &str) {
        let ok = path.starts_with('/')
            && path.ends_with('/')
            && path.len() <= MAX_ROLE_PATH
            && !path.contains("//")
            && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
        if !ok {
            self.problem(
                field,
                format!("{} is not an IAM path", shown(path)),
                "use \"/\" or \"/segment/.../\" (printable ASCII, up to 512 characters)",
            );
        }
    }

    pub(super) fn service_accounts(&mut self, field: &str, names: &[String]) {
        if names.is_empty() {
            self.problem(field, "the list is empty", format!("list at least one service account, usually {DEFAULT_SERVICE_ACCOUNT}"));
        }
        for (i, name) in names.iter().enumerate() {
            if let Some(first) = names[..i].iter().position(|n| n == name) {
                self.problem(
                    format!("{field}[{i}]"),
                    format!("{} is listed again (first at {field}[{first}])", shown(name)),
                    "list each service account once",
                );
            }
            let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns1123_label);
            if !ok {
                self.problem(
                    format!("{field}[{i}]"),
                    format!("{} is not a service account name", shown(name)),
                    "use lowercase letters, digits, '-' and '.' (no wildcards: IRSA subjects are exact)",
                );
            }
        }
    }

    /// A prefix with `{namespace}` in it, and no other placeholder.
    pub(super) fn prefix_template(&mut self, field: &str, template: &str) {
        let others = template.replace(NAMESPACE_PLACEHOLDER, "").contains(['{', '}']);
        if !template.contains(NAMESPACE_PLACEHOLDER) || others {
            self.problem(
                field,
                format!("{} is not a prefix template", shown(template)),
                format!("put {NAMESPACE_PLACEHOLDER} where each tenant's namespace goes, e.g. \"private-artifacts/{NAMESPACE_PLACEHOLDER}/\" (a shared prefix would give every tenant the others' artifacts)"),
            );
        } else {
            self.s3_prefix(field, &template.replace(NAMESPACE_PLACEHOLDER, "x"));
        }
    }

    pub(super) fn s3_prefix(&mut self, field: &str, prefix: &str) {
        if prefix.len() > MAX_S3_KEY {
            self.problem(
                field,
                format!("the prefix is {} characters, over S3's 1,024-character limit for an object key", prefix.len()),
                "use a shorter prefix, e.g. \"private-artifacts/team-a/\"",
            );
        } else if let Some(problem) = key_prefix_problem(prefix) {
            self.problem(
                field,
                format!("{} is not a usable key prefix: {problem}", shown(prefix)),
                "use plain path segments of printable ASCII, ending in '/', e.g. \"private-artifacts/team-a/\"",
            );
        }
    }

    pub(super) fn tags(&mut self, field: &str, tags: &BTreeMap<String, String>) {
        for (k, val) in tags {
            let at = format!("{field}.{k}");
            if k.is_empty() || k.len() > 128 || !k.chars().all(is_tag_char) {
                self.problem(at.clone(), "tag key must be 1-128 characters: letters, digits, spaces and _.:/=+-@", "rename the tag");
            } else if k.to_ascii_lowercase().starts_with("aws:") {
                self.problem(at.clone(), "tag keys starting with aws: are reserved by AWS", "rename the tag");
            } else if k.starts_with(tags::PREFIX) {
                self.problem(
                    at.clone(),
                    format!("tag keys starting with {} are kfp-tenant's ownership markers", tags::PREFIX),
                    "rename the tag",
                );
            }
            if val.len() > 256 || !val.chars().all(is_tag_char) {
                self.problem(at, "tag value must be at most 256 characters: letters, digits, spaces and _.:/=+-@", "change the value");
            }
        }
    }

    /// A Profile's `resourceQuotaSpec.hard`: what the API server (or the
    /// profile controller's ResourceQuota) would refuse after the role was
    /// already made.
    pub(super) fn quota(&mut self, field: &str, hard: &BTreeMap<String, String>) {
        for (name, quantity) in hard {
            let at = format!("{field}.{name}");
            if !is_quota_resource(name) {
                self.problem(
                    at.clone(),
                    format!("{} is not a resource a ResourceQuota can limit", shown(name)),
                    "use a standard name (cpu, memory, pods, requests.cpu, limits.memory, requests.storage, ...) or a qualified one (count/deployments.apps, requests.nvidia.com/gpu)",
                );
            }
            if !is_quota_quantity(quantity) {
                self.problem(
                    at,
                    format!("{} is not a Kubernetes quantity", shown(quantity)),
                    "write a non-negative number with an optional suffix, e.g. \"8\", \"500m\", \"16Gi\"",
                );
            }
        }
    }

    pub(super) fn boundary(&mut self, field: &str, arn: &str) {
        let ok = arn.starts_with("arn:")
            && arn.split(':').nth(2) == Some("iam")
            && arn.split(':').nth(5).is_some_and(|r| r.starts_with("policy/"));
        if !ok {
            self.problem(field, format!("{} is not an IAM policy ARN", shown(arn)), "use arn:<partition>:iam::<account>:policy/<name>");
        }
    }

    /// Managed policies to attach: each an IAM policy ARN (an AWS managed
    /// one, `arn:aws:iam::aws:policy/...`, or an account's), no more than
    /// IAM allows on one role.
    pub(super) fn managed_policies(&mut self, field: &str, arns: &[String]) {
        if arns.len() > MAX_MANAGED_POLICIES {
            self.problem(
                field,
                format!("{} managed policies are over IAM's {MAX_MANAGED_POLICIES} per role (10 unless the quota was raised)", arns.len()),
                "attach fewer, or combine them into one customer managed policy",
            );
        }
        for (i, arn) in arns.iter().enumerate() {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let ok = matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
                if !partition.is_empty()
                    && (*account == "aws" || (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())))
                    && resource.strip_prefix("policy/").is_some_and(|name| !name.is_empty() && !name.ends_with('/') && name.chars().all(|c| is_iam_name_char(c) || c == '/')));
            if !ok {
                self.problem(
                    format!("{field}[{i}]"),
                    format!("{} is not an IAM managed policy ARN", shown(arn)),
                    "use arn:<partition>:iam::<account>:policy/<path><name>, or arn:aws:iam::aws:policy/<name> for an AWS managed policy",
                );
            }
        }
    }

    pub(super) fn session(&mut self, field: &str, secs: u32) {
        if !(3600..=43200).contains(&secs) {
            self.problem(field, format!("{secs} seconds is outside IAM's 3600-43200"), "use a value between 3600 (1 h) and 43200 (12 h)");
        }
    }
}

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// The `--target` namespaces that name no tenant of the file.
pub fn unknown_targets<'a>(desired: &Desired, targets: &'a [String]) -> Vec<&'a str> {
    let known: BTreeSet<&str> = desired.tenants.iter().map(|t| t.namespace.as_str()).collect();
    targets.iter().map(String::as_str).filter(|t| !known.contains(t)).collect()
}

/// Two `prefix` tenants whose prefixes are equal or nested would each
/// reach the other's artifacts. `tenants` is in file order.
pub(super) fn overlapping_prefixes(v: &mut Validator, tenants: &[Tenant]) {
    let mut prefixed: Vec<(&str, usize)> = tenants
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.s3_access {
            S3Access::Prefix { prefix } => Some((prefix.as_str(), i)),
            _ => None,
        })
        .collect();
    prefixed.sort();
    // Sorted, every prefix that starts with P follows P directly.
    let mut enclosing: Option<(&str, usize)> = None;
    for (prefix, i) in prefixed {
        match enclosing {
            Some((outer, j)) if prefix.starts_with(outer) => {
                // Named on the tenant that comes later in the file.
                let ((later, mine), (earlier, theirs)) = if i > j { ((i, prefix), (j, outer)) } else { ((j, outer), (i, prefix)) };
                v.problem(
                    format!("tenants[{later}].s3Prefix"),
                    format!(
                        "{} overlaps {} of tenants[{earlier}]: each tenant could read and overwrite the other's artifacts",
                        shown(mine),
                        shown(theirs)
                    ),
                    "give every prefix tenant a prefix of its own that contains no other's, e.g. \"private-artifacts/<namespace>/\"",
                );
            }
            _ => enclosing = Some((prefix, i)),
        }
    }
}

/// The key under the bucket where a tenant's pipelines write, when the file
/// leaves it out: inside a `prefix` tenant's prefix, else KFP's multi-user
/// layout (`private-artifacts/<namespace>/v2/artifacts`).
pub(super) fn default_pipeline_root(namespace: &str, access: &S3Access) -> String {
    match access {
        S3Access::Prefix { prefix } if prefix.ends_with('/') => format!("{prefix}v2/artifacts"),
        S3Access::Prefix { prefix } => format!("{prefix}/v2/artifacts"),
        _ => format!("private-artifacts/{namespace}/v2/artifacts"),
    }
}

impl Validator {
    /// A tenant's `pipelineRoot`: an `s3://` URI in the file's bucket whose
    /// key means what it says and lies inside the tenant's grant. Gives the
    /// key, without a trailing '/'.
    pub(super) fn pipeline_root(&mut self, field: &str, uri: &str, bucket: &str, access: &S3Access) -> Option<String> {
        let example = |key: &str| format!("s3://{bucket}/{key}");
        let Some(rest) = uri.strip_prefix("s3://") else {
            let scheme = uri.split_once("://").map_or("no scheme", |(scheme, _)| scheme);
            self.problem(
                field,
                format!(
                    "{} is not an s3:// URI ({scheme}): the pipelines would write their artifacts outside the tenant's S3 grant",
                    shown(uri)
                ),
                format!("write an s3:// URI in the file's bucket, e.g. {:?}", example("private-artifacts/<namespace>/v2/artifacts")),
            );
            return None;
        };
        let (root_bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if root_bucket != bucket {
            self.problem(
                field,
                format!("{} is in bucket {root_bucket:?}, and the tenant's grant is on bucket {bucket:?}: every run would fail with AccessDenied", shown(uri)),
                format!("use the file's bucket, e.g. {:?}", example(key)),
            );
            return None;
        }
        let key = key.trim_end_matches('/');
        if key.is_empty() {
            self.problem(
                field,
                format!("{} is the bucket itself", shown(uri)),
                format!("give the root a key, e.g. {:?}", example("private-artifacts/<namespace>/v2/artifacts")),
            );
            return None;
        }
        if let Some(problem) = key_prefix_problem(&format!("{key}/")) {
            self.problem(
                field,
                format!("{} is not a usable root: {}", shown(uri), problem.replace("the prefix", "its key")),
                "use plain path segments of printable ASCII",
            );
            return None;
        }
        if let S3Access::Prefix { prefix } = access
            && !format!("{key}/").starts_with(prefix.as_str())
        {
            self.problem(
                field,
                format!(
                    "{} lies outside the tenant's grant, the objects under {:?}: every run would fail with AccessDenied",
                    shown(uri),
                    example(prefix)
                ),
                format!("put the root under s3Prefix, e.g. {:?}", example(&default_pipeline_root("", access))),
            );
            return None;
        }
        Some(key.to_owned())
    }
}

/// Two tenants' pipeline roots may not nest: one tenant's runs would write
/// among the other's artifacts (and, with both grants, read them). Two
/// default roots nest only when their namespaces or prefixes already clash,
/// which is reported on those fields: `explicit` says which roots the file set.
pub(super) fn nested_roots(v: &mut Validator, tenants: &[Tenant], explicit: &[bool]) {
    let mut roots: Vec<(String, usize)> =
        tenants.iter().enumerate().filter_map(|(i, t)| Some((format!("{}/", t.pipeline_root.as_deref()?), i))).collect();
    roots.sort();
    let mut enclosing: Option<(String, usize)> = None;
    for (root, i) in roots {
        match &enclosing {
            Some((outer, j)) if root.starts_with(outer.as_str()) => {
                let (later, earlier) = (i.max(*j), i.min(*j));
                if !explicit[later] && !explicit[earlier] {
                    continue;
                }
                v.problem(
                    format!("tenants[{later}].pipelineRoot"),
                    format!(
                        "the pipeline root of tenants[{later}] ({:?}) and of tenants[{earlier}] ({:?}) nest: one tenant's runs would write among the other's artifacts",
                        tenants[later].pipeline_root.as_deref().unwrap_or_default(),
                        tenants[earlier].pipeline_root.as_deref().unwrap_or_default()
                    ),
                    "give every tenant a root of its own that contains no other's, e.g. private-artifacts/<namespace>/v2/artifacts",
                );
            }
            _ => enclosing = Some((root, i)),
        }
    }
}
