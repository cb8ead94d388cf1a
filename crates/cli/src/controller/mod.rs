//! `kfp-tenant controller`: the engine as a leader-elected Kubernetes
//! controller. Kubernetes is the distributed engine: the replicas compete for
//! the same Lease `apply` takes (so a CLI `apply` is refused while a
//! controller leads), the leader reconciles, standbys wait and take over when
//! the Lease expires, and a leader that cannot renew stops writing before
//! its Lease ends (and exits, to come back as a standby).
//!
//! A cycle (`reconcile`) reads every KubeflowTenant, plans and applies them
//! with the settings file's header (and its own tenants), destroys or
//! retains those being deleted, and writes each resource's status. Cycles
//! run on a change the watches report (debounced), and every `--resync`.

mod delete;
mod metrics;
mod reconcile;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use kfp_tenant_core::graph::Stop;
use kfp_tenant_k8s::{LockError, LockOptions, TenantResource};

use self::metrics::Metrics;
use self::reconcile::{Cycle, Outcomes, Verdict};
use crate::live::Live;
use crate::output::note;
use crate::request::ControllerRequest;

/// Changes that arrive together are one cycle.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// A watch stream this long without a change has been drained.
const QUIET: Duration = Duration::from_millis(100);
/// At most one cycle this often on changes, however many arrive (a writer
/// that keeps touching kfp-tenant's objects costs a cycle per gap, not one
/// per touch); the resync is not held back.
const MIN_GAP: Duration = Duration::from_secs(5);
/// After a cycle that left a tenant failed, waiting or still being deleted,
/// the next comes this soon (not at the resync), twice as late after each
/// such cycle in a row, up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(60);

pub async fn run(req: ControllerRequest) -> Result<ExitCode> {
    let settings = crate::input::read_file(&req.settings)?;
    // The header must stand on its own (the file's own tenants included).
    kfp_tenant_core::validate::validate(&settings)?;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&req.metrics_addr)
        .await
        .with_context(|| format!("cannot serve metrics on {} (--metrics-addr)", req.metrics_addr))?;
    note!("Serving /metrics, /healthz and /readyz on {}", listener.local_addr().map_or(req.metrics_addr.clone(), |a| a.to_string()));
    tokio::spawn(metrics::serve(listener, metrics.clone()));

    let live = Live::connect(&req.run, &settings.cluster, &settings.region).await?;
    let (aws, kubernetes) = live.counters();
    metrics.count_calls(move || vec![("aws", aws.calls()), ("kubernetes", kubernetes.calls())]);
    // Nothing is written before the Kubernetes API is shown to be the file's cluster.
    live.prove(&settings.cluster, req.run.bind_cluster).await?;
    metrics.ready.store(true, Ordering::SeqCst);
    let stop = crate::interrupt::install(Duration::from_secs(5));

    let lease = LockOptions { namespace: req.lock_namespace.clone(), duration: req.lease_duration, ..LockOptions::new(holder()) };
    let guard = loop {
        match live.kube().lock(&lease).await {
            Ok(guard) => break guard,
            Err(LockError::Held { holder, .. }) => tracing::debug!(%holder, "standby: the Lease is held"),
            Err(e) => note!("standby: cannot take the Lease {}/{}: {e}", lease.namespace, lease.name),
        }
        tokio::select! {
            () = tokio::time::sleep(req.lease_duration / 5) => {}
            () = stop.stopped() => return Ok(ExitCode::SUCCESS),
        }
    };
    metrics.leader.store(true, Ordering::SeqCst);
    note!("Leading: holding the Lease {}/{} (ID {})", lease.namespace, lease.name, guard.id());

    let mut triggers = live.kube().tenant_triggers();
    let mut next_resync = Instant::now();
    let mut waiting_since: BTreeMap<String, Instant> = BTreeMap::new();
    let mut retry_after = RETRY;
    loop {
        let cycle_started = Instant::now();
        let cycle = async {
            let started = Instant::now();
            let result = cycle(&live, &settings, &req, &stop, guard.id(), &waiting_since).await;
            metrics.reconciled(if result.is_ok() { "success" } else { "error" }, started.elapsed());
            match result {
                Ok(counts) => {
                    metrics.tenants(counts.ready, counts.not_ready);
                    waiting_since.retain(|name, _| counts.waiting.contains(name));
                    for name in counts.waiting {
                        waiting_since.entry(name).or_insert_with(Instant::now);
                    }
                    counts.retry
                }
                Err(e) => {
                    tracing::warn!("reconcile failed: {e:#}");
                    true
                }
            }
        };
        // An interrupt lets the cycle end itself: its apply starts nothing new
        // and gives what runs its grace. A lost Lease cannot wait for that.
        let retry = tokio::select! {
            retry = cycle => retry,
            () = guard.lost() => return lost(&stop),
        };
        if stop.is_stopped() {
            break;
        }
        next_resync = next_resync.max(Instant::now() - req.resync) + req.resync;
        if retry {
            next_resync = next_resync.min(Instant::now() + retry_after);
            retry_after = (retry_after * 2).min(MAX_RETRY);
        } else {
            retry_after = RETRY;
        }
        // Wait for a change (then for its siblings) or the resync.
        let wait = tokio::time::sleep_until(next_resync.into());
        tokio::select! {
            Some(()) = triggers.next() => {
                // A change is new work: its waits are looked at soon again.
                retry_after = RETRY;
                tokio::time::sleep(DEBOUNCE.max(MIN_GAP.saturating_sub(cycle_started.elapsed()))).await;
                // Everything that arrived meanwhile is this cycle's too. A
                // watch's backlog arrives over several reads of its stream,
                // so it is drained until the stream stays quiet for a moment
                // (draining only what is ready cost one cycle per gap for
                // minutes after a burst of 500 tenants: B9).
                while let Ok(Some(())) = tokio::time::timeout(QUIET, triggers.next()).await {}
            }
            () = wait => {}
            () = guard.lost() => return lost(&stop),
            () = stop.stopped() => break,
        }
    }
    // Interrupted: the next leader need not wait for the Lease to expire.
    metrics.leader.store(false, Ordering::SeqCst);
    guard.release().await?;
    note!("Stopped; the Lease is released.");
    Ok(ExitCode::SUCCESS)
}

