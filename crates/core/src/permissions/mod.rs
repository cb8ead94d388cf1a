//! What the principal that runs kfp-tenant may need, and no more: the IAM
//! policy for a tenants file (`kfp-tenant permissions`), each statement with
//! a Sid saying what needs it, and (in [`kubernetes`]) the Kubernetes RBAC
//! rules of the commands (`--kubernetes`) and of the controller
//! (`--controller`) with the admission policy that narrows them.
//!
//! Role writes are scoped to the ARNs of the file's roles; attaching a
//! managed policy to a role only for that role's `managedPolicies`
//! (`iam:PolicyARN`), a permissions boundary only that role's
//! (`iam:PermissionsBoundary`); `iam:PassRole` only on the Pod Identity
//! tenants' roles, only to `pods.eks.amazonaws.com` (`iam:PassedToService`);
//! EKS Pod Identity and Cognito only when the file uses them. Too long for a
//! managed policy, the ARNs become the roles' paths and the per-role
//! statements one each. `sts:GetCallerIdentity` needs no permission, and verify's S3
//! probe runs with the tenant role's own credentials.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

pub mod kubernetes;
pub use kubernetes::{Rule, admission_yaml, controller_user, kubernetes_yaml, rbac_yaml};

use crate::policy::PolicyDocument;
use crate::spec::{Desired, Road};

/// What else the policy covers.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    /// The account, when known; `*` otherwise.
    pub account_id: Option<String>,
    /// `--create-oidc-provider`.
    pub create_oidc_provider: bool,
}

/// IAM's limit on a managed policy document (characters, whitespace not counted).
const MAX_MANAGED_POLICY: usize = 6_144;

/// The role actions a tenant's role needs, from create to delete, drift
/// repair (a hand-added permissions boundary removed included, since no
/// file's boundary is ever removed but by that call) and the
/// exact-permissions rule included.
pub const ROLE_ACTIONS: [&str; 14] = [
    "iam:CreateRole",
    "iam:GetRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:DeleteRolePermissionsBoundary",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:DetachRolePolicy",
];

fn statement(sid: &str, actions: &[&str], resources: Value) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
}

/// Statements that name a role's own values (its managed policies, its
/// boundary): one per distinct value set with the roles that share it, each
/// `action` allowed under `condition_key` for those values only; numbered
/// when more than one.
fn per_role(sid: &str, action: &str, condition_key: &str, groups: BTreeMap<Vec<String>, Vec<String>>) -> Vec<Value> {
    let numbered = groups.len() > 1;
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (values, roles))| {
            let sid = if numbered { format!("{sid}{}", i + 1) } else { sid.to_owned() };
            let mut s = statement(&sid, &[action], json!(roles));
            s["Condition"] = json!({"ArnEquals": {condition_key: values}});
            s
        })
        .collect()
}

/// The IAM policy for `desired`: each role write on the roles that need it,
/// by ARN; when that is longer than a managed policy may be, by the roles'
/// paths, each conditioned action then allowed for all the file's values.
pub fn iam_policy(desired: &Desired, needs: &Needs) -> PolicyDocument {
    let document = iam_policy_scoped(desired, needs, false);
    if document.minified_len() <= MAX_MANAGED_POLICY { document } else { iam_policy_scoped(desired, needs, true) }
}

