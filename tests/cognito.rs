//! The Profiles' owners as Cognito users, on the real
//! aws-sdk-cognitoidentityprovider client over HTTP against moto's
//! cognito-idp: the provider in both kinds of pool, and the life cycle of a
//! tenants file with an `identityProvider` block.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::collections::BTreeSet;

use kfp_tenant_core::apply::{self, ApplyOptions, Providers, Quiet};
use kfp_tenant_core::plan::{self, Action, PlanOptions};
use kfp_tenant_core::ports::{ErrorKind, UserDirectoryApi};
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::spec::{CognitoInput, Desired, IdentityProvider, TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_testkit::{Calls, FakeKube};
use support::{aws, cluster_with_provider};

/// Creates a Cognito user pool in moto and returns its id; with
/// `email_usernames`, the pool's usernames are e-mails
/// (`UsernameAttributes=[email]`, Cognito names the users by a UUID).
async fn user_pool(name: &str, email_usernames: bool) -> String {
    use aws_sdk_cognitoidentityprovider::types::UsernameAttributeType;
    let client = aws_sdk_cognitoidentityprovider::Client::from_conf(
        aws_sdk_cognitoidentityprovider::config::Builder::new()
            .behavior_version(aws_sdk_cognitoidentityprovider::config::BehaviorVersion::latest())
            .region(aws_sdk_cognitoidentityprovider::config::Region::new(support::REGION))
            .endpoint_url(support::moto_endpoint())
            .credentials_provider(aws_sdk_cognitoidentityprovider::config::Credentials::new("testing", "testing", None, None, "test"))
            .build(),
    );
    let mut request = client.create_user_pool().pool_name(name);
    if email_usernames {
        request = request.username_attributes(UsernameAttributeType::Email);
    }
    let out = request.send().await.expect("create user pool");
    out.user_pool.and_then(|p| p.id).expect("a pool id")
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn users_are_found_by_email_made_and_deleted_in_both_kinds_of_pool() {
    let aws = aws().await;
    for email_usernames in [true, false] {
        let pool = user_pool(&format!("kfp-provider-{email_usernames}"), email_usernames).await;
        let email = "dana@example.com";
        assert_eq!(aws.find_users(&pool, email).await.unwrap(), vec![]);
        let made = aws.create_user(&pool, email, false).await.unwrap();
        assert_eq!(made.email, email);
        if email_usernames {
            assert_ne!(made.username, email, "Cognito names users of an e-mail pool by a UUID");
        } else {
            assert_eq!(made.username, email, "kfp-tenant creates users under their e-mail");
        }
        let found = aws.find_users(&pool, email).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].username.as_str(), found[0].status.as_deref()), (made.username.as_str(), Some("FORCE_CHANGE_PASSWORD")));
        assert!(aws.find_users(&pool, "other@example.com").await.unwrap().is_empty(), "the filter is by e-mail");
        let again = aws.create_user(&pool, email, false).await.unwrap_err();
        assert_eq!(again.kind, ErrorKind::AlreadyExists, "{again}");
        aws.delete_user(&pool, &made.username).await.unwrap();
        assert_eq!(aws.find_users(&pool, email).await.unwrap(), vec![]);
    }
    let missing = aws.find_users("us-west-2_NoSuchPool1", "x@example.com").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
}

