//! The AWS provider on the real SDK over HTTP against moto (started by
//! scripts/test), and the engine driving it end to end.
//!
//! Tests share one moto server, so each uses its own names. moto gives every
//! EKS cluster the same issuer, so the one test that removes the OIDC
//! provider takes [`PROVIDER`] for writing; the others hold it for reading.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::collections::BTreeMap;

use kfp_tenant_core::address::{Address, Kind};
use kfp_tenant_core::apply::{self, ApplyOptions, Providers, Quiet};
use kfp_tenant_core::plan::{self, Action, PlanOptions};
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ClusterApi, ErrorKind, IamApi, Role};
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::spec::{S3AccessMode, TenantInput, TenantsFile};
use kfp_tenant_core::tags;
use kfp_tenant_core::validate;
use kfp_tenant_testkit::{Calls, FakeKube};
use serde_json::json;
use support::{aws, cluster_with_provider, ensure_cluster};
use tokio::sync::RwLock;

static PROVIDER: RwLock<()> = RwLock::const_new(());

fn trust(sub: &str) -> PolicyDocument {
    PolicyDocument::new(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.example.com/id/X:sub": sub, "oidc.example.com/id/X:aud": "sts.amazonaws.com"}}
        }]
    }))
}

fn role(name: &str, path: &str) -> Role {
    Role {
        name: name.to_owned(),
        path: path.to_owned(),
        arn: String::new(),
        trust_policy: trust("system:serviceaccount:team-a:default-editor"),
        description: Some("a test role".to_owned()),
        tags: BTreeMap::from([("team".to_owned(), "ml".to_owned())]),
        max_session_duration: 3600,
        permissions_boundary: None,
    }
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn caller_identity_gives_account_and_partition() {
    let aws = aws().await;
    let id = aws.caller_identity().await.unwrap();
    assert_eq!((id.account_id.as_str(), id.partition.as_str()), ("123456789012", "aws"));
    assert_eq!(aws.counter().calls().get("GetCallerIdentity"), Some(&1));
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn cluster_issuer_and_oidc_provider() {
    let _only_me = PROVIDER.write().await;
    let aws = aws().await;
    let err = aws.describe_cluster("no-such-cluster").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("no EKS cluster no-such-cluster in region us-west-2"), "{err}");

    ensure_cluster(&aws, "oidc-test").await;
    // Remove any provider for the issuer, as on an account where nobody ran eksctl.
    let issuer = aws.describe_cluster("oidc-test").await.unwrap().oidc.issuer_url;
    if let Some(arn) = aws.describe_cluster("oidc-test").await.unwrap().oidc.provider_arn {
        aws.iam_client().delete_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await.unwrap();
    }
    let described = aws.describe_cluster("oidc-test").await.unwrap();
    assert_eq!(described.arn, "arn:aws:eks:us-west-2:123456789012:cluster/oidc-test");
    assert!(described.endpoint.starts_with("https://") && described.certificate_authority.is_some(), "{described:?}");
    let oidc = described.oidc;
    assert!(oidc.issuer_url.starts_with("https://"), "{}", oidc.issuer_url);
    assert_eq!(oidc.provider_arn, None);

    let arn = aws.create_oidc_provider(&issuer).await.unwrap();
    let oidc = aws.describe_cluster("oidc-test").await.unwrap().oidc;
    assert_eq!(oidc.provider_arn.as_deref(), Some(arn.as_str()));
    assert!(arn.ends_with(&format!("oidc-provider/{}", oidc.issuer_host())), "{arn}");
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn role_round_trip_create_read_update_delete() {
    let aws = aws().await;
    let name = "roundtrip-role";
    let created = aws.create_role(&role(name, "/kfp-test/")).await.unwrap();
    assert_eq!(created.arn, format!("arn:aws:iam::123456789012:role/kfp-test/{name}"));

    let read = aws.get_role(name).await.unwrap().expect("role exists");
    assert_eq!(read.trust_policy, role(name, "/").trust_policy, "documents round-trip after URL-decoding");
    assert_eq!(read.tags, BTreeMap::from([("team".to_owned(), "ml".to_owned())]));
    assert_eq!((read.path.as_str(), read.description.as_deref(), read.max_session_duration), ("/kfp-test/", Some("a test role"), 3600));

    aws.update_trust_policy(name, &trust("system:serviceaccount:team-a:runner")).await.unwrap();
    aws.update_role(name, Some("changed"), 7200).await.unwrap();
    aws.tag_role(name, &BTreeMap::from([("cost".to_owned(), "42".to_owned())])).await.unwrap();
    aws.untag_role(name, &["team".to_owned()]).await.unwrap();
    let read = aws.get_role(name).await.unwrap().unwrap();
    assert_eq!(read.trust_policy, trust("system:serviceaccount:team-a:runner"));
    assert_eq!((read.description.as_deref(), read.max_session_duration), (Some("changed"), 7200));
    assert_eq!(read.tags, BTreeMap::from([("cost".to_owned(), "42".to_owned())]));

    // An inline policy whose text needs percent-encoding on the wire.
    let doc = PolicyDocument::new(json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Prefix", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": ["private artifacts/team+a=1/*", "ü/&?#%"]}}}]
    }));
    aws.put_role_policy(name, "inline", &doc).await.unwrap();
    let back = aws.get_role_policy(name, "inline").await.unwrap().expect("policy exists");
    assert_eq!(back, doc);
    assert_eq!(back.as_json()["Statement"][0]["Condition"]["StringLike"]["s3:prefix"][1], "ü/&?#%");

    let conflict = aws.delete_role(name).await.unwrap_err();
    assert_eq!(conflict.kind, ErrorKind::Conflict, "{conflict}");
    aws.delete_role_policy(name, "inline").await.unwrap();
    assert_eq!(aws.get_role_policy(name, "inline").await.unwrap(), None);
    aws.delete_role(name).await.unwrap();
    assert_eq!(aws.get_role(name).await.unwrap(), None);
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn permissions_boundary_is_put_and_removed() {
    let aws = aws().await;
    let name = "boundary-role";
    let mut r = role(name, "/");
    r.permissions_boundary = Some("arn:aws:iam::123456789012:policy/boundary".to_owned());
    aws.create_role(&r).await.unwrap();
    assert_eq!(aws.get_role(name).await.unwrap().unwrap().permissions_boundary, r.permissions_boundary);
    aws.set_permissions_boundary(name, None).await.unwrap();
    assert_eq!(aws.get_role(name).await.unwrap().unwrap().permissions_boundary, None);
    aws.delete_role(name).await.unwrap();
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn service_errors_map_to_kinds() {
    let aws = aws().await;
    let name = "errors-role";
    aws.create_role(&role(name, "/")).await.unwrap();
    let again = aws.create_role(&role(name, "/")).await.unwrap_err();
    assert_eq!((again.kind, again.operation.as_str()), (ErrorKind::AlreadyExists, "CreateRole"), "{again}");

    let malformed = aws.put_role_policy(name, "bad", &PolicyDocument::new(json!({"Statement": "nope"}))).await.unwrap_err();
    assert_eq!(malformed.kind, ErrorKind::InvalidInput, "{malformed}");

    let missing = aws.delete_role("no-such-role").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    let missing = aws.put_role_policy("no-such-role", "p", &trust("x")).await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    let missing = aws.delete_role_policy(name, "no-such-policy").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    assert_eq!(aws.get_role("no-such-role").await.unwrap(), None);
    aws.delete_role(name).await.unwrap();
}

/// Per-role refresh finds kfp-tenant's roles through ListRoles pages and the
/// description it writes, and reads whole (GetRole, for the tags) only those.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn per_role_refresh_lists_across_pages_and_reads_only_candidates() {
    let _provider = PROVIDER.read().await;
    let aws = aws().await;
    let cluster = "paging";
    cluster_with_provider(&aws, cluster).await;
    let managed_tags = |ns: &str| tags::role_tags(&BTreeMap::new(), cluster, ns);
    for i in 0..110 {
        let mut r = role(&format!("paging-{i:03}"), "/kfp-paging/");
        r.description = Some(plan::role_description(&format!("t{i}"), cluster));
        r.tags = managed_tags(&format!("t{i}"));
        aws.create_role(&r).await.unwrap();
    }
    for i in 0..10 {
        // Unmanaged neighbours, and one that copies the description but not the tags.
        let mut r = role(&format!("paging-other-{i}"), "/kfp-paging/");
        if i == 0 {
            r.description = Some(plan::role_description("x", cluster));
        }
        aws.create_role(&r).await.unwrap();
    }
    let options = kfp_tenant_aws::AwsOptions { region: Some(support::REGION.to_owned()), page_size: Some(100), ..Default::default() };
    let aws = kfp_tenant_aws::Aws::connect(&options).await.unwrap();
    let desired = validate(&tenants_file(cluster, &["t0"])).unwrap();
    let observed = refresh(
        &ReadSet::for_desired(&desired, true),
        Providers { cluster: &aws, iam: &aws, kube: &FakeKube::new(Calls::default(), "moto"), pod_identity: &aws, directory: &aws },
        10,
        RefreshMode::PerRole,
    )
    .await
    .unwrap();
    assert_eq!(observed.managed_roles.len(), 110);
    assert!(observed.managed_roles.iter().all(|r| r.tags[tags::CLUSTER] == cluster));
    let calls = aws.counter().calls();
    assert!(calls["ListRoles"] >= 2, "120 roles and more are at least two pages of 100: {calls:?}");
    assert_eq!(calls.get("GetRole"), Some(&(111 + 1)), "only candidates are read, and t0's own role: {calls:?}");
}

