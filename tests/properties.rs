//! Whatever the services do, kfp-tenant loses nothing and touches nothing it
//! does not own: a property test over random tenants files and fault schedules.
//!
//! Each case applies under faults (a crash after the Nth write, throttling,
//! 5xx, new roles invisible for a while), with or without the resilience
//! layer, and then either applies again without faults or destroys. Tenants
//! are on IRSA or EKS Pod Identity, and some move from one to the other:
//! those start applied on their old road, and after the faults every one of
//! their service accounts must still have a road to its role. Afterwards
//! the live state must be exactly the desired state (or nothing), with the
//! unmanaged resources next to it untouched. proptest keeps shrunk failures in
//! `proptest-regressions/properties.txt` (committed), replayed before new cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kfp_tenant_core::apply::{self, ApplyOptions, Providers, Quiet};
use kfp_tenant_core::plan::{self, Plan, PlanOptions};
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{Profile, Role};
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::resilience::{Resilient, RetryPolicy};
use kfp_tenant_core::spec::{Desired, ResourceQuota, Road, S3AccessMode, TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_testkit::Faults;
use kfp_tenant_testkit::world::{CLUSTER, FakeWorld, sample_file};
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
struct TenantCase {
    custom_role: bool,
    access: u8,
    extra_accounts: u8,
    quota: bool,
    tags: u8,
    /// 0: IRSA, 1: Pod Identity, 2: moves from IRSA to Pod Identity, 3: back.
    road: u8,
}

impl TenantCase {
    fn road(&self, moved: bool) -> Road {
        match (self.road, moved) {
            (0, _) | (2, false) | (3, true) => Road::Irsa,
            _ => Road::PodIdentity,
        }
    }
}

#[derive(Clone, Debug)]
struct FaultCase {
    crash_after_writes: Option<u64>,
    throttle: f64,
    transient: f64,
    invisible: bool,
    seed: u64,
    resilient: bool,
    destroy_after: bool,
}

fn tenant_case() -> impl Strategy<Value = TenantCase> {
    (any::<bool>(), 0u8..3, 0u8..3, any::<bool>(), 0u8..3, 0u8..4).prop_map(|(custom_role, access, extra_accounts, quota, tags, road)| {
        TenantCase { custom_role, access, extra_accounts, quota, tags, road }
    })
}

fn fault_case() -> impl Strategy<Value = FaultCase> {
    (proptest::option::of(0u64..90), 0.0..0.5f64, 0.0..0.3f64, any::<bool>(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
        |(crash_after_writes, throttle, transient, invisible, seed, resilient, destroy_after)| FaultCase {
            crash_after_writes,
            throttle,
            transient,
            invisible,
            seed,
            resilient,
            destroy_after,
        },
    )
}

/// The file as it ends (`moved`), or as it was before the moving tenants moved.
fn tenants_file(cases: &[TenantCase], moved: bool) -> TenantsFile {
    let tenants = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ns = format!("t{i:02}");
            let (s3_access, s3_prefix) = match c.access {
                0 => (None, None),
                1 => (Some(S3AccessMode::Full), None),
                _ => (Some(S3AccessMode::Prefix), Some(format!("private-artifacts/{ns}/"))),
            };
            let mut accounts = vec!["default-editor".to_owned()];
            accounts.extend((0..c.extra_accounts).map(|k| format!("runner-{k}")));
            TenantInput {
                namespace: ns.clone(),
                owner: format!("{ns}@example.com"),
                role_name: c.custom_role.then(|| format!("custom-{ns}")),
                s3_access,
                s3_prefix,
                service_accounts: Some(accounts),
                resource_quota: c.quota.then(|| ResourceQuota { hard: [("cpu".to_owned(), "4".to_owned())].into() }),
                tags: (0..c.tags).map(|k| (format!("k{k}"), format!("v{k}"))).collect(),
                identity: Some(c.road(moved)),
                ..Default::default()
            }
        })
        .collect();
    TenantsFile { tenants, ..sample_file(0) }
}