/// The Lease is gone: nothing more is written, and the process ends so that
/// it comes back as a standby.
fn lost(stop: &Stop) -> Result<ExitCode> {
    stop.stop();
    note!("Lost the Lease (not renewed in time, or taken over): stopped writing.");
    Ok(ExitCode::from(1))
}

/// Who holds the Lease, as `kubectl get lease` and a refused `apply` show it.
fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "a host".to_owned());
    format!("kfp-tenant controller on {host} (pid {})", std::process::id())
}

/// What a cycle leaves.
struct Counts {
    ready: u64,
    not_ready: u64,
    /// A tenant failed, waits or is still being deleted: the next cycle comes soon.
    retry: bool,
    /// The tenants waiting for the cluster.
    waiting: BTreeSet<String>,
}

/// One cycle.
async fn cycle(
    live: &Live,
    settings: &kfp_tenant_core::spec::TenantsFile,
    req: &ControllerRequest,
    stop: &Stop,
    lease: &str,
    waiting_since: &BTreeMap<String, Instant>,
) -> Result<Counts> {
    let kube = live.kube();
    let resources = kube.list_tenant_resources().await?;
    futures_util::stream::iter(resources.iter().filter(|r| !r.deleting && !r.has_finalizer).map(|r| kube.hold_tenant(&r.name)))
        .buffer_unordered(req.run.parallelism.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let cycle = Cycle { live, lease, settings, run: &req.run, stop, timeout: req.timeout, waiting_since };
    let mut outcomes = Outcomes::default();
    let converged = cycle.converge(&resources, &mut outcomes).await;
    let deleted = cycle.delete(&resources, &mut outcomes).await;
    if let Err(e) = &converged {
        // Every resource not judged yet shares the cycle's failure.
        for r in resources.iter().filter(|r| !r.deleting) {
            outcomes.verdicts.entry(r.name.clone()).or_insert(Verdict::NotReady { reason: "Failed", message: format!("{e:#}") });
        }
    }
    write_statuses(live, &resources, &outcomes, req.run.parallelism).await;
    converged?;
    deleted?;
    let ready = outcomes.verdicts.values().filter(|v| matches!(v, Verdict::Ready { .. })).count() as u64;
    let retry = outcomes.verdicts.values().any(Verdict::retries);
    Ok(Counts { ready, not_ready: outcomes.verdicts.len() as u64 - ready, retry, waiting: outcomes.waiting })
}

/// Each resource's status where it changed, and an Event for each change
/// made and each new failure.
async fn write_statuses(live: &Live, resources: &[TenantResource], outcomes: &Outcomes, parallelism: usize) {
    let now = kfp_tenant_k8s::now_rfc3339();
    let by_name: BTreeMap<&str, &TenantResource> = resources.iter().map(|r| (r.name.as_str(), r)).collect();
    let writes = outcomes.verdicts.iter().filter_map(|(name, verdict)| {
        let resource = by_name.get(name.as_str())?;
        (!outcomes.released.contains(name)).then(|| write_status(live, resource, verdict, outcomes.roles.get(name), &now))
    });
    futures_util::stream::iter(writes).buffer_unordered(parallelism.max(1)).collect::<Vec<()>>().await;
}

/// One resource's status, when it changed, and its Event.
async fn write_status(live: &Live, resource: &TenantResource, verdict: &Verdict, role: Option<&String>, now: &str) {
    let kube = live.kube();
    let name = &resource.name;
    // `status` keeps the Ready condition's transition time while its status
    // stays, so an unchanged verdict gives the status the resource has.
    let status = reconcile::status(resource, verdict, role, now);
    if status == resource.status {
        return;
    }
    if let Err(e) = kube.set_tenant_status(name, &status).await {
        tracing::warn!("cannot write the status of kubeflowtenant {name}: {e}");
    }
    let event = match verdict {
        Verdict::Ready { changes: 0 } => None,
        Verdict::Ready { changes } => Some((false, "Applied", format!("{changes} change(s) made; the tenant is in sync"))),
        Verdict::NotReady { reason, message } => Some((true, *reason, message.clone())),
    };
    if let Some((warning, reason, message)) = event
        && let Err(e) = kube.record_tenant_event(resource, warning, reason, &message).await
    {
        tracing::debug!(error = %e, "cannot record an event");
    }
}
