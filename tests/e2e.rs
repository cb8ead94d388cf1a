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
use kfp_tenant_core::spec::{TenantInput, TenantsFile};
use kfp_tenant_core::validate;
use kfp_tenant_k8s::{Kube, KubeOptions};
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
use kfp_tenant_testkit::controller::ROLE_ARN_ANNOTATION;
use kfp_tenant_testkit::on_both_backends;

on_both_backends!(plan_apply_plan_destroy);

async fn plan_apply_plan_destroy(backend: Backend) {
    let aws = support::aws().await;
    let kube = TestKube::start(backend, TestKubeOptions { reconcile_delay: Duration::from_millis(100), ..Default::default() }).await;
    let cluster = kube.cluster("e2e");
    let cluster = cluster.as_str();
    support::cluster_with_provider(&aws, cluster).await;
    kube.bind(cluster).await;
    let provider = Kube::connect(KubeOptions {
        kubeconfig: Some(kube.kubeconfig().to_owned()),
        poll: Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .unwrap();
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
    let providers = Providers { cluster: &aws, iam: &aws, kube: &provider, pod_identity: &aws };
    let options = ApplyOptions { wait: true, timeout: Duration::from_secs(60), ..Default::default() };

    let first = plan::plan(
        &desired,
        &refresh(&reads, Providers { cluster: &aws, iam: &aws, kube: &provider, pod_identity: &aws }, 10, RefreshMode::Auto).await.unwrap(),
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(first.summary().add, 10, "per tenant role, policy and Profile, and one service account");
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
    let again = plan::plan(
        &desired,
        &refresh(&reads, Providers { cluster: &aws, iam: &aws, kube: &provider, pod_identity: &aws }, 10, RefreshMode::Auto).await.unwrap(),
        PlanOptions::default(),
    )
    .unwrap();
    assert!(!again.has_changes());
    let after = provider.counter().calls();
    let k8s_calls: u64 = after.iter().map(|(k, n)| n - before.get(k).unwrap_or(&0)).sum();
    assert_eq!(
        k8s_calls, 4,
        "a no-op plan reads the identity record and lists Profiles, kfp-tenant's service accounts and the default-editors, writes nothing: {after:?}"
    );

    let destroy = plan::plan_destroy(
        &desired,
        &refresh(&reads, Providers { cluster: &aws, iam: &aws, kube: &provider, pod_identity: &aws }, 10, RefreshMode::Auto).await.unwrap(),
    )
    .unwrap();
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
    let providers = Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws };
    let options = ApplyOptions { wait: true, timeout: Duration::from_secs(120), ..Default::default() };

    let first = plan::plan(
        &desired,
        &refresh(&reads, Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws }, 10, RefreshMode::Auto).await.unwrap(),
        PlanOptions::default(),
    )
    .unwrap();
    let report = apply::apply(&first, providers, &options, &Quiet).await;
    let again = plan::plan(
        &desired,
        &refresh(&reads, Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws }, 10, RefreshMode::Auto).await.unwrap(),
        PlanOptions::default(),
    );
    let destroy = plan::plan_destroy(
        &desired,
        &refresh(&reads, Providers { cluster: &aws, iam: &aws, kube: &kube, pod_identity: &aws }, 10, RefreshMode::Auto).await.unwrap(),
    )
    .unwrap();
    let cleanup = apply::apply(&destroy, providers, &options, &Quiet).await;
    assert!(report.is_success(), "{report:#?}");
    assert!(!again.unwrap().has_changes());
    assert!(cleanup.is_success(), "{cleanup:#?}");
}
