//! The two roads from a tenant's service accounts to its role, on the
//! testkit fakes: IRSA (the OIDC provider and the role annotation) and EKS
//! Pod Identity (an association per service account); tenants of both in
//! one file, drift of associations, destroy, and moving a tenant from one
//! road to the other with a crash after every write of the move.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use kfp_tenant_core::address::{Address, Kind};
use kfp_tenant_core::apply::{self, ApplyOptions, Outcome, Progress};
use kfp_tenant_core::plan::{Action, Plan, PlanOptions, plan_destroy};
use kfp_tenant_core::ports::{PodIdentityAssociation, ProviderResult, TemporaryCredentials};
use kfp_tenant_core::refresh::ReadSet;
use kfp_tenant_core::render::{self, Color};
use kfp_tenant_core::spec::{Desired, Road, TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_testkit::Faults;
use kfp_tenant_testkit::world::{CLUSTER, FakeWorld, sample_file};

/// team-a on IRSA, team-b on `road` with a second service account.
fn file(road: Road) -> TenantsFile {
    let mut file = sample_file(1);
    file.tenants[0].namespace = "team-a".into();
    file.tenants[0].owner = "alice@example.com".into();
    file.tenants.push(TenantInput {
        namespace: "team-b".into(),
        owner: "bob@example.com".into(),
        identity: Some(road),
        service_accounts: Some(vec!["default-editor".into(), "pipeline-runner".into()]),
        ..Default::default()
    });
    file
}

fn desired(road: Road) -> Desired {
    validate(&file(road)).expect("valid")
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
}

async fn converge(world: &FakeWorld, d: &Desired) -> Plan {
    let plan = world.plan(d, PlanOptions::default()).await.expect("plan");
    let report = world.apply(&plan).await;
    assert!(report.is_success(), "{report:?}");
    let again = world.plan(d, PlanOptions::default()).await.expect("plan");
    assert_eq!(actions(&again), vec![], "apply then plan is a no-op");
    plan
}

/// Every service account of every tenant, with the road that serves it now.
fn roads(world: &FakeWorld, plan: &Plan, d: &Desired) -> Vec<(String, Option<Road>)> {
    d.tenants
        .iter()
        .flat_map(|t| t.service_accounts.iter().map(move |sa| (t, sa)))
        .map(|(t, sa)| (format!("{}/{sa}", t.namespace), world.road_of(&plan.cluster, t, sa)))
        .collect()
}

fn all_on(d: &Desired, road_b: Road) -> Vec<(String, Option<Road>)> {
    let all: Vec<(String, Option<Road>)> = vec![
        ("team-a/default-editor".into(), Some(Road::Irsa)),
        ("team-b/default-editor".into(), Some(road_b)),
        ("team-b/pipeline-runner".into(), Some(road_b)),
    ];
    all.into_iter().filter(|(k, _)| d.tenants.iter().any(|t| k.starts_with(&format!("{}/", t.namespace)))).collect()
}

#[tokio::test]
async fn a_file_with_tenants_on_both_roads_plans_and_applies_in_one_run() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    insta::assert_snapshot!("create_pod_identity.txt", render::plan_text(&plan, Color::Never));
    insta::assert_json_snapshot!("create_pod_identity.json", render::plan_json(&plan));
    assert_eq!(world.calls.writes(), 0);
    converge(&world, &d).await;

    assert_eq!(roads(&world, &plan, &d), all_on(&d, Road::PodIdentity));
    let b = world.kube.profile("team-b").unwrap();
    assert!(b.plugins.is_empty(), "a Pod Identity tenant's Profile has no IRSA plugin: {b:?}");
    let accounts = world.kube.service_accounts();
    let runner = &accounts[&("team-b".to_owned(), "pipeline-runner".to_owned())];
    assert!(runner.managed && runner.role_arn.is_none(), "made and labelled, not annotated: {runner:?}");
    let associations = world.iam.associations(CLUSTER);
    assert_eq!(associations.len(), 2, "{associations:?}");
    assert!(associations.iter().all(|a| a.tags.get("kfp-tenant/cluster").map(String::as_str) == Some(CLUSTER)));
    let role_b = world.iam.role("team-b-kf-prod-role").unwrap();
    assert!(!role_b.trust_policy.to_compact_json().contains("oidc-provider"), "no IRSA statement: {:?}", role_b.trust_policy);

    // The next plan reads the associations: one listing, one Describe each.
    world.calls.reset();
    world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(world.calls.get("ListPodIdentityAssociations"), 1);
    assert_eq!(world.calls.get("DescribePodIdentityAssociation"), 2);
}

