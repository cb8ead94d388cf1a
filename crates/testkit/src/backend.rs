//! The Kubernetes API a test runs against, so that one test body runs on
//! both: the fake API server (fast, fault injection, a controller with
//! delays and a garbage collector that can be slow or absent) and a real
//! kube-apiserver with kube-controller-manager (`../shared/tools/kube`,
//! started once by `scripts/test`, which names it in `KFP_TEST_REAL_KUBECONFIG`).
//!
//! The profile controller of [`crate::controller`] plays Kubeflow's on both.
//! On the real server, tests share one cluster: each [`TestKube`] names its
//! objects with a suffix of its own ([`TestKube::name`]) and its controller
//! reconciles only those.
//!
//! Objects are read and edited behind the tool's back through a plain kube
//! client, on both backends alike.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;

use crate::apiserver::{FakeApiOptions, FakeApiServer};
use crate::controller::{self, ControllerOptions, ProfileController};

/// Names the real API server's kubeconfig; `scripts/test` sets it.
pub const REAL_KUBECONFIG_ENV: &str = "KFP_TEST_REAL_KUBECONFIG";
/// The EKS cluster the shared real API server stands for.
pub const REAL_CLUSTER: &str = "real-kube";
/// kfp-tenant's identity record (`kfp_tenant_k8s::RECORD_NAME`; testkit does
/// not depend on the provider it tests).
const RECORD_NAME: &str = "kfp-tenant-cluster";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The testkit's fake API server, one per test.
    Fake,
    /// The real kube-apiserver that `scripts/test` started, shared.
    Real,
}

/// How the cluster under test behaves.
#[derive(Clone, Debug)]
pub struct TestKubeOptions {
    /// Run the profile controller.
    pub controller: bool,
    /// How long it waits before acting on a change.
    pub reconcile_delay: Duration,
    /// The fake's garbage collector (see [`FakeApiOptions::garbage_collector`]);
    /// the real cluster has kube-controller-manager's.
    pub garbage_collector: Option<Duration>,
    /// The fake's service-account token issuer; the real server's is moto's
    /// EKS issuer, which `scripts/test` gives it.
    pub sa_issuer: Option<String>,
    /// The controller also plays KFP's pipelines-profile-controller.
    pub pipelines: bool,
}

impl Default for TestKubeOptions {
    fn default() -> Self {
        TestKubeOptions {
            controller: true,
            reconcile_delay: Duration::from_millis(50),
            garbage_collector: Some(Duration::from_millis(20)),
            sa_issuer: None,
            pipelines: false,
        }
    }
}

/// A cluster for one test.
pub struct TestKube {
    pub backend: Backend,
    _fake: Option<FakeApiServer>,
    _controller: Option<ProfileController>,
    client: Client,
    kubeconfig: PathBuf,
    suffix: String,
}

impl std::fmt::Debug for TestKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKube").field("backend", &self.backend).field("kubeconfig", &self.kubeconfig).finish_non_exhaustive()
    }
}

static INSTANCES: AtomicU32 = AtomicU32::new(0);

impl TestKube {
    pub async fn start(backend: Backend, options: TestKubeOptions) -> Self {
        let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kfp-tenant-kube-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        let kubeconfig = dir.join("kubeconfig");
        match backend {
            Backend::Fake => {
                let fake = FakeApiServer::start(FakeApiOptions {
                    controller: options.controller,
                    reconcile_delay: options.reconcile_delay,
                    garbage_collector: options.garbage_collector,
                    sa_issuer: options.sa_issuer.clone().unwrap_or_else(|| FakeApiOptions::default().sa_issuer),
                    pipelines: options.pipelines,
                    ..Default::default()
                })
                .await
                .expect("the fake API server starts");
                let text = fake.kubeconfig();
                std::fs::write(&kubeconfig, &text).expect("write the kubeconfig");
                let client = controller::client(&text).await.expect("a client of the fake");
                TestKube { backend, _fake: Some(fake), _controller: None, client, kubeconfig, suffix: String::new() }
            }
            Backend::Real => {
                let path = std::env::var(REAL_KUBECONFIG_ENV).unwrap_or_else(|_| {
                    panic!(
                        "{REAL_KUBECONFIG_ENV} is not set: run the suite with scripts/test, which starts a real API server from ../shared/tools/kube"
                    )
                });
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
                std::fs::write(&kubeconfig, &text).expect("write the kubeconfig");
                let client = controller::client(&text).await.expect("a client of the real API server");
                // Unique among the tests that share the server: process and instance.
                let suffix = format!("-{}x{n}", std::process::id() % 100_000);
                let running = match options.controller {
                    true => Some(
                        ProfileController::start(
                            &text,
                            ControllerOptions {
                                delay: options.reconcile_delay,
                                only_suffix: Some(suffix.clone()),
                                pipelines: options.pipelines,
                            },
                        )
                        .await
                        .expect("the profile controller starts"),
                    ),
                    false => None,
                };
                let kube = TestKube { backend, _fake: None, _controller: running, client, kubeconfig, suffix };
                // What a cluster with Kubeflow installed has.
                kube.ensure_namespace("kubeflow").await;
                kube
            }
        }
    }

