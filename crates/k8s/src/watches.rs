//! The waits' eyes: one watch per kind of object a wait looks at, shared by
//! every wait of the run, instead of GETs per tenant per poll.
//!
//! Four kube-runtime watchers feed reflector stores: namespaces, the
//! `default-editor` and `default-viewer` service accounts (field selectors,
//! so a cluster's other accounts are not held in memory), and Profiles.
//! Each applied event bumps a counter the waits sleep on. The watcher
//! re-watches from the last resourceVersion when a stream drops and
//! re-lists on 410 Gone; until every store has its first complete list
//! (for example when RBAC forbids `watch`), waits fall back to GETs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::eks_auth::AbortOnDrop;
use crate::profile::KubeflowProfile;

/// The stores, and what tells waits that they changed.
pub(crate) struct Watches {
    pub namespaces: Store<Namespace>,
    pub editors: Store<ServiceAccount>,
    pub viewers: Store<ServiceAccount>,
    pub profiles: Store<KubeflowProfile>,
    /// Bumped after every event, once the store has applied it.
    pub changes: tokio::sync::watch::Receiver<u64>,
    /// Stores that have had their first complete list.
    listed: Arc<AtomicUsize>,
    /// When the watches started: the first list is waited for only so long
    /// after this, not again by every wait (where RBAC forbids `watch`, each
    /// wait would otherwise pay the whole delay).
    started: tokio::time::Instant,
    _tasks: Vec<AbortOnDrop>,
}

const STORES: usize = 4;

impl Watches {
    pub fn start(client: &Client) -> Self {
        let (notify, changes) = tokio::sync::watch::channel(0u64);
        let notify = Arc::new(notify);
        let listed = Arc::new(AtomicUsize::new(0));
        let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut tasks = Vec::new();
        let namespaces = follow(Api::all(client.clone()), watcher::Config::default(), &notify, &listed, &mut tasks);
        let editors = follow(Api::all(client.clone()), by_name("default-editor"), &notify, &listed, &mut tasks);
        let viewers = follow(Api::all(client.clone()), by_name("default-viewer"), &notify, &listed, &mut tasks);
        let profiles = follow(Api::all(client.clone()), watcher::Config::default(), &notify, &listed, &mut tasks);
        Watches { namespaces, editors, viewers, profiles, changes, listed, started: tokio::time::Instant::now(), _tasks: tasks }
    }

    /// Whether every store has had its first complete list.
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::SeqCst) >= STORES
    }

    /// Returns once every store has listed, or `within` after the watches
    /// started, or after `at_most` from now, whichever comes first.
    pub async fn until_listed(&self, within: std::time::Duration, at_most: std::time::Duration) {
        let mut changes = self.changes.clone();
        let deadline = (self.started + within).min(tokio::time::Instant::now() + at_most);
        let _ = tokio::time::timeout_at(deadline, async {
            while !self.listed() {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(&ObjectRef::new(name))
    }

    pub fn editor(&self, namespace: &str) -> Option<Arc<ServiceAccount>> {
        self.editors.get(&ObjectRef::new("default-editor").within(namespace))
    }

    pub fn viewer(&self, namespace: &str) -> Option<Arc<ServiceAccount>> {
        self.viewers.get(&ObjectRef::new("default-viewer").within(namespace))
    }

    pub fn profile(&self, name: &str) -> Option<Arc<KubeflowProfile>> {
        self.profiles.get(&ObjectRef::new(name))
    }
}

/// Runs a watcher into a new store until dropped.
fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    notify: &Arc<tokio::sync::watch::Sender<u64>>,
    listed: &Arc<AtomicUsize>,
    tasks: &mut Vec<AbortOnDrop>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let (notify, listed) = (notify.clone(), listed.clone());
    let task = tokio::spawn(async move {
        let mut first_list = true;
        let mut events = std::pin::pin!(watcher(api, config).default_backoff().reflect(writer));
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if first_list && matches!(event, watcher::Event::InitDone) {
                        first_list = false;
                        listed.fetch_add(1, Ordering::SeqCst);
                    }
                    notify.send_modify(|n| *n += 1);
                }
                // The watcher backs off and tries again; waits poll meanwhile.
                Err(error) => tracing::debug!(%error, "watch interrupted"),
            }
        }
    });
    tasks.push(AbortOnDrop(task));
    reader
}
