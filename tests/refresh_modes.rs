//! Both ways of reading IAM give the same plans: a property test over random
//! accounts (kfp-tenant's roles half-applied and drifted, other clusters'
//! roles, unmanaged roles under other paths, names in other cases), planned
//! with `--refresh-mode per-role` and `bulk`, with and without prune, and
//! as a destroy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use kfp_tenant_core::plan::{self, Plan, PlanOptions};
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::Role;
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::spec::{Desired, S3AccessMode, TenantInput, TenantsFile};
use kfp_tenant_core::{tags, validate};
use kfp_tenant_testkit::Faults;
use kfp_tenant_testkit::world::{CLUSTER, FakeWorld, sample_file};
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
struct Account {
    /// Per tenant: custom role name, role path, prefix access, boundary.
    tenants: Vec<(bool, u8, bool, bool)>,
    /// Writes of the first apply before it stops (none: no apply).
    applied_writes: Option<u64>,
    /// Drift edits, by tenant index: 0 description, 1 session, 2 boundary,
    /// 3 trust, 4 tags, 5 policy deleted, 6 another cluster's tag, 7 an
    /// inline policy added by hand, 8 a managed policy attached by hand.
    drift: Vec<(usize, u8)>,
    /// Roles that are not the file's: (kind, path): 0 unmanaged, 1 another
    /// cluster's, 2 this cluster's but not in the file, 3 a file's role name
    /// in other case.
    others: Vec<(u8, u8)>,
}

fn account() -> impl Strategy<Value = Account> {
    (
        proptest::collection::vec((any::<bool>(), 0u8..3, any::<bool>(), any::<bool>()), 1..=12),
        proptest::option::of(0u64..60),
        proptest::collection::vec((0usize..12, 0u8..9), 0..6),
        proptest::collection::vec((0u8..4, 0u8..3), 0..8),
    )
        .prop_map(|(tenants, applied_writes, drift, others)| Account { tenants, applied_writes, drift, others })
}

const PATHS: [&str; 3] = ["/", "/kubeflow/", "/teams/data/"];

fn tenants_file(account: &Account) -> TenantsFile {
    let tenants = account
        .tenants
        .iter()
        .enumerate()
        .map(|(i, (custom, path, prefix, boundary))| {
            let ns = format!("t{i:02}");
            TenantInput {
                namespace: ns.clone(),
                owner: format!("{ns}@example.com"),
                role_name: custom.then(|| format!("Custom-{ns}")),
                role_path: Some(PATHS[usize::from(*path)].to_owned()),
                s3_access: prefix.then_some(S3AccessMode::Prefix),
                s3_prefix: prefix.then(|| format!("private-artifacts/{ns}/")),
                permissions_boundary: boundary.then(|| "arn:aws:iam::123456789012:policy/boundary".to_owned()),
                ..Default::default()
            }
        })
        .collect();
    TenantsFile { tenants, ..sample_file(0) }
}

fn document(sid: &str) -> PolicyDocument {
    PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": [{"Sid": sid, "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}))
}

async fn build(account: &Account, world: &FakeWorld, desired: &Desired) {
    if let Some(writes) = account.applied_writes {
        world.set_faults(Faults { crash_after_writes: Some(writes), ..Default::default() });
        if let Ok(plan) = world.plan(desired, PlanOptions::default()).await {
            let _ = tokio::time::timeout(Duration::from_secs(600), world.apply(&plan)).await;
        }
        world.set_faults(Faults::default());
    }
    for (i, edit) in &account.drift {
        let Some(tenant) = desired.tenants.get(*i) else { continue };
        let name = &tenant.role_name;
        match edit {
            0 => world.iam.edit_role(name, |r| r.description = Some("edited by hand".into())),
            1 => world.iam.edit_role(name, |r| r.max_session_duration = 7200),
            2 => world.iam.edit_role(name, |r| r.permissions_boundary = Some("arn:aws:iam::123456789012:policy/other".into())),
            3 => world.iam.edit_role(name, |r| r.trust_policy = document("hand")),
            4 => world.iam.edit_role(name, |r| {
                r.tags.insert("cost-centre".into(), "42".into());
            }),
            5 => world.iam.delete_policy(name, &tenant.policy_name),
            7 if world.iam.role(name).is_some() => world.iam.insert_policy(name, "by-hand", document("extra")),
            8 if world.iam.role(name).is_some() => world.iam.insert_attachment(name, "arn:aws:iam::aws:policy/AdministratorAccess"),
            7 | 8 => {}
            _ => world.iam.edit_role(name, |r| {
                r.tags.insert(tags::CLUSTER.into(), "kf-other".into());
            }),
        }
    }
    for (n, (kind, path)) in account.others.iter().enumerate() {
        let (name, tags) = match kind {
            0 => (format!("outsider-{n}"), [("owner".to_owned(), "platform".to_owned())].into()),
            1 => (format!("other-cluster-{n}"), tags::role_tags(&Default::default(), "kf-other", &format!("o{n:02}"))),
            2 => (format!("gone-{n}"), tags::role_tags(&Default::default(), CLUSTER, &format!("gone{n:02}"))),
            _ => (format!("T{:02}-KF-ROLE", n % account.tenants.len()), Default::default()),
        };
        if world.iam.role(&name).is_some() {
            continue;
        }
        let namespace = tags.get(tags::NAMESPACE).cloned();
        world.iam.insert_role(Role {
            name: name.clone(),
            path: PATHS[usize::from(*path)].to_owned(),
            arn: String::new(),
            trust_policy: document("other"),
            description: Some(format!("Kubeflow tenant x {}", plan::role_description_marker(CLUSTER))),
            tags,
            max_session_duration: 3600,
            permissions_boundary: None,
        });
        if let Some(ns) = namespace {
            world.iam.insert_policy(&name, &kfp_tenant_core::spec::policy_name(&ns), document("theirs"));
        }
    }
}

