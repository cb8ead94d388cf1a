//! Surviving the services as they are: throttling, 5xx, eventual consistency.
//!
//! [`Resilient`] wraps each provider port and retries what is worth retrying:
//! throttling and transient faults with capped exponential backoff (jittered,
//! deterministically), and, for IAM, a `NotFound` (or an "Invalid principal")
//! about a role that this run created moments ago, for as long as IAM's
//! eventual consistency may hide it. An [`AdaptiveRate`] limiter, shared by
//! every call through the wrapper, paces calls: it slows down multiplicatively
//! when throttled and speeds up additively on success (AIMD), so a large apply
//! settles just under the account's IAM rate instead of failing there.
//!
//! Everything here sleeps on tokio's clock, so tests run on a paused clock.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::policy::PolicyDocument;
use crate::ports::{
    AccountQuery, AssumedRole, BearerToken, CallerIdentity, ClusterApi, ClusterRecord, ConfigMap, DirectoryUser, EksCluster, ErrorKind,
    IamApi, KubeEndpoint, KubernetesApi, Namespace, OidcProviderDetails, PodIdentityApi, PodIdentityAssociation, Profile, ProviderResult,
    Role, RoleDetail, RoleListing, ServiceAccount, UserDirectoryApi,
};

/// How long and how often to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call when throttled: patient, throttling passes.
    pub max_attempts: u32,
    /// Attempts per call for 5xx, timeouts and refused connections: short, so
    /// a wrong endpoint is reported in about a second, not after minutes.
    pub max_transient_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long after creating a role a `NotFound` about it is retried.
    pub consistency_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            max_transient_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(8),
            consistency_window: Duration::from_secs(30),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An AIMD rate limiter, off until the service first pushes back (like the
/// AWS SDK's adaptive mode): a healthy account is never slowed down. On the
/// first throttle it starts pacing at 90 % of the successes it saw in the last
/// second, a measured estimate of the account's rate. Then calls are spaced
/// `1/rate` apart; a throttle cuts the rate by 15 % (at most once a second), each
/// success adds 0.1 calls per second, between `min` and `max`.
/// IAM's throttling answers per second; one cut per second is one reaction.
const CUT_COOLDOWN: Duration = Duration::from_secs(1);
/// Calls per second added per success: slow enough to probe, not to flood.
const INCREASE: f64 = 0.1;

#[derive(Debug)]
pub struct AdaptiveRate {
    state: Mutex<RateState>,
}

#[derive(Debug)]
struct RateState {
    /// `None` until the first throttle.
    rate: Option<f64>,
    min: f64,
    max: f64,
    next: Option<Instant>,
    last_cut: Option<Instant>,
    /// Successes in the last second, while not pacing yet.
    recent: std::collections::VecDeque<Instant>,
}

impl AdaptiveRate {
    /// Not pacing until the first throttle.
    pub fn new(min: f64, max: f64) -> Self {
        AdaptiveRate { state: Mutex::new(RateState { rate: None, min, max, next: None, last_cut: None, recent: Default::default() }) }
    }

    /// Pacing from the start at `initial` calls per second.
    #[cfg(test)]
    fn starting_at(initial: f64, min: f64, max: f64) -> Self {
        let limiter = Self::new(min, max);
        lock(&limiter.state).rate = Some(initial.clamp(min, max));
        limiter
    }

    /// The current rate in calls per second, `None` while not pacing.
    pub fn rate(&self) -> Option<f64> {
        lock(&self.state).rate
    }

    /// Waits for this call's slot.
    pub async fn acquire(&self) {
        let wait_until = {
            let mut s = lock(&self.state);
            let Some(rate) = s.rate else { return };
            let now = Instant::now();
            let slot = s.next.map_or(now, |n| n.max(now));
            s.next = Some(slot + Duration::from_secs_f64(1.0 / rate));
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    pub fn on_success(&self) {
        let mut s = lock(&self.state);
        match s.rate {
            Some(rate) => s.rate = Some((rate + INCREASE).min(s.max)),
            None => {
                let now = Instant::now();
                s.recent.push_back(now);
                while s.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                    s.recent.pop_front();
                }
            }
        }
    }

    /// Starts pacing, or cuts the rate, at most once per spacing interval so
    /// that one burst of throttles counts once.
    pub fn on_throttle(&self) {
        let mut s = lock(&self.state);
        let now = Instant::now();
        match s.rate {
            None => {
                let seen = s.recent.len() as f64;
                s.rate = Some((seen * 0.9).clamp(s.min, s.max));
                s.recent.clear();
                s.last_cut = Some(now);
            }
            Some(rate) => {
                // Throttles answer calls sent before the last cut took effect:
                // react once per feedback period, as TCP does once per round trip.
                if s.last_cut.is_none_or(|t| now.duration_since(t) >= CUT_COOLDOWN) {
                    s.rate = Some((rate * 0.85).max(s.min));
                    s.last_cut = Some(now);
                }
            }
        }
    }
}

/// EKS's words for a Pod Identity role it cannot see yet.
const ROLE_NOT_YET: &str = "Role provided in the request does not exist";
/// EKS's words for a role whose trust does not admit Pod Identity, or that
/// it still sees with its trust from before an update.
const TRUST_NOT_YET: &str = "Trust policy of the role provided is invalid";

/// A provider port with retries and pacing around it.
#[derive(Debug)]
pub struct Resilient<P> {
    inner: P,
    policy: RetryPolicy,
    limiter: Option<Arc<AdaptiveRate>>,
    /// Roles this wrapper created, and when.
    created: Mutex<HashMap<String, Instant>>,
    /// Roles this wrapper created or gave a new trust policy, when, and
    /// whether that trust admits EKS Pod Identity.
    trusted: Mutex<HashMap<String, (Instant, bool)>>,
    retries: Mutex<BTreeMap<ErrorKind, u64>>,
}

impl<P> Resilient<P> {
    pub fn new(inner: P, policy: RetryPolicy) -> Self {
        Resilient { inner, policy, limiter: None, created: Mutex::default(), trusted: Mutex::default(), retries: Mutex::default() }
    }

    /// Paces every call through `limiter`.
    pub fn with_limiter(mut self, limiter: Arc<AdaptiveRate>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Retries made so far, by the kind of error that caused them.
    pub fn retries(&self) -> BTreeMap<ErrorKind, u64> {
        lock(&self.retries).clone()
    }

    fn recently_created(&self, role: Option<&str>) -> bool {
        let Some(role) = role else { return false };
        lock(&self.created).get(&role.to_ascii_lowercase()).is_some_and(|t| t.elapsed() < self.policy.consistency_window)
    }

    /// Whether this wrapper recently gave `role` a trust that admits Pod
    /// Identity: then EKS calling it invalid is IAM lagging, not the trust.
    fn recently_trusted_pods(&self, role: Option<&str>) -> bool {
        let Some(role) = role else { return false };
        lock(&self.trusted).get(&role.to_ascii_lowercase()).is_some_and(|(t, pods)| *pods && t.elapsed() < self.policy.consistency_window)
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of attempts.
    /// `role` names the IAM role the call is about, for eventual consistency.
    async fn run<T, F, Fut>(&self, role: Option<&str>, call: F) -> ProviderResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ProviderResult<T>>,
    {
        let mut attempt: u32 = 0;
        let mut delay = self.policy.base_delay;
        loop {
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            let error = match call().await {
                Ok(value) => {
                    if let Some(limiter) = &self.limiter {
                        limiter.on_success();
                    }
                    return Ok(value);
                }
                Err(e) => e,
            };
            attempt += 1;
            let retry = match error.kind {
                ErrorKind::Throttled => {
                    if let Some(limiter) = &self.limiter {
                        limiter.on_throttle();
                    }
                    attempt < self.policy.max_attempts
                }
                ErrorKind::Transient => attempt < self.policy.max_transient_attempts,
                // A provider's own deadline is the run's: retrying would outlive it.
                ErrorKind::Timeout | ErrorKind::Cancelled => false,
                ErrorKind::NotFound => self.recently_created(role),
                ErrorKind::InvalidInput if error.message.contains("Invalid principal") => attempt < self.policy.max_attempts,
                // EKS checks a Pod Identity role in IAM, which may not show a
                // role (or its new trust) made moments ago.
                ErrorKind::InvalidInput if error.message.contains(ROLE_NOT_YET) => {
                    self.recently_created(role) && attempt < self.policy.max_attempts
                }
                ErrorKind::InvalidInput if error.message.contains(TRUST_NOT_YET) => {
                    self.recently_trusted_pods(role) && attempt < self.policy.max_attempts
                }
                _ => false,
            };
            if !retry {
                return Err(error);
            }
            *lock(&self.retries).entry(error.kind).or_default() += 1;
            tracing::debug!(error = %error, attempt, ?delay, "retrying");
            tokio::time::sleep(jitter(delay, attempt, &error.target)).await;
            delay = (delay * 2).min(self.policy.max_delay);
        }
    }
}

/// Between half and all of `delay`, spread by a hash of the call so that
/// retries of many calls do not line up, yet runs repeat exactly.
fn jitter(delay: Duration, attempt: u32, target: &str) -> Duration {
    let hash = crate::fnv::hash_from(crate::fnv::OFFSET ^ u64::from(attempt), target.as_bytes());
    let fraction = (hash % 1000) as f64 / 1000.0;
    delay.mul_f64(0.5 + fraction / 2.0)
}

/// A port implemented for `Resilient<P>` by forwarding each listed method to
/// the wrapped provider through [`Resilient::run`]; `[expr]` after a method
/// names the IAM role the call writes (IAM's consistency window applies to
/// it). Methods with more to do than forwarding come first, written out.
macro_rules! resilient {
    (impl $port:ident { $($special:tt)* } $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $([$role:expr])?;)*) => {
        #[async_trait]
        impl<P: $port> $port for Resilient<P> {
            $($special)*
            $(
                async fn $name(&self, $($arg: $ty),*) -> ProviderResult<$ret> {
                    self.run(resilient!(@role $($role)?), || self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
    (@role) => { None };
    (@role $role:expr) => { $role };
}

resilient! {
    impl IamApi {
        async fn create_role(&self, role: &Role) -> ProviderResult<Role> {
            let created = match self.run(Some(&role.name), || self.inner.create_role(role)).await {
                // A retry after a lost response finds its own role: that is success.
                Err(e) if e.kind == ErrorKind::AlreadyExists => self.earlier_attempt(role).await.ok_or(e)?,
                other => other?,
            };
            let key = role.name.to_ascii_lowercase();
            lock(&self.created).insert(key.clone(), Instant::now());
            lock(&self.trusted).insert(key, (Instant::now(), crate::policy::admits_pod_identity(&role.trust_policy)));
            Ok(created)
        }

        async fn update_trust_policy(&self, name: &str, document: &PolicyDocument) -> ProviderResult<()> {
            self.run(Some(name), || self.inner.update_trust_policy(name, document)).await?;
            // EKS reads the new trust as eventually as a new role.
            let pods = crate::policy::admits_pod_identity(document);
            lock(&self.trusted).insert(name.to_ascii_lowercase(), (Instant::now(), pods));
            Ok(())
        }
    }
    get_role(name: &str) -> Option<Role>;
    update_role(name: &str, description: Option<&str>, max_session_duration: u32) -> () [Some(name)];
    set_permissions_boundary(name: &str, arn: Option<&str>) -> () [Some(name)];
    tag_role(name: &str, tags: &BTreeMap<String, String>) -> () [Some(name)];
    untag_role(name: &str, keys: &[String]) -> () [Some(name)];
    delete_role(name: &str) -> ();
    get_role_policy(role: &str, policy: &str) -> Option<PolicyDocument>;
    put_role_policy(role: &str, policy: &str, document: &PolicyDocument) -> () [Some(role)];
    delete_role_policy(role: &str, policy: &str) -> ();
    list_role_policies(role: &str) -> Vec<String>;
    list_attached_role_policies(role: &str) -> Vec<String>;
    attach_role_policy(role: &str, policy_arn: &str) -> () [Some(role)];
    detach_role_policy(role: &str, policy_arn: &str) -> ();
    account_roles() -> Vec<RoleDetail>;
    list_roles(path_prefix: &str) -> Vec<RoleListing>;
    role_count() -> u64;
    get_oidc_provider(arn: &str) -> Option<OidcProviderDetails>;
}

impl<I: IamApi> Resilient<I> {
    /// The existing role of this name, when it is the one `role` describes
    /// (kfp-tenant's markers, the same trust policy and path): an earlier
    /// attempt of this very call succeeded and its answer was lost.
    async fn earlier_attempt(&self, role: &Role) -> Option<Role> {
        let live = self.inner.get_role(&role.name).await.ok()??;
        (live.tags == role.tags && live.trust_policy == role.trust_policy && live.path == role.path).then_some(live)
    }
}

resilient! {
    impl ClusterApi {}
    caller_identity() -> CallerIdentity;
    describe_cluster(cluster: &str) -> EksCluster;
    create_oidc_provider(issuer_url: &str) -> String;
    bucket_region(bucket: &str) -> Option<String>;
    assume_role_with_web_identity(role_arn: &str, session: &str, token: &BearerToken) -> AssumedRole;
}

resilient! {
    impl KubernetesApi {
        fn endpoint(&self) -> KubeEndpoint {
            self.inner.endpoint()
        }
    }
    cluster_record() -> Option<ClusterRecord>;
    write_cluster_record(record: &ClusterRecord) -> ();
    record_cognito_user(pool: &str, email: &str, created: bool) -> ();
    list_profiles() -> Vec<Profile>;
    get_namespace(name: &str) -> Option<Namespace>;
    list_namespaces() -> Vec<Namespace>;
    apply_profile(profile: &Profile) -> ();
    delete_profile(name: &str, timeout: Duration) -> ();
    wait_ready(profile: &Profile, timeout: Duration) -> ();
    list_service_accounts(which: AccountQuery<'_>) -> Vec<ServiceAccount>;
    get_service_account(namespace: &str, name: &str) -> Option<ServiceAccount>;
    apply_service_account(account: &ServiceAccount, timeout: Duration) -> ();
    annotate_service_account(namespace: &str, name: &str, role_arn: Option<&str>) -> ();
    release_service_account(namespace: &str, name: &str) -> ();
    delete_service_account(namespace: &str, name: &str) -> ();
    request_token(namespace: &str, name: &str, audience: &str, expires_in: Duration) -> Option<BearerToken>;
    list_config_maps(name: &str) -> Vec<ConfigMap>;
    apply_config_map(config: &ConfigMap, timeout: Duration) -> ();
}

/// The role an ARN names (`arn:aws:iam::1:role/path/name` → `name`).
fn role_of(arn: Option<&str>) -> Option<&str> {
    arn.and_then(|a| a.rsplit('/').next())
}

resilient! {
    impl UserDirectoryApi {}
    find_users(pool: &str, email: &str) -> Vec<DirectoryUser>;
    create_user(pool: &str, email: &str, invite: bool) -> DirectoryUser;
    delete_user(pool: &str, username: &str) -> ();
}

resilient! {
    impl PodIdentityApi {}
    list_pod_identity_associations(cluster: &str) -> Vec<PodIdentityAssociation>;
    describe_pod_identity_association(cluster: &str, id: &str) -> Option<PodIdentityAssociation>;
    create_pod_identity_association(cluster: &str, association: &PodIdentityAssociation) -> PodIdentityAssociation
        [role_of(association.role_arn.as_deref())];
    update_pod_identity_association(cluster: &str, id: &str, role_arn: &str) -> () [role_of(Some(role_arn))];
    delete_pod_identity_association(cluster: &str, id: &str) -> ();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limiter_spaces_calls_and_adapts() {
        let limiter = AdaptiveRate::starting_at(10.0, 1.0, 100.0);
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1), "11 calls at 10/s take one second");
        limiter.on_throttle();
        limiter.on_throttle();
        assert_eq!(limiter.rate(), Some(8.5), "one burst of throttles cuts once");
        for _ in 0..100 {
            limiter.on_success();
        }
        let rate = limiter.rate().unwrap();
        assert!((rate - 18.5).abs() < 1e-9, "8.5 + 100 x 0.1: {rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiter_waits_for_the_first_throttle_and_starts_from_what_it_saw() {
        let limiter = AdaptiveRate::new(1.0, 100.0);
        let start = Instant::now();
        for _ in 0..40 {
            limiter.acquire().await;
            limiter.on_success();
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "no pacing before the service pushes back");
        assert_eq!(limiter.rate(), None);
        limiter.on_throttle();
        assert_eq!(limiter.rate(), Some(36.0), "90 % of the 40 successes of the last second");
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for attempt in 0..50 {
            let d = jitter(Duration::from_secs(1), attempt, "role r");
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1), "{d:?}");
        }
    }
}
