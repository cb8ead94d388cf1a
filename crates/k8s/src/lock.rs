//! The apply lock: a coordination.k8s.io Lease that keeps two applies off
//! one cluster.
//!
//! Each acquisition gets a lock ID of its own (annotation
//! `kfp-tenant/lock-id`), shown to whoever finds the lock taken. The holder
//! renews the Lease in the background and deletes it when done, on every
//! exit path; a crashed holder's Lease expires after its duration, and
//! [`Kube::force_unlock`] removes it sooner, but only while it still has the
//! ID the operator named (the delete is conditional on the Lease's
//! resourceVersion, so a lock taken meanwhile by another run is never removed).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kfp_tenant_core::ports::{ErrorKind, ProviderError, ProviderResult};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use crate::{Kube, provider_error};

/// The annotation holding an acquisition's lock ID.
pub const LOCK_ID_ANNOTATION: &str = "kfp-tenant/lock-id";

/// Which Lease guards a cluster, and who we are.
#[derive(Clone, Debug)]
pub struct LockOptions {
    pub namespace: String,
    pub name: String,
    /// Shown to whoever finds the lock taken.
    pub holder: String,
    /// A crashed holder blocks others at most this long.
    pub duration: Duration,
}

impl LockOptions {
    pub fn new(holder: impl Into<String>) -> Self {
        LockOptions {
            namespace: "kubeflow".to_owned(),
            name: "kfp-tenant-lock".to_owned(),
            holder: holder.into(),
            duration: Duration::from_secs(60),
        }
    }
}

/// The lock as someone holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub id: String,
    pub holder: String,
    /// Seconds until it expires unless renewed; 0 when it has.
    pub expires_in: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another run holds the apply lock (ID {id}): {holder}, expiring in {expires_in}s unless renewed; wait for it to finish, or, if that run is gone, remove the lock with: kfp-tenant force-unlock {id}"
    )]
    Held { holder: String, id: String, expires_in: i64 },
    #[error("no apply lock is held (Lease {0}); nothing to unlock")]
    NotHeld(String),
    #[error(
        "the apply lock now has ID {current} ({holder}), not {requested}, so nothing was removed; check that run, and give its ID to force-unlock only if it is gone"
    )]
    OtherId { requested: String, current: String, holder: String },
    #[error("cannot take or release the apply lock")]
    Api(#[source] ProviderError),
}

/// An ID for one acquisition: unique enough among runs (time, process, holder).
fn new_lock_id(holder: &str) -> String {
    let seed = format!("{holder}:{}:{}", std::process::id(), Timestamp::now().as_nanosecond());
    let hash = kfp_tenant_core::fnv::hash(seed.as_bytes());
    format!("{hash:016x}")
}

/// The acquisition's ID; a Lease without one (written by something else)
/// goes by its uid.
fn lock_id(lease: &Lease) -> String {
    let annotated = lease.metadata.annotations.as_ref().and_then(|a| a.get(LOCK_ID_ANNOTATION)).cloned();
    annotated.or_else(|| lease.metadata.uid.clone()).unwrap_or_default()
}

fn lease_expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds)).ok()
}

fn info(lease: &Lease) -> LockInfo {
    let spec = lease.spec.clone().unwrap_or_default();
    let now = Timestamp::now();
    LockInfo {
        id: lock_id(lease),
        holder: spec.holder_identity.clone().unwrap_or_default(),
        expires_in: lease_expiry(&spec).map(|t| (t - now).get_seconds().max(0)).unwrap_or(0),
    }
}

