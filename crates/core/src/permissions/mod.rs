//! What the principal that runs kfp-tenant may need, and no more: the IAM
//! policy for a tenants file (`kfp-tenant permissions`), each statement with
//! a Sid saying what needs it, and (in [`kubernetes`]) the Kubernetes RBAC
//! rules of the commands (`--kubernetes`) and of the controller
//! (`--controller`) with the admission policy that narrows them.
//!
//! Role writes are scoped to the ARNs of the file's roles; attaching a
//! managed policy to those listed in the file (`iam:PolicyARN`), a
//! permissions boundary to those the file sets (`iam:PermissionsBoundary`);
//! `iam:PassRole` only for Pod Identity, only to `pods.eks.amazonaws.com`
//! (`iam:PassedToService`); EKS Pod Identity and Cognito only when the file
//! uses them. `sts:GetCallerIdentity` needs no permission, and verify's S3
//! probe runs with the tenant role's own credentials.

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
/// repair and the exact-permissions rule included.
pub const ROLE_ACTIONS: [&str; 13] = [
    "iam:CreateRole",
    "iam:GetRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
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

/// The IAM policy for `desired`.
pub fn iam_policy(desired: &Desired, needs: &Needs) -> PolicyDocument {
    let c = &desired.cluster;
    let partition = crate::validate::partition_of_region(&c.region);
    let account = needs.account_id.as_deref().unwrap_or("*");
    let mut roles: Vec<String> =
        desired.tenants.iter().map(|t| format!("arn:{partition}:iam::{account}:role{}{}", t.role_path, t.role_name)).collect();
    roles.sort();
    roles.dedup();
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
    let mut policies: Vec<&str> = desired.tenants.iter().flat_map(|t| t.managed_policies.iter().map(String::as_str)).collect();
    policies.sort();
    policies.dedup();
    if !policies.is_empty() {
        let mut attach = statement("AttachTheFilesManagedPolicies", &["iam:AttachRolePolicy"], json!(roles));
        attach["Condition"] = json!({"ArnEquals": {"iam:PolicyARN": policies}});
        statements.push(attach);
    }
    let mut boundaries: Vec<&str> = desired.tenants.iter().filter_map(|t| t.permissions_boundary.as_deref()).collect();
    boundaries.sort();
    boundaries.dedup();
    if !boundaries.is_empty() {
        let mut put = statement("SetTheFilesPermissionsBoundaries", &["iam:PutRolePermissionsBoundary"], json!(roles));
        put["Condition"] = json!({"ArnEquals": {"iam:PermissionsBoundary": boundaries}});
        statements.push(put);
        statements.push(statement("RemoveAPermissionsBoundary", &["iam:DeleteRolePermissionsBoundary"], json!(roles)));
    }
    if desired.tenants.iter().any(|t| t.road == Road::PodIdentity) {
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
        let mut pass = statement("PassTheTenantRolesToPodIdentity", &["iam:PassRole"], json!(roles));
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
    let mut document = PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": statements}));
    // Too many roles for one managed policy: their path instead, as narrow as the file allows.
    if document.minified_len() > MAX_MANAGED_POLICY {
        let mut paths: Vec<String> =
            desired.tenants.iter().map(|t| format!("arn:{partition}:iam::{account}:role{}*", t.role_path)).collect();
        paths.sort();
        paths.dedup();
        let mut json = document.as_json().clone();
        let listed = PolicyDocument::new(json!({"Resource": roles})).as_json()["Resource"].clone();
        for s in json["Statement"].as_array_mut().into_iter().flatten() {
            if s["Resource"] == listed {
                s["Resource"] = json!(paths);
            }
        }
        document = PolicyDocument::new(json);
    }
    document
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
        for absent in [
            "PassTheTenantRolesToPodIdentity",
            "AttachTheFilesManagedPolicies",
            "FindAndMakeTheOwnersCognitoUsers",
            "CreateTheOidcProvider",
        ] {
            assert!(!names.contains(&absent.to_owned()), "{absent} in {names:?}");
        }
        assert!(plain.statements().iter().all(|s| s["Sid"].is_string()), "every statement says what needs it");

        let mut pods = tenant("team-p");
        pods.identity = Some(Road::PodIdentity);
        pods.managed_policies = Some(vec!["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly".into()]);
        let more = iam_policy(&file(vec![pods]), &Needs { create_oidc_provider: true, ..Default::default() });
        let pass = more.statements().iter().find(|s| s["Sid"] == "PassTheTenantRolesToPodIdentity").unwrap().clone();
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "pods.eks.amazonaws.com");
        assert_eq!(pass["Resource"], json!("arn:aws:iam::*:role/team-p-prod-role"));
        let attach = more.statements().iter().find(|s| s["Sid"] == "AttachTheFilesManagedPolicies").unwrap().clone();
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

    #[test]
    fn too_many_roles_for_one_policy_become_their_path() {
        let many: Vec<TenantInput> = (0..200).map(|i| tenant(&format!("team-{i:03}"))).collect();
        let doc = iam_policy(&file(many), &Needs::default());
        assert!(doc.minified_len() <= MAX_MANAGED_POLICY, "{}", doc.minified_len());
        let roles = doc.statements().iter().find(|s| s["Sid"] == "ManageTheTenantRoles").unwrap()["Resource"].clone();
        assert_eq!(roles, json!("arn:aws:iam::*:role/*"));
    }
}
