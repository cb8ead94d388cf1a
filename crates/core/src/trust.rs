//! Evaluating a role's trust policy the way IAM does for
//! AssumeRoleWithWebIdentity, because moto's STS does not: which statement
//! admits a web identity token's claims, or why none does.
//!
//! The rules kept (IAM's policy evaluation logic, for this one request):
//! - an explicit `Deny` that matches wins; otherwise an `Allow` that matches
//!   admits; otherwise the request is implicitly denied;
//! - a statement matches when its principal names the caller's federated
//!   provider (or `*`), its action (or `NotAction`) covers
//!   `sts:AssumeRoleWithWebIdentity`, and every condition holds;
//! - conditions: every operator must hold, every key in an operator must
//!   hold, and a key holds when any of its values matches (OR); condition
//!   keys are case-insensitive, values case-sensitive; `StringLike` takes `*`
//!   and `?`; a key missing from the request fails a positive operator and
//!   satisfies a negated one; `...IfExists` holds when the key is missing;
//!   `ForAnyValue:`/`ForAllValues:` treat the claim as a set.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::policy::{PolicyDocument, string_list};

pub const WEB_IDENTITY_ACTION: &str = "sts:AssumeRoleWithWebIdentity";

/// What the request carries: the provider it comes through and its claims
/// as condition keys (`<issuer-host>:sub`, `<issuer-host>:aud`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub provider_arn: String,
    pub action: String,
    /// Condition key (any case) to its values.
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// A web identity request through `provider_arn` for a token of `issuer_host` with these claims.
    pub fn web_identity(provider_arn: &str, issuer_host: &str, sub: &str, aud: &[String]) -> Self {
        let context = BTreeMap::from([(format!("{issuer_host}:sub"), vec![sub.to_owned()]), (format!("{issuer_host}:aud"), aud.to_vec())]);
        Request { provider_arn: provider_arn.to_owned(), action: WEB_IDENTITY_ACTION.to_owned(), context }
    }
}

/// IAM's answer, with the statement that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Statement `index` (with its `Sid`, when it has one) admits the request.
    Allowed { index: usize, sid: Option<String> },
    /// Statement `index` denies it explicitly.
    Denied { index: usize, sid: Option<String> },
    /// No statement admits it; why each statement naming the provider does not.
    NotAdmitted { reasons: Vec<String> },
}

/// `*` and `?` as IAM's StringLike means them. Linear backtracking (to the
/// last `*` only), so a pattern of many stars cannot make it exponential.
pub fn like(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last star seen, and the text position its match would grow from.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `pattern` (an action in a policy, `*` allowed) covers `action`.
fn action_matches(pattern: &str, action: &str) -> bool {
    like(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

fn principal_matches(principal: &Value, provider_arn: &str) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(map) => map.iter().any(|(kind, v)| {
            (kind == "Federated" || kind == "AWS") && string_list(v).iter().any(|p| p == provider_arn || (kind == "AWS" && p == "*"))
        }),
        _ => false,
    }
}

/// Whether one condition operator holds, or the first key that fails it.
fn operator_holds(operator: &str, keys: &Value, request: &Request) -> Result<(), String> {
    let (set, op) = match operator.split_once(':') {
        Some((set @ ("ForAnyValue" | "ForAllValues"), op)) => (Some(set), op),
        _ => (None, operator),
    };
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let compare: fn(&str, &str) -> bool = match op {
        "StringEquals" => |want, got| want == got,
        "StringNotEquals" => |want, got| want != got,
        "StringEqualsIgnoreCase" => |want, got| want.eq_ignore_ascii_case(got),
        "StringNotEqualsIgnoreCase" => |want, got| !want.eq_ignore_ascii_case(got),
        "StringLike" | "ArnLike" | "ArnEquals" => |want, got| like(want, got),
        "StringNotLike" | "ArnNotLike" | "ArnNotEquals" => |want, got| !like(want, got),
        other => return Err(format!("condition operator {other} is not one kfp-tenant evaluates")),
    };
    let negated = op.contains("Not");
    let Some(keys) = keys.as_object() else { return Err(format!("{operator} has no keys")) };
    for (key, wanted) in keys {
        let wanted = string_list(wanted);
        let got = request.context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_slice());
        let holds = match got {
            None | Some([]) => if_exists || negated || set == Some("ForAllValues"),
            Some(got) => match set {
                // Every value of the claim must match one of the wanted.
                Some("ForAllValues") => got.iter().all(|g| wanted.iter().any(|w| compare(w, g))),
                // Negated operators hold when the value matches none of them.
                _ if negated => got.iter().any(|g| wanted.iter().all(|w| compare(w, g))),
                _ => got.iter().any(|g| wanted.iter().any(|w| compare(w, g))),
            },
        };
        if !holds {
            let shown = got.map_or_else(|| "nothing (the token does not carry it)".to_owned(), |g| format!("{g:?}"));
            return Err(format!("{operator} {key} wants {wanted:?}, the token has {shown}"));
        }
    }
    Ok(())
}

