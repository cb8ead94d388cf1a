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
    AccountQuery, AssumedRole, BearerToken, CallerIdentity, ClusterApi, ClusterRecord, DirectoryUser, EksCluster, ErrorKind, IamApi,
    KubeEndpoint, KubernetesApi, Namespace, OidcProviderDetails, PodIdentityApi, PodIdentityAssociation, Profile, ProviderResult, Role,
    RoleDetail, RoleListing, ServiceAccount, UserDirectoryApi,
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

#[async_trait]
impl<I: IamApi> IamApi for Resilient<I> {
    async fn get_role(&self, name: &str) -> ProviderResult<Option<Role>> {
        self.run(None, || self.inner.get_role(name)).await
    }

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

    async fn update_role(&self, name: &str, description: Option<&str>, max_session_duration: u32) -> ProviderResult<()> {
        self.run(Some(name), || self.inner.update_role(name, description, max_session_duration)).await
    }

    async fn set_permissions_boundary(&self, name: &str, arn: Option<&str>) -> ProviderResult<()> {
        self.run(Some(name), || self.inner.set_permissions_boundary(name, arn)).await
    }

    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> ProviderResult<()> {
        self.run(Some(name), || self.inner.tag_role(name, tags)).await
    }

    async fn untag_role(&self, name: &str, keys: &[String]) -> ProviderResult<()> {
        self.run(Some(name), || self.inner.untag_role(name, keys)).await
    }

    async fn delete_role(&self, name: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.delete_role(name)).await
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> ProviderResult<Option<PolicyDocument>> {
        self.run(None, || self.inner.get_role_policy(role, policy)).await
    }

    async fn put_role_policy(&self, role: &str, policy: &str, document: &PolicyDocument) -> ProviderResult<()> {
        self.run(Some(role), || self.inner.put_role_policy(role, policy, document)).await
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.delete_role_policy(role, policy)).await
    }

    async fn list_role_policies(&self, role: &str) -> ProviderResult<Vec<String>> {
        self.run(None, || self.inner.list_role_policies(role)).await
    }

    async fn list_attached_role_policies(&self, role: &str) -> ProviderResult<Vec<String>> {
        self.run(None, || self.inner.list_attached_role_policies(role)).await
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()> {
        self.run(Some(role), || self.inner.attach_role_policy(role, policy_arn)).await
    }

    async fn detach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.detach_role_policy(role, policy_arn)).await
    }

    async fn account_roles(&self) -> ProviderResult<Vec<RoleDetail>> {
        self.run(None, || self.inner.account_roles()).await
    }

    async fn list_roles(&self, path_prefix: &str) -> ProviderResult<Vec<RoleListing>> {
        self.run(None, || self.inner.list_roles(path_prefix)).await
    }

    async fn role_count(&self) -> ProviderResult<u64> {
        self.run(None, || self.inner.role_count()).await
    }

    async fn get_oidc_provider(&self, arn: &str) -> ProviderResult<Option<OidcProviderDetails>> {
        self.run(None, || self.inner.get_oidc_provider(arn)).await
    }
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

#[async_trait]
impl<C: ClusterApi> ClusterApi for Resilient<C> {
    async fn caller_identity(&self) -> ProviderResult<CallerIdentity> {
        self.run(None, || self.inner.caller_identity()).await
    }

    async fn describe_cluster(&self, cluster: &str) -> ProviderResult<EksCluster> {
        self.run(None, || self.inner.describe_cluster(cluster)).await
    }

    async fn create_oidc_provider(&self, issuer_url: &str) -> ProviderResult<String> {
        self.run(None, || self.inner.create_oidc_provider(issuer_url)).await
    }

    async fn bucket_region(&self, bucket: &str) -> ProviderResult<Option<String>> {
        self.run(None, || self.inner.bucket_region(bucket)).await
    }

    async fn assume_role_with_web_identity(&self, role_arn: &str, session: &str, token: &BearerToken) -> ProviderResult<AssumedRole> {
        self.run(None, || self.inner.assume_role_with_web_identity(role_arn, session, token)).await
    }
}

#[async_trait]
impl<K: KubernetesApi> KubernetesApi for Resilient<K> {
    fn endpoint(&self) -> KubeEndpoint {
        self.inner.endpoint()
    }