fn file(cluster: &str, pool: &str, delete_users: bool) -> TenantsFile {
    TenantsFile {
        cluster: cluster.into(),
        region: support::REGION.into(),
        bucket: "kfp-artifacts".into(),
        identity_provider: Some(IdentityProvider {
            cognito: Some(CognitoInput {
                user_pool_id: pool.into(),
                invite: Some(false),
                delete_users: Some(delete_users),
                ..Default::default()
            }),
        }),
        tenants: [("c-one", "erin@example.com"), ("c-two", "erin@example.com"), ("c-three", "frank@example.com")]
            .into_iter()
            .map(|(ns, owner)| TenantInput { namespace: ns.into(), owner: owner.into(), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

/// Apply makes one user per distinct owner, the next plan reads one user per
/// owner and writes nothing, destroy leaves the users; with `deleteUsers`,
/// destroy deletes the one kfp-tenant made and keeps the one made by hand.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn owners_become_users_once_and_only_those_kfp_tenant_made_are_deleted() {
    let aws = aws().await;
    let cluster = "cognito-moto";
    cluster_with_provider(&aws, cluster).await;
    let pool = user_pool("kfp-owners", true).await;
    aws.create_user(&pool, "frank@example.com", false).await.unwrap(); // frank's is made by hand
    let kube = FakeKube::new(Calls::default(), "moto");
    let providers = Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws, directory: &aws };
    let observe = |d: &Desired| {
        let d = d.clone();
        async move { refresh(&ReadSet::for_desired(&d, true), providers, 10, RefreshMode::Auto).await.unwrap() }
    };

    let keep = validate(&file(cluster, &pool, false)).unwrap();
    let first = plan::plan(&keep, &observe(&keep).await, PlanOptions::default()).unwrap();
    aws.counter().reset();
    assert!(apply::apply(&first, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    assert_eq!(aws.counter().calls().get("AdminCreateUser"), Some(&1), "one user for erin's two tenants, none for frank");
    assert_eq!(users(&aws, pool.clone()).await, BTreeSet::from(["erin@example.com", "frank@example.com"]));

    aws.counter().reset();
    let again = plan::plan(&keep, &observe(&keep).await, PlanOptions::default()).unwrap();
    assert!(!again.has_changes());
    let calls = aws.counter().calls();
    assert_eq!(calls.get("ListUsers"), Some(&2), "one lookup per owner: {calls:?}");
    assert!(!calls.keys().any(|op| op.starts_with("Admin")), "a no-op plan writes nothing: {calls:?}");

    let destroy = plan::plan_destroy(&keep, &observe(&keep).await).unwrap();
    assert!(destroy.changes.iter().all(|c| !matches!(c.address, kfp_tenant_core::address::Address::CognitoUser { .. })));
    assert!(apply::apply(&destroy, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    assert_eq!(users(&aws, pool.clone()).await.len(), 2, "destroy leaves users by default");

    // Again, now with deleteUsers: erin's user is kfp-tenant's (recorded when
    // made), frank's is not.
    let delete = validate(&file(cluster, &pool, true)).unwrap();
    let plan = plan::plan(&delete, &observe(&delete).await, PlanOptions::default()).unwrap();
    assert!(apply::apply(&plan, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    let destroy = plan::plan_destroy(&delete, &observe(&delete).await).unwrap();
    let users_deleted: Vec<String> = destroy
        .changes
        .iter()
        .filter(|c| matches!(c.address, kfp_tenant_core::address::Address::CognitoUser { .. }) && c.action == Action::Delete)
        .map(|c| c.address.to_string())
        .collect();
    assert_eq!(users_deleted, [r#"cognito_user["erin@example.com"]"#]);
    assert!(apply::apply(&destroy, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    assert_eq!(users(&aws, pool.clone()).await, BTreeSet::from(["frank@example.com"]));
}

/// Which of the two owners have a user in `pool`.
async fn users(aws: &kfp_tenant_aws::Aws, pool: String) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    for email in ["erin@example.com", "frank@example.com"] {
        if !aws.find_users(&pool, email).await.unwrap().is_empty() {
            found.insert(email);
        }
    }
    found
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_pool_that_does_not_exist_stops_the_plan_naming_the_field() {
    let aws = aws().await;
    let cluster = "cognito-missing";
    cluster_with_provider(&aws, cluster).await;
    let kube = FakeKube::new(Calls::default(), "moto");
    let providers = Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws, directory: &aws };
    let desired = validate(&file(cluster, "us-west-2_NoSuchPool1", false)).unwrap();
    let error = refresh(&ReadSet::for_desired(&desired, true), providers, 10, RefreshMode::Auto).await.unwrap_err();
    let text = kfp_tenant_core::ports::error_chain(&error);
    assert!(text.contains("identityProvider.cognito.userPoolId") && text.contains("us-west-2_NoSuchPool1"), "{text}");
}