async fn plan_in(world: &FakeWorld, desired: &Desired, mode: RefreshMode, options: PlanOptions, destroy: bool) -> Result<Plan, String> {
    let observed = refresh(&ReadSet::for_desired(desired, false), world.providers(), 10, mode)
        .await
        .map_err(|e| kfp_tenant_core::ports::error_chain(&e))?;
    if destroy { plan::plan_destroy(desired, &observed) } else { plan::plan(desired, &observed, options) }.map_err(|e| e.to_string())
}

async fn check(account: Account) -> Result<(), TestCaseError> {
    let world = FakeWorld::new();
    let desired = validate(&tenants_file(&account)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    build(&account, &world, &desired).await;
    for (options, destroy) in [
        (PlanOptions::default(), false),
        (PlanOptions { prune: true, ..Default::default() }, false),
        (PlanOptions { adopt: true, ..Default::default() }, false),
        (PlanOptions::default(), true),
    ] {
        let per_role = plan_in(&world, &desired, RefreshMode::PerRole, options.clone(), destroy).await;
        let bulk = plan_in(&world, &desired, RefreshMode::Bulk, options.clone(), destroy).await;
        prop_assert_eq!(&per_role, &bulk, "{:?} destroy={}", options, destroy);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn per_role_and_bulk_refresh_plan_the_same(account in account()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(check(account))?;
    }
}

/// The counts each way, on one account, so the property above is not
/// comparing two copies of one path.
#[tokio::test(start_paused = true)]
async fn bulk_reads_the_account_in_pages_and_per_role_reads_each_tenant() {
    let account = Account { tenants: vec![(false, 0, false, false); 12], applied_writes: Some(1_000), drift: vec![], others: vec![] };
    let world = FakeWorld::new();
    let desired = validate(&tenants_file(&account)).unwrap();
    build(&account, &world, &desired).await;
    // 900 roles of other services: auto weighs a page by the roles it holds.
    let pad = |world: &FakeWorld| {
        for i in 0..900 {
            world.iam.insert_role(kfp_tenant_core::ports::Role {
                name: format!("service-role-{i}"),
                path: "/service/".into(),
                arn: String::new(),
                trust_policy: kfp_tenant_core::policy::PolicyDocument::new(serde_json::json!({"Statement": []})),
                description: None,
                tags: Default::default(),
                max_session_duration: 3600,
                permissions_boundary: None,
            });
        }
    };
    pad(&world);

    world.calls.reset();
    plan_in(&world, &desired, RefreshMode::PerRole, PlanOptions::default(), false).await.unwrap();
    assert_eq!(world.calls.get("GetRole"), 12);
    assert_eq!(world.calls.get("GetRolePolicy"), 12);
    assert_eq!((world.calls.get("ListRolePolicies"), world.calls.get("ListAttachedRolePolicies")), (12, 12));
    assert_eq!(world.calls.get("GetAccountAuthorizationDetails"), 0);

    world.calls.reset();
    plan_in(&world, &desired, RefreshMode::Bulk, PlanOptions::default(), false).await.unwrap();
    assert_eq!(world.calls.get("GetRole"), 0);
    assert_eq!(world.calls.get("GetRolePolicy"), 0);
    assert_eq!((world.calls.get("ListRolePolicies"), world.calls.get("ListAttachedRolePolicies")), (0, 0));
    assert_eq!(world.calls.get("GetAccountAuthorizationDetails"), 1);
    assert_eq!(world.calls.get("ListRoles"), 1);

    // Auto, in an account of about 900 roles: 12 tenants are read per role; 60 in bulk.
    world.calls.reset();
    plan_in(&world, &desired, RefreshMode::Auto, PlanOptions::default(), false).await.unwrap();
    assert_eq!((world.calls.get("GetAccountSummary"), world.calls.get("GetAccountAuthorizationDetails")), (1, 0));
    let account = Account { tenants: vec![(false, 0, false, false); 60], ..account };
    let world = FakeWorld::new();
    let desired = validate(&tenants_file(&account)).unwrap();
    build(&account, &world, &desired).await;
    pad(&world);
    world.calls.reset();
    plan_in(&world, &desired, RefreshMode::Auto, PlanOptions::default(), false).await.unwrap();
    assert_eq!((world.calls.get("GetAccountSummary"), world.calls.get("GetAccountAuthorizationDetails")), (1, 1));
    assert_eq!(world.calls.get("GetRole"), 0);
}
