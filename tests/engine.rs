//! The engine on the testkit fakes: each scenario sets up a world, plans, and
//! snapshots the plan as an operator reads it (text) and as CI parses it (JSON).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use kfp_tenant_core::address::{Address, Kind};
use kfp_tenant_core::apply::Outcome;
use kfp_tenant_core::plan::{Action, Plan, PlanOptions};
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ErrorKind, Profile, ProfilePlugin, Role, ServiceAccount};
use kfp_tenant_core::refresh::RefreshMode;
use kfp_tenant_core::render::{self, Color};
use kfp_tenant_core::spec::{Desired, ResourceQuota, S3AccessMode, TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_testkit::Faults;
use kfp_tenant_testkit::world::{FakeWorld, sample_file};
use serde_json::json;

fn desired(file: &TenantsFile) -> Desired {
    validate(file).expect("the scenario's file is valid")
}

/// Two tenants: one on seed defaults, one with every option.
fn two_tenants() -> TenantsFile {
    let mut file = sample_file(1);
    file.tenants[0].namespace = "team-a".into();
    file.tenants[0].owner = "alice@example.com".into();
    file.defaults.tags.insert("team".into(), "ml".into());
    file.tenants.push(TenantInput {
        namespace: "team-b".into(),
        owner: "bob@example.com".into(),
        role_name: Some("team-b-pipelines".into()),
        s3_access: Some(S3AccessMode::Prefix),
        s3_prefix: Some("private-artifacts/team-b/".into()),
        service_accounts: Some(vec!["default-editor".into(), "pipeline-runner".into()]),
        resource_quota: Some(ResourceQuota { hard: [("cpu".into(), "8".into()), ("memory".into(), "16Gi".into())].into() }),
        ..Default::default()
    });
    file
}

/// Snapshots `plan` as text and as JSON under `name`.
fn check(name: &str, plan: &Plan) {
    insta::assert_snapshot!(format!("{name}.txt"), render::plan_text(plan, Color::Never));
    insta::assert_json_snapshot!(format!("{name}.json"), render::plan_json(plan));
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
}

async fn applied(world: &FakeWorld, d: &Desired) {
    let plan = world.plan(d, PlanOptions::default()).await.expect("plan");
    let report = world.apply(&plan).await;
    assert!(report.is_success(), "{report:?}");
}

#[tokio::test]
async fn create_from_empty() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    check("create_from_empty", &plan);
    assert_eq!(world.calls.writes(), 0, "planning writes nothing");
}

#[tokio::test]
async fn apply_makes_one_write_per_resource_then_plans_no_op() {
    let world = FakeWorld::new();
    let d = desired(&sample_file(25));
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    world.calls.reset();
    let report = world.apply(&plan).await;
    assert!(report.is_success(), "{report:?}");
    let calls = world.calls.snapshot();
    assert_eq!(calls.get("CreateRole"), Some(&25));
    assert_eq!(calls.get("PutRolePolicy"), Some(&25));
    assert_eq!(calls.get("ApplyProfile"), Some(&25));
    assert_eq!(calls.get("ApplyConfigMap"), Some(&50), "kfp-launcher and artifact-repositories per tenant");
    assert_eq!(calls.get("WriteClusterRecord"), Some(&1), "the first apply records the cluster");
    assert_eq!(world.calls.writes(), 126, "{calls:?}");

    // Per cluster: identity, cluster, providers, identity record, Profiles,
    // two service-account listings, two ConfigMap listings (kfp-launcher,
    // artifact-repositories), the bucket.
    const CLUSTER_READS: u64 = 10;
    let mut world = world;
    world.refresh_mode = RefreshMode::PerRole;
    world.calls.reset();
    let again = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!again.has_changes(), "{:?}", actions(&again));
    assert!(again.changes.iter().all(|c| c.action == Action::NoOp));
    assert_eq!(world.calls.writes(), 0);
    // Per role: ListRoles finds kfp-tenant's by description, GetRole reads
    // their tags, ListRolePolicies and ListAttachedRolePolicies every
    // permission they carry, GetRolePolicy their one policy.
    assert_eq!(world.calls.total(), CLUSTER_READS + 1 + 4 * 25, "{:?}", world.calls.snapshot());

    world.refresh_mode = RefreshMode::Bulk;
    world.calls.reset();
    let bulk = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(bulk, again, "the same plan read either way");
    // In bulk: one page each of GetAccountAuthorizationDetails and
    // ListRoles, whatever the tenants.
    assert_eq!(world.calls.total(), CLUSTER_READS + 2, "{:?}", world.calls.snapshot());
}

#[tokio::test]
async fn no_op_after_apply() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    check("no_op_after_apply", &plan);
}

