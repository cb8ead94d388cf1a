//! The Kubernetes provider on the real kube client over HTTP, each test on
//! both backends: the testkit's fake API server and a real kube-apiserver
//! with kube-controller-manager, the testkit's profile controller playing
//! Kubeflow's on both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use futures_util::StreamExt;
use kfp_tenant_core::plan::{self, Action, PlanOptions};
use kfp_tenant_core::ports::{ConfigMap, ErrorKind, KubernetesApi, Profile, ProfilePlugin, ServiceAccount};
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::spec::ResourceQuota;
use kfp_tenant_core::validate;
use kfp_tenant_k8s::{Kube, KubeOptions, KubeflowProfile, LockError, LockOptions};
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
use kfp_tenant_testkit::controller::ROLE_ARN_ANNOTATION;
use kfp_tenant_testkit::on_both_backends;
use kfp_tenant_testkit::world::{CLUSTER, sample_file};
use kfp_tenant_testkit::{Calls, FakeCluster, FakeIam};
use kube::api::{Api, ListParams};
use serde_json::json;

const ARN: &str = "arn:aws:iam::123456789012:role/team-a-kf-prod-role";

/// Long enough for a real kube-controller-manager to delete a namespace.
const WAIT: Duration = Duration::from_secs(60);

async fn provider(kube: &TestKube) -> Kube {
    Kube::connect(KubeOptions { kubeconfig: Some(kube.kubeconfig().to_owned()), poll: Duration::from_millis(20), ..Default::default() })
        .await
        .unwrap()
}

fn profile(name: &str) -> Profile {
    Profile {
        name: name.into(),
        owner: "alice@example.com".into(),
        plugins: vec![ProfilePlugin::aws_iam(ARN)],
        resource_quota: None,
        managed: true,
        cluster: Some("kf-prod".into()),
    }
}

on_both_backends!(
    apply_read_and_delete_a_profile,
    readiness_times_out_naming_what_is_missing,
    a_stuck_finalizer_is_reported,
    labels_mark_managed_profiles_and_select_them,
    drift_in_owner_plugin_and_quota_is_planned,
    a_field_added_by_hand_is_removed_by_the_next_apply,
    the_apply_lock_is_exclusive_and_expires,
    a_holder_cut_off_from_the_api_server_loses_the_lock_in_time,
    a_service_account_waits_for_its_namespace_then_is_annotated,
    the_controller_restores_the_role_annotation,
    a_watch_sees_every_change,
    the_identity_record_and_the_cluster_wide_listings,
    waits_for_many_tenants_share_four_watches,
    the_pipeline_config_shares_its_configmaps_with_kfps_controller,
);

async fn apply_read_and_delete_a_profile(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { reconcile_delay: Duration::from_millis(100), ..Default::default() }).await;
    let provider = provider(&kube).await;
    let name = kube.name("team-a");
    let ours = |list: Vec<Profile>| list.into_iter().filter(|p| p.name == name).collect::<Vec<_>>();
    assert!(ours(provider.list_profiles().await.unwrap()).is_empty());
    assert!(provider.get_namespace(&name).await.unwrap().is_none());

    let mut want = profile(&name);
    want.resource_quota = Some(ResourceQuota { hard: [("cpu".into(), "8".into())].into() });
    provider.apply_profile(&want).await.unwrap();
    assert_eq!(ours(provider.list_profiles().await.unwrap()), [want.clone()]);
    provider.wait_ready(&want, Duration::from_secs(20)).await.unwrap();
    assert!(provider.get_namespace(&name).await.unwrap().is_some());
    let editor = kube.object("serviceaccounts", &name, "default-editor").await.unwrap();
    assert_eq!(editor["metadata"]["annotations"][ROLE_ARN_ANNOTATION], ARN);

    // Re-applying the same spec is no write at all.
    let before = kube.object("profiles", "", &name).await.unwrap();
    provider.apply_profile(&want).await.unwrap();
    let after = kube.object("profiles", "", &name).await.unwrap();
    assert_eq!(
        after["spec"],
        json!({"owner": {"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"},
        "plugins": [{"kind": "AwsIamForServiceAccount", "spec": {"awsIamRole": ARN, "annotateOnly": true}}], "resourceQuotaSpec": {"hard": {"cpu": "8"}}})
    );
    assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"], "{before:#}\n{after:#}");

    // Dropping the quota removes it: kfp-tenant owns the whole spec.
    want.resource_quota = None;
    provider.apply_profile(&want).await.unwrap();
    assert_eq!(ours(provider.list_profiles().await.unwrap())[0].resource_quota, None);

    // Deletion waits for the controller's finalizer and for the garbage
    // collector, which takes the namespace first.
    provider.delete_profile(&name, WAIT).await.unwrap();
    assert!(kube.object("profiles", "", &name).await.is_none());
    assert!(provider.get_namespace(&name).await.unwrap().is_none());
    let err = provider.delete_profile(&name, WAIT).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

async fn readiness_times_out_naming_what_is_missing(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { controller: false, ..Default::default() }).await;
    let provider = provider(&kube).await;
    let want = profile(&kube.name("team-b"));
    provider.apply_profile(&want).await.unwrap();
    let err = provider.wait_ready(&want, Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "a deadline is not retried as transient");
    let expected = format!("gave up after 200ms: namespace {} does not exist yet; is the Kubeflow profile controller running?", want.name);
    assert!(err.to_string().contains(&expected), "{err}");
    kube.delete_object("profiles", "", &want.name).await;
}

