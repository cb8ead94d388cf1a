//! A fake Kubernetes API server over HTTP, good enough for the real
//! `kube::Client`, kube-runtime and kubectl, with the Kubeflow profile
//! controller of [`crate::controller`] running against it.
//!
//! It serves discovery and Namespaces, ServiceAccounts, ConfigMaps, Profiles
//! (kubeflow.org/v1, cluster-scoped) and Leases: get, list and watch (label
//! and field selectors), create, replace (409 on a stale resourceVersion),
//! merge and JSON patches, server-side apply with field ownership, status
//! subresources, and deletion with finalizers and propagation. Errors are
//! Kubernetes `Status` bodies with the standard reasons.
//!
//! Where it and the real API server part, the real one is right: the tests of
//! the Kubernetes provider run on both (`crate::backend`), and every
//! difference they found was fixed here. What the real control plane leaves
//! to kube-controller-manager, the fake does in `store::Store::collect_garbage`
//! (`garbage_collector`): without it, like a cluster without the controller
//! manager, foreground deletions never finish and namespaces stay Terminating.

mod auth;
mod fields;
mod handlers;
mod kinds;
mod patch;
mod store;
mod tokens;
mod watch;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use self::kinds::{KINDS, Kind, find, kind_of};
use self::store::{Store, metadata};
use crate::controller::{ControllerOptions, ProfileController};
use crate::lock;

use self::handlers::handle;

pub use self::auth::{ADMIN_TOKEN, EksAuth};
pub use self::handlers::selector_matches;
pub use self::tokens::jwt_unsigned;
pub use crate::controller::{PROFILE_FINALIZER, ROLE_ARN_ANNOTATION};

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeApiOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Whether to run the Kubeflow profile controller against the server.
    pub controller: bool,
    /// How long the controller takes to react to a change.
    pub reconcile_delay: Duration,
    /// How long after a change kube-controller-manager's garbage collector
    /// and namespace controller act; `None`: there is none.
    pub garbage_collector: Option<Duration>,
    /// Authenticate every request as EKS does (EKS tokens checked with STS,
    /// or [`ADMIN_TOKEN`]); `None`: anyone may do anything.
    pub eks_auth: Option<EksAuth>,
    /// The `iss` of service-account tokens (kube-apiserver's
    /// `--service-account-issuer`); on EKS, the cluster's OIDC issuer.
    pub sa_issuer: String,
    /// The controller also plays KFP's pipelines-profile-controller.
    pub pipelines: bool,
}

impl Default for FakeApiOptions {
    fn default() -> Self {
        FakeApiOptions {
            port: 0,
            controller: true,
            reconcile_delay: Duration::from_millis(50),
            garbage_collector: Some(Duration::from_millis(20)),
            eks_auth: None,
            sa_issuer: "https://kubernetes.default.svc".to_owned(),
            pipelines: false,
        }
    }
}

/// A running fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
    controller: Option<ProfileController>,
}

#[derive(Clone)]
struct Shared {
    store: Arc<Mutex<Store>>,
    changes: tokio::sync::watch::Receiver<u64>,
    options: FakeApiOptions,
    verified: auth::Verified,
    signer: Arc<tokens::Signer>,
    /// A garbage-collector pass is scheduled.
    gc_pending: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    pub async fn start(options: FakeApiOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let (notify, changes) = tokio::sync::watch::channel(0);
        let shared = Shared {
            store: Arc::new(Mutex::new(Store::new(notify))),
            changes,
            options: options.clone(),
            verified: auth::Verified::default(),
            signer: Arc::new(tokens::Signer::generate()),
            gc_pending: Arc::default(),
        };
        {
            // What a cluster with Kubeflow installed starts with.
            let mut store = lock(&shared.store);
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease", "kubeflow"] {
                store.put(kind_of("namespaces"), "", json!({"metadata": {"name": ns}, "status": {"phase": "Active"}}));
            }
        }
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        let mut server = FakeApiServer { addr, shared, task, controller: None };
        if options.controller {
            let config = server.kubeconfig();
            let controller = ProfileController::start(
                &config,
                ControllerOptions { delay: options.reconcile_delay, pipelines: options.pipelines, ..Default::default() },
            )
            .await
            .map_err(std::io::Error::other)?;
            server.controller = Some(controller);
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context (`fake`) points at this server
    /// (as its administrator, when it authenticates).
    pub fn kubeconfig(&self) -> String {
        let config = kubeconfig(&self.url());
        match self.shared.options.eks_auth {
            Some(_) => config.replace("  user: {}", &format!("  user:\n    token: {ADMIN_TOKEN}")),
            None => config,
        }
    }

    /// An object as stored, e.g. `("serviceaccounts", "team-a", "default-editor")`.
    pub fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store).get(plural, ns, name).cloned()
    }

    /// Creates or replaces an object behind the tool's back.
    pub fn put_object(&self, plural: &str, ns: &str, object: Value) {
        let kind = find(plural).expect("a kind the fake serves");
        let mut store = lock(&self.shared.store);
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let before = store.get(plural, ns, &name).cloned();
        store.update(kind, ns, before.as_ref(), object, "test");
        drop(store);
        self.shared.after_write();
    }

    /// Changes an object behind the tool's back.
    pub fn edit_object(&self, plural: &str, ns: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let kind = find(plural).expect("a kind the fake serves");
        let mut store = lock(&self.shared.store);
        if let Some(before) = store.get(plural, ns, name).cloned() {
            let mut after = before.clone();
            edit(&mut after);
            store.update(kind, ns, Some(&before), after, "test");
        }
        drop(store);
        self.shared.after_write();
    }

    /// Stops the profile controller, as when its pod crashes: nothing
    /// reconciles Profiles any more.
    pub fn stop_controller(&mut self) {
        self.controller = None;
    }

    /// Ends every open watch abruptly (no bookmark, no error), as a dropped
    /// connection does; clients must watch again from where they were.
    pub fn cut_watches(&self) {
        lock(&self.shared.store).cut_watches();
    }

    /// Ends every watch, writes `object`, and compacts, all under one lock:
    /// no watch can resume in between, so each resumes from a revision that
    /// is gone (410 Gone) and must list again.
    pub fn cut_watches_then_compact_past(&self, plural: &str, ns: &str, object: Value) {
        let kind = find(plural).expect("a kind the fake serves");
        let mut store = lock(&self.shared.store);
        store.cut_watches();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let before = store.get(plural, ns, &name).cloned();
        store.update(kind, ns, before.as_ref(), object, "test");
        store.compact();
        drop(store);
        self.shared.after_write();
    }

    /// Forgets the retained watch events, as etcd's compaction does: every
    /// watch resuming from an earlier resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
    }

    /// Requests served, by `VERB plural` (e.g. `PATCH profiles`), the
    /// controller's own included.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.store).requests.clone()
    }
}

impl Shared {
    /// Lets kube-controller-manager's part run, as it would after any
    /// change: one pass `delay` after the first of a burst of writes covers
    /// them all.
    fn after_write(&self) {
        let Some(delay) = self.options.garbage_collector else { return };
        if self.gc_pending.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let (store, pending) = (self.store.clone(), self.gc_pending.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // Writes from here on schedule the next pass.
            pending.store(false, std::sync::atomic::Ordering::SeqCst);
            lock(&store).collect_garbage();
        });
    }
}

/// Now, as a Kubernetes MicroTime (for Leases).
pub fn now_micro() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n"
    )
}