#[tokio::test]
async fn drift_in_trust_policy() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    world.iam.edit_role("team-a-kf-prod-role", |r| {
        let mut doc = r.trust_policy.as_json().clone();
        doc["Statement"][0]["Condition"]["StringEquals"]
            .as_object_mut()
            .unwrap()
            .values_mut()
            .filter(|v| v.as_str().is_some_and(|s| s.starts_with("system:")))
            .for_each(|v| *v = json!("system:serviceaccount:team-a:*"));
        r.trust_policy = PolicyDocument::new(doc);
    });
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&plan), [("tenant[\"team-a\"].iam_role".to_owned(), Action::Update)]);
    check("drift_trust_policy", &plan);
    world.calls.reset();
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(world.calls.snapshot().into_iter().collect::<Vec<_>>(), [("UpdateAssumeRolePolicy", 1)]);
}

#[tokio::test]
async fn reordered_documents_are_not_drift() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    // What IAM might hand back: statements reversed, singletons as arrays.
    let (role, policy) = ("team-b-pipelines", "kf-team-b-pipeline-s3");
    let mut doc = world.iam.policy(role, policy).unwrap().as_json().clone();
    doc["Statement"].as_array_mut().unwrap().reverse();
    doc["Statement"][0]["Resource"] = json!([doc["Statement"][0]["Resource"].clone()]);
    world.iam.insert_policy(role, policy, PolicyDocument::new(doc));
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", actions(&plan));
}

#[tokio::test]
async fn drift_in_inline_policy() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    world.iam.insert_policy(
        "team-a-kf-prod-role",
        "kf-team-a-pipeline-s3",
        PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})),
    );
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&plan), [("tenant[\"team-a\"].s3_policy".to_owned(), Action::Update)]);
    check("drift_inline_policy", &plan);
}

/// A tenant's role carries exactly the file's permissions: an inline policy
/// or an attachment made by hand is planned for removal (with its
/// document), read per role and in bulk alike; the file's `managedPolicies`
/// are attached; destroy takes everything with the role instead of failing
/// on DeleteConflict after the Profile is gone.
#[tokio::test]
async fn a_tenant_role_carries_exactly_the_files_permissions() {
    let mut world = FakeWorld::new();
    let mut file = two_tenants();
    applied(&world, &desired(&file)).await;
    let role = "team-a-kf-prod-role";
    let everything =
        PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}));
    world.iam.insert_policy(role, "extra", everything);
    world.iam.insert_attachment(role, "arn:aws:iam::aws:policy/AdministratorAccess");
    let expected = [
        ("tenant[\"team-a\"].inline_policy[\"extra\"]".to_owned(), Action::Delete),
        ("tenant[\"team-a\"].policy_attachment[\"arn:aws:iam::aws:policy/AdministratorAccess\"]".to_owned(), Action::Delete),
    ];
    world.refresh_mode = RefreshMode::PerRole;
    let per_role = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&per_role), expected);
    world.refresh_mode = RefreshMode::Bulk;
    let bulk = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert_eq!(bulk, per_role, "the same plan read either way");
    check("exclusive_permissions", &bulk);
    assert!(world.apply(&bulk).await.is_success());
    assert_eq!(world.iam.policy(role, "extra"), None);
    assert!(world.iam.attachments().is_empty());
    assert!(!world.plan(&desired(&file), PlanOptions::default()).await.unwrap().has_changes());

    // What the file lists is attached, and stays.
    let listed = "arn:aws:iam::123456789012:policy/team-a-extra";
    file.tenants[0].managed_policies = Some(vec![listed.into()]);
    let attach = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&attach), [(format!("tenant[\"team-a\"].policy_attachment[\"{listed}\"]"), Action::Create)]);
    assert!(world.apply(&attach).await.is_success());
    assert!(world.iam.attachments().contains(&(role.to_owned(), listed.to_owned())));
    assert!(!world.plan(&desired(&file), PlanOptions::default()).await.unwrap().has_changes());

    // Destroy removes the extras with the role, shown in its plan.
    world.iam.insert_policy(role, "later", PolicyDocument::new(json!({"Statement": []})));
    let destroy = world.plan_destroy(&desired(&file)).await.unwrap();
    let shown = render::plan_text(&destroy, Color::Never);
    assert!(shown.contains("tenant[\"team-a\"].inline_policy[\"later\"] will be destroyed"), "{shown}");
    assert!(shown.contains(&format!("tenant[\"team-a\"].policy_attachment[\"{listed}\"] will be destroyed")), "{shown}");
    let report = world.apply(&destroy).await;
    assert!(report.is_success(), "{report:?}");
    assert!(world.iam.role_names().is_empty() && world.iam.attachments().is_empty() && world.iam.policies().is_empty());
}

#[tokio::test]
async fn drift_in_profile() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    world.kube.edit_profile("team-b", |p| {
        p.plugins = vec![ProfilePlugin::aws_iam("arn:aws:iam::123456789012:role/someone-else")];
        p.resource_quota = None;
    });
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&plan), [("tenant[\"team-b\"].profile".to_owned(), Action::Update)]);
    check("drift_profile", &plan);
}

