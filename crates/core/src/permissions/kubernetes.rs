//! What kfp-tenant needs of the Kubernetes API: the RBAC rules of the
//! commands (`--kubernetes`) and of the controller (`--controller`), and the
//! ValidatingAdmissionPolicy that narrows, for the user they are bound to,
//! what RBAC cannot.
//!
//! Every ConfigMap kfp-tenant writes is written by server-side apply, a
//! PATCH naming its object, whose create-on-patch RBAC authorizes with the
//! name too; so the ConfigMap rules carry `resourceNames` and a POST of any
//! ConfigMap is refused. A token request (`serviceaccounts/token`) is
//! authorized by the service account's name alone, and the tenants' are
//! named in no fixed list: the admission policy admits only verify's
//! (audience `sts.amazonaws.com`, in a namespace labelled as a Profile's by
//! Kubeflow's profile controller, none of the cluster's own), and the
//! controller holds no token rule at all.

use crate::limits::RESERVED_NAMESPACES;
use crate::ports::{ARTIFACT_REPOSITORIES, LAUNCHER_CONFIG};

/// A Kubernetes RBAC rule, and what needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub why: &'static str,
    pub api_group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Only these objects, when set.
    pub names: &'static [&'static str],
}

const fn rule(why: &'static str, api_group: &'static str, resources: &'static [&'static str], verbs: &'static [&'static str]) -> Rule {
    Rule { why, api_group, resources, verbs, names: &[] }
}

/// The identity record, `kube-system/kfp-tenant-cluster`.
pub const RECORD_NAMESPACE: &str = "kube-system";
/// The identity record's name.
pub const RECORD_NAME: &str = "kfp-tenant-cluster";

/// The label Kubeflow's profile controller gives a Profile's namespace
/// (admission sees a namespace's labels, not its owner references).
pub const PROFILE_NAMESPACE_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "kubeflow-profile");

/// The service account `deploy/` makes for the controller (in the lock's namespace).
pub const CONTROLLER_SERVICE_ACCOUNT: &str = "kfp-tenant";

