//! The engine through core's resilience layer, against fakes that throttle,
//! fail and hide new roles for a while, on tokio's paused clock (no real
//! sleeping: the clock jumps when every task waits).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use kfp_tenant_core::apply::{self, ApplyOptions, Providers, Quiet, Report};
use kfp_tenant_core::plan::{self, Plan, PlanOptions};
use kfp_tenant_core::ports::ErrorKind;
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::resilience::{AdaptiveRate, Resilient, RetryPolicy};
use kfp_tenant_core::spec::Desired;
use kfp_tenant_core::validate;
use kfp_tenant_testkit::world::{FakeWorld, sample_file};
use kfp_tenant_testkit::{FakeCluster, FakeIam, FakeKube, Faults};

struct Guarded {
    cluster: FakeCluster,
    directory: kfp_tenant_testkit::FakeDirectory,
    iam: Resilient<FakeIam>,
    profiles: Resilient<FakeKube>,
}

impl Guarded {
    fn new(world: &FakeWorld, limiter: Option<Arc<AdaptiveRate>>) -> Self {
        let mut iam = Resilient::new(world.iam.clone(), RetryPolicy::default());
        if let Some(l) = limiter {
            iam = iam.with_limiter(l);
        }
        Guarded {
            cluster: world.cluster.clone(),
            directory: world.directory.clone(),
            iam,
            profiles: Resilient::new(world.kube.clone(), RetryPolicy::default()),
        }
    }

    /// Reads per role: the most IAM calls, so the most throttling.
    async fn plan(&self, world: &FakeWorld, desired: &Desired) -> Plan {
        let observed = refresh(
            &ReadSet::for_desired(desired, false),
            Providers {
                cluster: &world.cluster,
                iam: &self.iam,
                kube: &self.profiles,
                pod_identity: &self.iam,
                directory: &world.directory,
            },
            10,
            RefreshMode::PerRole,
        )
        .await
        .unwrap();
        plan::plan(desired, &observed, PlanOptions::default()).unwrap()
    }