/// A plugin edited by hand, which the controller copied onto
/// `default-editor` before it went down: one apply puts both back, without
/// the controller.
#[tokio::test]
async fn a_tampered_plugin_converges_in_one_apply_with_the_controller_down() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    let foreign = "arn:aws:iam::123456789012:role/someone-else";
    world.kube.edit_profile("team-a", |p| p.plugins = vec![ProfilePlugin::aws_iam(foreign)]);
    let mut editor = world.kube.service_account("team-a", "default-editor").unwrap();
    editor.role_arn = Some(foreign.into());
    world.kube.insert_service_account(editor);
    world.kube.set_controller_running(false);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("tenant[\"team-a\"].profile".to_owned(), Action::Update),
            ("tenant[\"team-a\"].service_account[\"default-editor\"]".to_owned(), Action::Update),
        ]
    );
    assert!(world.apply(&plan).await.is_success());
    let ours = world.kube.profile("team-a").unwrap().role_arn().unwrap().to_owned();
    assert_eq!(world.kube.service_account("team-a", "default-editor").unwrap().role_arn.as_deref(), Some(ours.as_str()));
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
}

/// A Profile whose controller has not made its namespace yet: the plan
/// says so and invents no service-account change (which would fail with
/// "namespace not found").
#[tokio::test]
async fn a_profile_whose_namespace_is_not_there_yet_plans_no_service_account() {
    let world = FakeWorld::new();
    world.kube.set_controller_running(false);
    let mut file = sample_file(1);
    // Without the namespace, the first apply could not write the pipeline config either.
    file.defaults.pipeline_config = Some(false);
    let d = desired(&file);
    applied(&world, &d).await;
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!plan.has_changes(), "{:?}", actions(&plan));
    assert!(
        plan.warnings.iter().any(|w| w.contains("default-editor does not yet") && w.contains("check the controller")),
        "{:?}",
        plan.warnings
    );
}

#[tokio::test]
async fn drift_in_tags_is_repaired_with_tag_calls_only() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    world.iam.edit_role("team-a-kf-prod-role", |r| {
        r.tags.insert("cost-center".into(), "42".into());
        r.tags.insert("team".into(), "data".into());
    });
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    check("drift_tags", &plan);
    world.calls.reset();
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(world.calls.snapshot().into_iter().collect::<Vec<_>>(), [("TagRole", 1), ("UntagRole", 1)]);
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
}

/// Every path by which a plan could replace a Profile, which deletes its
/// namespace and everything in it: only the ones the operator names.
#[tokio::test]
async fn a_profile_is_replaced_only_when_the_operator_names_it() {
    let world = FakeWorld::new();
    let mut file = two_tenants();
    applied(&world, &desired(&file)).await;
    let profile = || ("tenant[\"team-a\"].profile".to_owned(), Action::Update);

    // The owner edited by hand: the namespace still names the file's owner,
    // so a patch converges and nothing is deleted.
    world.kube.edit_profile("team-a", |p| p.owner = "mallory@example.com".into());
    let plan = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&plan), [profile()]);
    world.calls.reset();
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(world.calls.snapshot().get("DeleteProfile"), None, "a patch, not a replacement");
    assert_eq!(world.kube.profile("team-a").unwrap().owner, "alice@example.com");
    assert!(!world.plan(&desired(&file), PlanOptions::default()).await.unwrap().has_changes());

    // The file gives another owner, and the namespace names the old one:
    // only a replacement converges, and the plan refuses without --replace.
    file.tenants[0].owner = "carol@example.com".into();
    let refused = world.plan(&desired(&file), PlanOptions::default()).await.unwrap_err();
    for says in [
        "namespace team-a's owner annotation names alice@example.com",
        "deletes the namespace and everything in it",
        "kubectl annotate --overwrite namespace team-a owner=carol@example.com",
        "--replace 'tenant[\"team-a\"].profile'",
    ] {
        assert!(refused.contains(says), "{says:?} in {refused}");
    }
    let named = PlanOptions { replace: [Address::tenant("team-a", Kind::Profile)].into(), ..Default::default() };
    let plan = world.plan(&desired(&file), named.clone()).await.unwrap();
    // The namespace is made again, and the pipeline config in it.
    assert_eq!(
        actions(&plan),
        [
            ("tenant[\"team-a\"].profile".to_owned(), Action::Replace),
            ("tenant[\"team-a\"].pipeline_config[\"artifact-repositories\"]".to_owned(), Action::Create),
            ("tenant[\"team-a\"].pipeline_config[\"kfp-launcher\"]".to_owned(), Action::Create),
        ]
    );
    check("owner_change_replaces_profile", &plan);

    // The operator moves the namespace to the new owner first: a patch again.
    world.kube.insert_namespace("team-a", Some("carol@example.com"));
    let plan = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&plan), [profile()]);

    // --replace on a Profile in sync replaces it, as Terraform's -replace does.
    file.tenants[0].owner = "alice@example.com".into();
    world.kube.insert_namespace("team-a", Some("alice@example.com"));
    let plan = world.plan(&desired(&file), named).await.unwrap();
    assert_eq!(actions(&plan)[0], ("tenant[\"team-a\"].profile".to_owned(), Action::Replace));
    assert!(actions(&plan)[1..].iter().all(|(a, action)| a.contains("pipeline_config") && *action == Action::Create));
    assert!(render::plan_text(&plan, Color::Never).contains("--replace names it"));
}