#[tokio::test]
async fn a_file_of_irsa_tenants_makes_no_eks_pod_identity_call() {
    let world = FakeWorld::new();
    let d = desired(Road::Irsa);
    converge(&world, &d).await;
    world.calls.reset();
    world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(world.calls.get("ListPodIdentityAssociations"), 0, "no permission needed for a file without Pod Identity");
}

#[tokio::test]
async fn associations_that_drift_are_repaired_and_foreign_ones_refused() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    converge(&world, &d).await;

    // By hand: runner's association points elsewhere, default-editor's is
    // gone, and one of kfp-tenant's for an account the file does not name.
    let elsewhere = "arn:aws:iam::123456789012:role/elsewhere".to_owned();
    world.iam.edit_associations(|a| {
        if a.service_account == "pipeline-runner" {
            a.role_arn = Some(elsewhere.clone());
        }
        a.service_account != "default-editor"
    });
    let ours = world.iam.associations(CLUSTER)[0].tags.clone();
    world.iam.insert_association(
        CLUSTER,
        PodIdentityAssociation {
            id: String::new(),
            namespace: "team-b".into(),
            service_account: "old-runner".into(),
            role_arn: Some("arn:aws:iam::123456789012:role/team-b-kf-prod-role".into()),
            tags: ours,
        },
    );
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(
        actions(&plan),
        vec![
            (r#"tenant["team-b"].pod_identity["default-editor"]"#.to_owned(), Action::Create),
            (r#"tenant["team-b"].pod_identity["old-runner"]"#.to_owned(), Action::Delete),
            (r#"tenant["team-b"].pod_identity["pipeline-runner"]"#.to_owned(), Action::Update),
        ]
    );
    insta::assert_snapshot!("drift_pod_identity.txt", render::plan_text(&plan, Color::Never));
    world.calls.reset();
    converge(&world, &d).await;
    assert_eq!(world.calls.get("CreatePodIdentityAssociation"), 1);
    assert_eq!(world.calls.get("UpdatePodIdentityAssociation"), 1);
    assert_eq!(world.calls.get("DeletePodIdentityAssociation"), 1);

    // Someone else's association for a granted account: refused, with the fix.
    world.iam.edit_associations(|a| a.service_account != "pipeline-runner");
    let theirs = world.iam.insert_association(
        CLUSTER,
        PodIdentityAssociation {
            id: String::new(),
            namespace: "team-b".into(),
            service_account: "pipeline-runner".into(),
            role_arn: Some(elsewhere.clone()),
            tags: Default::default(),
        },
    );
    let refused = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    assert!(refused.contains(&theirs) && refused.contains("--adopt") && refused.contains("delete-pod-identity-association"), "{refused}");
    assert_eq!(world.iam.associations(CLUSTER).iter().find(|a| a.id == theirs).unwrap().role_arn.as_deref(), Some(elsewhere.as_str()));
    // Adopted: recreated with kfp-tenant's tags (EKS's update cannot tag).
    let adopt = PlanOptions { adopt: true, ..Default::default() };
    let plan = world.plan(&d, adopt).await.unwrap();
    assert_eq!(plan.change(&Address::pod_identity("team-b", "pipeline-runner")).unwrap().action, Action::Replace);
    assert!(world.apply(&plan).await.is_success());
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
}

/// Records the order in which changes finish.
#[derive(Default)]
struct Order(std::sync::Mutex<Vec<Address>>);

impl Progress for Order {
    fn finished(&self, address: &Address, _action: Action, _outcome: &Outcome, _elapsed: Duration) {
        self.0.lock().unwrap().push(address.clone());
    }
}

#[tokio::test]
async fn destroy_deletes_the_associations_before_the_role() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    converge(&world, &d).await;
    let observed = world.observe(&ReadSet::for_desired(&d, false)).await.unwrap();
    let plan = plan_destroy(&d, &observed).unwrap();
    insta::assert_snapshot!("destroy_pod_identity.txt", render::plan_text(&plan, Color::Never));
    let order = Order::default();
    // One at a time: the order is the graph's alone.
    let options = ApplyOptions { parallelism: 1, ..Default::default() };
    assert!(apply::apply(&plan, world.providers(), &options, &order).await.is_success());
    let order = order.0.into_inner().unwrap();
    let at = |a: &Address| order.iter().position(|x| x == a).unwrap();
    let role = at(&Address::tenant("team-b", Kind::IamRole));
    assert!(at(&Address::pod_identity("team-b", "default-editor")) < role, "{order:?}");
    assert!(at(&Address::pod_identity("team-b", "pipeline-runner")) < role, "{order:?}");
    assert!(world.iam.associations(CLUSTER).is_empty());
    assert!(world.iam.role_names().is_empty());
}

/// Moves team-b from `from` to `to`: first uninterrupted, counting its
/// writes; then once per write, crashed right after it, checking that every
/// service account still has a road, and that a rerun finishes the move.
async fn move_with_a_crash_after_every_write(from: Road, to: Road, snapshot: &str) {
    let start = || async {
        let world = FakeWorld::new();
        converge(&world, &desired(from)).await;
        world
    };
    let target = desired(to);
    let world = start().await;
    let plan = world.plan(&target, PlanOptions::default()).await.unwrap();
    insta::assert_snapshot!(snapshot, render::plan_text(&plan, Color::Never));
    let before = world.calls.writes();
    let moved = converge(&world, &target).await;
    let writes = world.calls.writes() - before;
    assert!(writes >= 6, "the move makes its writes: {writes}");
    assert_eq!(roads(&world, &moved, &target), all_on(&target, to));
    let role = world.iam.role("team-b-kf-prod-role").unwrap();
    let has_irsa = role.trust_policy.to_compact_json().contains("oidc-provider");
    assert_eq!(has_irsa, to == Road::Irsa, "the road left leaves the trust policy: {:?}", role.trust_policy);

    // One change at a time the walker takes ready changes in address order
    // (a tenant's service accounts before its associations), so only the
    // graph's edges keep a revocation after the grants; ten at a time, the
    // fakes answer in the order the calls start.
    for parallelism in [1, 10] {
        for crash_after in 0..writes {
            let world = start().await;
            let already = world.calls.writes();
            world.set_faults(Faults { crash_after_writes: Some(already + crash_after), ..Default::default() });
            let plan = world.plan(&target, PlanOptions::default()).await.unwrap();
            // A crash is a write that never returns; the run is dropped, as a killed process is.
            let options = ApplyOptions { parallelism, ..Default::default() };
            let run = apply::apply(&plan, world.providers(), &options, &apply::Quiet);
            let cut = tokio::time::timeout(Duration::from_secs(600), run).await;
            assert!(cut.is_err(), "the apply crashed after {crash_after} writes");
            world.set_faults(Faults::default());
            for (account, road) in roads(&world, &plan, &target) {
                assert!(
                    road.is_some(),
                    "{parallelism} at a time, after {crash_after} of {writes} writes, {account} has no road to its role"
                );
            }
            let rerun = converge(&world, &target).await;
            assert_eq!(roads(&world, &rerun, &target), all_on(&target, to), "after a crash at write {crash_after}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn moving_from_irsa_to_pod_identity_keeps_a_road_at_every_write() {
    move_with_a_crash_after_every_write(Road::Irsa, Road::PodIdentity, "move_to_pod_identity.txt").await;
}

#[tokio::test(start_paused = true)]
async fn moving_from_pod_identity_back_to_irsa_keeps_a_road_at_every_write() {
    move_with_a_crash_after_every_write(Road::PodIdentity, Road::Irsa, "move_to_irsa.txt").await;
}

#[tokio::test]
async fn an_association_made_between_plan_and_apply_is_adopted_when_ours_and_refused_when_not() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    // A run cut off after EKS made the association but before its answer came back.
    let ours = kfp_tenant_core::kinds::association_tags(CLUSTER, "team-b");
    let association = |sa: &str, tags| PodIdentityAssociation {
        id: String::new(),
        namespace: "team-b".into(),
        service_account: sa.into(),
        role_arn: Some("arn:aws:iam::123456789012:role/elsewhere".into()),
        tags,
    };
    world.iam.insert_association(CLUSTER, association("default-editor", ours));
    // Someone else's, made since the plan.
    let theirs = world.iam.insert_association(CLUSTER, association("pipeline-runner", Default::default()));
    let report = world.apply(&plan).await;
    let outcome = |sa: &str| report.outcomes[&Address::pod_identity("team-b", sa)].1.clone();
    assert_eq!(outcome("default-editor"), Outcome::Done);
    let Outcome::Failed { error, .. } = outcome("pipeline-runner") else { panic!("{report:?}") };
    assert!(error.contains(&theirs) && error.contains("run plan again"), "{error}");
    let associations = world.iam.associations(CLUSTER);
    let editor = associations.iter().find(|a| a.service_account == "default-editor").unwrap();
    assert_eq!(editor.role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/team-b-kf-prod-role"), "adopted and pointed at the role");
    assert_eq!(associations.len(), 2, "{associations:?}");
    let runner = associations.iter().find(|a| a.service_account == "pipeline-runner").unwrap();
    assert_eq!(runner.role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/elsewhere"), "someone else's is not touched");
}

#[tokio::test]
async fn the_cluster_quota_of_associations_is_checked_at_plan_time() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    let fill = |n: usize| {
        for i in 0..n {
            world.iam.insert_association(
                CLUSTER,
                PodIdentityAssociation {
                    id: String::new(),
                    namespace: "addons".into(),
                    service_account: format!("sa-{i}"),
                    role_arn: Some("arn:aws:iam::123456789012:role/addon".into()),
                    tags: Default::default(),
                },
            );
        }
    };
    fill(4998);
    assert!(world.plan(&d, PlanOptions::default()).await.is_ok(), "4,998 and 2 more is EKS's 5,000");
    fill(1);
    let refused = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    assert!(refused.contains("5001 EKS Pod Identity associations") && refused.contains("5000"), "{refused}");
    assert_eq!(world.calls.writes(), 0);
}

#[tokio::test(start_paused = true)]
async fn eks_refusing_a_role_iam_has_not_yet_shown_it_is_retried_within_the_window() {
    use kfp_tenant_core::resilience::{Resilient, RetryPolicy};
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    // New roles stay invisible to EKS for 8 s, as IAM's replication can keep them.
    world.set_faults(Faults { invisible_for: Duration::from_secs(8), ..Default::default() });
    let iam = Resilient::new(world.iam.clone(), RetryPolicy::default());
    let providers =
        apply::Providers { cluster: &world.cluster, iam: &iam, kube: &world.kube, pod_identity: &iam, directory: &world.directory };
    let report = apply::apply(&plan, providers, &ApplyOptions::default(), &apply::Quiet).await;
    assert!(report.is_success(), "{report:?}");
    assert!(world.calls.get("CreatePodIdentityAssociation") > 2, "refused while invisible, then made");
    assert_eq!(world.iam.associations(CLUSTER).len(), 2);
    // Without the resilience layer the same refusal fails the change, and names EKS's words.
    let world = FakeWorld::new();
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    world.set_faults(Faults { invisible_for: Duration::from_secs(8), ..Default::default() });
    let report = world.apply(&plan).await;
    let Outcome::Failed { error, .. } = &report.outcomes[&Address::pod_identity("team-b", "default-editor")].1 else {
        panic!("{report:?}")
    };
    assert!(error.contains("Role provided in the request does not exist"), "{error}");
}

/// S3 as verify's probe sees it: whatever is put is there.
#[derive(Default)]
struct Bucket(std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

#[async_trait::async_trait]
impl kfp_tenant_core::ports::ObjectStoreApi for Bucket {
    async fn put_object(&self, _: &TemporaryCredentials, bucket: &str, key: &str, body: &[u8]) -> ProviderResult<()> {
        self.0.lock().unwrap().insert(format!("{bucket}/{key}"), body.to_vec());
        Ok(())
    }
    async fn get_object(&self, _: &TemporaryCredentials, bucket: &str, key: &str) -> ProviderResult<Vec<u8>> {
        Ok(self.0.lock().unwrap().get(&format!("{bucket}/{key}")).cloned().unwrap_or_default())
    }
    async fn delete_object(&self, _: &TemporaryCredentials, bucket: &str, key: &str) -> ProviderResult<()> {
        self.0.lock().unwrap().remove(&format!("{bucket}/{key}"));
        Ok(())
    }
}

#[tokio::test]
async fn verify_checks_the_irsa_tenants_and_says_plainly_that_it_does_not_check_pod_identity_yet() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    converge(&world, &d).await;
    let observed = world.observe(&ReadSet::for_desired(&d, false)).await.unwrap();
    let bucket = Bucket::default();
    let ports = kfp_tenant_core::verify::Ports { cluster: &world.cluster, iam: &world.iam, kube: &world.kube, s3: &bucket };
    let report = kfp_tenant_core::verify::verify(&d, &observed, ports, 4, &Default::default()).await;
    let checked: Vec<&str> = report.checks.iter().map(|c| c.namespace.as_str()).collect();
    assert_eq!(checked, ["team-a"], "{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.pod_identity_not_verified, ["team-b"]);
    assert!(report.to_string().contains("Not verified: team-b uses EKS Pod Identity"), "{report}");
}

#[tokio::test]
async fn a_saved_plan_reads_the_associations_again_and_is_refused_when_one_changed() {
    let world = FakeWorld::new();
    let d = desired(Road::PodIdentity);
    converge(&world, &d).await;
    world.iam.edit_associations(|a| a.service_account != "pipeline-runner");
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    let reads = kfp_tenant_core::plan::reads_of(&plan);
    assert!(reads.pod_identity, "{reads:?}");
    assert_eq!(kfp_tenant_core::plan::check_fresh(&plan, &world.observe(&reads).await.unwrap()), Ok(()));
    world.iam.edit_associations(|a| {
        a.role_arn = Some("arn:aws:iam::123456789012:role/elsewhere".into());
        true
    });
    let stale = kfp_tenant_core::plan::check_fresh(&plan, &world.observe(&reads).await.unwrap()).unwrap_err();
    assert_eq!(stale.changed, [Address::pod_identity("team-b", "default-editor")]);
}

#[tokio::test]
async fn a_dropped_tenant_with_only_its_profile_and_associations_left_is_named_and_pruned_whole() {
    let world = FakeWorld::new();
    converge(&world, &desired(Road::PodIdentity)).await;
    // Its role deleted by hand: the Profile and the associations are what is left.
    world.iam.delete_policy("team-b-kf-prod-role", "kf-team-b-pipeline-s3");
    let role = world.iam.role("team-b-kf-prod-role").unwrap();
    world.iam.edit_role(&role.name, |r| r.tags.clear());
    let mut f = file(Road::PodIdentity);
    f.tenants.retain(|t| t.namespace != "team-b");
    let kept = validate(&f).unwrap();
    let warned = world.plan(&kept, PlanOptions::default()).await.unwrap();
    assert!(warned.warnings.iter().any(|w| w.contains("tenant team-b is not in the tenants file")), "{:?}", warned.warnings);
    let plan = world.plan(&kept, PlanOptions { prune: true, ..Default::default() }).await.unwrap();
    let deleted: Vec<String> = plan.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.address.to_string()).collect();
    assert_eq!(
        deleted,
        [
            r#"tenant["team-b"].profile"#,
            r#"tenant["team-b"].pod_identity["default-editor"]"#,
            r#"tenant["team-b"].pod_identity["pipeline-runner"]"#
        ]
    );
    assert!(world.apply(&plan).await.is_success());
    assert!(world.iam.associations(CLUSTER).is_empty());
}