    /// `base`, made unique on the shared real server.
    pub fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    /// The EKS cluster this Kubernetes API is, for a test that would call it
    /// `wanted`: a Kubernetes API is one cluster, so every test on the shared
    /// real server uses the same one, [`REAL_CLUSTER`].
    pub fn cluster(&self, wanted: &str) -> String {
        match self.backend {
            Backend::Fake => wanted.to_owned(),
            Backend::Real => REAL_CLUSTER.to_owned(),
        }
    }

    /// Records that this Kubernetes API is EKS cluster `cluster` of the test
    /// account, as a first `apply --bind-cluster` would (the test clusters'
    /// EKS endpoints are made up, so the kubeconfig cannot match them).
    pub async fn bind(&self, cluster: &str) {
        let record = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RECORD_NAME, "namespace": "kube-system"},
            "data": {"clusterArn": format!("arn:aws:eks:us-west-2:123456789012:cluster/{cluster}")}});
        match self.object("configmaps", "kube-system", RECORD_NAME).await {
            None => self.create_object("configmaps", "kube-system", record).await,
            Some(found) if found["data"] == record["data"] => {}
            Some(found) => panic!("the test cluster is already bound to another EKS cluster: {found:#}"),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn api(&self, plural: &str, ns: &str) -> Api<DynamicObject> {
        let (group, version, kind, namespaced) = match plural {
            "namespaces" => ("", "v1", "Namespace", false),
            "serviceaccounts" => ("", "v1", "ServiceAccount", true),
            "configmaps" => ("", "v1", "ConfigMap", true),
            "profiles" => ("kubeflow.org", "v1", "Profile", false),
            "leases" => ("coordination.k8s.io", "v1", "Lease", true),
            "kubeflowtenants" => ("kfp-tenant.io", "v1alpha1", "KubeflowTenant", false),
            other => panic!("no such resource in the tests: {other}"),
        };
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        if namespaced { Api::namespaced_with(self.client.clone(), ns, &resource) } else { Api::all_with(self.client.clone(), &resource) }
    }

    /// An object as the server has it, e.g. `("serviceaccounts", "team-a", "default-editor")`.
    pub async fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let found = self.api(plural, ns).get_opt(name).await.unwrap_or_else(|e| panic!("get {plural} {ns}/{name}: {e}"));
        found.map(|o| serde_json::to_value(o).expect("objects serialize"))
    }

    /// Creates an object behind the tool's back.
    pub async fn create_object(&self, plural: &str, ns: &str, object: Value) {
        let object: DynamicObject = serde_json::from_value(object).expect("an object");
        match self.api(plural, ns).create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(e) => panic!("create {plural} in {ns:?}: {e}"),
        }
    }

    /// Changes an object behind the tool's back (read, edit, replace; again on a conflict).
    pub async fn edit_object(&self, plural: &str, ns: &str, name: &str, edit: impl Fn(&mut Value)) {
        let api = self.api(plural, ns);
        for _ in 0..10 {
            let Some(mut object) = self.object(plural, ns, name).await else { panic!("no {plural} {ns}/{name} to edit") };
            edit(&mut object);
            let object: DynamicObject = serde_json::from_value(object).expect("an object");
            match api.replace(name, &PostParams::default(), &object).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                Err(e) => panic!("replace {plural} {ns}/{name}: {e}"),
            }
        }
        panic!("{plural} {ns}/{name} kept changing under the edit");
    }

    pub async fn delete_object(&self, plural: &str, ns: &str, name: &str) {
        let _ = self.api(plural, ns).delete(name, &DeleteParams::default()).await;
    }

    /// Waits until `check` holds for the object (or its absence), at most `timeout`.
    pub async fn wait_for(&self, plural: &str, ns: &str, name: &str, timeout: Duration, check: impl Fn(Option<&Value>) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let object = self.object(plural, ns, name).await;
            if check(object.as_ref()) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{plural} {ns}/{name} did not get there in {timeout:?}: {object:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn ensure_namespace(&self, name: &str) {
        if self.object("namespaces", "", name).await.is_none() {
            let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            let object: DynamicObject = serde_json::from_value(ns).expect("an object");
            match self.api("namespaces", "").create(&PostParams::default(), &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(e) => panic!("create namespace {name}: {e}"),
            }
        }
    }
}

/// One test body on both backends: `on_both_backends!(my_test);` makes
/// `my_test::on_fake_apiserver` and `my_test::on_real_apiserver`, each calling
/// `my_test(Backend)`; `on_both_backends!(moto: my_test)` for a body that
/// needs moto too. Without the emulators (`KFP_EMULATORS=1` and
/// `KFP_REAL_KUBE=1`, which `scripts/test` sets, read by the calling crate's
/// build script) the tests that need them are ignored, saying so.
#[macro_export]
macro_rules! on_both_backends {
    (moto: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
            async fn on_fake_apiserver() {
                super::$name($crate::backend::Backend::Fake).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(all(kfp_emulators, kfp_real_kube)), ignore = "needs moto and a real kube-apiserver: run scripts/test")]
            async fn on_real_apiserver() {
                super::$name($crate::backend::Backend::Real).await
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_fake_apiserver() {
                super::$name($crate::backend::Backend::Fake).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
            async fn on_real_apiserver() {
                super::$name($crate::backend::Backend::Real).await
            }
        }
    )*};
}
