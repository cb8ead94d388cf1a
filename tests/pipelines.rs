//! A tenant's pipeline config on the fakes: kfp-tenant's keys in
//! `kfp-launcher` and `artifact-repositories` beside KFP's own, drift, the
//! opt-out, destroy and prune, and saved plans.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use kfp_tenant_core::address::Address;
use kfp_tenant_core::plan::{Action, Plan, PlanOptions, Reason, check_fresh, reads_of};
use kfp_tenant_core::render::{self, Color};
use kfp_tenant_core::spec::{Desired, S3AccessMode, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_testkit::world::{FakeWorld, sample_file};

const NS: &str = "team-0000";
const ROOT: &str = "s3://kfp-artifacts/private-artifacts/team-0000/v2/artifacts";

fn desired(file: &TenantsFile) -> Desired {
    validate(file).expect("a valid file")
}

fn changes(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::NoOp && c.address.to_string().contains("pipeline_config"))
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

fn launcher_address() -> Address {
    Address::pipeline_config(NS, "kfp-launcher")
}

/// What KFP's pipelines-profile-controller writes, before or after kfp-tenant.
fn kfp_writes(world: &FakeWorld) {
    let minio = format!("minio://mlpipeline/private-artifacts/{NS}/v2/artifacts");
    world.kube.write_config_map(NS, "kfp-launcher", &[("defaultPipelineRoot", minio.as_str()), ("clusterDomain", "cluster.local")]);
}

#[tokio::test]
async fn kfps_launcher_root_is_taken_over_and_its_other_keys_kept() {
    let world = FakeWorld::new();
    let d = desired(&sample_file(1));
    // The Profile first (the namespace), then KFP's controller, then kfp-tenant.
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(world.apply(&plan).await.is_success());
    kfp_writes(&world);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(changes(&plan), [(launcher_address().to_string(), Action::Update)]);
    let text = render::plan_text(&plan, Color::Never);
    insta::assert_snapshot!("launcher_taken_over.txt", text);
    assert!(text.contains("minio://mlpipeline") && text.contains(ROOT), "{text}");
    assert!(world.apply(&plan).await.is_success());
    let live = world.kube.config_map(NS, "kfp-launcher").unwrap();
    assert_eq!(live.data["defaultPipelineRoot"], ROOT);
    assert_eq!(live.data["clusterDomain"], "cluster.local", "KFP's own key stays");
    assert!(live.data["providers"].contains(r#""fromEnv":true"#), "{live:?}");
    let again = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!again.has_changes(), "{:?}", changes(&again));
}

#[tokio::test]
async fn a_changed_root_is_drift_and_is_set_back() {
    let world = FakeWorld::new();
    let d = desired(&sample_file(1));
    assert!(world.apply(&world.plan(&d, PlanOptions::default()).await.unwrap()).await.is_success());
    world.kube.write_config_map(NS, "kfp-launcher", &[("defaultPipelineRoot", "s3://kfp-artifacts/elsewhere")]);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    let change = plan.change(&launcher_address()).unwrap();
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.reason, Some(Reason::Drift { attributes: vec!["defaultPipelineRoot".into()] }));
    // A saved plan is refused when the ConfigMap moved again since.
    world.kube.write_config_map(NS, "kfp-launcher", &[("defaultPipelineRoot", "s3://kfp-artifacts/third")]);
    let now = world.observe(&reads_of(&plan)).await.unwrap();
    assert_eq!(check_fresh(&plan, &now).unwrap_err().changed, [launcher_address()]);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(world.kube.config_map(NS, "kfp-launcher").unwrap().data["defaultPipelineRoot"], ROOT);
}

/// A prefix tenant's runs go under its prefix, and a root of its own is kept to it.
#[tokio::test]
async fn a_prefix_tenants_root_lies_under_its_prefix() {
    let world = FakeWorld::new();
    let mut file = sample_file(1);
    file.tenants[0].s3_access = Some(S3AccessMode::Prefix);
    file.tenants[0].s3_prefix = Some("teams/zero/".into());
    let plan = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(
        world.kube.config_map(NS, "kfp-launcher").unwrap().data["defaultPipelineRoot"],
        "s3://kfp-artifacts/teams/zero/v2/artifacts"
    );
    let repository = &world.kube.config_map(NS, "artifact-repositories").unwrap().data["default-namespaced"];
    assert!(
        repository.contains(r#""keyFormat":"teams/zero/v2/artifacts/logs/"#) && repository.contains(r#""useSDKCreds":true"#),
        "{repository}"
    );
    file.tenants[0].pipeline_root = Some("s3://kfp-artifacts/teams/zero/runs".into());
    let plan = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(world.kube.config_map(NS, "kfp-launcher").unwrap().data["defaultPipelineRoot"], "s3://kfp-artifacts/teams/zero/runs");
}

#[tokio::test]
async fn opting_out_gives_back_kfp_tenants_keys_and_keeps_the_configmaps() {
    let world = FakeWorld::new();
    let mut file = sample_file(1);
    kfp_writes_after_apply(&world, &file).await;
    file.tenants[0].pipeline_config = Some(false);
    let d = desired(&file);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(
        changes(&plan),
        [
            (Address::pipeline_config(NS, "artifact-repositories").to_string(), Action::Delete),
            (launcher_address().to_string(), Action::Delete),
        ]
    );
    let text = render::plan_text(&plan, Color::Never);
    assert!(text.contains("gives back the keys it wrote"));
    // Only kfp-tenant's keys are shown going: KFP's stay.
    assert!(text.contains("defaultPipelineRoot") && !text.contains("clusterDomain"), "{text}");
    assert!(world.apply(&plan).await.is_success());
    let live = world.kube.config_map(NS, "kfp-launcher").expect("the ConfigMap stays");
    assert_eq!(live.data.keys().collect::<Vec<_>>(), ["clusterDomain"], "only KFP's key is left: {live:?}");
    assert!(!live.ours());
    let again = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!again.has_changes(), "{:?}", changes(&again));
}

/// Applies the file, then KFP's controller adds its key (OnDelete: to a ConfigMap
/// kfp-tenant made, its create fails; here it is as if it had made it first).
async fn kfp_writes_after_apply(world: &FakeWorld, file: &TenantsFile) {
    assert!(world.apply(&world.plan(&desired(file), PlanOptions::default()).await.unwrap()).await.is_success());
    world.kube.write_config_map(NS, "kfp-launcher", &[("clusterDomain", "cluster.local")]);
}

#[tokio::test]
async fn destroy_and_prune_leave_the_configmaps_to_the_namespace() {
    let world = FakeWorld::new();
    let file = sample_file(2);
    let d = desired(&file);
    assert!(world.apply(&world.plan(&d, PlanOptions::default()).await.unwrap()).await.is_success());
    // Prune: team-0001 leaves the file; its namespace goes with its Profile.
    let mut one = file.clone();
    one.tenants.truncate(1);
    let prune = world.plan(&desired(&one), PlanOptions { prune: true, ..Default::default() }).await.unwrap();
    assert_eq!(changes(&prune), []);
    assert!(world.apply(&prune).await.is_success());
    assert_eq!(world.kube.config_map("team-0001", "kfp-launcher"), None);
    let destroy = world.plan_destroy(&desired(&one)).await.unwrap();
    assert_eq!(changes(&destroy), []);
    assert!(world.apply(&destroy).await.is_success());
    assert_eq!(world.kube.config_map(NS, "kfp-launcher"), None, "gone with the namespace");
}

/// An apply whose Profile's namespace never appeared: the rerun still plans
/// the ConfigMaps (a plan never says "no changes" while they are missing),
/// and once the profile controller makes the namespace one apply converges.
#[tokio::test]
async fn a_namespace_late_to_appear_keeps_the_configmaps_planned_until_written() {
    use kfp_tenant_core::apply::{self, ApplyOptions, Quiet};
    let world = FakeWorld::new();
    world.kube.set_controller_running(false);
    let d = desired(&sample_file(1));
    let short = ApplyOptions { timeout: std::time::Duration::from_millis(300), ..Default::default() };
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    let report = apply::apply(&plan, world.providers(), &short, &Quiet).await;
    assert!(report.failed() > 0, "the writes waited for the namespace and gave up: {report:?}");
    let again = world.plan(&d, PlanOptions::default()).await.unwrap();
    let expected: Vec<(String, Action)> = ["artifact-repositories", "kfp-launcher"]
        .iter()
        .map(|name| (Address::pipeline_config(NS, name).to_string(), Action::Create))
        .collect();
    assert_eq!(changes(&again), expected);
    // The profile controller, late, makes the namespace.
    world.kube.insert_namespace(NS, Some(&d.tenants[0].owner));
    let report = apply::apply(&again, world.providers(), &short, &Quiet).await;
    assert!(report.is_success(), "{report:?}");
    let last = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!last.has_changes(), "{:?}", changes(&last));
}
