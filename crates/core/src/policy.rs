//! IAM policy documents: the two kfp-tenant writes, and semantic comparison.
//!
//! IAM stores a document as the caller sent it and returns it URL-encoded; the
//! provider decodes it, and from then on only meaning counts. In IAM's policy
//! grammar every JSON array is a set, and a one-element array means the same as
//! its element, so [`PolicyDocument::canonical`] sorts and de-duplicates arrays
//! and collapses singletons. Two documents are equal when their canonical forms
//! are, which makes key order, whitespace, `"a"` versus `["a"]` and statement
//! order irrelevant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A policy document as JSON. Equality is semantic (see the module docs).
///
/// Immutable and shared: a plan holds each document as observed and as
/// desired, refresh and the fakes hand out copies, so clones share one tree.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyDocument(Arc<Value>);

impl PolicyDocument {
    pub fn new(value: Value) -> Self {
        Self(Arc::new(value))
    }

    /// Parses a JSON text, as read back from IAM after URL-decoding.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text).map(Self::new)
    }

    /// Whether both are the same shared document (not merely equal).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// The canonical form: arrays sorted, de-duplicated, singletons collapsed.
    pub fn canonical(&self) -> Value {
        canonicalize(&self.0)
    }

    /// The document as IAM receives it: compact JSON.
    pub fn to_compact_json(&self) -> String {
        self.0.to_string()
    }

    /// Size as IAM counts it against its quotas (whitespace is not counted).
    pub fn minified_len(&self) -> usize {
        self.to_compact_json().chars().count()
    }

    /// The statements, canonical, keyed for matching across two documents:
    /// by `Sid` where there is one, else by the canonical statement itself.
    pub fn statements(&self) -> Vec<Value> {
        statement_list(&self.canonical())
    }

    /// The statements as written.
    pub fn written_statements(&self) -> Vec<Value> {
        statement_list(self.as_json())
    }
}

/// A document's `Statement` as a list: IAM takes one statement or a list.
fn statement_list(document: &Value) -> Vec<Value> {
    match document.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(one) => vec![one.clone()],
    }
}

/// A value IAM takes as one string or a list of them (an action, a
/// resource, a principal, a condition's values; a JWT's `aud` too), as a
/// list: numbers and booleans as written, nested lists flattened.
pub fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(string_list).collect(),
        Value::Bool(_) | Value::Number(_) => vec![value.to_string()],
        Value::Null | Value::Object(_) => Vec::new(),
    }
}

impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || self.canonical() == other.canonical()
    }
}

impl Eq for PolicyDocument {}

impl fmt::Debug for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyDocument({})", self.0)
    }
}

pub(crate) fn canonicalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), canonicalize(v))).collect::<Map<_, _>>()),
        Value::Array(items) => {
            // Ordered and de-duplicated by compact text: a total, stable order.
            let mut keyed: Vec<(String, Value)> = items
                .iter()
                .map(|v| {
                    let c = canonicalize(v);
                    (c.to_string(), c)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed.dedup_by(|a, b| a.0 == b.0);
            if keyed.len() == 1 {
                keyed.pop().expect("invariant: one element").1
            } else {
                Value::Array(keyed.into_iter().map(|(_, v)| v).collect())
            }
        }
        other => other.clone(),
    }
}

/// What the S3 policy of a tenant allows on the Pipelines bucket: the
/// validated form of [`crate::spec::S3AccessMode`] and `s3Prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum S3Access {
    /// Object read/write, ListBucket and GetBucketLocation on the whole bucket.
    Scoped,
    /// The seed page's `s3:*` on the bucket and its objects.
    Full,
    /// Objects under one key prefix only; ListBucket limited by `s3:prefix`.
    Prefix { prefix: String },
}

const OBJECT_ACTIONS: [&str; 4] = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"];