async fn a_stuck_finalizer_is_reported(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { controller: false, ..Default::default() }).await;
    let provider = provider(&kube).await;
    let name = kube.name("team-c");
    provider.apply_profile(&profile(&name)).await.unwrap();
    kube.edit_object("profiles", "", &name, |p| p["metadata"]["finalizers"] = json!(["profile-finalizer"])).await;
    let err = provider.delete_profile(&name, Duration::from_millis(300)).await.unwrap_err();
    assert!(err.to_string().contains("its finalizer profile-finalizer is waiting for the Kubeflow profile controller"), "{err}");
    kube.edit_object("profiles", "", &name, |p| p["metadata"]["finalizers"] = json!([])).await;
    kube.wait_for("profiles", "", &name, Duration::from_secs(10), |p| p.is_none()).await;
}

async fn labels_mark_managed_profiles_and_select_them(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions::default()).await;
    let provider = provider(&kube).await;
    let (ours, theirs) = (kube.name("ours"), kube.name("theirs"));
    provider.apply_profile(&profile(&ours)).await.unwrap();
    kube.create_object(
        "profiles",
        "",
        json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": theirs},
            "spec": {"owner": {"kind": "User", "name": "bob@example.com"}}}),
    )
    .await;
    let all = provider.list_profiles().await.unwrap();
    let managed: Vec<(&str, bool)> =
        all.iter().filter(|p| p.name == ours || p.name == theirs).map(|p| (p.name.as_str(), p.managed)).collect();
    assert_eq!(managed, [(ours.as_str(), true), (theirs.as_str(), false)]);

    let api: Api<KubeflowProfile> = Api::all(kube.client());
    let selected = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=kfp-tenant")).await.unwrap();
    let names: Vec<String> = selected.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
    assert!(names.contains(&ours) && !names.contains(&theirs), "{names:?}");
    for name in [&ours, &theirs] {
        provider.delete_profile(name, WAIT).await.unwrap();
    }
}