/// Why `statement` does not match `request`, or `None` when it does. A
/// trust policy's statement names its principal; an identity policy's
/// (`resource` given) names the resources instead.
fn mismatch(statement: &Value, request: &Request, resource: Option<&str>) -> Option<String> {
    match resource {
        None => {
            let principal = statement.get("Principal").unwrap_or(&Value::Null);
            if !principal_matches(principal, &request.provider_arn) {
                return Some(format!("its principal is not {}", request.provider_arn));
            }
        }
        Some(resource) => {
            let covers = match (statement.get("Resource"), statement.get("NotResource")) {
                (Some(resources), _) => string_list(resources).iter().any(|r| like(r, resource)),
                (None, Some(not)) => !string_list(not).iter().any(|r| like(r, resource)),
                (None, None) => false,
            };
            if !covers {
                return Some(format!("its resource is not {resource}"));
            }
        }
    }
    let covers = match (statement.get("Action"), statement.get("NotAction")) {
        (Some(actions), _) => string_list(actions).iter().any(|a| action_matches(a, &request.action)),
        (None, Some(not)) => !string_list(not).iter().any(|a| action_matches(a, &request.action)),
        (None, None) => false,
    };
    if !covers {
        return Some(format!("its action is not {}", request.action));
    }
    if let Some(conditions) = statement.get("Condition").and_then(Value::as_object) {
        for (operator, keys) in conditions {
            if let Err(why) = operator_holds(operator, keys, request) {
                return Some(why);
            }
        }
    }
    None
}

/// IAM's decision on `request` under `policy`, a trust policy.
pub fn evaluate(policy: &PolicyDocument, request: &Request) -> Decision {
    decide(policy, request, None)
}

/// IAM's decision on `request` (its action and context) on `resource` under
/// `policy`, an identity policy: Action/NotAction, Resource/NotResource with
/// IAM's wildcards, conditions (string and ARN operators, `IfExists`,
/// `ForAnyValue`/`ForAllValues`), Deny before Allow.
pub fn evaluate_identity(policy: &PolicyDocument, request: &Request, resource: &str) -> Decision {
    decide(policy, request, Some(resource))
}

