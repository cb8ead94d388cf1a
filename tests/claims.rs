//! Tenants stay apart (the engine on the fakes): a tenant is never planned
//! onto another tenant's role, `--adopt` or not; destroying it leaves that
//! role; and a tenants file and the controller's KubeflowTenants never
//! change, warn about or prune each other's tenants.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use kfp_tenant_core::address::{Address, Kind};
use kfp_tenant_core::plan::{Action, Plan, PlanOptions};
use kfp_tenant_core::spec::{Desired, Source, TenantInput, TenantsFile};
use kfp_tenant_core::tags;
use kfp_tenant_core::validate;
use kfp_tenant_testkit::world::{FakeWorld, sample_file};

fn file(tenants: &[(&str, Option<&str>)]) -> TenantsFile {
    let mut file = sample_file(0);
    file.tenants = tenants
        .iter()
        .map(|(ns, role)| TenantInput {
            namespace: (*ns).into(),
            owner: format!("{ns}@example.com"),
            role_name: role.map(str::to_owned),
            ..Default::default()
        })
        .collect();
    file
}

/// The file's tenants, each declared by a KubeflowTenant.
fn from_resources(file: &TenantsFile) -> Desired {
    let mut d = validate(file).unwrap();
    for t in &mut d.tenants {
        t.source = Source::KubeflowTenant { claims: None };
    }
    d
}

async fn applied(world: &FakeWorld, d: &Desired) {
    let plan = world.plan(d, PlanOptions::default()).await.unwrap();
    assert!(world.apply(&plan).await.is_success());
}

fn deletes(plan: &Plan) -> Vec<String> {
    plan.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.address.to_string()).collect()
}

#[tokio::test]
async fn a_tenant_is_never_planned_onto_another_tenants_role() {
    let world = FakeWorld::new();
    applied(&world, &validate(&file(&[("team-x", Some("team-x-demo-role"))])).unwrap()).await;
    let before = world.iam.role("team-x-demo-role").unwrap();
    let policies = world.iam.policies();
    let writes = world.calls.writes();

    // team-q names team-x's role: refused, naming both, with --adopt too.
    let q = validate(&file(&[("team-x", Some("team-x-demo-role")), ("team-q", Some("team-x-demo-role"))]));
    assert!(q.is_err(), "two tenants of one file with one role are refused by validate");
    let q = validate(&file(&[("team-q", Some("team-x-demo-role"))])).unwrap();
    for adopt in [false, true] {
        let err = world.plan(&q, PlanOptions { adopt, ..Default::default() }).await.unwrap_err();
        assert!(err.contains("IAM role team-x-demo-role is tenant team-x's") && err.contains("not tenant team-q's"), "{err}");
        assert!(err.contains("give tenant team-q a roleName of its own") && !err.contains("--adopt"), "{err}");
    }
    assert_eq!(world.calls.writes(), writes, "nothing written");

    // Destroying team-q leaves team-x's role and its policy.
    let destroy = world.plan_destroy(&q).await.unwrap();
    assert!(deletes(&destroy).iter().all(|a| !a.contains("team-x")), "{:?}", deletes(&destroy));
    assert!(destroy.warnings.iter().any(|w| w.contains("destroying tenant team-q leaves it")), "{:?}", destroy.warnings);
    assert!(world.apply(&destroy).await.is_success());
    assert_eq!(world.iam.role("team-x-demo-role").unwrap(), before);
    assert_eq!(world.iam.policies(), policies);

    // A role kfp-tenant made for another cluster's tenant is not adopted either.
    let mut other = before.clone();
    other.name = "team-a-shared".into();
    other.tags.insert(tags::CLUSTER.into(), "kf-other".into());
    other.tags.insert(tags::NAMESPACE.into(), "team-a".into());
    world.iam.insert_role(other);
    let a = validate(&file(&[("team-a", Some("team-a-shared"))])).unwrap();
    let err = world.plan(&a, PlanOptions { adopt: true, ..Default::default() }).await.unwrap_err();
    assert!(err.contains("is tenant team-a of EKS cluster kf-other's"), "{err}");
}

