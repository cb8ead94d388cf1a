//! The page's step 6 on the testkit fakes: each Profile's owner is a user of
//! the file's Cognito user pool, found by e-mail or created, shared by the
//! tenants of one owner, and deleted only when asked, only if kfp-tenant
//! created it, and only when it owns no tenant left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::time::Duration;

use kfp_tenant_core::address::{Address, Kind};
use kfp_tenant_core::apply::{self, ApplyOptions, Outcome, Progress};
use kfp_tenant_core::plan::{Action, Plan, PlanOptions, plan_destroy, target};
use kfp_tenant_core::ports::ErrorKind;
use kfp_tenant_core::refresh::ReadSet;
use kfp_tenant_core::render::{self, Color};
use kfp_tenant_core::spec::{CognitoInput, Desired, IdentityProvider, TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_testkit::Faults;
use kfp_tenant_testkit::world::{FakeWorld, sample_file};

const POOL: &str = "us-west-2_aBcDeFgHi";

/// team-a and team-b owned by alice, team-c by carol (who has a user
/// already, made by hand), all signing in with Cognito.
fn file(delete_users: bool) -> TenantsFile {
    let mut file = sample_file(0);
    file.identity_provider = Some(IdentityProvider {
        cognito: Some(CognitoInput {
            user_pool_id: POOL.into(),
            invite: Some(false),
            delete_users: Some(delete_users),
            ..Default::default()
        }),
    });
    for (ns, owner) in [("team-a", "alice@example.com"), ("team-b", "alice@example.com"), ("team-c", "carol@example.com")] {
        file.tenants.push(TenantInput { namespace: ns.into(), owner: owner.into(), ..Default::default() });
    }
    file
}

fn desired(delete_users: bool) -> Desired {
    validate(&file(delete_users)).expect("valid")
}

fn world() -> FakeWorld {
    let world = FakeWorld::new();
    world.directory.add_user_pool(POOL, true);
    world.directory.add_user(POOL, "carol-by-hand", "carol@example.com");
    world
}

fn emails(world: &FakeWorld) -> BTreeSet<String> {
    world.directory.users(POOL).into_iter().map(|u| u.email).collect()
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
}

/// Records the order in which changes finish.
#[derive(Default)]
struct Order(std::sync::Mutex<Vec<Address>>);

impl Progress for Order {
    fn finished(&self, address: &Address, _action: Action, _outcome: &Outcome, _elapsed: Duration) {
        self.0.lock().unwrap().push(address.clone());
    }
}

/// Every order `kfp-tenant graph -f` shows between two resources of a
/// first apply is one that apply keeps (directly or through others), for
/// every kind a file can ask for: the file's graph does not promise what
/// the walk does not do.
#[tokio::test]
async fn the_files_graph_is_kept_by_the_first_apply() {
    let world = world();
    let mut file = file(false);
    file.tenants[1].identity = Some(kfp_tenant_core::spec::Road::PodIdentity);
    file.tenants[2].service_accounts = Some(vec!["default-editor".into(), "runner".into()]);
    let d = validate(&file).expect("valid");
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    let walked = kfp_tenant_core::order::plan(&plan);
    let mut after: std::collections::BTreeMap<&Address, BTreeSet<&Address>> = Default::default();
    for (a, b) in walked.edges() {
        after.entry(walked.node(a)).or_default().insert(walked.node(b));
    }
    let reaches = |from: &Address, to: &Address| {
        let mut todo = vec![from];
        let mut seen = BTreeSet::new();
        while let Some(at) = todo.pop() {
            if at == to {
                return true;
            }
            if seen.insert(at) {
                todo.extend(after.get(at).into_iter().flatten().copied());
            }
        }
        false
    };
    let drawn = kfp_tenant_core::order::file(&d);
    let planned = |a: &Address| plan.change(a).is_some();
    let mut checked = 0;
    for (a, b) in drawn.edges() {
        let (a, b) = (drawn.node(a), drawn.node(b));
        if planned(a) && planned(b) {
            assert!(reaches(a, b), "graph -f draws {a} -> {b}, and apply does not keep it");
            checked += 1;
        }
    }
    // Role -> policy and Profile, Profile -> service accounts, associations
    // and pipeline config, owner's user -> Profile: many per tenant.
    assert!(checked >= 20, "only {checked} edges between planned resources");
    let kinds: BTreeSet<_> = plan.changes.iter().filter_map(|c| c.address.kind()).collect();
    for kind in [Kind::IamRole, Kind::S3Policy, Kind::Profile, Kind::ServiceAccount, Kind::PodIdentity, Kind::PipelineConfig] {
        assert!(kinds.contains(&kind), "the plan has no {kind:?}");
    }
}

async fn destroy(world: &FakeWorld, d: &Desired) -> Plan {
    let observed = world.observe(&ReadSet::for_desired(d, false)).await.unwrap();
    let plan = plan_destroy(d, &observed).unwrap();
    assert!(world.apply(&plan).await.is_success());
    plan
}

#[tokio::test(start_paused = true)]
async fn one_user_per_owner_is_made_before_the_profiles_and_found_again_by_email() {
    let world = world();
    let d = desired(false);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    insta::assert_snapshot!("cognito_users.txt", render::plan_text(&plan, Color::Never));
    insta::assert_json_snapshot!("cognito_users.json", render::plan_json(&plan));
    let alice = Address::CognitoUser { email: "alice@example.com".into() };
    let carol = Address::CognitoUser { email: "carol@example.com".into() };
    assert_eq!(plan.change(&alice).unwrap().action, Action::Create, "one user for alice's two tenants");
    assert_eq!(plan.change(&carol).unwrap().action, Action::NoOp, "carol's user is used as it is");
    // `kfp-tenant graph PLAN` draws the order apply walks, this one included.
    let dot = render::graph_dot(&kfp_tenant_core::order::plan(&plan), Some(&plan));
    assert!(dot.contains(r#""cognito_user[\"alice@example.com\"]" -> "tenant[\"team-a\"].profile";"#), "{dot}");
    // And so does `kfp-tenant graph` of the file alone.
    let dot = render::graph_dot(&kfp_tenant_core::order::file(&d), None);
    assert!(dot.contains(r#""cognito_user[\"carol@example.com\"]" -> "tenant[\"team-c\"].profile";"#), "{dot}");

    // Cognito answers slowly; the Profiles must still wait for alice's user.
    world.directory.set_faults(Faults { latency: Duration::from_secs(2), ..Default::default() });
    let order = Order::default();
    assert!(apply::apply(&plan, world.providers(), &ApplyOptions::default(), &order).await.is_success());
    world.directory.set_faults(Faults::default());
    let order = order.0.into_inner().unwrap();
    let at = |a: &Address| order.iter().position(|x| x == a).unwrap();
    assert!(at(&alice) < at(&Address::tenant("team-a", Kind::Profile)), "{order:?}");
    assert!(at(&alice) < at(&Address::tenant("team-b", Kind::Profile)), "{order:?}");
    assert_eq!(world.calls.get("AdminCreateUser"), 1);
    assert_eq!(emails(&world), BTreeSet::from(["alice@example.com".into(), "carol@example.com".into()]));
    let record = world.kube.record().unwrap();
    assert_eq!(record.cognito_users, BTreeSet::from([(POOL.to_owned(), "alice@example.com".to_owned())]), "only the user it made");

    world.calls.reset();
    let again = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&again), vec![]);
    assert_eq!(world.calls.get("ListUsers"), 2, "one lookup per owner");
    assert_eq!(world.calls.writes(), 0);
}

#[tokio::test]
async fn destroy_leaves_the_users_unless_asked_and_then_only_those_it_made() {
    let world = world();
    let d = desired(false);
    assert!(world.apply(&world.plan(&d, PlanOptions::default()).await.unwrap()).await.is_success());
    destroy(&world, &d).await;
    assert_eq!(emails(&world).len(), 2, "people outlive tenants");

    let world = self::world();
    let d = desired(true);
    assert!(world.apply(&world.plan(&d, PlanOptions::default()).await.unwrap()).await.is_success());
    // One of alice's tenants goes: she still owns the other, so her user stays.
    let plan = destroy(&world, &target(&d, &["team-a".to_owned()])).await;
    assert!(plan.change(&Address::CognitoUser { email: "alice@example.com".into() }).is_none(), "{:?}", actions(&plan));
    assert_eq!(emails(&world).len(), 2);
    let plan = destroy(&world, &d).await;
    insta::assert_snapshot!("cognito_users_destroy.txt", render::plan_text(&plan, Color::Never));
    assert_eq!(emails(&world), BTreeSet::from(["carol@example.com".into()]), "carol's was made by hand");
    assert!(world.kube.record().unwrap().cognito_users.is_empty());
}

#[tokio::test]
async fn prune_deletes_a_user_it_made_once_the_owner_has_no_tenant_left() {
    let world = world();
    let d = desired(true);
    assert!(world.apply(&world.plan(&d, PlanOptions::default()).await.unwrap()).await.is_success());
    let mut f = file(true);
    f.tenants.retain(|t| t.owner != "alice@example.com");
    let kept = validate(&f).unwrap();
    let without_prune = world.plan(&kept, PlanOptions::default()).await.unwrap();
    assert!(without_prune.change(&Address::CognitoUser { email: "alice@example.com".into() }).is_none());
    let prune = PlanOptions { prune: true, ..Default::default() };
    let plan = world.plan(&kept, prune.clone()).await.unwrap();
    assert_eq!(plan.change(&Address::CognitoUser { email: "alice@example.com".into() }).unwrap().action, Action::Delete);
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(emails(&world), BTreeSet::from(["carol@example.com".into()]));
    assert!(!world.plan(&kept, prune).await.unwrap().has_changes());
}

#[tokio::test]
async fn a_pool_that_does_not_exist_or_may_not_be_read_stops_before_any_write() {
    let world = FakeWorld::new();
    let d = desired(false);
    let missing = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    assert!(
        missing.contains("identityProvider.cognito.userPoolId") && missing.contains(&format!("User pool {POOL} does not exist")),
        "{missing}"
    );
    world.directory.add_user_pool(POOL, false);
    world.directory.set_faults(Faults {
        fail_nth: [("ListUsers", (1, ErrorKind::AccessDenied))].into(),
        fail_message: Some("User: arn:aws:iam::123456789012:user/tester is not authorized to perform: cognito-idp:ListUsers"),
        ..Default::default()
    });
    let denied = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    assert!(denied.contains("cognito-idp:ListUsers") && denied.contains("identityProvider.cognito.userPoolId"), "{denied}");
    assert_eq!(world.calls.writes(), 0);
}

#[tokio::test]
async fn a_user_made_by_someone_else_between_plan_and_apply_is_used_and_not_recorded() {
    let world = world();
    let d = desired(true);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    world.directory.add_user(POOL, "alice@example.com", "alice@example.com");
    assert!(world.apply(&plan).await.is_success());
    assert!(world.kube.record().unwrap().cognito_users.is_empty(), "not kfp-tenant's, so never deleted by it");
    destroy(&world, &d).await;
    assert_eq!(emails(&world).len(), 2);
}

#[tokio::test]
async fn a_saved_plan_reads_the_owners_again_and_is_refused_when_a_user_appeared() {
    let world = world();
    let d = desired(false);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    let reads = kfp_tenant_core::plan::reads_of(&plan);
    assert_eq!(kfp_tenant_core::plan::check_fresh(&plan, &world.observe(&reads).await.unwrap()), Ok(()));
    world.directory.add_user(POOL, "alice-by-hand", "alice@example.com");
    let stale = kfp_tenant_core::plan::check_fresh(&plan, &world.observe(&reads).await.unwrap()).unwrap_err();
    assert_eq!(stale.changed, [Address::CognitoUser { email: "alice@example.com".into() }]);
}