async fn drift_in_owner_plugin_and_quota_is_planned(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions::default()).await;
    let provider = provider(&kube).await;
    let calls = Calls::default();
    let name = kube.cluster(CLUSTER);
    kube.bind(&name).await;
    let (cluster, iam) = (FakeCluster::new(calls.clone(), &name), FakeIam::new(calls.clone()));
    let directory = kfp_tenant_testkit::FakeDirectory::new(calls);
    let mut file = sample_file(3);
    file.cluster = name.clone();
    for t in &mut file.tenants {
        t.namespace = kube.name(&t.namespace);
    }
    file.tenants[2].resource_quota = Some(ResourceQuota { hard: [("cpu".into(), "4".into())].into() });
    let names: Vec<String> = file.tenants.iter().map(|t| t.namespace.clone()).collect();
    let desired = validate(&file).unwrap();
    let reads = ReadSet::for_desired(&desired, false);
    let providers =
        kfp_tenant_core::apply::Providers { cluster: &cluster, iam: &iam, kube: &provider, pod_identity: &iam, directory: &directory };
    let first = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    let options = kfp_tenant_core::apply::ApplyOptions { wait: true, timeout: WAIT, ..Default::default() };
    let report = kfp_tenant_core::apply::apply(&first, providers, &options, &kfp_tenant_core::apply::Quiet).await;
    assert!(report.is_success(), "{report:?}");
    let again = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    assert!(!again.has_changes());

    kube.edit_object("profiles", "", &names[0], |p| p["spec"]["owner"]["name"] = json!("mallory@example.com")).await;
    kube.edit_object("profiles", "", &names[1], |p| p["spec"]["plugins"][0]["spec"]["annotateOnly"] = json!(false)).await;
    kube.edit_object("profiles", "", &names[2], |p| p["spec"]["resourceQuotaSpec"]["hard"]["cpu"] = json!("64")).await;
    let drift = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    let changes: Vec<(String, Action)> =
        drift.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect();
    assert_eq!(
        changes,
        [
            // The namespace still names the file's owner: a patch converges, nothing is deleted.
            (format!("tenant[{:?}].profile", names[0]), Action::Update),
            (format!("tenant[{:?}].profile", names[1]), Action::Update),
            (format!("tenant[{:?}].profile", names[2]), Action::Update),
        ]
    );
    let report = kfp_tenant_core::apply::apply(&drift, providers, &options, &kfp_tenant_core::apply::Quiet).await;
    assert!(report.is_success(), "{report:?}");
    assert!(
        !plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default())
            .unwrap()
            .has_changes()
    );

    // The namespace itself names someone else: only a replacement (which
    // deletes the namespace) would converge, and the plan refuses it unnamed.
    kube.edit_object("namespaces", "", &names[0], |n| n["metadata"]["annotations"]["owner"] = json!("mallory@example.com")).await;
    kube.edit_object("profiles", "", &names[0], |p| p["spec"]["owner"]["name"] = json!("mallory@example.com")).await;
    let refused =
        plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap_err();
    let refused = refused.to_string();
    assert!(refused.contains("owner annotation names mallory@example.com") && refused.contains("--replace"), "{refused}");
    for name in &names {
        provider.delete_profile(name, WAIT).await.unwrap();
    }
}

/// Server-side apply leaves fields that another manager set; kfp-tenant owns
/// the whole spec of its Profiles, so a hand-made addition must still go.
async fn a_field_added_by_hand_is_removed_by_the_next_apply(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions::default()).await;
    let provider = provider(&kube).await;
    let name = kube.name("team-q");
    let want = profile(&name);
    provider.apply_profile(&want).await.unwrap();
    kube.edit_object("profiles", "", &name, |p| p["spec"]["resourceQuotaSpec"] = json!({"hard": {"cpu": "64"}})).await;
    let live = provider.list_profiles().await.unwrap().into_iter().find(|p| p.name == name).unwrap();
    assert!(live.resource_quota.is_some(), "the edit is seen");
    provider.apply_profile(&want).await.unwrap();
    let live = provider.list_profiles().await.unwrap().into_iter().find(|p| p.name == name).unwrap();
    assert_eq!(live, want, "after apply the Profile is exactly the desired one");
    provider.delete_profile(&name, WAIT).await.unwrap();
}

async fn the_apply_lock_is_exclusive_and_expires(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { controller: false, ..Default::default() }).await;
    let provider = provider(&kube).await;
    let lease = kube.name("kfp-tenant-lock");
    let mine = LockOptions { name: lease.clone(), duration: Duration::from_secs(30), ..LockOptions::new("alice@laptop:1") };
    let guard = provider.lock(&mine).await.unwrap();
    let held = kube.object("leases", "kubeflow", &lease).await.unwrap();
    assert_eq!(held["spec"]["holderIdentity"], "alice@laptop:1");

    let theirs = LockOptions { name: lease.clone(), duration: Duration::from_secs(30), ..LockOptions::new("bob@ci:7") };
    match provider.lock(&theirs).await {
        Err(LockError::Held { holder, expires_in, .. }) => {
            assert_eq!(holder, "alice@laptop:1");
            assert!(expires_in > 0 && expires_in <= 30, "{expires_in}");
        }
        other => panic!("expected the lock to be held: {other:?}"),
    }
    guard.release().await.unwrap();
    assert!(kube.object("leases", "kubeflow", &lease).await.is_none());
    let guard = provider.lock(&theirs).await.unwrap();

    // A holder that crashed: its lease ran out long ago.
    drop(guard);
    kube.edit_object("leases", "kubeflow", &lease, |l| l["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z")).await;
    let taken_over = provider.lock(&mine).await.unwrap();
    let held = kube.object("leases", "kubeflow", &lease).await.unwrap();
    assert_eq!((held["spec"]["holderIdentity"].as_str(), held["spec"]["leaseTransitions"].as_i64()), (Some("alice@laptop:1"), Some(1)));
    taken_over.release().await.unwrap();
}