impl Kube {
    fn leases(&self, namespace: &str) -> Api<Lease> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Takes the cluster's apply lock, or says who holds it.
    pub async fn lock(&self, lock: &LockOptions) -> Result<LeaseGuard, LockError> {
        let api = self.leases(&lock.namespace);
        let target = format!("lease {}/{}", lock.namespace, lock.name);
        let now = Timestamp::now();
        let current = api.get_opt(&lock.name).await.map_err(|e| LockError::Api(provider_error("GetLease", &target, e)))?;
        let id = new_lock_id(&lock.holder);
        let spec = LeaseSpec {
            holder_identity: Some(lock.holder.clone()),
            lease_duration_seconds: Some(i32::try_from(lock.duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        };
        let annotations = Some(std::collections::BTreeMap::from([(LOCK_ID_ANNOTATION.to_owned(), id.clone())]));
        let result = match current {
            None => {
                let metadata = kube::api::ObjectMeta { name: Some(lock.name.clone()), annotations, ..Default::default() };
                api.create(&PostParams::default(), &Lease { metadata, spec: Some(spec) }).await
            }
            Some(mut lease) => {
                let held = info(&lease);
                if !held.holder.is_empty() && held.expires_in > 0 {
                    return Err(LockError::Held { holder: held.holder, id: held.id, expires_in: held.expires_in });
                }
                // Expired (its holder crashed): taken over, resourceVersion-guarded.
                let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0) + 1;
                lease.spec = Some(LeaseSpec { lease_transitions: Some(transitions), ..spec });
                lease.metadata.annotations = annotations;
                api.replace(&lock.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => {}
            // Someone else won the race between our read and our write.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                let held = api.get_opt(&lock.name).await.ok().flatten().map(|l| info(&l));
                let held = held.unwrap_or(LockInfo { id: String::new(), holder: "another kfp-tenant run".to_owned(), expires_in: 0 });
                return Err(LockError::Held { holder: held.holder, id: held.id, expires_in: held.expires_in });
            }
            Err(e) => return Err(LockError::Api(provider_error("AcquireLease", &target, e))),
        }
        let (held, watch) = tokio::sync::watch::channel(true);
        let renew = tokio::spawn(renew_lease(api.clone(), lock.clone(), id.clone(), held));
        Ok(LeaseGuard { api, lock: lock.clone(), id, renew, held: watch })
    }

    /// Who holds the lock, if anyone.
    pub async fn lock_holder(&self, namespace: &str, name: &str) -> ProviderResult<Option<LockInfo>> {
        let target = format!("lease {namespace}/{name}");
        let lease = self.leases(namespace).get_opt(name).await.map_err(|e| provider_error("GetLease", &target, e))?;
        Ok(lease.as_ref().map(info))
    }

    /// Removes the lock if, and only if, it still has ID `id`.
    pub async fn force_unlock(&self, namespace: &str, name: &str, id: &str) -> Result<LockInfo, LockError> {
        let api = self.leases(namespace);
        let target = format!("lease {namespace}/{name}");
        let lease = api
            .get_opt(name)
            .await
            .map_err(|e| LockError::Api(provider_error("GetLease", &target, e)))?
            .ok_or_else(|| LockError::NotHeld(format!("{namespace}/{name}")))?;
        let held = info(&lease);
        if held.id != id {
            return Err(LockError::OtherId { requested: id.to_owned(), current: held.id, holder: held.holder });
        }
        let preconditions = Preconditions { resource_version: lease.metadata.resource_version.clone(), uid: lease.metadata.uid.clone() };
        let params = DeleteParams { preconditions: Some(preconditions), ..Default::default() };
        match api.delete(name, &params).await {
            Ok(_) => Ok(held),
            Err(kube::Error::Api(s)) if s.is_not_found() => Err(LockError::NotHeld(format!("{namespace}/{name}"))),
            Err(kube::Error::Api(s)) if s.is_conflict() => {
                let now = api.get_opt(name).await.ok().flatten().map(|l| info(&l)).unwrap_or(held);
                Err(LockError::OtherId { requested: id.to_owned(), current: now.id, holder: now.holder })
            }
            Err(e) => Err(LockError::Api(provider_error("DeleteLease", &target, e))),
        }
    }
}

/// Renews the Lease every third of its duration. It counts as lost (`held`
/// becomes false, and the renewing stops) when another acquisition took it
/// over, or when no renewal succeeded for two thirds of its duration: the
/// holder then stops writing a third of a duration before anyone else may
/// take the Lease. A renewal that hangs (an API server that no longer
/// answers) counts as failed when that time is up, not when it returns.
async fn renew_lease(api: Api<Lease>, lock: LockOptions, id: String, held: tokio::sync::watch::Sender<bool>) {
    let every = (lock.duration / 3).max(Duration::from_millis(100));
    let mut renewed = tokio::time::Instant::now();
    loop {
        let deadline = renewed + lock.duration * 2 / 3;
        let attempt = async {
            tokio::time::sleep(every).await;
            renew_once(&api, &lock, &id).await
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Renewal::Renewed) => renewed = tokio::time::Instant::now(),
            Ok(Renewal::Failed) => {}
            Ok(Renewal::Gone) => {
                let _ = held.send(false);
                return;
            }
            Err(_) => {
                tracing::warn!(lease = %lock.name, "the apply lock was not renewed for two thirds of its duration");
                let _ = held.send(false);
                return;
            }
        }
    }
}

/// How one renewal went.
enum Renewal {
    Renewed,
    /// Not this time; the next may.
    Failed,
    /// Removed, or taken over by another acquisition.
    Gone,
}

async fn renew_once(api: &Api<Lease>, lock: &LockOptions, id: &str) -> Renewal {
    let mut lease = match api.get_opt(&lock.name).await {
        Ok(Some(lease)) => lease,
        Ok(None) => {
            tracing::warn!(lease = %lock.name, "the apply lock was removed");
            return Renewal::Gone;
        }
        Err(e) => {
            tracing::warn!(lease = %lock.name, error = %e, "cannot read the apply lock to renew it");
            return Renewal::Failed;
        }
    };
    if lock_id(&lease) != id {
        tracing::warn!(lease = %lock.name, "the apply lock was removed or taken over (now ID {:?})", lock_id(&lease));
        return Renewal::Gone;
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.renew_time = Some(MicroTime(Timestamp::now()));
    }
    match api.replace(&lock.name, &PostParams::default(), &lease).await {
        Ok(_) => Renewal::Renewed,
        Err(e) => {
            tracing::warn!(lease = %lock.name, error = %e, "cannot renew the apply lock");
            Renewal::Failed
        }
    }
}

/// The apply lock while held; renewed in the background until released.
#[derive(Debug)]
pub struct LeaseGuard {
    api: Api<Lease>,
    lock: LockOptions,
    id: String,
    renew: tokio::task::JoinHandle<()>,
    held: tokio::sync::watch::Receiver<bool>,
}

impl LeaseGuard {
    /// This acquisition's lock ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Resolves once the Lease is lost (taken over, removed, or not renewed
    /// for two thirds of its duration): a holder stops writing then.
    pub async fn lost(&self) {
        let mut held = self.held.clone();
        let _ = held.wait_for(|held| !held).await;
    }

    /// Gives the lock up so the next run need not wait for expiry; a Lease
    /// that someone took over meanwhile is left alone.
    pub async fn release(self) -> ProviderResult<()> {
        self.renew.abort();
        let target = format!("lease {}/{}", self.lock.namespace, self.lock.name);
        let lease = match self.api.get_opt(&self.lock.name).await {
            Ok(Some(lease)) if lock_id(&lease) == self.id => lease,
            Ok(_) => return Ok(()),
            Err(e) => return Err(provider_error("GetLease", &target, e)),
        };
        let preconditions = Preconditions { resource_version: lease.metadata.resource_version.clone(), uid: lease.metadata.uid.clone() };
        match self.api.delete(&self.lock.name, &DeleteParams { preconditions: Some(preconditions), ..Default::default() }).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
            Err(e) => Err(provider_error("DeleteLease", &target, e)),
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// A lock error as a provider error, for callers that only report it.
impl From<LockError> for ProviderError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Api(p) => p,
            other => ProviderError::new(ErrorKind::Conflict, "Lock", "apply lock", other.to_string()),
        }
    }
}