/// Resources that are not kfp-tenant's, next to the tenants.
fn seed_outsiders(world: &FakeWorld) {
    world.iam.insert_role(Role {
        name: "outsider-role".into(),
        path: "/".into(),
        arn: String::new(),
        trust_policy: PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": []})),
        description: Some("someone else's".into()),
        tags: [("owner".to_owned(), "platform".to_owned())].into(),
        max_session_duration: 3600,
        permissions_boundary: None,
    });
    world.iam.insert_policy("outsider-role", "theirs", PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": []})));
    world.kube.insert_profile(Profile {
        name: "outsider".into(),
        owner: "o@example.com".into(),
        plugins: vec![],
        resource_quota: None,
        managed: false,
        cluster: None,
    });
}

async fn plan_with(world: &FakeWorld, desired: &Desired, resilient: bool, destroy: bool) -> Result<Plan, String> {
    let reads = ReadSet::for_desired(desired, false);
    let observed = if resilient {
        let (iam, profiles) =
            (Resilient::new(world.iam.clone(), RetryPolicy::default()), Resilient::new(world.kube.clone(), RetryPolicy::default()));
        refresh(
            &reads,
            Providers { cluster: &world.cluster, iam: &iam, kube: &profiles, pod_identity: &iam, directory: &world.directory },
            10,
            RefreshMode::Auto,
        )
        .await
    } else {
        refresh(
            &reads,
            Providers {
                cluster: &world.cluster,
                iam: &world.iam,
                kube: &world.kube,
                pod_identity: &world.iam,
                directory: &world.directory,
            },
            10,
            RefreshMode::Auto,
        )
        .await
    }
    .map_err(|e| e.to_string())?;
    if destroy { plan::plan_destroy(desired, &observed) } else { plan::plan(desired, &observed, PlanOptions::default()) }
        .map_err(|e| e.to_string())
}

/// Applies under the faults; a crash shows as the apply never finishing, and
/// the future is dropped, as a killed process would leave things.
async fn apply_under_faults(world: &FakeWorld, desired: &Desired, faults: &FaultCase) {
    world.set_faults(Faults {
        crash_after_writes: faults.crash_after_writes,
        throttle: faults.throttle,
        transient: faults.transient,
        invisible_for: if faults.invisible { Duration::from_secs(2) } else { Duration::ZERO },
        seed: faults.seed,
        ..Default::default()
    });
    if let Ok(plan) = plan_with(world, desired, faults.resilient, false).await {
        apply_plan(world, &plan, faults.resilient).await;
    }
    world.set_faults(Faults::default());
}

async fn apply_plan(world: &FakeWorld, plan: &Plan, resilient: bool) {
    let run = async {
        if resilient {
            let (iam, profiles) =
                (Resilient::new(world.iam.clone(), RetryPolicy::default()), Resilient::new(world.kube.clone(), RetryPolicy::default()));
            apply::apply(
                plan,
                Providers { cluster: &world.cluster, iam: &iam, kube: &profiles, pod_identity: &iam, directory: &world.directory },
                &ApplyOptions::default(),
                &Quiet,
            )
            .await
        } else {
            world.apply(plan).await
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3600), run).await;
}

fn outsiders_untouched(world: &FakeWorld) -> Result<(), TestCaseError> {
    let role = world.iam.role("outsider-role").ok_or_else(|| TestCaseError::fail("outsider role deleted"))?;
    prop_assert_eq!(role.tags, BTreeMap::from([("owner".to_owned(), "platform".to_owned())]));
    prop_assert_eq!(role.description.as_deref(), Some("someone else's"));
    prop_assert!(world.iam.policy("outsider-role", "theirs").is_some());
    let profile = world.kube.profile("outsider").ok_or_else(|| TestCaseError::fail("outsider profile deleted"))?;
    prop_assert!(!profile.managed && profile.plugins.is_empty());
    Ok(())
}

async fn check(cases: Vec<TenantCase>, faults: FaultCase) -> Result<(), TestCaseError> {
    let world = FakeWorld::new();
    seed_outsiders(&world);
    let desired = validate(&tenants_file(&cases, true)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let moving = cases.iter().any(|c| c.road >= 2);
    if moving {
        let before = validate(&tenants_file(&cases, false)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let plan = plan_with(&world, &before, false, false).await.map_err(TestCaseError::fail)?;
        prop_assert!(world.apply(&plan).await.is_success());
    }
    apply_under_faults(&world, &desired, &faults).await;
    tokio::time::sleep(Duration::from_secs(5)).await; // past any invisibility window
    if moving && !faults.destroy_after {
        // Every tenant was applied before the faults: none may be left without a road.
        let cluster = plan_with(&world, &desired, false, false).await.map_err(TestCaseError::fail)?.cluster;
        for t in &desired.tenants {
            for sa in &t.service_accounts {
                prop_assert!(world.road_of(&cluster, t, sa).is_some(), "{}/{} has no road to its role after the faults", t.namespace, sa);
            }
        }
    }

    let ours_roles: BTreeSet<String> = desired.tenants.iter().map(|t| t.role_name.clone()).collect();
    if faults.destroy_after {
        let plan = plan_with(&world, &desired, false, true).await.map_err(TestCaseError::fail)?;
        let report = world.apply(&plan).await;
        prop_assert!(report.is_success(), "{:?}", report);
        prop_assert_eq!(world.iam.role_names(), vec!["outsider-role".to_owned()]);
        prop_assert_eq!(world.iam.policy_names(), vec![("outsider-role".to_owned(), "theirs".to_owned())]);
        prop_assert_eq!(world.kube.profile_names(), vec!["outsider".to_owned()]);
        let left: Vec<(String, String)> = world.kube.service_accounts().into_keys().filter(|(ns, _)| ns != "outsider").collect();
        prop_assert!(left.is_empty(), "service accounts left behind: {:?}", left);
        prop_assert_eq!(world.iam.associations(CLUSTER), vec![], "associations left behind");
        return outsiders_untouched(&world);
    }

    let plan = plan_with(&world, &desired, false, false).await.map_err(TestCaseError::fail)?;
    let report = world.apply(&plan).await;
    prop_assert!(report.is_success(), "{:?}", report);
    let again = plan_with(&world, &desired, false, false).await.map_err(TestCaseError::fail)?;
    prop_assert!(
        !again.has_changes(),
        "not converged: {:?}",
        again.changes.iter().filter(|c| c.action != plan::Action::NoOp).collect::<Vec<_>>()
    );

    // Exactly the desired resources, no more, no orphans.
    let mut roles: BTreeSet<String> = world.iam.role_names().into_iter().collect();
    prop_assert!(roles.remove("outsider-role"));
    prop_assert_eq!(roles, ours_roles);
    let policies: BTreeSet<(String, String)> = world.iam.policy_names().into_iter().filter(|(r, _)| r != "outsider-role").collect();
    let wanted: BTreeSet<(String, String)> = desired.tenants.iter().map(|t| (t.role_name.clone(), t.policy_name.clone())).collect();
    prop_assert_eq!(policies, wanted);
    let mut profiles: BTreeSet<String> = world.kube.profile_names().into_iter().collect();
    prop_assert!(profiles.remove("outsider"));
    prop_assert_eq!(profiles, desired.tenants.iter().map(|t| t.namespace.clone()).collect::<BTreeSet<_>>());
    // kfp-tenant's own service accounts are exactly the extra ones asked for;
    // every default-editor carries its tenant's role.
    let all = world.kube.service_accounts();
    // every IRSA tenant's default-editor carries its role; every Pod
    // Identity tenant's none, and each of its accounts has an association.
    let associations = world.iam.associations(CLUSTER);
    let cluster = again.cluster.clone();
    for t in &desired.tenants {
        let arn = format!("arn:aws:iam::123456789012:role{}{}", t.role_path, t.role_name);
        let editor = all.get(&(t.namespace.clone(), "default-editor".to_owned())).map(|sa| sa.role_arn.clone());
        let mut associated: Vec<String> =
            associations.iter().filter(|a| a.namespace == t.namespace).map(|a| a.service_account.clone()).collect();
        associated.sort();
        match t.road {
            Road::Irsa => {
                prop_assert_eq!(editor, Some(Some(arn)));
                prop_assert!(associated.is_empty(), "{} is on IRSA but has associations {:?}", t.namespace, associated);
            }
            Road::PodIdentity => {
                prop_assert_eq!(editor, Some(None));
                prop_assert_eq!(&associated, &t.service_accounts);
            }
        }
        for sa in &t.service_accounts {
            prop_assert_eq!(world.road_of(&cluster, t, sa), Some(t.road), "{}/{}", t.namespace, sa);
        }
    }
    let accounts: BTreeSet<(String, String)> = all.into_iter().filter(|(_, sa)| sa.managed).map(|(k, _)| k).collect();
    let wanted: BTreeSet<(String, String)> = desired
        .tenants
        .iter()
        .flat_map(|t| t.extra_service_accounts().map(|sa| (t.namespace.clone(), sa.to_owned())).collect::<Vec<_>>())
        .collect();
    prop_assert_eq!(accounts, wanted);
    outsiders_untouched(&world)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn apply_under_faults_then_again_converges_and_touches_nothing_else(
        cases in proptest::collection::vec(tenant_case(), 1..=20),
        faults in fault_case(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(check(cases, faults))?;
    }
}