fn decide(policy: &PolicyDocument, request: &Request, resource: Option<&str>) -> Decision {
    let statements = policy.written_statements();
    let sid = |s: &Value| s.get("Sid").and_then(Value::as_str).map(str::to_owned);
    let effect = |s: &Value| s.get("Effect").and_then(Value::as_str).unwrap_or_default().to_owned();
    for (index, statement) in statements.iter().enumerate() {
        if effect(statement) == "Deny" && mismatch(statement, request, resource).is_none() {
            return Decision::Denied { index, sid: sid(statement) };
        }
    }
    let mut reasons = Vec::new();
    for (index, statement) in statements.iter().enumerate().filter(|(_, s)| effect(s) == "Allow") {
        match mismatch(statement, request, resource) {
            None => return Decision::Allowed { index, sid: sid(statement) },
            Some(why) => {
                let name = sid(statement).map_or_else(|| format!("statement {index}"), |s| format!("statement {index} ({s})"));
                reasons.push(format!("{name}: {why}"));
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("no statement allows it".to_owned());
    }
    Decision::NotAdmitted { reasons }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/X";
    const HOST: &str = "oidc.example/id/X";

    fn request(sub: &str, aud: &[&str]) -> Request {
        Request::web_identity(PROVIDER, HOST, sub, &aud.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    fn allow(condition: Value) -> Value {
        json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": WEB_IDENTITY_ACTION, "Condition": condition})
    }

    /// One line per case: the statements, the token's sub and aud, and
    /// whether IAM lets it in ("allow 0", "deny 1", or "no").
    fn check(statements: Value, sub: &str, aud: &[&str], expected: &str) {
        let policy = PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": statements}));
        let got = match evaluate(&policy, &request(sub, aud)) {
            Decision::Allowed { index, .. } => format!("allow {index}"),
            Decision::Denied { index, .. } => format!("deny {index}"),
            Decision::NotAdmitted { .. } => "no".to_owned(),
        };
        assert_eq!(got, expected, "{statements} for {sub} {aud:?}");
    }

    const SA: &str = "system:serviceaccount:team-a:default-editor";

    #[test]
    fn string_equals_pins_sub_and_aud() {
        let pinned = allow(json!({"StringEquals": {"oidc.example/id/X:sub": SA, "oidc.example/id/X:aud": "sts.amazonaws.com"}}));
        check(json!([pinned]), SA, &["sts.amazonaws.com"], "allow 0");
        check(json!([pinned]), "system:serviceaccount:team-a:runner", &["sts.amazonaws.com"], "no");
        check(json!([pinned]), SA, &["other"], "no");
        // Keys are case-insensitive, values are not.
        check(json!([allow(json!({"StringEquals": {"OIDC.EXAMPLE/ID/X:SUB": SA}}))]), SA, &[], "allow 0");
        check(json!([allow(json!({"StringEquals": {"oidc.example/id/X:sub": SA.to_uppercase()}}))]), SA, &[], "no");
    }

    #[test]
    fn lists_are_any_of() {
        let either = allow(json!({"StringEquals": {"oidc.example/id/X:sub": [SA, "system:serviceaccount:team-a:runner"]}}));
        check(json!([either]), "system:serviceaccount:team-a:runner", &[], "allow 0");
        check(json!([either]), "system:serviceaccount:team-b:runner", &[], "no");
    }

    #[test]
    fn a_wildcard_is_a_wildcard_only_under_string_like() {
        check(json!([allow(json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-a:*"}}))]), SA, &[], "no");
        check(json!([allow(json!({"StringLike": {"oidc.example/id/X:sub": "system:serviceaccount:team-a:*"}}))]), SA, &[], "allow 0");
        check(
            json!([allow(json!({"StringLike": {"oidc.example/id/X:sub": "system:serviceaccount:team-?:default-editor"}}))]),
            SA,
            &[],
            "allow 0",
        );
        check(json!([allow(json!({"StringLike": {"oidc.example/id/X:sub": "system:serviceaccount:team-b:*"}}))]), SA, &[], "no");
    }

    #[test]
    fn missing_keys_fail_positive_operators_and_pass_negated_ones() {
        let no_aud = Request { context: BTreeMap::from([(format!("{HOST}:sub"), vec![SA.to_owned()])]), ..request(SA, &[]) };
        let policy = |c: Value| PolicyDocument::new(json!({"Statement": [allow(c)]}));
        let admitted = |c: Value| matches!(evaluate(&policy(c), &no_aud), Decision::Allowed { .. });
        assert!(!admitted(json!({"StringEquals": {"oidc.example/id/X:aud": "sts.amazonaws.com"}})));
        assert!(admitted(json!({"StringNotEquals": {"oidc.example/id/X:aud": "evil"}})));
        assert!(admitted(json!({"StringEqualsIfExists": {"oidc.example/id/X:aud": "sts.amazonaws.com"}})));
        // No condition at all: any token of the provider.
        assert!(admitted(json!({})));
    }

    #[test]
    fn an_explicit_deny_wins_and_principal_and_action_must_match() {
        let pinned = allow(json!({"StringEquals": {"oidc.example/id/X:sub": SA}}));
        let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "sts:*", "Condition": {"StringLike": {"oidc.example/id/X:sub": "*:team-a:*"}}});
        check(json!([pinned, deny]), SA, &[], "deny 1");
        let other_provider = json!({"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/other"}, "Action": WEB_IDENTITY_ACTION});
        check(json!([other_provider]), SA, &[], "no");
        let wrong_action = json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRole"});
        check(json!([wrong_action]), SA, &[], "no");
        let any_sts = json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:*"});
        check(json!([any_sts]), SA, &[], "allow 0");
    }

    #[test]
    fn a_refusal_says_which_condition_failed() {
        let policy = PolicyDocument::new(json!({"Statement": [allow(json!({"StringEquals": {"oidc.example/id/X:sub": SA}}))]}));
        let Decision::NotAdmitted { reasons } = evaluate(&policy, &request("system:serviceaccount:team-a:runner", &[])) else { panic!() };
        assert_eq!(
            reasons,
            [
                r#"statement 0: StringEquals oidc.example/id/X:sub wants ["system:serviceaccount:team-a:default-editor"], the token has ["system:serviceaccount:team-a:runner"]"#
            ]
        );
    }

    #[test]
    fn like_matches_as_iam_does() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*c", "abbbc", true),
            ("a*c", "abbbcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*:x", "a:b:x", true),
            ("x", "X", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYc d", false),
            ("**a", "bba", true),
            ("*?", "", false),
        ] {
            assert_eq!(like(pattern, text), expected, "{pattern} {text}");
        }
        // Many stars against a long text that fails at the end: linear, not exponential.
        assert!(!like(&("*a".repeat(50) + "b"), &"a".repeat(5_000)));
        assert!(like(&("*a".repeat(50) + "b"), &("a".repeat(5_000) + "b")));
    }
}
