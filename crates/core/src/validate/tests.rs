//! Validation's cases: one `check(edit, fields)` line per rule, and the defaults it fills in.

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
    check(|f| f.trust_policy_quota = Some(10_000), &["trustPolicyQuota"]);
    // An invalid cluster name is one problem, not one more per default role name.
    check(|f| f.cluster = "bad/cluster".into(), &["cluster"]);
    check(|f| f.trust_policy_quota = Some(4096), &[]);
    check(|f| f.tenants[0].service_accounts = Some(vec!["a".into(), "b".into(), "a".into()]), &["tenants[0].serviceAccounts[2]"]);
    check(|f| f.defaults.service_accounts = Some(vec!["a".into(), "a".into()]), &["defaults.serviceAccounts[1]"]);
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
    // A huge value (a secret pasted by mistake, say) is never echoed whole,
    // nor the names made from it.
    let mut f = file();
    f.tenants[0].namespace = "x".repeat(1_000_000);
    let said = validate(&f).unwrap_err().to_string();
    assert!(said.len() < 2_000 && said.contains("(1000000 characters)"), "{} bytes", said.len());
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