/// The cluster-wide rules of the commands and of the controller.
pub const CLUSTER_RULES: &[Rule] = &[
    rule(
        "Profiles: listed by plan, written by apply, deleted by destroy, watched by --wait",
        "kubeflow.org",
        &["profiles"],
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    rule("namespaces: a Profile's owner and readiness; audit lists them", "", &["namespaces"], &["get", "list", "watch"]),
    rule(
        "service accounts: kfp-tenant's and every default-editor listed, written and deleted",
        "",
        &["serviceaccounts"],
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    Rule {
        why: "the pipeline ConfigMaps: listed by name, kfp-tenant's keys applied (server-side apply names them)",
        api_group: "",
        resources: &["configmaps"],
        verbs: &["list", "create", "patch"],
        names: &[LAUNCHER_CONFIG, ARTIFACT_REPOSITORIES],
    },
];

/// The commands' cluster-wide rules besides those: verify's tokens.
pub const VERIFY_RULES: &[Rule] =
    &[rule("verify: a token of each granted service account (TokenRequest)", "", &["serviceaccounts/token"], &["create"])];

/// The rules in `kube-system`: the identity record binding the cluster.
pub const RECORD_RULES: &[Rule] = &[Rule {
    why: "the identity record: read by every run, made and written by the first apply",
    api_group: "",
    resources: &["configmaps"],
    verbs: &["get", "create", "patch"],
    names: &[RECORD_NAME],
}];

/// The rules in the lock's namespace: the apply lock (and the controller's election).
pub const LOCK_RULES: &[Rule] =
    &[rule("the apply lock, a Lease", "coordination.k8s.io", &["leases"], &["get", "create", "update", "delete"])];

/// The controller's cluster-wide rules besides the shared ones.
pub const CONTROLLER_RULES: &[Rule] = &[
    rule(
        "KubeflowTenants: listed and watched, their finalizer held and dropped",
        "kfp-tenant.io",
        &["kubeflowtenants"],
        &["get", "list", "watch", "patch"],
    ),
    rule("KubeflowTenants: their status", "kfp-tenant.io", &["kubeflowtenants/status"], &["patch"]),
    rule("an Event for each change and failure", "", &["events"], &["create"]),
    Rule {
        why: "the pipeline ConfigMaps: watched by name, a change by hand repaired",
        api_group: "",
        resources: &["configmaps"],
        verbs: &["watch"],
        names: &[LAUNCHER_CONFIG, ARTIFACT_REPOSITORIES],
    },
];

/// One rule as YAML, its reason above it.
fn rule_yaml(rule: &Rule) -> String {
    let list = |items: &[&str]| items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ");
    let mut out = format!("  # {}\n  - apiGroups: [{:?}]\n    resources: [{}]\n", rule.why, rule.api_group, list(rule.resources));
    if !rule.names.is_empty() {
        out.push_str(&format!("    resourceNames: [{}]\n", list(rule.names)));
    }
    out.push_str(&format!("    verbs: [{}]\n", list(rule.verbs)));
    out
}

fn role_yaml(kind: &str, name: &str, namespace: Option<&str>, rules: &[&Rule]) -> String {
    let mut out = format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n");
    if let Some(ns) = namespace {
        out.push_str(&format!("  namespace: {ns}\n"));
    }
    out.push_str("rules:\n");
    for rule in rules {
        out.push_str(&rule_yaml(rule));
    }
    out
}

fn role_name(controller: bool) -> &'static str {
    if controller { "kfp-tenant-controller" } else { "kfp-tenant" }
}

/// The ClusterRole and the two Roles, as YAML documents (no bindings: the
/// operator binds them to whoever runs kfp-tenant).
pub fn rbac_yaml(lock_namespace: &str, controller: bool) -> String {
    let mut cluster: Vec<&Rule> = CLUSTER_RULES.iter().collect();
    cluster.extend(if controller { CONTROLLER_RULES } else { VERIFY_RULES });
    let name = role_name(controller);
    [
        role_yaml("ClusterRole", name, None, &cluster),
        role_yaml("Role", &format!("{name}-identity-record"), Some(RECORD_NAMESPACE), &RECORD_RULES.iter().collect::<Vec<_>>()),
        role_yaml("Role", &format!("{name}-lock"), Some(lock_namespace), &LOCK_RULES.iter().collect::<Vec<_>>()),
    ]
    .join("---\n")
}

/// The line that opens the admission policy's part of the output.
pub const ADMISSION_HEADER: &str = "# What RBAC cannot narrow, for the user the roles are bound to:";

/// A CEL string literal, inside a single-quoted YAML scalar.
fn cel_string(s: &str) -> String {
    serde_json::Value::from(s).to_string().replace('\'', "''")
}

fn cel_list(items: &[&str]) -> String {
    format!("[{}]", items.iter().map(|i| cel_string(i)).collect::<Vec<_>>().join(", "))
}

/// The ValidatingAdmissionPolicy and its binding for `user` (a service
/// account is `system:serviceaccount:NAMESPACE:NAME`): its ConfigMap writes
/// (create, update, patch, delete) only to the pipeline ConfigMaps outside
/// the cluster's own namespaces and to the identity record; its token
/// requests only verify's (the commands), or none (the controller).
pub fn admission_yaml(user: &str, controller: bool) -> String {
    let name = role_name(controller);
    let config_maps = format!(
        "request.resource.resource != \"configmaps\" || (request.namespace == {} && request.name == {}) || (request.name in {} && !(request.namespace in {}))",
        cel_string(RECORD_NAMESPACE),
        cel_string(RECORD_NAME),
        cel_list(&[LAUNCHER_CONFIG, ARTIFACT_REPOSITORIES]),
        cel_list(RESERVED_NAMESPACES),
    );
    let (tokens, tokens_why) = if controller {
        ("request.resource.resource != \"serviceaccounts\"".to_owned(), "the controller requests no token (kfp-tenant verify does)")
    } else {
        (
            format!(
                "request.resource.resource != \"serviceaccounts\" || (object.spec.audiences == [{}] && namespaceObject.metadata.?labels[?{}] == optional.of({}) && !(request.namespace in {}))",
                cel_string(crate::verify::AUDIENCE),
                cel_string(PROFILE_NAMESPACE_LABEL.0),
                cel_string(PROFILE_NAMESPACE_LABEL.1),
                cel_list(RESERVED_NAMESPACES),
            ),
            "kfp-tenant requests a token only for verify: audience sts.amazonaws.com, for a service account of a Profile's namespace",
        )
    };
    format!(
        "{ADMISSION_HEADER} its ConfigMap writes by name and its token requests.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [\"\"]
        apiVersions: [\"v1\"]
        operations: [\"CREATE\", \"UPDATE\", \"DELETE\"]
        resources: [\"configmaps\"]
      - apiGroups: [\"\"]
        apiVersions: [\"v1\"]
        operations: [\"CREATE\"]
        resources: [\"serviceaccounts/token\"]
  matchConditions:
    - name: the-user-the-roles-are-bound-to
      expression: 'request.userInfo.username == {user}'
  validations:
    - expression: '{config_maps}'
      message: \"kfp-tenant writes only the ConfigMaps {LAUNCHER_CONFIG} and {ARTIFACT_REPOSITORIES} of a tenant's namespace and {RECORD_NAMESPACE}/{RECORD_NAME}\"
      reason: Forbidden
    - expression: '{tokens}'
      message: \"{tokens_why}\"
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}
spec:
  policyName: {name}
  validationActions: [\"Deny\"]
",
        user = cel_string(user),
    )
}

/// What `kfp-tenant permissions --kubernetes` prints: the RBAC, then the
/// admission policy for `user` (without one, a line saying how to get it).
pub fn kubernetes_yaml(lock_namespace: &str, controller: bool, user: Option<&str>) -> String {
    let rbac = rbac_yaml(lock_namespace, controller);
    match user {
        Some(user) => format!("{rbac}---\n{}", admission_yaml(user, controller)),
        None => format!(
            "{rbac}# No admission policy: --user NAME (the user these roles are bound to) adds the one that limits its ConfigMap writes by name and its token requests to verify's.\n"
        ),
    }
}

/// The user `deploy/`'s controller runs as: its service account in the lock's namespace.
pub fn controller_user(lock_namespace: &str) -> String {
    format!("system:serviceaccount:{lock_namespace}:{CONTROLLER_SERVICE_ACCOUNT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rbac_has_a_reason_for_every_rule_and_no_binding() {
        let yaml = rbac_yaml("kubeflow", true);
        assert!(!yaml.contains("Binding"));
        assert_eq!(yaml.matches("  # ").count(), yaml.matches("  - apiGroups").count());
        assert!(yaml.contains("kubeflowtenants/status") && yaml.contains("namespace: kube-system") && yaml.contains("namespace: kubeflow"));
    }

    #[test]
    fn only_the_commands_mint_tokens_and_every_config_map_rule_names_its_objects() {
        assert!(!rbac_yaml("kubeflow", true).contains("serviceaccounts/token"), "the controller never runs verify");
        assert!(rbac_yaml("kubeflow", false).contains("serviceaccounts/token"));
        for rule in CLUSTER_RULES.iter().chain(RECORD_RULES).chain(CONTROLLER_RULES) {
            if rule.resources.contains(&"configmaps") {
                assert!(!rule.names.is_empty(), "{}", rule.why);
            }
        }
    }

    #[test]
    fn the_admission_policy_names_its_user_and_comes_only_with_one() {
        let user = "system:serviceaccount:kubeflow:kfp-tenant";
        let controller = kubernetes_yaml("kubeflow", true, Some(user));
        assert!(controller.contains(&format!("request.userInfo.username == \"{user}\"")), "{controller}");
        assert!(controller.contains("policyName: kfp-tenant-controller") && !controller.contains("audiences"));
        let commands = kubernetes_yaml("kubeflow", false, Some("it's me"));
        assert!(commands.contains("username == \"it''s me\"") && commands.contains("object.spec.audiences == [\"sts.amazonaws.com\"]"));
        let without = kubernetes_yaml("kubeflow", false, None);
        assert!(!without.contains("ValidatingAdmissionPolicy") && without.contains("--user NAME"));
        assert_eq!(controller_user("ops"), "system:serviceaccount:ops:kfp-tenant");
    }
}
