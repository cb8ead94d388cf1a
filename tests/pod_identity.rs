//! EKS Pod Identity on the real aws-sdk-eks client over HTTP: moto has no
//! Pod Identity API, so `testkit::pod_identity` serves the five operations
//! in front of moto (every other request passes through to it), and the
//! roles it checks are moto's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kfp_tenant_aws::{Aws, AwsOptions};
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ErrorKind, IamApi, PodIdentityApi, PodIdentityAssociation, Role};
use kfp_tenant_testkit::pod_identity::{PodIdentityOptions, PodIdentityServer};
use serde_json::{Value, json};
use support::{aws, ensure_cluster};

fn role(name: &str, trust: Value) -> Role {
    Role {
        name: name.to_owned(),
        path: "/".to_owned(),
        arn: String::new(),
        trust_policy: PolicyDocument::new(trust),
        description: None,
        tags: BTreeMap::new(),
        max_session_duration: 3600,
        permissions_boundary: None,
    }
}

/// The trust EKS asks for (its user guide, "Create an IAM role for Pod Identity").
fn pods_trust() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
}

async fn through(server: &PodIdentityServer, page_size: i32) -> Aws {
    let options = AwsOptions {
        region: Some(support::REGION.to_owned()),
        eks_endpoint: Some(server.url().to_owned()),
        page_size: Some(page_size),
        max_attempts: Some(1),
        ..Default::default()
    };
    Aws::connect(&options).await.unwrap()
}

fn pair(namespace: &str, service_account: &str, role_arn: &str) -> PodIdentityAssociation {
    PodIdentityAssociation {
        id: String::new(),
        namespace: namespace.to_owned(),
        service_account: service_account.to_owned(),
        role_arn: Some(role_arn.to_owned()),
        tags: BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), "kfp-tenant".to_owned())]),
    }
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn associations_round_trip_page_and_refuse_as_eks_does() {
    let moto = aws().await;
    ensure_cluster(&moto, "pod-identity").await;
    let first = moto.create_role(&role("pi-round-trip-a", pods_trust())).await.unwrap();
    let second = moto.create_role(&role("pi-round-trip-b", pods_trust())).await.unwrap();
    let server = PodIdentityServer::start(&support::moto_endpoint(), PodIdentityOptions::default()).await.unwrap();
    let eks = through(&server, 2).await;
    let cluster = "pod-identity";

    let mut ids = Vec::new();
    for sa in ["runner-0", "runner-1", "runner-2", "runner-3", "runner-4"] {
        let made = eks.create_pod_identity_association(cluster, &pair("team-pi", sa, &first.arn)).await.unwrap();
        assert!(made.id.starts_with("a-") && made.role_arn.as_deref() == Some(first.arn.as_str()), "{made:?}");
        ids.push(made.id);
    }
    // A second association for a pair is refused.
    let taken = eks.create_pod_identity_association(cluster, &pair("team-pi", "runner-0", &second.arn)).await.unwrap_err();
    assert_eq!(taken.kind, ErrorKind::AlreadyExists, "{taken}");
    assert!(taken.to_string().contains("Association already exists"), "{taken}");

    // Listing pages (2 a page here) and gives no role.
    eks.counter().reset();
    let listed = eks.list_pod_identity_associations(cluster).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|a| a.role_arn.is_none()));
    assert_eq!(eks.counter().calls().get("ListPodIdentityAssociations"), Some(&3), "5 associations are 3 pages of 2");

    // Describe gives the role; update changes it; delete removes it.
    let described = eks.describe_pod_identity_association(cluster, &ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (described.role_arn.as_deref(), described.tags.get("app.kubernetes.io/managed-by").map(String::as_str)),
        (Some(first.arn.as_str()), Some("kfp-tenant"))
    );
    eks.update_pod_identity_association(cluster, &ids[0], &second.arn).await.unwrap();
    assert_eq!(eks.describe_pod_identity_association(cluster, &ids[0]).await.unwrap().unwrap().role_arn, Some(second.arn.clone()));
    for id in &ids {
        eks.delete_pod_identity_association(cluster, id).await.unwrap();
    }
    assert_eq!(eks.describe_pod_identity_association(cluster, &ids[0]).await.unwrap(), None);
    let gone = eks.delete_pod_identity_association(cluster, &ids[0]).await.unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound, "{gone}");
    assert!(server.associations().is_empty());

    // Other EKS calls pass through to moto.
    use kfp_tenant_core::ports::ClusterApi;
    assert!(eks.describe_cluster(cluster).await.unwrap().arn.ends_with(":cluster/pod-identity"));
    let unknown = eks.list_pod_identity_associations("no-such-cluster").await.unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::NotFound, "{unknown}");
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn roles_that_eks_would_refuse_are_refused_with_its_words() {
    let moto = aws().await;
    ensure_cluster(&moto, "pod-identity").await;
    let irsa_only = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X"}, "Action": "sts:AssumeRoleWithWebIdentity"}]});
    let wrong = moto.create_role(&role("pi-irsa-only", irsa_only)).await.unwrap();
    let no_tag_session = moto
        .create_role(&role(
            "pi-no-tag-session",
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        ))
        .await
        .unwrap();
    let server = PodIdentityServer::start(&support::moto_endpoint(), PodIdentityOptions::default()).await.unwrap();
    let eks = through(&server, 100).await;
    for arn in [&wrong.arn, &no_tag_session.arn] {
        let refused = eks.create_pod_identity_association("pod-identity", &pair("team-pi-bad", "runner", arn)).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidInput, "{refused}");
        assert!(refused.to_string().contains("Trust policy of the role provided is invalid"), "{refused}");
    }
    let missing = "arn:aws:iam::123456789012:role/pi-no-such-role";
    let refused = eks.create_pod_identity_association("pod-identity", &pair("team-pi-bad", "runner", missing)).await.unwrap_err();
    assert!(refused.to_string().contains("Role provided in the request does not exist"), "{refused}");
    assert!(server.associations().is_empty());
}

/// Right after CreateRole, EKS does not see the role yet: the fake's
/// consistency window reproduces it, and once the role is old enough the
/// same call succeeds.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_role_younger_than_the_consistency_window_does_not_exist_yet() {
    let moto = aws().await;
    ensure_cluster(&moto, "pod-identity").await;
    let options = PodIdentityOptions { consistency_window: Duration::from_secs(2), ..Default::default() };
    let server = PodIdentityServer::start(&support::moto_endpoint(), options).await.unwrap();
    let eks = through(&server, 100).await;
    let fresh = moto.create_role(&role("pi-fresh", pods_trust())).await.unwrap();
    let early = eks.create_pod_identity_association("pod-identity", &pair("team-pi-fresh", "runner", &fresh.arn)).await.unwrap_err();
    assert_eq!(early.kind, ErrorKind::InvalidInput, "{early}");
    assert!(early.to_string().contains("Role provided in the request does not exist"), "{early}");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let made = eks.create_pod_identity_association("pod-identity", &pair("team-pi-fresh", "runner", &fresh.arn)).await.unwrap();
    eks.delete_pod_identity_association("pod-identity", &made.id).await.unwrap();
}