#[tokio::test]
async fn role_path_change_replaces_the_role_and_its_policy() {
    let world = FakeWorld::new();
    let mut file = two_tenants();
    applied(&world, &desired(&file)).await;
    file.tenants[0].role_path = Some("/kubeflow/".into());
    let d = desired(&file);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("tenant[\"team-a\"].iam_role".to_owned(), Action::Replace),
            ("tenant[\"team-a\"].s3_policy".to_owned(), Action::Create),
            ("tenant[\"team-a\"].profile".to_owned(), Action::Update),
            // The ARN moves with the path: kfp-tenant writes the annotation itself.
            ("tenant[\"team-a\"].service_account[\"default-editor\"]".to_owned(), Action::Update),
        ]
    );
    check("role_path_change_replaces_role", &plan);
    let report = world.apply(&plan).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(world.iam.role("team-a-kf-prod-role").unwrap().path, "/kubeflow/");
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
}

#[tokio::test]
async fn removed_tenant_is_pruned_only_when_asked() {
    let world = FakeWorld::new();
    let mut file = two_tenants();
    applied(&world, &desired(&file)).await;
    file.tenants.pop();
    let d = desired(&file);
    let plain = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(!plain.has_changes(), "without --prune, tenants not in the file are left alone");
    let plan = world.plan(&d, PlanOptions { prune: true, ..Default::default() }).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("tenant[\"team-b\"].iam_role".to_owned(), Action::Delete),
            ("tenant[\"team-b\"].s3_policy".to_owned(), Action::Delete),
            ("tenant[\"team-b\"].profile".to_owned(), Action::Delete),
        ]
    );
    check("prune_removed_tenant", &plan);
    let report = world.apply(&plan).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(world.iam.role_names(), ["team-a-kf-prod-role"]);
    assert_eq!(world.kube.profile_names(), ["team-a"]);
}

#[tokio::test]
async fn destroy_removes_everything_in_reverse_order() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    let plan = world.plan_destroy(&d).await.unwrap();
    check("destroy", &plan);
    world.calls.reset();
    let report = world.apply(&plan).await;
    assert!(report.is_success(), "{report:?}");
    assert!(world.iam.role_names().is_empty());
    assert!(world.iam.policy_names().is_empty());
    assert!(world.kube.profile_names().is_empty());
    let calls = world.calls.snapshot();
    assert_eq!((calls["DeleteRole"], calls["DeleteRolePolicy"], calls["DeleteProfile"]), (2, 2, 2));
    assert!(!calls.contains_key("DescribeCluster"), "destroy never touches the cluster-level data sources");
    let again = world.plan_destroy(&d).await.unwrap();
    check("destroy_when_nothing_exists", &again);
}

#[tokio::test]
async fn a_failing_tenant_does_not_stop_the_others() {
    let world = FakeWorld::new();
    let d = desired(&sample_file(5));
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    world.iam.set_faults(Faults { fail_nth: [("CreateRole", (3, ErrorKind::AccessDenied))].into(), ..Default::default() });
    let report = world.apply(&plan).await;
    assert_eq!((report.failed(), report.skipped()), (1, 4), "{report:#?}");
    let (failed, _) = report.outcomes.iter().find(|(_, (_, o))| matches!(o, Outcome::Failed { .. })).unwrap();
    let ns = failed.namespace().unwrap();
    for kind in [Kind::S3Policy, Kind::Profile] {
        assert_eq!(report.outcomes[&Address::tenant(ns, kind)].1, Outcome::Skipped { because: failed.clone() });
    }
    assert_eq!(world.iam.role_names().len(), 4);
    assert_eq!(world.kube.profile_names().len(), 4);
    insta::assert_json_snapshot!(
        "failure_in_one_tenant.report",
        report.outcomes.iter().map(|(a, (act, o))| (a.to_string(), act, o)).collect::<Vec<_>>()
    );

    // The next apply finishes the job.
    world.iam.set_faults(Faults::default());
    let retry = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(retry.summary().add, 5);
    assert!(world.apply(&retry).await.is_success());
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
}

