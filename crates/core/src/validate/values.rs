//! Values that mean something else where they end up: an S3 key prefix
//! (in an IAM policy's resources and conditions, and as S3 keys that tools
//! resolve like paths), and a Profile's `resourceQuotaSpec.hard` (resource
//! names and quantities, as Kubernetes parses them). Each rule says why a
//! value is refused, in words that name what it would do.

/// Why `prefix` cannot be a tenant's S3 key prefix; `None` when it can.
///
/// A prefix enters the tenant's inline policy as `arn:...:<bucket>/<prefix>*`
/// and as an `s3:prefix` condition, so IAM's wildcards (`*`, `?`) and
/// policy variables (`${...}`) would widen it; `.` and `..` segments are kept
/// by S3 as they are but resolved by tools and URLs (`private-artifacts/../t2/`
/// reads as another tenant's); invisible and control characters (a newline,
/// a zero-width space) make two prefixes that look equal differ. Only
/// printable ASCII is taken: what a reviewer sees is what IAM compares.
pub fn key_prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some("the prefix is empty".to_owned());
    }
    if let Some(c) = prefix.chars().find(|c| !c.is_ascii_graphic()) {
        return Some(format!(
            "the prefix contains {}, and only printable ASCII without spaces is taken (what a reviewer sees is what IAM compares)",
            describe_char(c)
        ));
    }
    if prefix.starts_with('/') {
        return Some("the prefix starts with '/', and S3 keys do not".to_owned());
    }
    if let Some(c) = prefix.chars().find(|c| matches!(c, '*' | '?')) {
        return Some(format!("the prefix contains {c:?}, a wildcard in IAM policies that would widen the grant"));
    }
    if prefix.contains("${") {
        return Some("the prefix contains \"${\", which starts an IAM policy variable (such as ${aws:username}) in the grant".to_owned());
    }
    let mut segments: Vec<&str> = prefix.split('/').collect();
    if prefix.ends_with('/') {
        segments.pop();
    }
    if let Some(segment) = segments.iter().find(|s| matches!(**s, "." | "..")) {
        return Some(format!(
            "the prefix has a {segment:?} segment: S3 keeps it as it is, but tools and URLs resolve it to another path (another tenant's)"
        ));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Some("the prefix has an empty segment (\"//\"), which clients normalise away".to_owned());
    }
    None
}

/// A character as an error message names it: printable ones quoted, the
/// others by code point and kind.
fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\n' => "a newline".to_owned(),
        '\t' => "a tab".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if c.is_alphanumeric() => format!("{c:?} (U+{:04X}, not ASCII)", c as u32),
        c => format!("the invisible or non-ASCII character U+{:04X}", c as u32),
    }
}

/// Whether `value` is a Kubernetes quantity a ResourceQuota takes:
/// `<number><suffix>` with no sign (quotas are never negative), where the
/// number is `1`, `1.5`, `1.` or `.5` and the suffix is a binary-SI one
/// (`Ki` ... `Ei`), a decimal-SI one (`m`, `k`, `M` ... `E`, or none) or a
/// decimal exponent (`e3`, `E-2`), as apimachinery's `ParseQuantity` reads it.
pub fn is_quota_quantity(value: &str) -> bool {
    let value = value.strip_prefix('+').unwrap_or(value);
    let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, suffix) = value.split_at(split);
    let is_number = |n: &str| n.chars().filter(|c| *c == '.').count() <= 1 && n.chars().any(|c| c.is_ascii_digit());
    if !is_number(number) {
        return false;
    }
    match suffix {
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        _ => match suffix.strip_prefix(['e', 'E']) {
            Some(exponent) => {
                let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
            }
            None => false,
        },
    }
}

/// The resource names a ResourceQuota takes without a `/` (Kubernetes'
/// `IsStandardQuotaResourceName`); hugepages come by prefix.
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

/// Whether `name` is a resource a ResourceQuota can limit: a standard one
/// (`cpu`, `requests.memory`, `pods`, `hugepages-2Mi`, ...) or a qualified
/// name with a prefix (`count/deployments.apps`, `requests.nvidia.com/gpu`,
/// `gold.storageclass.storage.k8s.io/requests.storage`).
pub fn is_quota_resource(name: &str) -> bool {
    match name.split_once('/') {
        None => {
            STANDARD_QUOTA_RESOURCES.contains(&name)
                || ["hugepages-", "requests.hugepages-", "limits.hugepages-"]
                    .iter()
                    .any(|p| name.strip_prefix(p).is_some_and(is_quantity_like))
        }
        Some((prefix, rest)) => is_dns_subdomain(prefix) && is_qualified_name_part(rest),
    }
}

/// A hugepage size such as `2Mi`.
fn is_quantity_like(size: &str) -> bool {
    is_quota_quantity(size)
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(super::is_dns1123_label)
}

/// The name part of a Kubernetes qualified name: at most 63 characters,
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
fn is_qualified_name_part(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().next_back())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_with_a_second_meaning_are_refused() {
        for (prefix, says) in [
            ("../t2/", "\"..\" segment"),
            ("private-artifacts/../t2/", "\"..\" segment"),
            ("a/./b/", "\".\" segment"),
            ("..", "\"..\" segment"),
            ("${aws:username}/", "policy variable"),
            ("team-a/\n", "a newline"),
            ("team-a\u{200b}/", "U+200B"),
            ("équipe/", "not ASCII"),
            ("team a/", "a space"),
            ("a//b/", "empty segment"),
            ("/team-a/", "starts with '/'"),
            ("team-*/", "wildcard"),
            ("", "empty"),
        ] {
            let problem = key_prefix_problem(prefix).unwrap_or_else(|| panic!("{prefix:?} was taken"));
            assert!(problem.contains(says), "{prefix:?}: {problem}");
        }
        for good in ["private-artifacts/team-a/", "team-a/", "a.b/c..d/", "x", "p$x/"] {
            assert_eq!(key_prefix_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn quantities_follow_kubernetes_grammar() {
        for good in ["8", "0.5", ".5", "1.", "100m", "16Gi", "1e3", "1E-2", "+2", "2k", "3Ei"] {
            assert!(is_quota_quantity(good), "{good:?}");
        }
        for bad in ["lots", "", "-1", "1.2.3", "Gi", "16GB", "1e", "1 Gi", "1ki", ".", "e3"] {
            assert!(!is_quota_quantity(bad), "{bad:?}");
        }
    }

    #[test]
    fn quota_resources_are_standard_or_qualified() {
        for good in [
            "cpu",
            "requests.memory",
            "pods",
            "hugepages-2Mi",
            "requests.hugepages-1Gi",
            "count/deployments.apps",
            "requests.nvidia.com/gpu",
            "gold.storageclass.storage.k8s.io/requests.storage",
        ] {
            assert!(is_quota_resource(good), "{good:?}");
        }
        for bad in ["cpuu", "CPU", "", "requests.cpu ", "count/", "/x", "a/b/c", "hugepages-lots"] {
            assert!(!is_quota_resource(bad), "{bad:?}");
        }
    }
}