/// A holder whose API server stops answering (a partition: its renewals
/// hang rather than fail) learns that it lost the lock two thirds of the
/// way into the Lease's duration, before anyone else may take it.
async fn a_holder_cut_off_from_the_api_server_loses_the_lock_in_time(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { controller: false, ..Default::default() }).await;
    let dir = std::env::temp_dir().join(kube.name("kfp-tenant-partition"));
    std::fs::create_dir_all(&dir).unwrap();
    let partition = kfp_tenant_testkit::partition::Partition::start(kube.kubeconfig(), &dir.join("kubeconfig")).await;
    let cut_off = Kube::connect(KubeOptions { kubeconfig: Some(partition.kubeconfig.clone()), ..Default::default() }).await.unwrap();
    let lease = kube.name("kfp-tenant-lock");
    let duration = Duration::from_secs(3);
    let guard = cut_off.lock(&LockOptions { name: lease.clone(), duration, ..LockOptions::new("alice@laptop:1") }).await.unwrap();
    // Renewed while the server answers.
    assert!(tokio::time::timeout(duration * 2, guard.lost()).await.is_err(), "lost while renewing");
    partition.cut();
    let cut_at = std::time::Instant::now();
    tokio::time::timeout(duration * 2, guard.lost()).await.expect("lost once no renewal can succeed");
    let after = cut_at.elapsed();
    assert!(after <= duration, "lost {after:?} after the cut: the Lease may be taken {duration:?} after its last renewal");
    // And another may take it once it has run out.
    let provider = provider(&kube).await;
    let theirs = LockOptions { name: lease, duration, ..LockOptions::new("bob@ci:7") };
    let start = std::time::Instant::now();
    let taken = loop {
        match provider.lock(&theirs).await {
            Ok(guard) => break guard,
            Err(LockError::Held { .. }) if start.elapsed() < duration * 3 => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("{e}"),
        }
    };
    taken.release().await.unwrap();
}

async fn a_service_account_waits_for_its_namespace_then_is_annotated(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { reconcile_delay: Duration::from_millis(200), ..Default::default() }).await;
    let provider = provider(&kube).await;
    let name = kube.name("team-d");
    assert_eq!(provider.get_service_account(&name, "pipeline-runner").await.unwrap(), None);
    provider.apply_profile(&profile(&name)).await.unwrap();
    let want = ServiceAccount {
        namespace: name.clone(),
        name: "pipeline-runner".into(),
        role_arn: Some(ARN.into()),
        managed: true,
        cluster: Some("kf-prod".into()),
        created: true,
    };
    provider.apply_service_account(&want, WAIT).await.unwrap();
    assert_eq!(provider.get_service_account(&name, "pipeline-runner").await.unwrap(), Some(want));
    let sa = kube.object("serviceaccounts", &name, "pipeline-runner").await.unwrap();
    assert_eq!(sa["metadata"]["annotations"][ROLE_ARN_ANNOTATION], ARN);
    assert_eq!(sa["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kfp-tenant");
    provider.delete_profile(&name, WAIT).await.unwrap();
    assert_eq!(provider.get_service_account(&name, "pipeline-runner").await.unwrap(), None, "the namespace took it along");
}

/// The controller owns `default-editor`'s role annotation and puts it back
/// after a change by hand, as Kubeflow's does on every reconcile.
async fn the_controller_restores_the_role_annotation(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions::default()).await;
    let provider = provider(&kube).await;
    let want = profile(&kube.name("team-e"));
    provider.apply_profile(&want).await.unwrap();
    provider.wait_ready(&want, Duration::from_secs(20)).await.unwrap();
    kube.edit_object("serviceaccounts", &want.name, "default-editor", |sa| {
        sa["metadata"]["annotations"].as_object_mut().unwrap().remove(ROLE_ARN_ANNOTATION);
    })
    .await;
    kube.wait_for("serviceaccounts", &want.name, "default-editor", Duration::from_secs(20), |sa| {
        sa.is_some_and(|sa| sa["metadata"]["annotations"][ROLE_ARN_ANNOTATION] == ARN)
    })
    .await;
    provider.delete_profile(&want.name, WAIT).await.unwrap();
}