fn iam_policy_scoped(desired: &Desired, needs: &Needs, by_path: bool) -> PolicyDocument {
    let c = &desired.cluster;
    let partition = crate::validate::partition_of_region(&c.region);
    let account = needs.account_id.as_deref().unwrap_or("*");
    // A tenant's role as a Resource: its ARN, or with `by_path` its path.
    let resource = |t: &crate::spec::Tenant| {
        if by_path {
            format!("arn:{partition}:iam::{account}:role{}*", t.role_path)
        } else {
            format!("arn:{partition}:iam::{account}:role{}{}", t.role_path, t.role_name)
        }
    };
    let of = |tenants: &mut dyn Iterator<Item = &crate::spec::Tenant>| -> Vec<String> {
        let set: BTreeSet<String> = tenants.map(resource).collect();
        set.into_iter().collect()
    };
    let roles = of(&mut desired.tenants.iter());
    let cluster_arn = format!("arn:{partition}:eks:{}:{account}:cluster/{}", c.region, c.name);
    let mut statements = vec![
        statement("ReadTheCluster", &["eks:DescribeCluster"], json!(cluster_arn)),
        statement("FindTheOidcProvider", &["iam:ListOpenIDConnectProviders"], json!("*")),
        statement(
            "VerifyReadsTheOidcProvider",
            &["iam:GetOpenIDConnectProvider"],
            json!(format!("arn:{partition}:iam::{account}:oidc-provider/*")),
        ),
        statement(
            "ReadTheAccountsRolesInBulkOrToFindKfpTenants",
            &["iam:GetAccountSummary", "iam:GetAccountAuthorizationDetails", "iam:ListRoles"],
            json!("*"),
        ),
        statement("ManageTheTenantRoles", &ROLE_ACTIONS, json!(roles)),
        statement("CheckTheBucket", &["s3:ListBucket"], json!(format!("arn:{partition}:s3:::{}", c.bucket))),
    ];
    if needs.create_oidc_provider {
        statements.push(statement(
            "CreateTheOidcProvider",
            &["iam:CreateOpenIDConnectProvider"],
            json!(format!("arn:{partition}:iam::{account}:oidc-provider/*")),
        ));
    }
    // Roles grouped by the values they may be given (by path: one group of every value).
    let group = |values: &dyn Fn(&crate::spec::Tenant) -> Vec<String>| {
        let mut groups: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
        for t in &desired.tenants {
            let mut v = values(t);
            v.sort();
            v.dedup();
            if !v.is_empty() {
                groups.entry(v).or_default().insert(resource(t));
            }
        }
        if by_path && groups.len() > 1 {
            let (mut all, mut at): (BTreeSet<String>, BTreeSet<String>) = Default::default();
            for (v, r) in std::mem::take(&mut groups) {
                all.extend(v);
                at.extend(r);
            }
            groups.insert(all.into_iter().collect(), at);
        }
        groups.into_iter().map(|(v, r)| (v, r.into_iter().collect())).collect::<BTreeMap<Vec<String>, Vec<String>>>()
    };
    statements.extend(per_role(
        "AttachTheRolesManagedPolicies",
        "iam:AttachRolePolicy",
        "iam:PolicyARN",
        group(&|t| t.managed_policies.clone()),
    ));
    statements.extend(per_role(
        "SetTheRolesPermissionsBoundaries",
        "iam:PutRolePermissionsBoundary",
        "iam:PermissionsBoundary",
        group(&|t| t.permissions_boundary.iter().cloned().collect()),
    ));
    let pods = of(&mut desired.tenants.iter().filter(|t| t.road == Road::PodIdentity));
    if !pods.is_empty() {
        let associations = format!("arn:{partition}:eks:{}:{account}:podidentityassociation/{}/*", c.region, c.name);
        statements.push(statement(
            "ManageThePodIdentityAssociations",
            &[
                "eks:ListPodIdentityAssociations",
                "eks:DescribePodIdentityAssociation",
                "eks:CreatePodIdentityAssociation",
                "eks:UpdatePodIdentityAssociation",
                "eks:DeletePodIdentityAssociation",
                "eks:TagResource",
            ],
            json!([cluster_arn, associations]),
        ));
        let mut pass = statement("PassThePodIdentityRolesToEks", &["iam:PassRole"], json!(pods));
        pass["Condition"] = json!({"StringEquals": {"iam:PassedToService": "pods.eks.amazonaws.com"}});
        statements.push(pass);
    }
    if let Some(cognito) = &desired.cognito {
        let pool = format!("arn:{partition}:cognito-idp:{}:{account}:userpool/{}", cognito.region, cognito.user_pool_id);
        let mut actions = vec!["cognito-idp:ListUsers", "cognito-idp:AdminCreateUser"];
        if cognito.delete_users {
            actions.push("cognito-idp:AdminDeleteUser");
        }
        statements.push(statement("FindAndMakeTheOwnersCognitoUsers", &actions, json!(pool)));
    }
    PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// Whether `policy` allows `action` on `resource` with these condition keys
/// (IAM's evaluation of an identity policy, [`crate::trust::evaluate_identity`]).
pub fn allows(policy: &PolicyDocument, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
    let request = crate::trust::Request {
        provider_arn: String::new(),
        action: action.to_owned(),
        context: context.iter().map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()])).collect(),
    };
    matches!(crate::trust::evaluate_identity(policy, &request, resource), crate::trust::Decision::Allowed { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{TenantInput, TenantsFile};

    fn file(tenants: Vec<TenantInput>) -> Desired {
        crate::validate::validate(&TenantsFile {
            cluster: "prod".into(),
            region: "us-west-2".into(),
            bucket: "kfp-artifacts".into(),
            tenants,
            ..Default::default()
        })
        .unwrap()
    }

    fn tenant(ns: &str) -> TenantInput {
        TenantInput { namespace: ns.into(), owner: format!("{ns}@example.com"), ..Default::default() }
    }

    fn sids(doc: &PolicyDocument) -> Vec<String> {
        doc.statements().iter().map(|s| s["Sid"].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn role_writes_name_the_files_roles_and_extras_come_only_with_their_use() {
        let plain = iam_policy(
            &file(vec![tenant("team-a"), tenant("team-b")]),
            &Needs { account_id: Some("123456789012".into()), ..Default::default() },
        );
        let roles = plain.statements().iter().find(|s| s["Sid"] == "ManageTheTenantRoles").unwrap()["Resource"].clone();
        assert_eq!(roles, json!(["arn:aws:iam::123456789012:role/team-a-prod-role", "arn:aws:iam::123456789012:role/team-b-prod-role"]));
        let names = sids(&plain);
        for absent in
            ["PassThePodIdentityRolesToEks", "AttachTheRolesManagedPolicies", "FindAndMakeTheOwnersCognitoUsers", "CreateTheOidcProvider"]
        {
            assert!(!names.contains(&absent.to_owned()), "{absent} in {names:?}");
        }
        assert!(plain.statements().iter().all(|s| s["Sid"].is_string()), "every statement says what needs it");

        let mut pods = tenant("team-p");
        pods.identity = Some(Road::PodIdentity);
        pods.managed_policies = Some(vec!["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly".into()]);
        let more = iam_policy(&file(vec![pods]), &Needs { create_oidc_provider: true, ..Default::default() });
        let pass = more.statements().iter().find(|s| s["Sid"] == "PassThePodIdentityRolesToEks").unwrap().clone();
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "pods.eks.amazonaws.com");
        assert_eq!(pass["Resource"], json!("arn:aws:iam::*:role/team-p-prod-role"));
        let attach = more.statements().iter().find(|s| s["Sid"] == "AttachTheRolesManagedPolicies").unwrap().clone();
        assert_eq!(attach["Condition"]["ArnEquals"]["iam:PolicyARN"], json!("arn:aws:iam::aws:policy/AmazonSageMakerReadOnly"));
        assert!(sids(&more).contains(&"CreateTheOidcProvider".to_owned()));
    }

    /// The generated policy under IAM's evaluation: the file's calls pass,
    /// the same calls on what the file does not name do not.
    #[test]
    fn the_policy_allows_the_files_calls_and_nothing_beside_them() {
        let mut pods = tenant("team-p");
        pods.identity = Some(Road::PodIdentity);
        pods.managed_policies = Some(vec!["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly".into()]);
        let doc = iam_policy(&file(vec![tenant("team-a"), pods]), &Needs { account_id: Some("123456789012".into()), ..Default::default() });
        let role = |name: &str| format!("arn:aws:iam::123456789012:role/{name}");
        for action in ROLE_ACTIONS {
            assert!(allows(&doc, action, &role("team-a-prod-role"), &[]), "{action}");
            assert!(!allows(&doc, action, &role("someone-elses-role"), &[]), "{action} on a role not in the file");
        }
        let sagemaker = [("iam:PolicyARN", "arn:aws:iam::aws:policy/AmazonSageMakerReadOnly")];
        assert!(allows(&doc, "iam:AttachRolePolicy", &role("team-p-prod-role"), &sagemaker));
        assert!(!allows(
            &doc,
            "iam:AttachRolePolicy",
            &role("team-p-prod-role"),
            &[("iam:PolicyARN", "arn:aws:iam::aws:policy/AdministratorAccess")]
        ));
        assert!(allows(&doc, "iam:PassRole", &role("team-p-prod-role"), &[("iam:PassedToService", "pods.eks.amazonaws.com")]));
        assert!(!allows(&doc, "iam:PassRole", &role("team-p-prod-role"), &[("iam:PassedToService", "ec2.amazonaws.com")]));
        assert!(!allows(&doc, "iam:PassRole", &role("team-p-prod-role"), &[]));
        let cluster = "arn:aws:eks:us-west-2:123456789012:cluster/prod";
        assert!(allows(&doc, "eks:DescribeCluster", cluster, &[]));
        assert!(!allows(&doc, "eks:DescribeCluster", "arn:aws:eks:us-west-2:123456789012:cluster/other", &[]));
        assert!(allows(&doc, "eks:CreatePodIdentityAssociation", cluster, &[]));
        assert!(allows(&doc, "s3:ListBucket", "arn:aws:s3:::kfp-artifacts", &[]));
        assert!(!allows(&doc, "s3:GetObject", "arn:aws:s3:::kfp-artifacts/x", &[]), "verify's probe uses the tenant's role");
        assert!(!allows(&doc, "iam:CreateUser", "arn:aws:iam::123456789012:user/x", &[]));
    }

    /// Each role may be given only its own managed policies, and only the
    /// Pod Identity tenants' roles may be passed.
    #[test]
    fn attaching_and_passing_are_allowed_per_role() {
        let mut pods = tenant("team-p");
        pods.identity = Some(Road::PodIdentity);
        pods.managed_policies = Some(vec!["arn:aws:iam::123456789012:policy/p".into()]);
        let mut irsa = tenant("team-i");
        irsa.managed_policies = Some(vec!["arn:aws:iam::123456789012:policy/i".into()]);
        let doc =
            iam_policy(&file(vec![pods, irsa, tenant("team-n")]), &Needs { account_id: Some("123456789012".into()), ..Default::default() });
        let role = |name: &str| format!("arn:aws:iam::123456789012:role/{name}-prod-role");
        let policy = |name: &str| [("iam:PolicyARN", format!("arn:aws:iam::123456789012:policy/{name}"))];
        let check = |action: &str, on: &str, context: &[(&str, String)], expected: bool| {
            let context: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(allows(&doc, action, &role(on), &context), expected, "{action} on {on} {context:?}");
        };
        check("iam:AttachRolePolicy", "team-p", &policy("p"), true);
        check("iam:AttachRolePolicy", "team-i", &policy("i"), true);
        check("iam:AttachRolePolicy", "team-p", &policy("i"), false);
        check("iam:AttachRolePolicy", "team-i", &policy("p"), false);
        check("iam:AttachRolePolicy", "team-n", &policy("p"), false);
        let eks = [("iam:PassedToService", "pods.eks.amazonaws.com".to_owned())];
        check("iam:PassRole", "team-p", &eks, true);
        check("iam:PassRole", "team-i", &eks, false);
        check("iam:PassRole", "team-n", &eks, false);
        check("iam:DeleteRolePermissionsBoundary", "team-n", &[], true);
        check("iam:PutRolePermissionsBoundary", "team-n", &[("iam:PermissionsBoundary", "arn:aws:iam::aws:policy/x".into())], false);
    }

    /// A file too long for per-role statements falls back to paths, and the
    /// per-role statements to one each, within IAM's limit.
    #[test]
    fn many_roles_each_with_its_own_policy_fall_back_to_paths() {
        let many: Vec<TenantInput> = (0..60)
            .map(|i| {
                let mut t = tenant(&format!("team-{i:03}"));
                t.identity = Some(if i % 2 == 0 { Road::PodIdentity } else { Road::Irsa });
                t.managed_policies = Some(vec![format!("arn:aws:iam::123456789012:policy/team-{i:03}")]);
                t
            })
            .collect();
        let doc = iam_policy(&file(many), &Needs::default());
        assert!(doc.minified_len() <= MAX_MANAGED_POLICY, "{}", doc.minified_len());
        let attach: Vec<Value> =
            doc.statements().into_iter().filter(|s| crate::policy::string_list(&s["Action"]) == ["iam:AttachRolePolicy"]).collect();
        assert_eq!(attach.len(), 1, "{attach:?}");
        assert_eq!(attach[0]["Resource"], json!("arn:aws:iam::*:role/*"));
        assert!(allows(
            &doc,
            "iam:AttachRolePolicy",
            "arn:aws:iam::1:role/team-001-prod-role",
            &[("iam:PolicyARN", "arn:aws:iam::123456789012:policy/team-059")]
        ));
        assert!(!allows(
            &doc,
            "iam:AttachRolePolicy",
            "arn:aws:iam::1:role/x",
            &[("iam:PolicyARN", "arn:aws:iam::aws:policy/AdministratorAccess")]
        ));
    }

    #[test]
    fn too_many_roles_for_one_policy_become_their_path() {
        let many: Vec<TenantInput> = (0..200).map(|i| tenant(&format!("team-{i:03}"))).collect();
        let doc = iam_policy(&file(many), &Needs::default());
        assert!(doc.minified_len() <= MAX_MANAGED_POLICY, "{}", doc.minified_len());
        let roles = doc.statements().iter().find(|s| s["Sid"] == "ManageTheTenantRoles").unwrap()["Resource"].clone();
        assert_eq!(roles, json!("arn:aws:iam::*:role/*"));
    }
}
