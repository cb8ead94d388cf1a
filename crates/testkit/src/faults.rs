//! What a fake does besides answering: counting calls per operation,
//! latency, failing the Nth call, seeded throttling and 5xx, a crash after
//! N writes, a rate limit, a lost response. Shared by every fake through a
//! `Meter`; time is tokio's, so tests on a paused clock do not sleep.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kfp_tenant_core::ports::{ErrorKind, ProviderError, ProviderResult};
use tokio::time::Instant;

use crate::lock;

/// API calls made, per operation.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<&'static str, u64>>>);

/// Operations that change something; the rest only read.
pub const WRITES: &[&str] = &[
    "CreateRole",
    "DeleteRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "TagRole",
    "UntagRole",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "ApplyProfile",
    "DeleteProfile",
    "ApplyServiceAccount",
    "AnnotateServiceAccount",
    "ReleaseServiceAccount",
    "DeleteServiceAccount",
    "ApplyConfigMap",
    "WriteClusterRecord",
    "CreateOpenIDConnectProvider",
    "CreatePodIdentityAssociation",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
    "AdminCreateUser",
    "AdminDeleteUser",
    "RecordCognitoUser",
];

impl Calls {
    pub(crate) fn record(&self, op: &'static str) {
        *lock(&self.0).entry(op).or_default() += 1;
    }

    pub fn get(&self, op: &str) -> u64 {
        lock(&self.0).get(op).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.0).clone()
    }

    pub fn writes(&self) -> u64 {
        lock(&self.0).iter().filter(|(op, _)| WRITES.contains(op)).map(|(_, n)| n).sum()
    }

    pub fn total(&self) -> u64 {
        lock(&self.0).values().sum()
    }

    pub fn reset(&self) {
        lock(&self.0).clear();
    }
}

/// What a fake does besides answering.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added to every call.
    pub latency: Duration,
    /// Fail the Nth call (1-based) of an operation with this kind.
    pub fail_nth: BTreeMap<&'static str, (u64, ErrorKind)>,
    /// The message of those failures, when the service's words matter
    /// (e.g. IAM's "Invalid principal in policy").
    pub fail_message: Option<&'static str>,
    /// Throttle each call with this probability.
    pub throttle: f64,
    /// Seed of the generator behind `throttle`.
    pub seed: u64,
    /// A created role stays invisible to GetRole and to its policy calls for this long.
    pub invisible_for: Duration,
    /// Fail each call with a 5xx-like transient error with this probability.
    pub transient: f64,
    /// Once this many writes were made (across the fakes sharing the
    /// [`Calls`]), every further write hangs forever: the process "crashed",
    /// and the test drops the apply future.
    pub crash_after_writes: Option<u64>,
    /// Admit at most this many calls per second (sliding window); throttle the rest.
    pub rate_limit: Option<f64>,
    /// Carry out the Nth CreateRole (1-based), then answer with a transient
    /// error, as when the response is lost on the way back.
    pub lose_create_response: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Injector {
    faults: Faults,
    rng: u64,
    seen: BTreeMap<&'static str, u64>,
    admitted: std::collections::VecDeque<Instant>,
}

impl Injector {
    fn new(faults: Faults) -> Self {
        let rng = faults.seed ^ 0x9e37_79b9_7f4a_7c15;
        Injector { faults, rng, seen: BTreeMap::new(), admitted: Default::default() }
    }

    /// splitmix64: small, seeded, good enough for a fault schedule.
    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn check(&mut self, op: &'static str, target: &str) -> ProviderResult<()> {
        let n = self.seen.entry(op).or_default();
        *n += 1;
        if let Some((nth, kind)) = self.faults.fail_nth.get(op)
            && *nth == *n
        {
            let message = self.faults.fail_message.map_or_else(|| format!("injected failure of call {nth}"), str::to_owned);
            return Err(ProviderError::new(*kind, op, target, message));
        }
        if let Some(rate) = self.faults.rate_limit {
            let now = Instant::now();
            while self.admitted.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                self.admitted.pop_front();
            }
            if self.admitted.len() as f64 >= rate {
                return Err(ProviderError::new(ErrorKind::Throttled, op, target, "Rate exceeded (over the injected rate limit)"));
            }
            self.admitted.push_back(now);
        }
        if self.faults.throttle > 0.0 && self.next_f64() < self.faults.throttle {
            return Err(ProviderError::new(ErrorKind::Throttled, op, target, "Rate exceeded (injected)"));
        }
        if self.faults.transient > 0.0 && self.next_f64() < self.faults.transient {
            return Err(ProviderError::new(ErrorKind::Transient, op, target, "We encountered an internal error (injected 500)"));
        }
        Ok(())
    }
}

/// Shared by the three fakes: counting, latency, faults.
#[derive(Clone, Debug)]
pub(crate) struct Meter {
    pub(crate) calls: Calls,
    injector: Arc<Mutex<Injector>>,
}

impl Meter {
    pub(crate) fn new(calls: Calls, faults: Faults) -> Self {
        Meter { calls, injector: Arc::new(Mutex::new(Injector::new(faults))) }
    }

    pub(crate) async fn enter(&self, op: &'static str, target: &str) -> ProviderResult<()> {
        let crash_after = lock(&self.injector).faults.crash_after_writes;
        if let Some(n) = crash_after
            && WRITES.contains(&op)
            && self.calls.writes() >= n
        {
            std::future::pending::<()>().await;
        }
        self.calls.record(op);
        let latency = lock(&self.injector).faults.latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        lock(&self.injector).check(op, target)
    }

    /// Whether this call's answer is to be lost (for the Nth CreateRole).
    pub(crate) fn loses_create_response(&self) -> bool {
        let injector = lock(&self.injector);
        injector.faults.lose_create_response.is_some_and(|n| injector.seen.get("CreateRole") == Some(&n))
    }

    pub(crate) fn invisible_for(&self) -> Duration {
        lock(&self.injector).faults.invisible_for
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *lock(&self.injector) = Injector::new(faults);
    }
}