/// kube-runtime's watcher sees the same events from both servers.
async fn a_watch_sees_every_change(backend: Backend) {
    use kube::runtime::watcher::{self, Event};
    let kube = TestKube::start(backend, TestKubeOptions { controller: false, ..Default::default() }).await;
    let provider = provider(&kube).await;
    let name = kube.name("team-w");
    let api: Api<KubeflowProfile> = Api::all(kube.client());
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = Box::pin(watcher::watcher(api, config));
    let mut seen = Vec::new();
    let mut next = async || tokio::time::timeout(Duration::from_secs(20), events.next()).await.expect("an event in time").unwrap().unwrap();
    assert!(matches!(next().await, Event::Init));
    assert!(matches!(next().await, Event::InitDone));
    provider.apply_profile(&profile(&name)).await.unwrap();
    let mut changed = profile(&name);
    changed.owner = "bob@example.com".into();
    provider.apply_profile(&changed).await.unwrap();
    kube.delete_object("profiles", "", &name).await;
    while seen.len() < 3 {
        match next().await {
            Event::Apply(p) => seen.push(format!("apply {}", p.spec.owner.name)),
            Event::Delete(p) => seen.push(format!("delete {}", p.spec.owner.name)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["apply alice@example.com", "apply bob@example.com", "delete bob@example.com"]);
}

// What only the fake can be made to do: a garbage collector that is slow or
// absent, and a watch history compacted away.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_deletion_waits_for_a_slow_garbage_collector_and_names_a_missing_one() {
    let slow = TestKubeOptions { garbage_collector: Some(Duration::from_millis(600)), ..Default::default() };
    let kube = TestKube::start(Backend::Fake, slow).await;
    let provider = provider(&kube).await;
    let want = profile("team-gc");
    provider.apply_profile(&want).await.unwrap();
    provider.wait_ready(&want, Duration::from_secs(10)).await.unwrap();
    // Let the collector's passes for the writes so far go by.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = std::time::Instant::now();
    provider.delete_profile(&want.name, WAIT).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(600), "returned before the namespace was collected: {:?}", started.elapsed());
    assert!(kube.object("namespaces", "", &want.name).await.is_none());

    let none = TestKubeOptions { garbage_collector: None, ..Default::default() };
    let kube = TestKube::start(Backend::Fake, none).await;
    let impatient = self::provider(&kube).await;
    impatient.apply_profile(&want).await.unwrap();
    impatient.wait_ready(&want, Duration::from_secs(10)).await.unwrap();
    let err = impatient.delete_profile(&want.name, Duration::from_millis(500)).await.unwrap_err();
    assert!(err.to_string().contains("its namespace is still being deleted (finalizer foregroundDeletion"), "{err}");
    // Without kube-controller-manager nobody deletes the namespace, and the
    // Profile waits for it.
    assert!(kube.object("namespaces", "", &want.name).await.is_some());
    let left = kube.object("profiles", "", &want.name).await.unwrap();
    assert_eq!(left["metadata"]["finalizers"], json!(["foregroundDeletion"]), "{left:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_gets_410_and_the_watcher_relists() {
    use kube::runtime::watcher::{self, Event};
    let fake = kfp_tenant_testkit::apiserver::FakeApiServer::start(kfp_tenant_testkit::apiserver::FakeApiOptions {
        controller: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = kfp_tenant_testkit::controller::client(&fake.kubeconfig()).await.unwrap();
    let api: Api<KubeflowProfile> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await.unwrap();
    let old = list.metadata.resource_version.unwrap();
    fake.put_object("profiles", "", json!({"metadata": {"name": "early"}, "spec": {"owner": {"kind": "User", "name": "a@example.com"}}}));
    fake.compact();
    // A raw watch from before the compaction: one ERROR event, 410 Expired.
    let mut stream = Box::pin(api.watch(&kube::api::WatchParams::default(), &old).await.unwrap());
    match stream.next().await {
        Some(Ok(kube::api::WatchEvent::Error(status))) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // kube-runtime's watcher lists again and carries on.
    let mut events = Box::pin(watcher::watcher(api, watcher::Config::default()));
    let mut names = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap() {
        match event.unwrap() {
            Event::InitApply(p) => names.push(p.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(names, ["early"]);
}

/// Ten tenants waited for at once: the waits read four shared watches, not
/// the API server per tenant per poll (at a 20 ms poll and a 1 s
/// controller, polling would make some 500 namespace GETs).
async fn waits_for_many_tenants_share_four_watches(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { reconcile_delay: Duration::from_secs(1), ..Default::default() }).await;
    let provider = provider(&kube).await;
    let profiles: Vec<Profile> = (0..10).map(|i| profile(&kube.name(&format!("many-{i}")))).collect();
    for p in &profiles {
        provider.apply_profile(p).await.unwrap();
    }
    futures_util::future::try_join_all(profiles.iter().map(|p| provider.wait_ready(p, WAIT))).await.unwrap();
    let calls = provider.counter().calls();
    let n = |op: &str| calls.get(op).copied().unwrap_or(0);
    // The waits wait for the watches' first list and then ask nothing themselves.
    assert_eq!((n("GET namespaces"), n("GET serviceaccounts"), n("GET profiles")), (0, 0, 0), "{calls:?}");
    for resource in ["namespaces", "serviceaccounts", "profiles"] {
        let (lists, watches) = (n(&format!("LIST {resource}")), n(&format!("WATCH {resource}")));
        assert!((1..=4).contains(&lists) && watches <= 6, "{resource}: {lists} lists, {watches} watches: {calls:?}");
    }
    for p in &profiles {
        provider.delete_profile(&p.name, WAIT).await.unwrap();
    }
}

/// A wait whose watch is cut, then finds its history compacted (410 Gone),
/// still ends as soon as the tenant is ready: the watcher watches again and
/// lists again, long before the resync would have asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_outlives_a_dropped_watch_and_a_compaction() {
    use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer};
    let fake = FakeApiServer::start(FakeApiOptions { reconcile_delay: Duration::from_millis(1500), ..Default::default() }).await.unwrap();
    let dir = std::env::temp_dir().join(format!("kfp-tenant-cut-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    let options = KubeOptions {
        kubeconfig: Some(kubeconfig),
        poll: Duration::from_millis(20),
        resync: Duration::from_secs(60),
        ..Default::default()
    };
    let provider = Kube::connect(options).await.unwrap();
    let want = profile("team-cut");
    provider.apply_profile(&want).await.unwrap();
    let started = std::time::Instant::now();
    let wait = tokio::spawn({
        let (provider, want) = (provider.clone(), want.clone());
        async move { provider.wait_ready(&want, WAIT).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The watches end; a namespace comes and its event is compacted away
    // before they can watch again (one step under the store's lock: done in
    // three, a quick re-watch sometimes came in between and never saw 410),
    // so they resume from a revision that is gone (410) and must list again.
    fake.cut_watches_then_compact_past("namespaces", "", json!({"metadata": {"name": "meanwhile"}}));
    wait.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}: the watch did not recover", started.elapsed());
    let calls = provider.counter().calls();
    assert!(calls.get("WATCH namespaces").copied().unwrap_or(0) >= 2, "watched again after the cut: {calls:?}");
    assert!(calls.get("LIST namespaces").copied().unwrap_or(0) >= 2, "listed again after 410 Gone: {calls:?}");
    assert_eq!(calls.get("GET namespaces"), None, "no polling: {calls:?}");
}

/// What refresh reads cluster-wide in one call each, and the identity record.
async fn the_identity_record_and_the_cluster_wide_listings(backend: Backend) {
    use kfp_tenant_core::ports::{AccountQuery, ClusterRecord};
    let kube = TestKube::start(backend, TestKubeOptions::default()).await;
    let provider = provider(&kube).await;
    let cluster = kube.cluster("records");
    kube.bind(&cluster).await;
    let arn = format!("arn:aws:eks:us-west-2:123456789012:cluster/{cluster}");
    assert_eq!(provider.cluster_record().await.unwrap(), Some(ClusterRecord { cluster_arn: arn.clone(), ..Default::default() }));
    provider.write_cluster_record(&ClusterRecord { cluster_arn: arn.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(provider.cluster_record().await.unwrap(), Some(ClusterRecord { cluster_arn: arn.clone(), ..Default::default() }));

    // Cognito users recorded side by side (one merge patch each) survive each
    // other and the record's own apply, and are taken back one by one.
    let pool = "us-west-2_aBcDeFgHi".to_owned();
    let (erin, frank) = ("erin+kfp@example.com".to_owned(), "frank@example.com".to_owned());
    let (one, two) =
        futures_util::join!(provider.record_cognito_user(&pool, &erin, true), provider.record_cognito_user(&pool, &frank, true));
    one.unwrap();
    two.unwrap();
    provider.write_cluster_record(&ClusterRecord { cluster_arn: arn.clone(), ..Default::default() }).await.unwrap();
    let both = [(pool.clone(), erin.clone()), (pool.clone(), frank.clone())].into();
    assert_eq!(provider.cluster_record().await.unwrap(), Some(ClusterRecord { cluster_arn: arn.clone(), cognito_users: both }));
    provider.record_cognito_user(&pool, &erin, false).await.unwrap();
    let left = [(pool.clone(), frank.clone())].into();
    assert_eq!(provider.cluster_record().await.unwrap(), Some(ClusterRecord { cluster_arn: arn.clone(), cognito_users: left }));
    provider.record_cognito_user(&pool, &frank, false).await.unwrap();

    let (a, b) = (profile(&kube.name("team-r")), profile(&kube.name("team-s")));
    for p in [&a, &b] {
        provider.apply_profile(p).await.unwrap();
        provider.wait_ready(p, WAIT).await.unwrap();
    }
    let runner = ServiceAccount {
        namespace: a.name.clone(),
        name: "runner".into(),
        role_arn: Some(ARN.into()),
        managed: true,
        cluster: Some(cluster.clone()),
        created: true,
    };
    provider.apply_service_account(&runner, WAIT).await.unwrap();
    let editors: Vec<ServiceAccount> = provider.list_service_accounts(AccountQuery::Named("default-editor")).await.unwrap();
    let ours: Vec<&str> =
        editors.iter().filter(|sa| sa.namespace == a.name || sa.namespace == b.name).map(|sa| sa.namespace.as_str()).collect();
    assert_eq!(ours, [a.name.as_str(), b.name.as_str()], "every default-editor, in one call");
    assert!(editors.iter().all(|sa| sa.name == "default-editor"));
    let managed = provider.list_service_accounts(AccountQuery::Managed).await.unwrap();
    assert!(managed.contains(&runner), "{managed:?}");
    assert!(managed.iter().all(|sa| sa.managed));
    // Released, the account stays but is no longer kfp-tenant's, nor granted.
    provider.release_service_account(&a.name, "runner").await.unwrap();
    let released = provider.get_service_account(&a.name, "runner").await.unwrap().unwrap();
    assert_eq!((released.role_arn, released.managed, released.cluster, released.created), (None, false, None, false));
    assert_eq!(provider.get_namespace(&a.name).await.unwrap().unwrap().owner.as_deref(), Some("alice@example.com"));
    for p in [&a, &b] {
        provider.delete_profile(&p.name, WAIT).await.unwrap();
    }
}

/// kfp-tenant's keys of a tenant's `kfp-launcher`, sending its runs to `root`.
fn launcher(namespace: &str, root: &str) -> ConfigMap {
    ConfigMap {
        namespace: namespace.into(),
        name: "kfp-launcher".into(),
        data: [("defaultPipelineRoot".to_owned(), root.to_owned()), ("providers".to_owned(), "{}".to_owned())].into(),
        annotations: [("kfp-tenant/owned-keys".to_owned(), "defaultPipelineRoot,providers".to_owned())].into(),
    }
}

/// The ConfigMaps KFP's pipelines-profile-controller writes (played by the
/// testkit controller as metacontroller runs it: OnDelete, resynced), in
/// both orders: kfp-tenant's keys are set and kept, KFP's other keys and a
/// hand-added one stay, and a release gives back only kfp-tenant's.
async fn the_pipeline_config_shares_its_configmaps_with_kfps_controller(backend: Backend) {
    let kube = TestKube::start(backend, TestKubeOptions { pipelines: true, ..Default::default() }).await;
    let provider = provider(&kube).await;
    let ours = "s3://kfp-artifacts/private-artifacts/team-p/v2/artifacts";
    let data = |cm: &serde_json::Value, key: &str| cm["data"][key].as_str().map(str::to_owned);

    // KFP's controller first: it made kfp-launcher as soon as the namespace existed.
    let first = kube.name("team-p");
    provider.apply_profile(&profile(&first)).await.unwrap();
    kube.wait_for("configmaps", &first, "kfp-launcher", WAIT, |cm| cm.is_some()).await;
    let live = kube.object("configmaps", &first, "kfp-launcher").await.unwrap();
    assert!(data(&live, "defaultPipelineRoot").unwrap().starts_with("minio://"), "{live}");
    let want = launcher(&first, ours);
    provider.apply_config_map(&want, WAIT).await.unwrap();
    // Resyncs later (OnDelete), the keys are still kfp-tenant's; KFP's clusterDomain stays.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = kube.object("configmaps", &first, "kfp-launcher").await.unwrap();
    assert_eq!(data(&live, "defaultPipelineRoot").as_deref(), Some(ours), "{live}");
    assert_eq!(data(&live, "clusterDomain").as_deref(), Some("cluster.local"), "KFP's own key stays: {live}");
    let listed = provider.list_config_maps("kfp-launcher").await.unwrap();
    let found = listed.iter().find(|c| c.namespace == first).unwrap();
    assert!(found.ours() && found.data["defaultPipelineRoot"] == ours, "{found:?}");

    // A hand edit of kfp-tenant's key, and a key added by hand: the next apply
    // sets its key back and leaves the other.
    kube.edit_object("configmaps", &first, "kfp-launcher", |cm| {
        cm["data"]["defaultPipelineRoot"] = json!("s3://elsewhere/runs");
        cm["data"]["addedByHand"] = json!("yes");
    })
    .await;
    provider.apply_config_map(&want, WAIT).await.unwrap();
    let live = kube.object("configmaps", &first, "kfp-launcher").await.unwrap();
    assert_eq!(data(&live, "defaultPipelineRoot").as_deref(), Some(ours), "{live}");
    assert_eq!(data(&live, "addedByHand").as_deref(), Some("yes"), "{live}");

    // A release gives back kfp-tenant's keys and annotation only; the ConfigMap stays.
    let release = ConfigMap { data: Default::default(), annotations: Default::default(), ..want.clone() };
    provider.apply_config_map(&release, WAIT).await.unwrap();
    let live = kube.object("configmaps", &first, "kfp-launcher").await.unwrap();
    assert_eq!(data(&live, "defaultPipelineRoot"), None, "{live}");
    assert_eq!(data(&live, "providers"), None, "{live}");
    assert!(live["metadata"]["annotations"].get("kfp-tenant/owned-keys").is_none(), "{live}");
    assert_eq!((data(&live, "clusterDomain").as_deref(), data(&live, "addedByHand").as_deref()), (Some("cluster.local"), Some("yes")));
    provider.delete_profile(&first, WAIT).await.unwrap();

    // kfp-tenant first: the namespace is there before its Profile (the
    // operator made it), kfp-tenant writes kfp-launcher, then the Profile
    // comes and KFP's controller tries to create its own: AlreadyExists,
    // swallowed, on every resync; nothing of kfp-tenant's is lost.
    let second = kube.name("team-q");
    kube.create_object("namespaces", "", json!({"metadata": {"name": second, "annotations": {"owner": "alice@example.com"}}})).await;
    let want = launcher(&second, ours);
    provider.apply_config_map(&want, WAIT).await.unwrap();
    provider.apply_profile(&profile(&second)).await.unwrap();
    kube.wait_for("configmaps", &second, "artifact-repositories", WAIT, |cm| cm.is_some()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = kube.object("configmaps", &second, "kfp-launcher").await.unwrap();
    assert_eq!(data(&live, "defaultPipelineRoot").as_deref(), Some(ours), "{live}");
    assert_eq!(data(&live, "clusterDomain"), None, "KFP's create failed, as metacontroller's does: {live}");
    // A release of a ConfigMap that is not there makes none (an empty
    // kfp-launcher would keep KFP's controller from making its own).
    let gone = ConfigMap { name: "kfp-tenant-released".into(), data: Default::default(), annotations: Default::default(), ..want };
    provider.apply_config_map(&gone, WAIT).await.unwrap();
    assert!(kube.object("configmaps", &second, "kfp-tenant-released").await.is_none());
    provider.delete_profile(&second, WAIT).await.unwrap();
    kube.delete_object("namespaces", "", &second).await;
}
