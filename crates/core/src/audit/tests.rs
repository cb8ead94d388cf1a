//! Audit's cases: a trust condition or a role's permissions in, the findings' kinds out.

use serde_json::json;

use super::*;
use crate::policy::PolicyDocument;

const HOST: &str = "oidc.example/id/X";
const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/X";

fn cluster() -> ClusterContext {
    ClusterContext {
        name: "demo".into(),
        arn: String::new(),
        region: "us-west-2".into(),
        bucket: "b".into(),
        account_id: "123456789012".into(),
        partition: "aws".into(),
        oidc_issuer: format!("https://{HOST}"),
        oidc_provider_arn: PROVIDER.into(),
    }
}

fn role(name: &str, condition: Value) -> RoleDetail {
    RoleDetail {
        name: name.into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::123456789012:role/{name}"),
        trust_policy: PolicyDocument::new(json!({"Statement": [{"Effect": "Allow", "Principal": {"Federated": PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition}]})),
        tags: BTreeMap::new(),
        inline_policies: Vec::new(),
        attached_policies: Vec::new(),
        permissions_boundary: None,
    }
}

/// A file with one tenant, team-a.
fn team_a() -> Desired {
    crate::validate::validate(&crate::spec::TenantsFile {
        cluster: "demo".into(),
        region: "us-west-2".into(),
        bucket: "bkt".into(),
        tenants: vec![crate::spec::TenantInput { namespace: "team-a".into(), owner: "a@example.com".into(), ..Default::default() }],
        ..Default::default()
    })
    .unwrap()
}

/// team-a's `kfp-launcher`, sending its runs to `root`.
fn launcher(root: &str) -> ConfigMap {
    let data = BTreeMap::from([("defaultPipelineRoot".to_owned(), root.to_owned())]);
    ConfigMap { namespace: "team-a".into(), name: LAUNCHER_CONFIG.into(), data, annotations: BTreeMap::new() }
}

/// One line per case: a hand-made trust condition and the findings' kinds.
fn check(condition: Value, expected: &[&str]) {
    let desired = team_a();
    let inventory = Inventory {
        roles: vec![role("hand-made", condition.clone())],
        namespaces: ["team-a", "team-b"].map(str::to_owned).into(),
        service_accounts: [("team-a".to_owned(), "default-editor".to_owned()), ("team-b".to_owned(), "default-editor".to_owned())].into(),
        ..Default::default()
    };
    let report = audit(&cluster(), &desired, &inventory);
    let kinds: Vec<String> = report
        .roles
        .iter()
        .flat_map(|r| &r.findings)
        .map(|f| serde_json::to_value(f).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, expected, "{condition}");
}

/// Permissions beyond the file on kfp-tenant's roles, and roles that are
/// not a tenant's reaching the bucket.
#[test]
fn permissions_beyond_the_grant_are_found() {
    let pinned = json!({"StringEquals": {format!("{HOST}:sub"): "system:serviceaccount:team-b:default-editor", format!("{HOST}:aud"): "sts.amazonaws.com"}});
    let policy = |name: &str, statement: Value| crate::ports::InlinePolicy {
        role_name: String::new(),
        policy_name: name.into(),
        document: PolicyDocument::new(json!({"Statement": [statement]})),
    };
    let ours = RoleDetail {
        tags: crate::tags::role_tags(&BTreeMap::new(), "demo", "team-a"),
        inline_policies: vec![
            policy("kf-team-a-pipeline-s3", json!({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})),
            policy("extra", json!({"Effect": "Allow", "Action": "*", "Resource": "*"})),
        ],
        attached_policies: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
        ..role("team-a-demo-role", pinned.clone())
    };
    let theirs = |inline: Vec<crate::ports::InlinePolicy>, attached: Vec<String>| RoleDetail {
        inline_policies: inline,
        attached_policies: attached,
        ..role("hand-made", pinned.clone())
    };
    let kinds = |roles: Vec<RoleDetail>| {
        let inventory = Inventory {
            roles,
            namespaces: ["team-a", "team-b"].map(str::to_owned).into(),
            service_accounts: [("team-b".to_owned(), "default-editor".to_owned())].into(),
            launchers: [("team-a".to_owned(), launcher("s3://b/private-artifacts/team-a/v2/artifacts"))].into(),
        };
        audit(&cluster(), &team_a(), &inventory).roles.iter().flat_map(|r| r.findings.iter().map(|f| f.message())).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(vec![ours]),
        [
            "carries permissions the tenants file does not give (inline policies extra; managed policies arn:aws:iam::aws:policy/ReadOnlyAccess): kfp-tenant apply removes them"
        ]
    );
    let on_bucket = |resource: &str| policy("p", json!({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": resource}));
    // The cluster's bucket is "b".
    assert_eq!(kinds(vec![theirs(vec![on_bucket("arn:aws:s3:::b/*")], vec![])]).len(), 1);
    assert_eq!(kinds(vec![theirs(vec![on_bucket("arn:aws:s3:::*")], vec![])]).len(), 1, "a wildcard that covers it");
    assert!(kinds(vec![theirs(vec![on_bucket("arn:aws:s3:::bkt/*")], vec![])]).is_empty(), "another bucket");
    let denied = policy("d", json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*"}));
    assert!(kinds(vec![theirs(vec![denied], vec![])]).is_empty());
    let wide = kinds(vec![theirs(vec![], vec!["arn:aws:iam::aws:policy/AmazonS3FullAccess".into()])]);
    assert!(
        wide[0].starts_with("managed policy arn:aws:iam::aws:policy/AmazonS3FullAccess lets it reach the pipelines bucket"),
        "{wide:?}"
    );
}

#[test]
fn pod_identity_statements_are_audited_for_this_cluster_only() {
    let arn = "arn:aws:eks:us-west-2:123456789012:cluster/demo";
    let pods_role = |name: &str, condition: Value| RoleDetail {
        trust_policy: PolicyDocument::new(json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"], "Condition": condition}]})),
        ..role(name, json!({}))
    };
    let kinds = |condition: Value| {
        let inventory = Inventory {
            roles: vec![pods_role("pods", condition)],
            namespaces: ["team-a", "team-b"].map(str::to_owned).into(),
            service_accounts: BTreeSet::new(),
            ..Default::default()
        };
        let report = audit(&ClusterContext { arn: arn.into(), ..cluster() }, &team_a(), &inventory);
        report
            .roles
            .iter()
            .flat_map(|r| &r.findings)
            .map(|f| serde_json::to_value(f).unwrap()["kind"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let pinned = |ns: &str| {
        json!({"StringEquals": {"aws:RequestTag/eks-cluster-arn": arn, "aws:RequestTag/kubernetes-namespace": ns,
            "aws:RequestTag/kubernetes-service-account": "default-editor"}})
    };
    assert_eq!(kinds(pinned("team-b")), Vec::<String>::new(), "what kfp-tenant writes");
    assert_eq!(kinds(json!({})), ["pods_any_cluster", "pods_any_namespace", "pods_any_service_account"]);
    assert_eq!(kinds(pinned("team-a")), ["not_the_tenant_role"], "a tenant's namespace on another role");
    assert_eq!(kinds(pinned("gone")), ["dangling_namespace"]);
    let elsewhere = json!({"StringEquals": {"aws:RequestTag/eks-cluster-arn": "arn:aws:eks:us-west-2:123456789012:cluster/other"}});
    assert_eq!(kinds(elsewhere), Vec::<String>::new(), "another cluster's statement is not this audit's");
}

#[test]
fn findings_by_condition() {
    let aud = json!("sts.amazonaws.com");
    check(
        json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-b:default-editor", "oidc.example/id/X:aud": aud}}),
        &[],
    );
    check(json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-b:default-editor"}}), &["no_aud"]);
    check(json!({"StringEquals": {"oidc.example/id/X:aud": aud}}), &["no_sub"]);
    check(
        json!({"StringLike": {"oidc.example/id/X:sub": "system:serviceaccount:team-b:*", "oidc.example/id/X:aud": aud}}),
        &["sub_wildcard"],
    );
    check(
        json!({"StringLike": {"oidc.example/id/X:sub": "system:serviceaccount:team-*", "oidc.example/id/X:aud": aud}}),
        &["sub_wildcard", "not_the_tenant_role"],
    );
    check(
        json!({"StringLike": {"oidc.example/id/X:sub": "system:serviceaccount:team-b:default-editor"}, "StringEquals": {"oidc.example/id/X:aud": aud}}),
        &["sub_string_like"],
    );
    check(
        json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:gone:default-editor", "oidc.example/id/X:aud": aud}}),
        &["dangling_namespace"],
    );
    check(
        json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-b:runner", "oidc.example/id/X:aud": aud}}),
        &["dangling_service_account"],
    );
    check(
        json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-a:default-editor", "oidc.example/id/X:aud": aud}}),
        &["not_the_tenant_role"],
    );
}

#[test]
fn roles_not_naming_the_provider_are_left_out_and_managed_ones_outside_the_file_are_named() {
    let desired = team_a();
    let mut other = role("elsewhere", json!({}));
    other.trust_policy = PolicyDocument::new(
        json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    );
    let mut left = role(
        "team-z-demo-role",
        json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-z:default-editor", "oidc.example/id/X:aud": "sts.amazonaws.com"}}),
    );
    left.tags = tags::role_tags(&BTreeMap::new(), "demo", "team-z");
    let inventory = Inventory {
        roles: vec![other, left],
        namespaces: ["team-z".to_owned()].into(),
        service_accounts: [("team-z".to_owned(), "default-editor".to_owned())].into(),
        ..Default::default()
    };
    let report = audit(&cluster(), &desired, &inventory);
    assert_eq!(report.roles_read, 2);
    assert_eq!(report.roles.len(), 1);
    assert_eq!(report.roles[0].findings, [Finding::NotInFile { namespace: "team-z".into() }]);
    // A KubeflowTenant's tenant is the controller's, not missing from the file.
    let mut inventory = inventory;
    inventory.roles[1].tags.insert(tags::KUBEFLOW_TENANT.into(), "team-z".into());
    let report = audit(&cluster(), &desired, &inventory);
    assert_eq!(report.roles.len(), 1);
    assert_eq!(report.roles[0].findings, []);
}

/// kfp-tenant's role for team-a (a prefix tenant): its launcher root inside
/// the prefix passes; KFP's MinIO default, another bucket, beside the
/// prefix or no launcher config at all are findings naming root and grant.
#[test]
fn a_launcher_root_outside_the_tenants_grant_is_a_finding() {
    let mut file = crate::spec::TenantsFile {
        cluster: "demo".into(),
        region: "us-west-2".into(),
        bucket: "bkt".into(),
        tenants: vec![crate::spec::TenantInput {
            namespace: "team-a".into(),
            owner: "a@example.com".into(),
            s3_access: Some(crate::spec::S3AccessMode::Prefix),
            s3_prefix: Some("private-artifacts/team-a/".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut tenant_role = role(
        "team-a-demo-role",
        json!({"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:team-a:default-editor", "oidc.example/id/X:aud": "sts.amazonaws.com"}}),
    );
    tenant_role.tags = tags::role_tags(&BTreeMap::new(), "demo", "team-a");
    let findings = |file: &crate::spec::TenantsFile, root: Option<&str>| {
        let launchers = root.map(|r| ("team-a".to_owned(), launcher(r))).into_iter().collect();
        let inventory = Inventory {
            roles: vec![tenant_role.clone()],
            namespaces: ["team-a".to_owned()].into(),
            service_accounts: [("team-a".to_owned(), "default-editor".to_owned())].into(),
            launchers,
        };
        let cluster = ClusterContext { bucket: "bkt".into(), ..cluster() };
        audit(&cluster, &crate::validate::validate(file).unwrap(), &inventory).roles[0].findings.clone()
    };
    assert_eq!(findings(&file, Some("s3://bkt/private-artifacts/team-a/v2/artifacts")), []);
    for (root, says) in [
        (Some("minio://mlpipeline/private-artifacts/team-a/v2/artifacts"), "another store than"),
        (Some("s3://other/private-artifacts/team-a/v2/artifacts"), "another bucket than"),
        (Some("s3://bkt/shared/v2/artifacts"), "outside"),
        (None, "does not exist"),
    ] {
        let found = findings(&file, root);
        let [Finding::PipelineRootOutsideGrant { namespace, problem }] = found.as_slice() else { panic!("{root:?}: {found:?}") };
        assert_eq!(namespace, "team-a");
        assert!(problem.contains(says) && problem.contains("the objects under s3://bkt/private-artifacts/team-a/"), "{problem}");
    }
    // Opted out, with no launcher config: nothing says where its runs go.
    file.tenants[0].pipeline_config = Some(false);
    assert_eq!(findings(&file, None), []);
}