/// moto answers GetAccountAuthorizationDetails in one page whatever
/// MaxItems says; through the paging proxy it pages as IAM does, so a Marker
/// loop that stopped early would lose roles here.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn bulk_reads_follow_the_marker_to_the_last_page() {
    let moto = support::moto_endpoint();
    let proxy = kfp_tenant_testkit::paging_proxy::PagingProxy::start(&moto).await.unwrap();
    let aws = aws().await;
    for i in 0..120 {
        aws.create_role(&role(&format!("bulk-page-{i:03}"), "/kfp-bulk-page/")).await.unwrap();
    }
    let options = kfp_tenant_aws::AwsOptions {
        region: Some(support::REGION.to_owned()),
        page_size: Some(50),
        endpoint: Some(proxy.url().to_owned()),
        ..Default::default()
    };
    let paged = kfp_tenant_aws::Aws::connect(&options).await.unwrap();
    let roles = paged.account_roles().await.unwrap();
    let ours = roles.iter().filter(|r| r.path == "/kfp-bulk-page/").count();
    assert_eq!(ours, 120, "every role, from every page");
    let calls = paged.counter().calls();
    assert!(proxy.pages() >= 3, "120 roles and more are at least three pages of 50: {} pages", proxy.pages());
    assert_eq!(calls["GetAccountAuthorizationDetails"], proxy.pages() as u64, "one call per page: {calls:?}");
    // A page moto failed to answer (it can, while other tests add roles) is
    // asked for again with the same Marker. Each Marker names the last role
    // of the page before (the proxy pages in name order).
    let mut markers = proxy.markers();
    markers.dedup();
    assert_eq!(markers.len(), proxy.pages() - 1, "each page after the first asked for with a Marker: {markers:?}");
    assert!(markers.iter().all(|m| m.starts_with("after-")) && markers.windows(2).all(|w| w[0] < w[1]), "{markers:?}");
}