/// The inline S3 policy for a tenant.
pub fn s3_policy(partition: &str, bucket: &str, access: &S3Access) -> PolicyDocument {
    let bucket_arn = format!("arn:{partition}:s3:::{bucket}");
    let statements = match access {
        S3Access::Full => vec![json!({
            "Sid": "PipelinesBucketFullAccess",
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": [bucket_arn, format!("{bucket_arn}/*")],
        })],
        S3Access::Scoped => vec![
            json!({
                "Sid": "PipelinesBucket",
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
                "Resource": bucket_arn,
            }),
            json!({
                "Sid": "PipelinesObjects",
                "Effect": "Allow",
                "Action": OBJECT_ACTIONS,
                "Resource": format!("{bucket_arn}/*"),
            }),
        ],
        S3Access::Prefix { prefix } => vec![
            json!({
                "Sid": "PipelinesBucketLocation",
                "Effect": "Allow",
                "Action": "s3:GetBucketLocation",
                "Resource": bucket_arn,
            }),
            json!({
                "Sid": "PipelinesListPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [format!("{prefix}*")]}},
            }),
            json!({
                "Sid": "PipelinesPrefixObjects",
                "Effect": "Allow",
                "Action": OBJECT_ACTIONS,
                "Resource": format!("{bucket_arn}/{prefix}*"),
            }),
        ],
    };
    PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The IRSA trust policy: the cluster's OIDC provider may assume the role for
/// exactly these service accounts of the namespace, with audience `sts`.
///
/// `issuer_host` is the issuer without `https://`. `StringEquals` pins the
/// exact subjects: kfp-tenant never writes wildcards there (they would
/// silently never match).
pub fn trust_policy(partition: &str, account_id: &str, issuer_host: &str, namespace: &str, service_accounts: &[String]) -> PolicyDocument {
    let subjects: Vec<String> = service_accounts.iter().map(|sa| format!("system:serviceaccount:{namespace}:{sa}")).collect();
    let sub = if subjects.len() == 1 { Value::String(subjects[0].clone()) } else { json!(subjects) };
    PolicyDocument::new(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:{partition}:iam::{account_id}:oidc-provider/{issuer_host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer_host}:aud"): "sts.amazonaws.com",
                format!("{issuer_host}:sub"): sub,
            }},
        }],
    }))
}

/// The service principal of EKS Pod Identity (the same in every partition).
pub const POD_IDENTITY_PRINCIPAL: &str = "pods.eks.amazonaws.com";

/// The Pod Identity trust policy: EKS Pod Identity may assume the role
/// (`sts:AssumeRole`) and tag the session (`sts:TagSession`), as the EKS
/// user guide requires ("Create IAM role with trust policy required by EKS
/// Pod Identity", eks/latest/userguide/pod-id-role.html), narrowed with the
/// session tags Pod Identity sets ("Enable or disable session tags",
/// pod-id-abac.html#pod-id-abac-tags) to this cluster's ARN, the tenant's
/// namespace and exactly its service accounts, and with `aws:SourceAccount`
/// to this account. Without the narrowing, any association in any cluster
/// of the account could hand the role to any pod.
pub fn pod_identity_trust(account_id: &str, cluster_arn: &str, namespace: &str, service_accounts: &[String]) -> PolicyDocument {
    let accounts = if service_accounts.len() == 1 { Value::String(service_accounts[0].clone()) } else { json!(service_accounts) };
    PolicyDocument::new(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
            "Effect": "Allow",
            "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {
                "aws:SourceAccount": account_id,
                "aws:RequestTag/eks-cluster-arn": cluster_arn,
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": accounts,
            }},
        }],
    }))
}

/// Whether EKS accepts `trust` for a Pod Identity association: a statement
/// allows `pods.eks.amazonaws.com` both `sts:AssumeRole` and
/// `sts:TagSession` (conditions are IAM's to evaluate at assume time).
pub fn admits_pod_identity(trust: &PolicyDocument) -> bool {
    trust.written_statements().iter().any(|s| {
        let actions = string_list(&s["Action"]);
        let allows = |a: &str| actions.iter().any(|x| x == a || x == "sts:*" || x == "*");
        s["Effect"] == "Allow"
            && string_list(&s["Principal"]["Service"]).iter().any(|p| p == POD_IDENTITY_PRINCIPAL)
            && allows("sts:AssumeRole")
            && allows("sts:TagSession")
    })
}

/// One difference between two documents, statement by statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StatementChange {
    Added { statement: Value },
    Removed { statement: Value },
    Changed { sid: String, key: String, added: Vec<Value>, removed: Vec<Value> },
}

/// Statement-level semantic diff, for display. Statements are paired by
/// `Sid`, or, when one statement on each side is left without a partner, with
/// each other; a pair is compared key path by key path (e.g.
/// `Condition.StringEquals.<issuer>:sub`) as sets of values. The others are
/// added or removed whole.
pub fn diff_statements(before: &PolicyDocument, after: &PolicyDocument) -> Vec<StatementChange> {
    let before: Vec<Value> = before.statements();
    let after: Vec<Value> = after.statements();
    let sid = |s: &Value| s.get("Sid").and_then(Value::as_str).map(str::to_owned);
    let mut old: Vec<&Value> = before.iter().filter(|s| !after.contains(s)).collect();
    let mut new: Vec<&Value> = after.iter().filter(|s| !before.contains(s)).collect();
    let mut changes = Vec::new();
    // Pair by Sid.
    old.retain(|o| {
        let Some(id) = sid(o) else { return true };
        match new.iter().position(|n| sid(n).as_deref() == Some(&id)) {
            Some(i) => {
                let n = new.remove(i);
                changes.extend(diff_keys(&id, o, n));
                false
            }
            None => true,
        }
    });
    if let ([o], [n]) = (old.as_slice(), new.as_slice()) {
        changes.extend(diff_keys(&sid(o).or_else(|| sid(n)).unwrap_or_default(), o, n));
        return changes;
    }
    changes.extend(old.into_iter().map(|s| StatementChange::Removed { statement: s.clone() }));
    changes.extend(new.into_iter().map(|s| StatementChange::Added { statement: s.clone() }));
    changes
}

/// Leaves of a statement by key path, each as the set of its values.
fn leaves(value: &Value, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                leaves(v, &p, out);
            }
        }
        Value::Array(items) => {
            out.entry(path.to_owned()).or_default().extend(items.iter().map(Value::to_string));
        }
        other => {
            out.entry(path.to_owned()).or_default().insert(other.to_string());
        }
    }
}

fn diff_keys(sid: &str, old: &Value, new: &Value) -> Vec<StatementChange> {
    let (mut o, mut n) = (BTreeMap::new(), BTreeMap::new());
    leaves(old, "", &mut o);
    leaves(new, "", &mut n);
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let empty = BTreeSet::new();
    let back = |s: &String| serde_json::from_str(s).expect("invariant: re-parsing our own JSON");
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (o.get(key).unwrap_or(&empty), n.get(key).unwrap_or(&empty));
            (a != b).then(|| StatementChange::Changed {
                sid: sid.to_owned(),
                key: key.clone(),
                added: b.difference(a).map(back).collect(),
                removed: a.difference(b).map(back).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_a_list_is_a_list() {
        assert_eq!(string_list(&json!("s3:GetObject")), ["s3:GetObject"]);
        assert_eq!(string_list(&json!(["a", ["b"], true, 3])), ["a", "b", "true", "3"]);
        assert!(string_list(&Value::Null).is_empty() && string_list(&json!({"a": "b"})).is_empty());
        let one = PolicyDocument::new(json!({"Statement": {"Effect": "Allow"}}));
        let none = PolicyDocument::new(json!({"Version": "2012-10-17"}));
        assert_eq!((one.written_statements().len(), none.written_statements().len()), (1, 0));
    }

    fn check_equal(a: &str, b: &str, expected: bool) {
        let (a, b) = (PolicyDocument::parse(a).unwrap(), PolicyDocument::parse(b).unwrap());
        assert_eq!(a == b, expected, "{a:?} vs {b:?}");
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        check_equal(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            r#"{ "Statement": [ { "Resource": "*", "Action": "s3:*", "Effect": "Allow" } ], "Version": "2012-10-17" }"#,
            true,
        );
    }

    #[test]
    fn string_equals_one_element_array() {
        check_equal(
            r#"{"Statement":{"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::b/*"}}"#,
            r#"{"Statement":[{"Action":"s3:GetObject","Resource":["arn:aws:s3:::b/*"]}]}"#,
            true,
        );
    }

    #[test]
    fn statement_and_action_order_do_not_matter() {
        check_equal(
            r#"{"Statement":[{"Sid":"A","Action":["s3:GetObject","s3:PutObject"]},{"Sid":"B"}]}"#,
            r#"{"Statement":[{"Sid":"B"},{"Sid":"A","Action":["s3:PutObject","s3:GetObject"]}]}"#,
            true,
        );
    }

    #[test]
    fn different_actions_differ() {
        check_equal(
            r#"{"Statement":[{"Action":["s3:GetObject","s3:PutObject"]}]}"#,
            r#"{"Statement":[{"Action":["s3:GetObject"]}]}"#,
            false,
        );
    }

    #[test]
    fn pod_identity_trust_is_what_eks_accepts_narrowed_to_cluster_namespace_and_accounts() {
        let arn = "arn:aws:eks:us-west-2:123456789012:cluster/kf-prod";
        let doc = pod_identity_trust("123456789012", arn, "team-a", &["default-editor".into(), "runner".into()]);
        assert!(admits_pod_identity(&doc));
        let statement = &doc.as_json()["Statement"][0];
        assert_eq!(statement["Principal"]["Service"], "pods.eks.amazonaws.com");
        assert_eq!(statement["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
        let cond = &statement["Condition"]["StringEquals"];
        assert_eq!(cond["aws:RequestTag/eks-cluster-arn"], arn);
        assert_eq!(cond["aws:RequestTag/kubernetes-namespace"], "team-a");
        assert_eq!(cond["aws:RequestTag/kubernetes-service-account"], json!(["default-editor", "runner"]));
        assert_eq!(cond["aws:SourceAccount"], "123456789012");
        assert!(!doc.to_compact_json().contains('*'));
    }

    #[test]
    fn only_a_statement_for_pods_with_both_actions_admits_pod_identity() {
        let trust = |principal: Value, action: Value| {
            PolicyDocument::new(json!({"Statement": [{"Effect": "Allow", "Principal": principal, "Action": action}]}))
        };
        let pods = json!({"Service": "pods.eks.amazonaws.com"});
        assert!(admits_pod_identity(&trust(json!({"Service": ["ec2.amazonaws.com", "pods.eks.amazonaws.com"]}), json!("sts:*"))));
        assert!(!admits_pod_identity(&trust(pods, json!("sts:AssumeRole"))), "TagSession is required");
        assert!(!admits_pod_identity(&trust(json!({"Service": "ec2.amazonaws.com"}), json!(["sts:AssumeRole", "sts:TagSession"]))));
        let irsa = trust_policy("aws", "123456789012", "oidc.example.com/id/X", "team-a", &["default-editor".into()]);
        assert!(!admits_pod_identity(&irsa));
    }

    #[test]
    fn trust_policy_pins_audience_and_exact_subjects() {
        let doc = trust_policy(
            "aws-cn",
            "123456789012",
            "oidc.eks.cn-north-1.amazonaws.com.cn/id/ABC",
            "team-a",
            &["default-editor".into(), "runner".into()],
        );
        let cond = &doc.as_json()["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(cond["oidc.eks.cn-north-1.amazonaws.com.cn/id/ABC:aud"], "sts.amazonaws.com");
        assert_eq!(
            cond["oidc.eks.cn-north-1.amazonaws.com.cn/id/ABC:sub"],
            json!(["system:serviceaccount:team-a:default-editor", "system:serviceaccount:team-a:runner"])
        );
        assert_eq!(
            doc.as_json()["Statement"][0]["Principal"]["Federated"],
            "arn:aws-cn:iam::123456789012:oidc-provider/oidc.eks.cn-north-1.amazonaws.com.cn/id/ABC"
        );
        assert!(!doc.to_compact_json().contains('*'));
    }

    #[test]
    fn scoped_policy_is_least_privilege() {
        let doc = s3_policy("aws", "bkt", &S3Access::Scoped);
        let text = doc.to_compact_json();
        assert!(!text.contains("s3:*"));
        assert!(text.contains("arn:aws:s3:::bkt/*"));
        assert!(text.contains("s3:GetBucketLocation"));
    }

    #[test]
    fn prefix_policy_limits_list_and_objects_to_the_prefix() {
        let doc = s3_policy("aws", "bkt", &S3Access::Prefix { prefix: "private-artifacts/team-a/".into() });
        let stmts = doc.statements();
        let list = stmts.iter().find(|s| s["Action"] == "s3:ListBucket").unwrap();
        assert_eq!(list["Condition"]["StringLike"]["s3:prefix"], "private-artifacts/team-a/*");
        let objects = stmts.iter().find(|s| s["Sid"] == "PipelinesPrefixObjects").unwrap();
        assert_eq!(objects["Resource"], "arn:aws:s3:::bkt/private-artifacts/team-a/*");
    }

    #[test]
    fn diff_of_statements_without_sid_names_the_condition_key() {
        let before = trust_policy("aws", "123456789012", "oidc.example/id/X", "team-a", &["default-editor".into()]);
        let after = trust_policy("aws", "123456789012", "oidc.example/id/X", "team-a", &["default-editor".into(), "runner".into()]);
        assert_eq!(
            diff_statements(&before, &after),
            vec![StatementChange::Changed {
                sid: String::new(),
                key: "Condition.StringEquals.oidc.example/id/X:sub".into(),
                added: vec![json!("system:serviceaccount:team-a:runner")],
                removed: vec![],
            }]
        );
    }

    #[test]
    fn diff_names_added_and_removed_actions() {
        let before = s3_policy("aws", "bkt", &S3Access::Scoped);
        let mut after_json = before.as_json().clone();
        after_json["Statement"][1]["Action"] = json!(["s3:GetObject", "s3:GetObjectVersion"]);
        let changes = diff_statements(&before, &PolicyDocument::new(after_json));
        assert_eq!(
            changes,
            vec![StatementChange::Changed {
                sid: "PipelinesObjects".into(),
                key: "Action".into(),
                added: vec![json!("s3:GetObjectVersion")],
                removed: vec![json!("s3:AbortMultipartUpload"), json!("s3:DeleteObject"), json!("s3:PutObject")],
            }]
        );
    }
}
