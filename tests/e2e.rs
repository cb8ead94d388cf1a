//! The engine on both real clients: the AWS SDK against moto and kube against
//! the fake API server and a real kube-apiserver: plan → apply (waiting for
//! readiness) → plan (no-op) → destroy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

use std::time::Duration;

use kfp_tenant_core::apply::{self, ApplyOptions, Providers, Quiet};
use kfp_tenant_core::plan::{self, PlanOptions};
use kfp_tenant_core::ports::IamApi;
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::spec::{Desired, Road, TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_k8s::{Kube, KubeOptions};
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
use kfp_tenant_testkit::controller::ROLE_ARN_ANNOTATION;
use kfp_tenant_testkit::on_both_backends;

on_both_backends!(moto: plan_apply_plan_destroy, pod_identity_tenants_live_move_and_go);

/// A Kubernetes backend with the profile controller, bound to a moto EKS
/// cluster (with its OIDC provider) named after `name`, and a kube client of it.
async fn start(backend: Backend, aws: &kfp_tenant_aws::Aws, name: &str) -> (TestKube, String, Kube) {
    let kube = TestKube::start(backend, TestKubeOptions { reconcile_delay: Duration::from_millis(100), ..Default::default() }).await;
    let cluster = kube.cluster(name);
    support::cluster_with_provider(aws, &cluster).await;
    kube.bind(&cluster).await;
    let options = KubeOptions { kubeconfig: Some(kube.kubeconfig().to_owned()), poll: Duration::from_millis(20), ..Default::default() };
    let provider = Kube::connect(options).await.unwrap();
    (kube, cluster, provider)
}

async fn plan_apply_plan_destroy(backend: Backend) {
    let aws = support::aws().await;
    let (kube, cluster, provider) = start(backend, &aws, "e2e").await;
    let cluster = cluster.as_str();
    let names: Vec<String> = ["team-a", "team-b", "team-c"].iter().map(|ns| kube.name(ns)).collect();

    let mut file = TenantsFile {
        cluster: cluster.into(),
        region: support::REGION.into(),
        bucket: "kfp-artifacts".into(),
        tenants: names
            .iter()
            .map(|ns| TenantInput { namespace: ns.clone(), owner: format!("{ns}@example.com"), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    file.tenants[2].service_accounts = Some(vec!["default-editor".into(), "pipeline-runner".into()]);
    let desired = validate(&file).unwrap();
    let reads = ReadSet::for_desired(&desired, false);
    let providers = Providers { cluster: &aws, iam: &aws, kube: &provider, pod_identity: &aws, directory: &aws };
    let options = ApplyOptions { wait: true, timeout: Duration::from_secs(60), ..Default::default() };

    let first = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    assert_eq!(first.summary().add, 16, "per tenant role, policy, Profile and two pipeline ConfigMaps, and one service account");
    let report = apply::apply(&first, providers, &options, &Quiet).await;
    assert!(report.is_success(), "{report:#?}");
    for ns in &names {
        let role = aws.get_role(&format!("{ns}-{cluster}-role")).await.unwrap().unwrap();
        let editor = kube.object("serviceaccounts", ns, "default-editor").await.unwrap();
        assert_eq!(editor["metadata"]["annotations"][ROLE_ARN_ANNOTATION], role.arn.as_str());
    }
    let runner = kube.object("serviceaccounts", &names[2], "pipeline-runner").await.unwrap();
    assert_eq!(
        runner["metadata"]["annotations"][ROLE_ARN_ANNOTATION],
        format!("arn:aws:iam::123456789012:role/{}-{cluster}-role", names[2])
    );

    let before = provider.counter().calls();
    let again = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    assert!(!again.has_changes());
    let after = provider.counter().calls();
    let k8s_calls: u64 = after.iter().map(|(k, n)| n - before.get(k).unwrap_or(&0)).sum();
    assert_eq!(
        k8s_calls, 6,
        "a no-op plan reads the identity record and lists Profiles, kfp-tenant's service accounts, the default-editors and the two pipeline ConfigMaps (by name, cluster-wide: none per tenant), writes nothing: {after:?}"
    );

    let destroy = plan::plan_destroy(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap()).unwrap();
    assert_eq!(destroy.summary().destroy, 9);
    assert!(apply::apply(&destroy, providers, &options, &Quiet).await.is_success());
    for ns in &names {
        assert_eq!(aws.get_role(&format!("{ns}-{cluster}-role")).await.unwrap(), None);
        assert!(kube.object("profiles", "", ns).await.is_none());
        assert!(kube.object("namespaces", "", ns).await.is_none());
    }
}

/// The same life cycle against a real account and EKS cluster with Kubeflow:
///
///     KFP_REAL_CLUSTER=my-cluster KFP_REAL_REGION=us-west-2 KFP_REAL_BUCKET=my-kfp-bucket \
///       cargo test -p kfp-tenant-tests --test e2e -- --ignored
///
/// Uses the standard AWS and kubeconfig chains; creates and then destroys one
/// tenant named `kfp-tenant-e2e-<pid>`.
#[tokio::test]
#[ignore = "needs an AWS account and an EKS cluster running Kubeflow"]
async fn real_account_life_cycle() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("set {name}"));
    assert!(std::env::var_os("AWS_ENDPOINT_URL").is_none(), "unset AWS_ENDPOINT_URL: this test is for real AWS");
    let namespace = format!("kfp-tenant-e2e-{}", std::process::id());
    let file = TenantsFile {
        cluster: var("KFP_REAL_CLUSTER"),
        region: var("KFP_REAL_REGION"),
        bucket: var("KFP_REAL_BUCKET"),
        tenants: vec![TenantInput { namespace: namespace.clone(), owner: "kfp-tenant-e2e@example.com".into(), ..Default::default() }],
        ..Default::default()
    };
    let desired = validate(&file).unwrap();
    let aws =
        kfp_tenant_aws::Aws::connect(&kfp_tenant_aws::AwsOptions { region: Some(desired.cluster.region.clone()), ..Default::default() })
            .await
            .unwrap();
    let kube = Kube::connect(KubeOptions::default()).await.unwrap();
    let reads = ReadSet::for_desired(&desired, false);
    let providers = Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws, directory: &aws };
    let options = ApplyOptions { wait: true, timeout: Duration::from_secs(120), ..Default::default() };

    let first = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    let report = apply::apply(&first, providers, &options, &Quiet).await;
    let again = plan::plan(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default());
    let destroy = plan::plan_destroy(&desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap()).unwrap();
    let cleanup = apply::apply(&destroy, providers, &options, &Quiet).await;
    assert!(report.is_success(), "{report:#?}");
    assert!(!again.unwrap().has_changes());
    assert!(cleanup.is_success(), "{cleanup:#?}");
}

/// Plans and applies `desired` until nothing is left to do; returns what the first plan did.
async fn converge(desired: &Desired, providers: Providers<'_>, summary: (usize, usize, usize)) {
    let reads = ReadSet::for_desired(desired, false);
    let plan = plan::plan(desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    let s = plan.summary();
    assert_eq!(
        (s.add, s.change, s.destroy),
        summary,
        "{}",
        kfp_tenant_core::render::plan_text(&plan, kfp_tenant_core::render::Color::Never)
    );
    let options = ApplyOptions { wait: true, timeout: Duration::from_secs(60), ..Default::default() };
    let report = apply::apply(&plan, providers, &options, &Quiet).await;
    assert!(report.is_success(), "{report:#?}");
    let again = plan::plan(desired, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap(), PlanOptions::default()).unwrap();
    assert!(!again.has_changes(), "{}", kfp_tenant_core::render::plan_text(&again, kfp_tenant_core::render::Color::Never));
}

/// A file with an IRSA and a Pod Identity tenant on the real SDK (moto, and
/// the Pod Identity emulator in front of it for EKS) and the real kube
/// client: one run makes both; an association deleted by hand comes back;
/// the Pod Identity tenant moves to IRSA and back; destroy leaves nothing.
async fn pod_identity_tenants_live_move_and_go(backend: Backend) {
    use kfp_tenant_core::ports::PodIdentityApi;
    use kfp_tenant_testkit::pod_identity::{PodIdentityOptions, PodIdentityServer};
    let server = PodIdentityServer::start(&support::moto_endpoint(), PodIdentityOptions::default()).await.unwrap();
    let options =
        kfp_tenant_aws::AwsOptions { region: Some(support::REGION.into()), eks_endpoint: Some(server.url().into()), ..Default::default() };
    let aws = kfp_tenant_aws::Aws::connect(&options).await.unwrap();
    let (kube, cluster, provider) = start(backend, &aws, "e2e-pods").await;
    let cluster = cluster.as_str();
    let providers = Providers { cluster: &aws, iam: &aws, kube: &provider, pod_identity: &aws, directory: &aws };
    let (irsa, pods) = (kube.name("team-i"), kube.name("team-p"));
    let file = |road: Road| TenantsFile {
        cluster: cluster.into(),
        region: support::REGION.into(),
        bucket: "kfp-artifacts".into(),
        tenants: vec![
            TenantInput { namespace: irsa.clone(), owner: "i@example.com".into(), ..Default::default() },
            TenantInput {
                namespace: pods.clone(),
                owner: "p@example.com".into(),
                identity: Some(road),
                service_accounts: Some(vec!["default-editor".into(), "pipeline-runner".into()]),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let on_pods = validate(&file(Road::PodIdentity)).unwrap();
    let on_irsa = validate(&file(Road::Irsa)).unwrap();
    let role_arn = format!("arn:aws:iam::123456789012:role/{pods}-{cluster}-role");
    let associations = || {
        let mut found: Vec<(String, String)> =
            server.associations().into_iter().filter(|(ns, _, _)| *ns == pods).map(|(_, sa, role)| (sa, role)).collect();
        found.sort();
        found
    };
    let annotation = |sa: &'static str| {
        let kube = &kube;
        let pods = pods.clone();
        async move {
            let account = kube.object("serviceaccounts", &pods, sa).await.unwrap();
            account["metadata"]["annotations"][ROLE_ARN_ANNOTATION].as_str().map(str::to_owned)
        }
    };
    let both = vec![("default-editor".to_owned(), role_arn.clone()), ("pipeline-runner".to_owned(), role_arn.clone())];

    // Two roles, policies and Profiles, the runner, two associations, and
    // two pipeline ConfigMaps per tenant (the identity record is written by `bind`).
    converge(&on_pods, providers, (13, 0, 0)).await;
    assert_eq!(associations(), both);
    assert_eq!(annotation("default-editor").await, None, "a Pod Identity tenant's default-editor carries no IRSA annotation");
    assert_eq!(annotation("pipeline-runner").await, None);
    let profile = kube.object("profiles", "", &pods).await.unwrap();
    assert_eq!(profile["spec"]["plugins"], serde_json::json!([]), "{profile}");

    // An association deleted by hand is planned and made again.
    let listed = aws.list_pod_identity_associations(cluster).await.unwrap();
    let runner = listed.iter().find(|a| a.namespace == pods && a.service_account == "pipeline-runner").unwrap();
    aws.delete_pod_identity_association(cluster, &runner.id).await.unwrap();
    converge(&on_pods, providers, (1, 0, 0)).await;
    assert_eq!(associations(), both);

    // To IRSA: the role trusts both, the Profile gets the plugin and the
    // accounts the annotation, the associations go, then Pod Identity's statement.
    converge(&on_irsa, providers, (0, 4, 3)).await;
    assert_eq!(associations(), vec![]);
    assert_eq!(annotation("default-editor").await.as_deref(), Some(role_arn.as_str()));
    assert_eq!(annotation("pipeline-runner").await.as_deref(), Some(role_arn.as_str()));
    let role = aws.get_role(&format!("{pods}-{cluster}-role")).await.unwrap().unwrap();
    assert!(!kfp_tenant_core::policy::admits_pod_identity(&role.trust_policy), "{:?}", role.trust_policy);

    // And back: default-editor's annotation, which the controller wrote,
    // is removed although the controller owns the field.
    converge(&on_pods, providers, (2, 4, 1)).await;
    assert_eq!(associations(), both);
    assert_eq!(annotation("default-editor").await, None);
    assert_eq!(annotation("pipeline-runner").await, None);

    let reads = ReadSet::for_desired(&on_pods, false);
    let destroy = plan::plan_destroy(&on_pods, &refresh(&reads, providers, 10, RefreshMode::Auto).await.unwrap()).unwrap();
    let options = ApplyOptions { wait: true, timeout: Duration::from_secs(60), ..Default::default() };
    assert!(apply::apply(&destroy, providers, &options, &Quiet).await.is_success());
    assert_eq!(associations(), vec![]);
    assert_eq!(aws.get_role(&format!("{pods}-{cluster}-role")).await.unwrap(), None);
}