/// The same plan read per role and in bulk, on moto's documents (trust
/// policies raw, inline policies URL-encoded in this call), with drift in
/// the attributes only one of the two bulk listings carries.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn bulk_and_per_role_refresh_plan_the_same_on_moto() {
    let _provider = PROVIDER.read().await;
    let aws = aws().await;
    let cluster = "bulk-moto";
    cluster_with_provider(&aws, cluster).await;
    let profiles = FakeKube::new(Calls::default(), "moto");
    let mut file = tenants_file(cluster, &["b-one", "b-two", "b-three"]);
    file.tenants[1].s3_access = Some(S3AccessMode::Prefix);
    file.tenants[1].s3_prefix = Some("private/b-two/".to_owned());
    let desired = validate(&file).unwrap();
    // moto answers 500 now and then when another test changes roles under
    // its GetAccountAuthorizationDetails: retried, as the binary retries.
    let resilient = kfp_tenant_core::resilience::Resilient::new(aws.clone(), kfp_tenant_core::resilience::RetryPolicy::default());
    let observe = |mode| {
        let (aws, profiles, desired, resilient) = (&aws, &profiles, &desired, &resilient);
        async move {
            refresh(
                &ReadSet::for_desired(desired, true),
                Providers { cluster: aws, iam: resilient, kube: profiles, pod_identity: aws, directory: aws },
                10,
                mode,
            )
            .await
            .unwrap()
        }
    };
    let first = plan::plan(&desired, &observe(RefreshMode::Bulk).await, PlanOptions::default()).unwrap();
    let providers = Providers { cluster: &aws, iam: &aws, kube: &profiles, pod_identity: &aws, directory: &aws };
    assert!(apply::apply(&first, providers, &ApplyOptions::default(), &Quiet).await.is_success());

    // Drift: description and session (ListRoles only), a boundary (the
    // details only), a policy removed.
    let iam = aws.iam_client();
    iam.update_role().role_name("b-one-bulk-moto-role").description("by hand").max_session_duration(7200).send().await.unwrap();
    iam.put_role_permissions_boundary()
        .role_name("b-three-bulk-moto-role")
        .permissions_boundary("arn:aws:iam::123456789012:policy/by-hand")
        .send()
        .await
        .unwrap();
    iam.delete_role_policy().role_name("b-three-bulk-moto-role").policy_name("kf-b-three-pipeline-s3").send().await.unwrap();
    // Permissions the file does not give: an inline policy and a managed one.
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    iam.put_role_policy().role_name("b-one-bulk-moto-role").policy_name("by-hand").policy_document(everything).send().await.unwrap();
    let by_hand = iam.create_policy().policy_name("bulk-moto-by-hand").policy_document(everything).send().await.unwrap();
    let by_hand = by_hand.policy.and_then(|p| p.arn).unwrap();
    iam.attach_role_policy().role_name("b-three-bulk-moto-role").policy_arn(&by_hand).send().await.unwrap();

    aws.counter().reset();
    let per_role = plan::plan(&desired, &observe(RefreshMode::PerRole).await, PlanOptions::default()).unwrap();
    aws.counter().reset();
    let bulk = plan::plan(&desired, &observe(RefreshMode::Bulk).await, PlanOptions::default()).unwrap();
    let calls = aws.counter().calls();
    assert_eq!(bulk, per_role);
    let changed: Vec<_> = bulk.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| c.address.to_string()).collect();
    assert_eq!(changed.len(), 5, "{changed:?}");
    assert!(changed.contains(&r#"tenant["b-one"].inline_policy["by-hand"]"#.to_owned()), "{changed:?}");
    assert!(changed.contains(&format!(r#"tenant["b-three"].policy_attachment["{by_hand}"]"#)), "{changed:?}");
    assert_eq!((calls.get("GetRole"), calls.get("GetRolePolicy")), (None, None), "bulk reads no role one by one: {calls:?}");
    assert!(calls["GetAccountAuthorizationDetails"] >= 1 && calls["ListRoles"] >= 1, "{calls:?}");

    // Destroy takes them with the roles (IAM refuses to delete a role with policies).
    let destroy = plan::plan_destroy(&desired, &observe(RefreshMode::Bulk).await).unwrap();
    assert_eq!(destroy, plan::plan_destroy(&desired, &observe(RefreshMode::PerRole).await).unwrap());
    let report = apply::apply(&destroy, providers, &ApplyOptions::default(), &Quiet).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(aws.get_role("b-one-bulk-moto-role").await.unwrap(), None);
    assert_eq!(aws.get_role("b-three-bulk-moto-role").await.unwrap(), None);
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn moto_accepts_what_iam_rejects_so_validation_must_not() {
    // moto takes a 70-character role name; real IAM would not.
    let aws = aws().await;
    let long = "r".repeat(70);
    aws.create_role(&role(&long, "/")).await.expect("moto is lax here");
    aws.delete_role(&long).await.unwrap();
    // kfp-tenant refuses it before any call is made.
    let mut file = tenants_file("lax", &["team-a"]);
    file.tenants[0].role_name = Some(long);
    let err = validate(&file).unwrap_err();
    assert_eq!(err.problems[0].field, "tenants[0].roleName");
    file.tenants[0].role_name = Some("bad/name".to_owned());
    file.tenants[0].role_path = Some("no-slashes".to_owned());
    let err = validate(&file).unwrap_err();
    let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["tenants[0].roleName", "tenants[0].rolePath"]);
}

fn tenants_file(cluster: &str, namespaces: &[&str]) -> TenantsFile {
    TenantsFile {
        cluster: cluster.to_owned(),
        region: support::REGION.to_owned(),
        bucket: "kfp-artifacts".to_owned(),
        tenants: namespaces
            .iter()
            .map(|ns| TenantInput { namespace: (*ns).to_owned(), owner: format!("{ns}@example.com"), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

fn writes(calls: &BTreeMap<String, u64>) -> u64 {
    const AWS_WRITES: &[&str] =
        &["CreateRole", "DeleteRole", "UpdateAssumeRolePolicy", "UpdateRole", "TagRole", "UntagRole", "PutRolePolicy", "DeleteRolePolicy"];
    calls.iter().filter(|(op, _)| AWS_WRITES.contains(&op.as_str())).map(|(_, n)| n).sum()
}

/// plan → apply → plan (no-op, no writes) → out-of-band change → plan shows
/// exactly it → apply → destroy → nothing of the tenant left.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn engine_life_cycle_on_moto() {
    let _provider = PROVIDER.read().await;
    let aws = aws().await;
    let cluster = "lifecycle";
    cluster_with_provider(&aws, cluster).await;
    let profiles = FakeKube::new(Calls::default(), "moto");
    let mut file = tenants_file(cluster, &["team-a", "team-b"]);
    file.tenants[1].s3_access = Some(S3AccessMode::Full);
    let desired = validate(&file).unwrap();
    let providers = Providers { cluster: &aws, iam: &aws, kube: &profiles, pod_identity: &aws, directory: &aws };
    let observe = |_prune: bool| {
        let (aws, profiles, desired) = (&aws, &profiles, &desired);
        async move {
            refresh(
                &ReadSet::for_desired(desired, true),
                Providers { cluster: aws, iam: aws, kube: profiles, pod_identity: aws, directory: aws },
                10,
                RefreshMode::PerRole,
            )
            .await
            .unwrap()
        }
    };

    aws.counter().reset();
    let first = plan::plan(&desired, &observe(false).await, PlanOptions::default()).unwrap();
    assert_eq!(first.summary().add, 11, "the identity record, and per tenant role, policy and Profile, and two pipeline ConfigMaps");
    let plan_calls = aws.counter().calls();
    assert_eq!(writes(&plan_calls), 0, "{plan_calls:?}");

    aws.counter().reset();
    let report = apply::apply(&first, providers, &ApplyOptions::default(), &Quiet).await;
    assert!(report.is_success(), "{report:?}");
    let create_calls = aws.counter().calls();
    assert_eq!((create_calls["CreateRole"], create_calls["PutRolePolicy"]), (2, 2), "{create_calls:?}");
    assert_eq!(writes(&create_calls), 4, "create makes 2 IAM writes per tenant: {create_calls:?}");
    eprintln!("calls for create of 2 tenants: {create_calls:?}");

    aws.counter().reset();
    let again = plan::plan(&desired, &observe(false).await, PlanOptions::default()).unwrap();
    assert!(!again.has_changes(), "{:?}", again.changes.iter().filter(|c| c.action != Action::NoOp).collect::<Vec<_>>());
    let noop_calls = aws.counter().calls();
    assert_eq!(writes(&noop_calls), 0, "{noop_calls:?}");
    assert_eq!((noop_calls["GetRole"], noop_calls["GetRolePolicy"]), (2, 2), "{noop_calls:?}");
    assert_eq!((noop_calls["ListRolePolicies"], noop_calls["ListAttachedRolePolicies"]), (2, 2), "4 IAM reads per tenant: {noop_calls:?}");
    assert_eq!(
        noop_calls.values().sum::<u64>(),
        2 * 4 + 5,
        "plus GetCallerIdentity, DescribeCluster, ListOpenIDConnectProviders, ListRoles to find kfp-tenant's roles, and HeadBucket: {noop_calls:?}"
    );
    eprintln!("calls for a no-op plan of 2 tenants: {noop_calls:?}");

    // Someone widens team-a's policy by hand.
    aws.iam_client()
        .put_role_policy()
        .role_name("team-a-lifecycle-role")
        .policy_name("kf-team-a-pipeline-s3")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let drift = plan::plan(&desired, &observe(false).await, PlanOptions::default()).unwrap();
    let changed: Vec<_> = drift.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.clone(), c.action)).collect();
    assert_eq!(changed, [(Address::tenant("team-a", Kind::S3Policy), Action::Update)]);
    assert!(apply::apply(&drift, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    assert!(!plan::plan(&desired, &observe(false).await, PlanOptions::default()).unwrap().has_changes());

    aws.counter().reset();
    let destroy = plan::plan_destroy(&desired, &observe(false).await).unwrap();
    assert_eq!(destroy.summary().destroy, 6);
    aws.counter().reset();
    assert!(apply::apply(&destroy, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    let destroy_calls = aws.counter().calls();
    assert_eq!(writes(&destroy_calls), 4, "destroy makes 2 IAM writes per tenant: {destroy_calls:?}");
    eprintln!("calls for destroy of 2 tenants: {destroy_calls:?}");
    for name in ["team-a-lifecycle-role", "team-b-lifecycle-role"] {
        assert_eq!(aws.get_role(name).await.unwrap(), None);
    }
    assert!(profiles.profile_names().is_empty());
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn prune_finds_removed_tenants_through_list_roles() {
    let _provider = PROVIDER.read().await;
    let aws = aws().await;
    let cluster = "prune";
    cluster_with_provider(&aws, cluster).await;
    let profiles = FakeKube::new(Calls::default(), "moto");
    let providers = Providers { cluster: &aws, iam: &aws, kube: &profiles, pod_identity: &aws, directory: &aws };
    let all = validate(&tenants_file(cluster, &["keep", "drop"])).unwrap();
    let observed = refresh(&ReadSet::for_desired(&all, true), providers, 10, RefreshMode::PerRole).await.unwrap();
    assert!(
        apply::apply(&plan::plan(&all, &observed, PlanOptions::default()).unwrap(), providers, &ApplyOptions::default(), &Quiet)
            .await
            .is_success()
    );

    let kept = validate(&tenants_file(cluster, &["keep"])).unwrap();
    let observed = refresh(&ReadSet::for_desired(&kept, true), providers, 10, RefreshMode::PerRole).await.unwrap();
    let prune = plan::plan(&kept, &observed, PlanOptions { prune: true, ..Default::default() }).unwrap();
    let deleted: Vec<String> = prune.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.address.to_string()).collect();
    assert_eq!(deleted, [r#"tenant["drop"].iam_role"#, r#"tenant["drop"].s3_policy"#, r#"tenant["drop"].profile"#]);
    assert!(apply::apply(&prune, providers, &ApplyOptions::default(), &Quiet).await.is_success());
    assert_eq!(aws.get_role("drop-prune-role").await.unwrap(), None);
    assert!(aws.get_role("keep-prune-role").await.unwrap().is_some());
}

#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn the_oidc_provider_is_created_on_request_and_roles_trust_it() {
    let _only_me = PROVIDER.write().await;
    let aws = aws().await;
    let cluster = "create-provider";
    ensure_cluster(&aws, cluster).await;
    if let Some(arn) = aws.describe_cluster(cluster).await.unwrap().oidc.provider_arn {
        aws.iam_client().delete_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await.unwrap();
    }
    let profiles = FakeKube::new(Calls::default(), "moto");
    let providers = Providers { cluster: &aws, iam: &aws, kube: &profiles, pod_identity: &aws, directory: &aws };
    let desired = validate(&tenants_file(cluster, &["team-a"])).unwrap();
    let observed = refresh(&ReadSet::for_desired(&desired, true), providers, 10, RefreshMode::PerRole).await.unwrap();
    assert!(plan::plan(&desired, &observed, PlanOptions::default()).is_err(), "without the option a missing provider stops the plan");
    let plan = plan::plan(&desired, &observed, PlanOptions { create_oidc_provider: true, ..Default::default() }).unwrap();
    let report = apply::apply(&plan, providers, &ApplyOptions::default(), &Quiet).await;
    assert!(report.is_success(), "{report:#?}");
    let provider = aws.describe_cluster(cluster).await.unwrap().oidc.provider_arn.expect("created");
    let role = aws.get_role("team-a-create-provider-role").await.unwrap().unwrap();
    assert_eq!(role.trust_policy.as_json()["Statement"][0]["Principal"]["Federated"], provider.as_str());
    let observed = refresh(&ReadSet::for_desired(&desired, true), providers, 10, RefreshMode::PerRole).await.unwrap();
    assert!(!plan::plan(&desired, &observed, PlanOptions::default()).unwrap().has_changes());
}

/// The plan's bucket check on the real SDK: a bucket's region, and none
/// for a bucket that does not exist.
#[tokio::test]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn the_bucket_is_found_in_its_region_or_not_at_all() {
    let aws = aws().await;
    support::ensure_bucket(&support::moto_endpoint(), "bucket-check-artifacts").await;
    assert_eq!(aws.bucket_region("bucket-check-artifacts").await.unwrap().as_deref(), Some(support::REGION));
    assert_eq!(aws.bucket_region("bucket-check-nowhere").await.unwrap(), None);
}
