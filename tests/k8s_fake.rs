//! The Kubernetes provider on the real kube client over HTTP against the
//! testkit's fake API server, which also plays the Kubeflow profile controller.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use kfp_tenant_core::plan::{self, Action, PlanOptions};
use kfp_tenant_core::ports::{ErrorKind, Profile, ProfileApi, ProfilePlugin, ServiceAccount};
use kfp_tenant_core::refresh::{ReadSet, refresh};
use kfp_tenant_core::spec::ResourceQuota;
use kfp_tenant_core::validate;
use kfp_tenant_k8s::{Kube, KubeOptions, KubeflowProfile, LockError, LockOptions};
use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer, ROLE_ARN_ANNOTATION};
use kfp_tenant_testkit::world::{CLUSTER, sample_file};
use kfp_tenant_testkit::{Calls, FakeCluster, FakeIam};
use kube::api::{Api, ListParams};
use serde_json::json;

const ARN: &str = "arn:aws:iam::123456789012:role/team-a-kf-prod-role";

async fn server(options: FakeApiOptions) -> (FakeApiServer, Kube) {
    let server = FakeApiServer::start(options).await.unwrap();
    let path = std::env::temp_dir().join(format!(
        "kfp-tenant-test-{}-{}.kubeconfig",
        std::process::id(),
        server.url().rsplit(':').next().unwrap()
    ));
    std::fs::write(&path, server.kubeconfig()).unwrap();
    let kube = Kube::connect(KubeOptions { kubeconfig: Some(path), poll: Duration::from_millis(20), ..Default::default() }).await.unwrap();
    (server, kube)
}

fn profile(name: &str) -> Profile {
    Profile {
        name: name.into(),
        owner: "alice@example.com".into(),
        plugins: vec![ProfilePlugin::aws_iam(ARN)],
        resource_quota: None,
        managed: true,
    }
}