#[tokio::test]
async fn a_file_and_the_controller_keep_to_their_own_tenants() {
    let world = FakeWorld::new();
    let by_file = validate(&file(&[("team-f", None)])).unwrap();
    applied(&world, &by_file).await;
    let resources = from_resources(&file(&[("team-k", None)]));
    applied(&world, &resources).await;
    let role = world.iam.role(&resources.tenants[0].role_name).unwrap();
    assert_eq!(role.tags.get(tags::KUBEFLOW_TENANT).map(String::as_str), Some("team-k"), "a KubeflowTenant's role says so");
    assert!(!world.plan(&resources, PlanOptions::default()).await.unwrap().has_changes());

    // The file's plan names neither the KubeflowTenant's tenant nor prunes it.
    let plan = world.plan(&by_file, PlanOptions::default()).await.unwrap();
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let pruned = world.plan(&by_file, PlanOptions { prune: true, ..Default::default() }).await.unwrap();
    assert!(deletes(&pruned).is_empty(), "{:?}", deletes(&pruned));

    // A file naming it is refused, in plan and in destroy; so is a
    // KubeflowTenant naming a file's tenant.
    let takeover = validate(&file(&[("team-f", None), ("team-k", None)])).unwrap();
    let err = world.plan(&takeover, PlanOptions { adopt: true, ..Default::default() }).await.unwrap_err();
    assert!(err.contains("tenant team-k is declared by KubeflowTenant team-k"), "{err}");
    let err = world.plan_destroy(&takeover).await.unwrap_err();
    assert!(err.contains("tenant team-k is declared by KubeflowTenant team-k"), "{err}");
    let err = world.plan(&from_resources(&file(&[("team-f", None)])), PlanOptions::default()).await.unwrap_err();
    assert!(err.contains("tenant team-f is managed from a tenants file") && err.contains("aws iam tag-role"), "{err}");
    let err = world.plan_destroy(&from_resources(&file(&[("team-f", None)]))).await.unwrap_err();
    assert!(err.contains("tenant team-f is managed from a tenants file"), "{err}");

    // A controller that applied the tenant before roles were tagged claims it: a tag.
    let mut claimed = from_resources(&file(&[("team-f", None)]));
    claimed.tenants[0].source = Source::KubeflowTenant { claims: Some(claimed.tenants[0].role_name.clone()) };
    let plan = world.plan(&claimed, PlanOptions::default()).await.unwrap();
    let changed: Vec<&Address> = plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| &c.address).collect();
    assert_eq!(changed, [&Address::tenant("team-f", Kind::IamRole)], "only the role's tag");
    // Claiming another role than the one its status names is no claim.
    claimed.tenants[0].source = Source::KubeflowTenant { claims: Some("some-other-role".into()) };
    assert!(world.plan(&claimed, PlanOptions::default()).await.is_err());

    // A KubeflowTenant named like the file's tenant and naming another
    // tenant's role: its destroy is refused for the namespace, so neither
    // the file's Profile nor its role goes (the role check comes second).
    let mut namesake = from_resources(&file(&[("team-f", Some(&role.name))]));
    namesake.tenants[0].source = Source::KubeflowTenant { claims: None };
    let err = world.plan_destroy(&namesake).await.unwrap_err();
    assert!(err.contains("tenant team-f is managed from a tenants file"), "{err}");
    assert!(world.kube.profile("team-f").is_some());
}

/// One tenant from flags (the page's variables) is a partial input: it
/// names no other tenant as missing, so it never advises a `--prune` that
/// the CLI refuses for it; a file does.
#[tokio::test]
async fn a_partial_input_advises_no_prune() {
    use kfp_tenant_core::plan::Listing;
    let world = FakeWorld::new();
    applied(&world, &validate(&file(&[("team-a", None), ("team-b", None)])).unwrap()).await;
    let one = validate(&file(&[("team-a", None)])).unwrap();
    let whole = world.plan(&one, PlanOptions::default()).await.unwrap();
    assert!(
        whole.warnings.iter().any(|w| w.contains("tenant team-b is not in the tenants file") && w.contains("--prune")),
        "{:?}",
        whole.warnings
    );
    let partial = world.plan(&one, PlanOptions { listing: Listing::Partial, ..Default::default() }).await.unwrap();
    assert!(partial.warnings.is_empty(), "{:?}", partial.warnings);
}