    async fn cluster_record(&self) -> ProviderResult<Option<ClusterRecord>> {
        self.run(None, || self.inner.cluster_record()).await
    }

    async fn write_cluster_record(&self, record: &ClusterRecord) -> ProviderResult<()> {
        self.run(None, || self.inner.write_cluster_record(record)).await
    }

    async fn record_cognito_user(&self, pool: &str, email: &str, created: bool) -> ProviderResult<()> {
        self.run(None, || self.inner.record_cognito_user(pool, email, created)).await
    }

    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>> {
        self.run(None, || self.inner.list_profiles()).await
    }

    async fn get_namespace(&self, name: &str) -> ProviderResult<Option<Namespace>> {
        self.run(None, || self.inner.get_namespace(name)).await
    }

    async fn list_namespaces(&self) -> ProviderResult<Vec<Namespace>> {
        self.run(None, || self.inner.list_namespaces()).await
    }

    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()> {
        self.run(None, || self.inner.apply_profile(profile)).await
    }

    async fn delete_profile(&self, name: &str, timeout: Duration) -> ProviderResult<()> {
        self.run(None, || self.inner.delete_profile(name, timeout)).await
    }

    async fn wait_ready(&self, profile: &Profile, timeout: Duration) -> ProviderResult<()> {
        self.run(None, || self.inner.wait_ready(profile, timeout)).await
    }

    async fn list_service_accounts(&self, which: AccountQuery<'_>) -> ProviderResult<Vec<ServiceAccount>> {
        self.run(None, || self.inner.list_service_accounts(which)).await
    }

    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<ServiceAccount>> {
        self.run(None, || self.inner.get_service_account(namespace, name)).await
    }

    async fn apply_service_account(&self, account: &ServiceAccount, timeout: Duration) -> ProviderResult<()> {
        self.run(None, || self.inner.apply_service_account(account, timeout)).await
    }

    async fn annotate_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) -> ProviderResult<()> {
        self.run(None, || self.inner.annotate_service_account(namespace, name, role_arn)).await
    }

    async fn release_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.release_service_account(namespace, name)).await
    }

    async fn delete_service_account(&self, namespace: &str, name: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.delete_service_account(namespace, name)).await
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audience: &str,
        expires_in: Duration,
    ) -> ProviderResult<Option<BearerToken>> {
        self.run(None, || self.inner.request_token(namespace, name, audience, expires_in)).await
    }
}

/// The role an ARN names (`arn:aws:iam::1:role/path/name` → `name`).
fn role_of(arn: Option<&str>) -> Option<&str> {
    arn.and_then(|a| a.rsplit('/').next())
}

#[async_trait]
impl<P: UserDirectoryApi> UserDirectoryApi for Resilient<P> {
    async fn find_users(&self, pool: &str, email: &str) -> ProviderResult<Vec<DirectoryUser>> {
        self.run(None, || self.inner.find_users(pool, email)).await
    }

    async fn create_user(&self, pool: &str, email: &str, invite: bool) -> ProviderResult<DirectoryUser> {
        self.run(None, || self.inner.create_user(pool, email, invite)).await
    }

    async fn delete_user(&self, pool: &str, username: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.delete_user(pool, username)).await
    }
}

#[async_trait]
impl<P: PodIdentityApi> PodIdentityApi for Resilient<P> {
    async fn list_pod_identity_associations(&self, cluster: &str) -> ProviderResult<Vec<PodIdentityAssociation>> {
        self.run(None, || self.inner.list_pod_identity_associations(cluster)).await
    }

    async fn describe_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<Option<PodIdentityAssociation>> {
        self.run(None, || self.inner.describe_pod_identity_association(cluster, id)).await
    }

    async fn create_pod_identity_association(
        &self,
        cluster: &str,
        association: &PodIdentityAssociation,
    ) -> ProviderResult<PodIdentityAssociation> {
        self.run(role_of(association.role_arn.as_deref()), || self.inner.create_pod_identity_association(cluster, association)).await
    }

    async fn update_pod_identity_association(&self, cluster: &str, id: &str, role_arn: &str) -> ProviderResult<()> {
        self.run(role_of(Some(role_arn)), || self.inner.update_pod_identity_association(cluster, id, role_arn)).await
    }

    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<()> {
        self.run(None, || self.inner.delete_pod_identity_association(cluster, id)).await
    }
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