#[tokio::test]
async fn apply_read_and_delete_a_profile() {
    let (server, kube) = server(FakeApiOptions { reconcile_delay: Duration::from_millis(100), ..Default::default() }).await;
    assert!(kube.list_profiles().await.unwrap().is_empty());
    assert!(!kube.namespace_exists("team-a").await.unwrap());

    let mut want = profile("team-a");
    want.resource_quota = Some(ResourceQuota { hard: [("cpu".into(), "8".into())].into() });
    kube.apply_profile(&want).await.unwrap();
    assert_eq!(kube.list_profiles().await.unwrap(), [want.clone()]);

    // Re-applying the same spec changes nothing.
    let rv = server.object("profiles", "", "team-a").unwrap()["metadata"]["resourceVersion"].clone();
    kube.wait_ready(&want, Duration::from_secs(5)).await.unwrap();
    assert!(kube.namespace_exists("team-a").await.unwrap());
    let editor = server.object("serviceaccounts", "team-a", "default-editor").unwrap();
    assert_eq!(editor["metadata"]["annotations"][ROLE_ARN_ANNOTATION], ARN);
    kube.apply_profile(&want).await.unwrap();
    let after = server.object("profiles", "", "team-a").unwrap();
    assert_eq!(
        after["spec"],
        json!({"owner": {"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"},
        "plugins": [{"kind": "AwsIamForServiceAccount", "spec": {"awsIamRole": ARN, "annotateOnly": true}}], "resourceQuotaSpec": {"hard": {"cpu": "8"}}})
    );
    assert_ne!(after["metadata"]["resourceVersion"], rv, "the fake bumps the version on every write");

    // Dropping the quota removes it: kfp-tenant owns the whole spec.
    want.resource_quota = None;
    kube.apply_profile(&want).await.unwrap();
    assert_eq!(kube.list_profiles().await.unwrap()[0].resource_quota, None);

    // Deletion waits for the controller's finalizer, which takes the namespace first.
    kube.delete_profile("team-a").await.unwrap();
    assert!(server.object("profiles", "", "team-a").is_none());
    assert!(!kube.namespace_exists("team-a").await.unwrap());
    let err = kube.delete_profile("team-a").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn readiness_times_out_naming_what_is_missing() {
    let (_server, kube) = server(FakeApiOptions { controller: false, ..Default::default() }).await;
    let want = profile("team-b");
    kube.apply_profile(&want).await.unwrap();
    let err = kube.wait_ready(&want, Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(
        err.to_string().contains("not ready after 0s: namespace team-b does not exist yet; is the Kubeflow profile controller running?"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stuck_finalizer_is_reported() {
    let (server, _) = server(FakeApiOptions { controller: false, ..Default::default() }).await;
    let path = std::env::temp_dir().join(format!("kfp-tenant-test-{}-stuck.kubeconfig", std::process::id()));
    std::fs::write(&path, server.kubeconfig()).unwrap();
    let kube = Kube::connect(KubeOptions {
        kubeconfig: Some(path),
        delete_timeout: Duration::from_millis(100),
        poll: Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .unwrap();
    kube.apply_profile(&profile("team-c")).await.unwrap();
    server.edit_object("profiles", "", "team-c", |p| p["metadata"]["finalizers"] = json!(["profile-finalizer"]));
    let err = kube.delete_profile("team-c").await.unwrap_err();
    assert!(err.to_string().contains("finalizer \"profile-finalizer\" is waiting for the profile controller"), "{err}");
}

#[tokio::test]
async fn labels_mark_managed_profiles_and_select_them() {
    let (server, kube) = server(FakeApiOptions::default()).await;
    kube.apply_profile(&profile("ours")).await.unwrap();
    server.put_object(
        "profiles",
        "",
        json!({"metadata": {"name": "theirs"}, "spec": {"owner": {"kind": "User", "name": "bob@example.com"}}}),
    );
    let all = kube.list_profiles().await.unwrap();
    let managed: Vec<(&str, bool)> = all.iter().map(|p| (p.name.as_str(), p.managed)).collect();
    assert_eq!(managed, [("ours", true), ("theirs", false)]);

    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).unwrap(), &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let api: Api<KubeflowProfile> = Api::all(client);
    let selected = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=kfp-tenant")).await.unwrap();
    assert_eq!(selected.items.iter().map(|p| p.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["ours"]);
}

#[tokio::test]
async fn drift_in_owner_plugin_and_quota_is_planned() {
    let (server, kube) = server(FakeApiOptions::default()).await;
    let calls = Calls::default();
    let (cluster, iam) = (FakeCluster::new(calls.clone(), CLUSTER), FakeIam::new(calls));
    let mut file = sample_file(3);
    file.tenants[2].resource_quota = Some(ResourceQuota { hard: [("cpu".into(), "4".into())].into() });
    let desired = validate(&file).unwrap();
    let reads = ReadSet::for_desired(&desired, false);
    let first = plan::plan(&desired, &refresh(&reads, &cluster, &iam, &kube, 10).await.unwrap(), PlanOptions::default()).unwrap();
    let providers = kfp_tenant_core::apply::Providers { cluster: &cluster, iam: &iam, profiles: &kube };
    let options = kfp_tenant_core::apply::ApplyOptions { wait: Some(Duration::from_secs(5)), ..Default::default() };
    let report = kfp_tenant_core::apply::apply(&first, providers, options, &kfp_tenant_core::apply::Quiet).await;
    assert!(report.is_success(), "{report:?}");
    let again = plan::plan(&desired, &refresh(&reads, &cluster, &iam, &kube, 10).await.unwrap(), PlanOptions::default()).unwrap();
    assert!(!again.has_changes());

    server.edit_object("profiles", "", "team-0000", |p| p["spec"]["owner"]["name"] = json!("mallory@example.com"));
    server.edit_object("profiles", "", "team-0001", |p| p["spec"]["plugins"][0]["spec"]["annotateOnly"] = json!(false));
    server.edit_object("profiles", "", "team-0002", |p| p["spec"]["resourceQuotaSpec"]["hard"]["cpu"] = json!("64"));
    let drift = plan::plan(&desired, &refresh(&reads, &cluster, &iam, &kube, 10).await.unwrap(), PlanOptions::default()).unwrap();
    let changes: Vec<(String, Action)> =
        drift.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect();
    assert_eq!(
        changes,
        [
            (r#"tenant["team-0000"].profile"#.to_owned(), Action::Replace),
            (r#"tenant["team-0001"].profile"#.to_owned(), Action::Update),
            (r#"tenant["team-0002"].profile"#.to_owned(), Action::Update),
        ]
    );
}

#[tokio::test]
async fn the_apply_lock_is_exclusive_and_expires() {
    let (server, kube) = server(FakeApiOptions::default()).await;
    let mine = LockOptions { duration: Duration::from_secs(30), ..LockOptions::new("alice@laptop:1") };
    let guard = kube.lock(&mine).await.unwrap();
    let lease = server.object("leases", "kubeflow", "kfp-tenant-lock").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "alice@laptop:1");

    let theirs = LockOptions { duration: Duration::from_secs(30), ..LockOptions::new("bob@ci:7") };
    match kube.lock(&theirs).await {
        Err(LockError::Held { holder, expires_in }) => {
            assert_eq!(holder, "alice@laptop:1");
            assert!(expires_in > 0 && expires_in <= 30, "{expires_in}");
        }
        other => panic!("expected the lock to be held: {other:?}"),
    }
    guard.release().await.unwrap();
    assert!(server.object("leases", "kubeflow", "kfp-tenant-lock").is_none());
    let guard = kube.lock(&theirs).await.unwrap();

    // A holder that crashed: its lease ran out long ago.
    drop(guard);
    server.edit_object("leases", "kubeflow", "kfp-tenant-lock", |l| {
        l["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
    });
    let taken_over = kube.lock(&mine).await.unwrap();
    let lease = server.object("leases", "kubeflow", "kfp-tenant-lock").unwrap();
    assert_eq!((lease["spec"]["holderIdentity"].as_str(), lease["spec"]["leaseTransitions"].as_i64()), (Some("alice@laptop:1"), Some(1)));
    taken_over.release().await.unwrap();
}

#[tokio::test]
async fn a_service_account_waits_for_its_namespace_then_is_annotated() {
    let (server, kube) = server(FakeApiOptions { reconcile_delay: Duration::from_millis(200), ..Default::default() }).await;
    assert_eq!(kube.get_service_account("team-d", "pipeline-runner").await.unwrap(), None);
    kube.apply_profile(&profile("team-d")).await.unwrap();
    let want = ServiceAccount { namespace: "team-d".into(), name: "pipeline-runner".into(), role_arn: Some(ARN.into()), managed: true };
    kube.apply_service_account(&want).await.unwrap();
    assert_eq!(kube.get_service_account("team-d", "pipeline-runner").await.unwrap(), Some(want));
    let sa = server.object("serviceaccounts", "team-d", "pipeline-runner").unwrap();
    assert_eq!(sa["metadata"]["annotations"][ROLE_ARN_ANNOTATION], ARN);
    assert_eq!(sa["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kfp-tenant");
}