fn unmanaged_role() -> Role {
    Role {
        name: "team-a-kf-prod-role".into(),
        path: "/".into(),
        arn: String::new(),
        trust_policy: PolicyDocument::new(json!({"Version": "2012-10-17", "Statement": []})),
        description: Some("made by hand".into()),
        tags: [("owner".into(), "platform".into())].into(),
        max_session_duration: 3600,
        permissions_boundary: None,
    }
}

#[tokio::test]
async fn same_named_unmanaged_role_is_refused_then_adopted() {
    let world = FakeWorld::new();
    world.iam.insert_role(unmanaged_role());
    let d = desired(&two_tenants());
    let err = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    insta::assert_snapshot!("unmanaged_role_refused.error", err);
    assert_eq!(world.calls.writes(), 0);

    let plan = world.plan(&d, PlanOptions { adopt: true, ..Default::default() }).await.unwrap();
    check("adopt_unmanaged_role", &plan);
    assert!(world.apply(&plan).await.is_success());
    let role = world.iam.role("team-a-kf-prod-role").unwrap();
    assert_eq!(role.tags["kfp-tenant/managed-by"], "kfp-tenant");
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
}

#[tokio::test]
async fn unmanaged_things_are_never_destroyed() {
    let world = FakeWorld::new();
    world.iam.insert_role(unmanaged_role());
    world.kube.insert_profile(Profile {
        name: "team-a".into(),
        owner: "alice@example.com".into(),
        plugins: vec![],
        resource_quota: None,
        managed: false,
        cluster: None,
    });
    let err = world.plan_destroy(&desired(&two_tenants())).await.unwrap_err();
    insta::assert_snapshot!("unmanaged_destroy_refused.error", err);
}

#[tokio::test]
async fn namespace_without_profile_is_reported() {
    let world = FakeWorld::new();
    world.kube.insert_namespace("team-b", None);
    let err = world.plan(&desired(&two_tenants()), PlanOptions::default()).await.unwrap_err();
    assert!(err.contains("tenant[\"team-b\"].profile: namespace team-b exists without a Profile (no owner annotation)"), "{err}");
    assert!(err.contains("kubectl annotate --overwrite namespace team-b owner=bob@example.com") && !err.contains("delete"), "{err}");

    // Annotated with the tenant's owner, the controller takes it over.
    world.kube.insert_namespace("team-b", Some("bob@example.com"));
    let plan = world.plan(&desired(&two_tenants()), PlanOptions::default()).await.unwrap();
    let profile = plan.change(&Address::tenant("team-b", Kind::Profile)).unwrap();
    assert_eq!((profile.action, profile.reason.clone()), (Action::Create, Some(kfp_tenant_core::plan::Reason::TakeOverNamespace)));
}

#[tokio::test]
async fn missing_oidc_provider_says_how_to_create_it() {
    let world = FakeWorld::new();
    world.cluster.remove_oidc_providers();
    let err = world.plan(&desired(&two_tenants()), PlanOptions::default()).await.unwrap_err();
    insta::assert_snapshot!("missing_oidc_provider.error", err);
}

#[tokio::test]
async fn stale_saved_plan_is_refused() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    world.iam.edit_role("team-a-kf-prod-role", |r| r.max_session_duration = 7200);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    let reads = kfp_tenant_core::plan::reads_of(&plan);
    let fresh = world.observe(&reads).await.unwrap();
    assert_eq!(kfp_tenant_core::plan::check_fresh(&plan, &fresh), Ok(()));

    world.kube.edit_profile("team-b", |p| p.owner = "mallory@example.com".into());
    let moved = world.observe(&reads).await.unwrap();
    let stale = kfp_tenant_core::plan::check_fresh(&plan, &moved).unwrap_err();
    assert_eq!(stale.changed, [Address::tenant("team-b", Kind::Profile)]);
}

#[tokio::test]
async fn saved_plan_round_trips_through_json() {
    let world = FakeWorld::new();
    let plan = world.plan(&desired(&two_tenants()), PlanOptions::default()).await.unwrap();
    let text = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
    assert!(world.apply(&back).await.is_success());
}