    async fn apply(&self, plan: &Plan) -> Report {
        apply::apply(
            plan,
            Providers { cluster: &self.cluster, iam: &self.iam, kube: &self.profiles, pod_identity: &self.iam, directory: &self.directory },
            &ApplyOptions::default(),
            &Quiet,
        )
        .await
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_and_eventual_consistency_need_no_operator() {
    let world = FakeWorld::new();
    let desired = validate(&sample_file(50)).unwrap();
    world.iam.set_faults(Faults { throttle: 0.3, invisible_for: Duration::from_secs(2), seed: 7, ..Default::default() });
    let guarded = Guarded::new(&world, None);

    let plan = guarded.plan(&world, &desired).await;
    let report = guarded.apply(&plan).await;
    assert!(report.is_success(), "{report:#?}");
    let retries = guarded.iam.retries();
    assert!(retries[&ErrorKind::Throttled] > 20, "30% of calls were throttled and retried: {retries:?}");
    assert!(retries[&ErrorKind::NotFound] > 0, "new roles were invisible for a while: {retries:?}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!guarded.plan(&world, &desired).await.has_changes(), "the result is complete");
    assert_eq!(world.iam.role_names().len(), 50);
}

#[tokio::test(start_paused = true)]
async fn without_retries_the_same_faults_fail_tenants() {
    // The control for the test above: the faults are real.
    let world = FakeWorld::new();
    let desired = validate(&sample_file(50)).unwrap();
    let plan = world.plan(&desired, PlanOptions::default()).await.unwrap();
    world.iam.set_faults(Faults { throttle: 0.3, invisible_for: Duration::from_secs(2), seed: 7, ..Default::default() });
    let report = world.apply(&plan).await;
    assert!(report.failed() > 10, "{} failed", report.failed());
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_limiter_backs_off_under_a_low_iam_rate_and_recovers() {
    let world = FakeWorld::new();
    let desired = validate(&sample_file(40)).unwrap();
    world.iam.set_faults(Faults { rate_limit: Some(5.0), ..Default::default() });
    let limiter = Arc::new(AdaptiveRate::new(1.0, 500.0));
    let guarded = Guarded::new(&world, Some(limiter.clone()));

    let plan = guarded.plan(&world, &desired).await;
    let report = guarded.apply(&plan).await;
    assert!(report.is_success(), "{report:#?}");
    let low = limiter.rate().expect("pacing after the throttles");
    assert!(low < 10.0, "the rate came down to the account's: {low}");

    // The account's limit is lifted: the limiter speeds up again.
    world.iam.set_faults(Faults::default());
    let _ = guarded.plan(&world, &desired).await;
    let high = limiter.rate().expect("still pacing");
    // 40 tenants read per role: one ListRoles, then GetRole (kfp-tenant's
    // roles, for their tags), ListRolePolicies, ListAttachedRolePolicies and
    // GetRolePolicy each: 161 successes at +0.1 calls/s each.
    assert!((high - (low + 16.1)).abs() < 1e-6, "recovered from {low} to {high}");
}

#[tokio::test(start_paused = true)]
async fn a_crash_leaves_a_partial_state_that_the_next_apply_completes() {
    let world = FakeWorld::new();
    let desired = validate(&sample_file(3)).unwrap();
    let plan = world.plan(&desired, PlanOptions::default()).await.unwrap();
    world.set_faults(Faults { crash_after_writes: Some(4), ..Default::default() });
    let crashed = tokio::time::timeout(Duration::from_secs(60), world.apply(&plan)).await;
    assert!(crashed.is_err(), "the apply never finished: it was killed");
    world.set_faults(Faults::default());
    let done = world.iam.role_names().len()
        + world.iam.policy_names().len()
        + world.kube.profile_names().len()
        + usize::from(world.kube.record().is_some())
        + desired
            .tenants
            .iter()
            .flat_map(|t| ["kfp-launcher", "artifact-repositories"].map(|name| world.kube.config_map(&t.namespace, name)))
            .flatten()
            .count();
    assert_eq!(done, 4, "exactly the writes before the crash happened");

    let rest = world.plan(&desired, PlanOptions::default()).await.unwrap();
    assert_eq!(rest.summary().add, 16 - 4, "the next plan has only what is missing (the record and 3 x 5 tenant resources in all)");
    assert!(world.apply(&rest).await.is_success());
    assert!(!world.plan(&desired, PlanOptions::default()).await.unwrap().has_changes());
}

#[tokio::test(start_paused = true)]
async fn a_principal_iam_does_not_know_yet_is_retried_a_malformed_policy_is_not() {
    let world = FakeWorld::new();
    let desired = validate(&sample_file(1)).unwrap();
    let guarded = Guarded::new(&world, None);
    let plan = guarded.plan(&world, &desired).await;
    // Right after an OIDC provider is created, IAM rejects trust policies naming it.
    world.iam.set_faults(Faults {
        fail_nth: [("CreateRole", (1, ErrorKind::InvalidInput))].into(),
        fail_message: Some("Invalid principal in policy: \"federated\""),
        ..Default::default()
    });
    assert!(guarded.apply(&plan).await.is_success());
    assert_eq!(guarded.iam.retries().get(&ErrorKind::InvalidInput), Some(&1));

    let world = FakeWorld::new();
    let guarded = Guarded::new(&world, None);
    let plan = guarded.plan(&world, &desired).await;
    world.iam.set_faults(Faults {
        fail_nth: [("CreateRole", (1, ErrorKind::InvalidInput))].into(),
        fail_message: Some("Syntax errors in policy."),
        ..Default::default()
    });
    assert_eq!(guarded.apply(&plan).await.failed(), 1, "a malformed policy fails at once");
    assert_eq!(world.calls.get("CreateRole"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_recognised_on_retry() {
    let world = FakeWorld::new();
    let desired = validate(&sample_file(2)).unwrap();
    let plan = world.plan(&desired, PlanOptions::default()).await.unwrap();
    world.iam.set_faults(Faults { lose_create_response: Some(1), ..Default::default() });
    assert_eq!(world.apply(&plan).await.failed(), 1, "without retries the lost answer is a failure");

    let world = FakeWorld::new();
    let guarded = Guarded::new(&world, None);
    let plan = guarded.plan(&world, &desired).await;
    world.iam.set_faults(Faults { lose_create_response: Some(1), ..Default::default() });
    let report = guarded.apply(&plan).await;
    assert!(report.is_success(), "the retry finds its own role: {report:#?}");
    assert_eq!(world.calls.get("CreateRole"), 3, "one lost, one AlreadyExists, one fresh");
    assert!(!guarded.plan(&world, &desired).await.has_changes());
}

/// EKS checks a Pod Identity role in IAM, which may not show a role made a
/// moment ago: the resilience layer retries that within the consistency
/// window of a role it created, and never retries a trust that does not
/// admit Pod Identity at all.
#[tokio::test(start_paused = true)]
async fn a_pod_identity_association_right_after_create_role_is_retried_and_a_wrong_trust_is_not() {
    use kfp_tenant_core::policy::{PolicyDocument, pod_identity_trust};
    use kfp_tenant_core::ports::{IamApi, PodIdentityApi, PodIdentityAssociation, Role};
    let world = FakeWorld::new();
    world.iam.set_faults(Faults { invisible_for: Duration::from_secs(2), ..Default::default() });
    let iam = Resilient::new(world.iam.clone(), RetryPolicy::default());
    let cluster_arn = "arn:aws:eks:us-west-2:123456789012:cluster/kf-prod";
    let role = |name: &str, trust: PolicyDocument| Role {
        name: name.to_owned(),
        path: "/".to_owned(),
        arn: String::new(),
        trust_policy: trust,
        description: None,
        tags: Default::default(),
        max_session_duration: 3600,
        permissions_boundary: None,
    };
    let pair = |arn: &str| PodIdentityAssociation {
        id: String::new(),
        namespace: "team-a".to_owned(),
        service_account: "default-editor".to_owned(),
        role_arn: Some(arn.to_owned()),
        tags: Default::default(),
    };

    let made = iam
        .create_role(&role("team-a-pi", pod_identity_trust("123456789012", cluster_arn, "team-a", &["default-editor".into()])))
        .await
        .unwrap();
    // Straight to EKS, the new role does not exist yet.
    let early = world.iam.create_pod_identity_association("kf-prod", &pair(&made.arn)).await.unwrap_err();
    assert!(early.message.contains("Role provided in the request does not exist"), "{early}");
    // Through the resilience layer it is retried until IAM shows the role.
    let association = iam.create_pod_identity_association("kf-prod", &pair(&made.arn)).await.unwrap();
    assert!(iam.retries()[&ErrorKind::InvalidInput] >= 1, "{:?}", iam.retries());
    assert_eq!(
        world.iam.describe_pod_identity_association("kf-prod", &association.id).await.unwrap().unwrap().role_arn,
        Some(made.arn.clone())
    );

    // A role that trusts only the OIDC provider is refused at once, however new.
    let before = iam.retries().get(&ErrorKind::InvalidInput).copied().unwrap_or(0);
    let irsa = iam
        .create_role(&role(
            "team-b-irsa",
            kfp_tenant_core::policy::trust_policy("aws", "123456789012", "oidc.example.com/id/X", "team-b", &["default-editor".into()]),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // visible by now
    let refused = iam
        .create_pod_identity_association("kf-prod", &PodIdentityAssociation { namespace: "team-b".into(), ..pair(&irsa.arn) })
        .await
        .unwrap_err();
    assert!(refused.message.contains("Trust policy of the role provided is invalid"), "{refused}");
    assert_eq!(
        iam.retries().get(&ErrorKind::InvalidInput).copied().unwrap_or(0),
        before,
        "a wrong trust is not retried once the role is visible"
    );
}