#[tokio::test]
async fn extra_service_accounts_are_created_annotated_and_kept_in_line() {
    let world = FakeWorld::new();
    let mut file = two_tenants();
    let d = desired(&file);
    applied(&world, &d).await;
    let runner = world.kube.service_account("team-b", "pipeline-runner").unwrap();
    assert_eq!((runner.role_arn.as_deref(), runner.managed), (Some("arn:aws:iam::123456789012:role/team-b-pipelines"), true));
    let editor = world.kube.service_account("team-b", "default-editor").unwrap();
    assert!(!editor.managed, "default-editor is the controller's, annotated by the plugin");

    world.kube.insert_service_account(ServiceAccount { role_arn: Some("arn:aws:iam::123456789012:role/other".into()), ..runner.clone() });
    let drift = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&drift), [(r#"tenant["team-b"].service_account["pipeline-runner"]"#.to_owned(), Action::Update)]);
    check("drift_service_account", &drift);
    assert!(world.apply(&drift).await.is_success());

    // A new owner, named for replacement, recreates the namespace, and the service account with it.
    file.tenants[1].owner = "carol@example.com".into();
    let replace = PlanOptions { replace: [Address::tenant("team-b", Kind::Profile)].into(), ..Default::default() };
    let owner = world.plan(&desired(&file), replace).await.unwrap();
    assert_eq!(
        actions(&owner),
        [
            (r#"tenant["team-b"].profile"#.to_owned(), Action::Replace),
            (r#"tenant["team-b"].service_account["pipeline-runner"]"#.to_owned(), Action::Create),
            (r#"tenant["team-b"].pipeline_config["artifact-repositories"]"#.to_owned(), Action::Create),
            (r#"tenant["team-b"].pipeline_config["kfp-launcher"]"#.to_owned(), Action::Create),
        ]
    );
    assert!(world.apply(&owner).await.is_success());
    assert!(!world.plan(&desired(&file), PlanOptions::default()).await.unwrap().has_changes());
}

#[tokio::test]
async fn an_unmanaged_service_account_is_refused_then_adopted() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    world.kube.insert_profile(Profile {
        name: "team-b".into(),
        owner: "bob@example.com".into(),
        plugins: vec![],
        resource_quota: None,
        managed: true,
        cluster: Some("kf-prod".into()),
    });
    world.kube.insert_service_account(ServiceAccount {
        namespace: "team-b".into(),
        name: "pipeline-runner".into(),
        role_arn: None,
        managed: false,
        cluster: None,
        created: false,
    });
    let err = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    assert!(err.contains(r#"tenant["team-b"].service_account["pipeline-runner"]: service account team-b/pipeline-runner exists but was not created by kfp-tenant"#), "{err}");
    let plan = world.plan(&d, PlanOptions { adopt: true, ..Default::default() }).await.unwrap();
    assert!(world.apply(&plan).await.is_success());
    assert!(world.kube.service_account("team-b", "pipeline-runner").unwrap().managed);
}

#[tokio::test]
async fn tenants_are_destroyed_even_when_the_oidc_provider_is_gone() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    world.cluster.remove_oidc_providers();
    assert!(world.plan(&d, PlanOptions::default()).await.unwrap_err().contains("no IAM OIDC provider"));
    let plan = world.plan_destroy(&d).await.unwrap();
    assert!(render::plan_text(&plan, Color::Never).contains("(IAM provider none)"));
    assert!(world.apply(&plan).await.is_success());
    assert!(world.iam.role_names().is_empty() && world.kube.profile_names().is_empty());
}

#[tokio::test]
async fn a_missing_oidc_provider_is_created_first_when_asked() {
    let world = FakeWorld::new();
    world.cluster.remove_oidc_providers();
    let d = desired(&two_tenants());
    let create = PlanOptions { create_oidc_provider: true, ..Default::default() };
    let plan = world.plan(&d, create).await.unwrap();
    assert_eq!(plan.changes[0].address, Address::OidcProvider);
    assert_eq!(plan.summary().add, 13, "the provider, the identity record, 7 tenant resources and 2 ConfigMaps per tenant");
    insta::assert_snapshot!(
        "create_oidc_provider.txt",
        render::plan_text(&plan, Color::Never).lines().take(16).collect::<Vec<_>>().join("\n")
    );

    // Roles trust the provider: if it cannot be made, no role is attempted.
    world
        .cluster
        .set_faults(Faults { fail_nth: [("CreateOpenIDConnectProvider", (1, ErrorKind::AccessDenied))].into(), ..Default::default() });
    let report = world.apply(&plan).await;
    assert_eq!((report.failed(), report.skipped()), (1, 11), "every tenant resource waits for its role: {report:#?}");
    assert!(world.iam.role_names().is_empty());

    world.cluster.set_faults(Faults::default());
    assert!(world.apply(&plan).await.is_success());
    assert_eq!(world.calls.get("CreateOpenIDConnectProvider"), 2);
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
    let destroy = world.plan_destroy(&d).await.unwrap();
    assert!(destroy.change(&Address::OidcProvider).is_none(), "destroy never deletes the provider");
}

#[tokio::test]
async fn profiles_of_another_cluster_are_refused_and_earlier_ones_migrated_by_a_plan() {
    let world = FakeWorld::new();
    let d = desired(&two_tenants());
    applied(&world, &d).await;
    // team-a was written for another EKS cluster; team-b by an earlier
    // kfp-tenant that did not record the cluster; team-z likewise, and it is
    // not in the file.
    world.kube.edit_profile("team-a", |p| p.cluster = Some("other".into()));
    world.kube.edit_profile("team-b", |p| p.cluster = None);
    world.kube.insert_profile(Profile {
        name: "team-z".into(),
        owner: "z@example.com".into(),
        plugins: vec![],
        resource_quota: None,
        managed: true,
        cluster: None,
    });
    let err = world.plan(&d, PlanOptions::default()).await.unwrap_err();
    assert!(
        err.contains(r#"tenant["team-a"].profile: Profile team-a was written by kfp-tenant for EKS cluster other, not kf-prod"#),
        "{err}"
    );
    assert!(err.contains("--context") && err.contains("--adopt"), "{err}");
    assert!(!err.contains("team-b"), "{err}");

    let plan = world.plan(&d, PlanOptions { adopt: true, ..Default::default() }).await.unwrap();
    assert_eq!(
        actions(&plan),
        [(r#"tenant["team-a"].profile"#.to_owned(), Action::Update), (r#"tenant["team-b"].profile"#.to_owned(), Action::Update)]
    );
    check("migrate_cluster_labels", &plan);
    assert!(world.apply(&plan).await.is_success());
    assert!(!world.plan(&d, PlanOptions::default()).await.unwrap().has_changes());
    // An unrecorded Profile outside the file is never pruned.
    let pruned = world.plan(&d, PlanOptions { prune: true, ..Default::default() }).await.unwrap();
    assert!(!pruned.has_changes(), "{:?}", actions(&pruned));
    assert!(
        pruned.warnings.iter().any(|w| w.starts_with("Profile team-z was written by an earlier kfp-tenant and records no EKS cluster"))
    );
}

#[tokio::test]
async fn a_tenant_dropped_from_the_file_is_named_in_every_plan_until_pruned() {
    let world = FakeWorld::new();
    applied(&world, &desired(&two_tenants())).await;
    let mut file = two_tenants();
    file.tenants.truncate(1);
    let plan = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert!(!plan.has_changes());
    assert_eq!(
        plan.warnings,
        [
            "tenant team-b is not in the tenants file but is still granted (IAM role team-b-pipelines, Profile team-b): run with --prune to remove it"
        ]
    );
    // Outside a --target, a tenant is still in the file.
    let targeted = kfp_tenant_core::plan::target(&desired(&two_tenants()), &["team-a".to_owned()]);
    assert!(world.plan(&targeted, PlanOptions::default()).await.unwrap().warnings.is_empty());
}

#[tokio::test]
async fn a_renamed_role_is_deposed_after_the_profile_stops_naming_it() {
    let world = FakeWorld::new();
    let mut file = two_tenants();
    applied(&world, &desired(&file)).await;
    file.tenants[1].role_name = Some("team-b-renamed".into());
    let plan = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    check("rename_role", &plan);
    let graph = kfp_tenant_core::order::walk(&plan);
    let position = |a: &str| graph.nodes().find(|(_, c)| c.address.to_string() == a).map(|(id, _)| id).unwrap();
    let (deposed, profile) = (position(r#"tenant["team-b"].deposed_role["team-b-pipelines"]"#), position(r#"tenant["team-b"].profile"#));
    assert!(graph.edges().any(|(a, b)| a == profile && b == deposed), "the deposed role waits for the Profile");
    // A crash between the Profile and the deletion: the next plan still deposes it.
    world.set_faults(Faults { fail_nth: [("DeleteRole", (1, ErrorKind::Transient))].into(), ..Default::default() });
    assert!(!world.apply(&plan).await.is_success());
    world.set_faults(Faults::default());
    let rest = world.plan(&desired(&file), PlanOptions::default()).await.unwrap();
    assert_eq!(actions(&rest), [(r#"tenant["team-b"].deposed_role["team-b-pipelines"]"#.to_owned(), Action::Delete)]);
    assert!(world.apply(&rest).await.is_success());
    assert_eq!(world.iam.role("team-b-pipelines"), None);
    assert!(world.iam.policy_names().iter().all(|(role, _)| role != "team-b-pipelines"));
}

/// An S3 that keeps objects in memory and sets `stop` at the first write,
/// as a Ctrl-C during the first service account's probe would.
#[derive(Debug, Default)]
struct InterruptingStore {
    objects: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    stop: kfp_tenant_core::graph::Stop,
}

#[async_trait::async_trait]
impl kfp_tenant_core::ports::ObjectStoreApi for InterruptingStore {
    async fn put_object(
        &self,
        _: &kfp_tenant_core::ports::TemporaryCredentials,
        bucket: &str,
        key: &str,
        body: &[u8],
    ) -> kfp_tenant_core::ports::ProviderResult<()> {
        self.stop.stop();
        self.objects.lock().unwrap().insert(format!("{bucket}/{key}"), body.to_vec());
        Ok(())
    }
    async fn get_object(
        &self,
        _: &kfp_tenant_core::ports::TemporaryCredentials,
        bucket: &str,
        key: &str,
    ) -> kfp_tenant_core::ports::ProviderResult<Vec<u8>> {
        Ok(self.objects.lock().unwrap().get(&format!("{bucket}/{key}")).cloned().unwrap_or_default())
    }
    async fn delete_object(
        &self,
        _: &kfp_tenant_core::ports::TemporaryCredentials,
        bucket: &str,
        key: &str,
    ) -> kfp_tenant_core::ports::ProviderResult<()> {
        self.objects.lock().unwrap().remove(&format!("{bucket}/{key}"));
        Ok(())
    }
}

#[tokio::test]
async fn an_interrupted_verify_finishes_what_it_started_and_starts_nothing_more() {
    let world = FakeWorld::new();
    let d = desired(&sample_file(3));
    applied(&world, &d).await;
    let observed = world.observe(&kfp_tenant_core::refresh::ReadSet::for_desired(&d, false)).await.unwrap();
    let s3 = InterruptingStore::default();
    let ports = kfp_tenant_core::verify::Ports { cluster: &world.cluster, iam: &world.iam, kube: &world.kube, s3: &s3 };
    let report = kfp_tenant_core::verify::verify(&d, &observed, ports, 1, &s3.stop).await;
    // The first service account went all the way, its probe deleted; the others never started.
    assert_eq!(report.checks.len(), 1, "{report}");
    assert!(report.checks[0].passed(), "{report}");
    assert_eq!(report.not_checked, 2);
    assert!(!report.passed());
    assert!(s3.objects.lock().unwrap().is_empty());
    assert!(report.to_string().contains("Interrupted: 2 service accounts were not checked."), "{report}");
}

/// S3 without the bucket: PutObject answers NoSuchBucket.
#[derive(Debug, Default)]
struct NoBucket;

#[async_trait::async_trait]
impl kfp_tenant_core::ports::ObjectStoreApi for NoBucket {
    async fn put_object(
        &self,
        _: &kfp_tenant_core::ports::TemporaryCredentials,
        bucket: &str,
        key: &str,
        _: &[u8],
    ) -> kfp_tenant_core::ports::ProviderResult<()> {
        let message = "The specified bucket does not exist (NoSuchBucket)";
        Err(kfp_tenant_core::ports::ProviderError::new(ErrorKind::NotFound, "PutObject", format!("s3://{bucket}/{key}"), message))
    }

    async fn get_object(
        &self,
        _: &kfp_tenant_core::ports::TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> kfp_tenant_core::ports::ProviderResult<Vec<u8>> {
        unreachable!("nothing was put")
    }

    async fn delete_object(
        &self,
        _: &kfp_tenant_core::ports::TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> kfp_tenant_core::ports::ProviderResult<()> {
        unreachable!("nothing was put")
    }
}

/// A bucket that is missing or elsewhere is a warning in every plan (the
/// pipeline may make it), and verify's failure says to make it, not to
/// check the inline policy.
#[tokio::test]
async fn a_missing_bucket_is_a_warning_in_plan_and_verifys_failure_names_it() {
    let world = FakeWorld::new();
    let d = desired(&sample_file(1));
    let bucket = d.cluster.bucket.clone();
    world.cluster.set_bucket(&bucket, None);
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(
        plan.warnings.iter().any(|w| w.contains(&format!("bucket {bucket} does not exist")) && w.contains("aws s3 mb")),
        "{:?}",
        plan.warnings
    );
    assert!(world.apply(&plan).await.is_success(), "a warning stops nothing");
    world.calls.reset();
    let observed = world.observe(&kfp_tenant_core::refresh::ReadSet::for_desired(&d, false)).await.unwrap();
    assert_eq!(world.calls.get("HeadBucket"), 1, "one call per run");
    world.calls.reset();
    world.plan_destroy(&d).await.unwrap();
    assert_eq!(world.calls.get("HeadBucket"), 0, "a destroy does not need the bucket");
    let ports = kfp_tenant_core::verify::Ports { cluster: &world.cluster, iam: &world.iam, kube: &world.kube, s3: &NoBucket };
    let report = kfp_tenant_core::verify::verify(&d, &observed, ports, 1, &Default::default()).await.to_string();
    assert!(report.contains(&format!("bucket {bucket} does not exist")) && report.contains("aws s3 mb"), "{report}");
    assert!(!report.contains("check the role's inline S3 policy"), "{report}");

    world.cluster.set_bucket(&bucket, Some("eu-west-1"));
    let plan = world.plan(&d, PlanOptions::default()).await.unwrap();
    assert!(plan.warnings.iter().any(|w| w.contains("is in region eu-west-1, not the file's us-west-2")), "{:?}", plan.warnings);
}
