//! In-memory fakes of kfp-tenant's provider ports, for the engine's tests,
//! fault injection and benchmarks.
//!
//! They behave like the real services where the engine's correctness depends
//! on it: IAM refuses a second role of the same name and a role deletion while
//! inline policies remain; a deleted Profile takes its namespace with it. Each
//! fake counts calls per API operation (named as the real API names them), and
//! takes [`Faults`]: latency per call, failing the Nth call of an operation,
//! throttling with a probability from a seeded generator, and eventual
//! consistency (a created role invisible to reads for a while). Time is tokio's,
//! so tests on a paused clock do not sleep for real.
//!
//! The fakes are not a stand-in for the real clients: those are tested over
//! HTTP against moto and the Kubernetes API fake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{
    CallerIdentity, ClusterApi, ClusterOidc, ErrorKind, IamApi, Profile, ProfileApi, ProviderError, ProviderResult, Role, ServiceAccount,
};
use kfp_tenant_core::tags;
use tokio::time::Instant;

pub mod apiserver;
pub mod backend;
pub mod controller;
pub mod world;

pub const ACCOUNT_ID: &str = "123456789012";
pub const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

// Each fake implements its port; this fails to compile if one stops doing so.
const _: fn() = || {
    fn implements<C: ClusterApi, I: IamApi, P: ProfileApi>() {}
    implements::<FakeCluster, FakeIam, FakeProfiles>();
};

/// A role someone made by hand: no kfp-tenant markers, an empty trust policy.
pub fn unmanaged_role(name: &str) -> Role {
    Role {
        name: name.to_owned(),
        path: "/".to_owned(),
        arn: String::new(),
        trust_policy: PolicyDocument::new(serde_json::json!({"Version": "2012-10-17", "Statement": []})),
        description: None,
        tags: BTreeMap::new(),
        max_session_duration: 3600,
        permissions_boundary: None,
    }
}

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
    "ApplyProfile",
    "DeleteProfile",
    "ApplyServiceAccount",
    "CreateOpenIDConnectProvider",
];

impl Calls {
    fn record(&self, op: &'static str) {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
struct Injector {
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
struct Meter {
    calls: Calls,
    injector: Arc<Mutex<Injector>>,
}

impl Meter {
    fn new(calls: Calls, faults: Faults) -> Self {
        Meter { calls, injector: Arc::new(Mutex::new(Injector::new(faults))) }
    }

    async fn enter(&self, op: &'static str, target: &str) -> ProviderResult<()> {
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
    fn loses_create_response(&self) -> bool {
        let injector = lock(&self.injector);
        injector.faults.lose_create_response.is_some_and(|n| injector.seen.get("CreateRole") == Some(&n))
    }

    fn invisible_for(&self) -> Duration {
        lock(&self.injector).faults.invisible_for
    }

    fn set_faults(&self, faults: Faults) {
        *lock(&self.injector) = Injector::new(faults);
    }
}

/// STS and EKS in memory.
#[derive(Clone, Debug)]
pub struct FakeCluster {
    meter: Meter,
    pub identity: CallerIdentity,
    state: Arc<Mutex<ClusterState>>,
}

#[derive(Debug)]
struct ClusterState {
    clusters: BTreeMap<String, String>,
    providers: BTreeSet<String>,
}

impl FakeCluster {
    /// One account (`aws` partition) with `cluster` and its IAM OIDC provider.
    pub fn new(calls: Calls, cluster: &str) -> Self {
        let state = ClusterState {
            clusters: BTreeMap::from([(cluster.to_owned(), ISSUER.to_owned())]),
            providers: BTreeSet::from([ISSUER.trim_start_matches("https://").to_owned()]),
        };
        FakeCluster {
            meter: Meter::new(calls, Faults::default()),
            identity: CallerIdentity {
                account_id: ACCOUNT_ID.to_owned(),
                partition: "aws".to_owned(),
                arn: format!("arn:aws:iam::{ACCOUNT_ID}:user/tester"),
            },
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.meter.set_faults(faults);
    }

    /// Removes the account's IAM OIDC provider for every issuer.
    pub fn remove_oidc_providers(&self) {
        lock(&self.state).providers.clear();
    }
}

#[async_trait]
impl ClusterApi for FakeCluster {
    async fn caller_identity(&self) -> ProviderResult<CallerIdentity> {
        self.meter.enter("GetCallerIdentity", "caller").await?;
        Ok(self.identity.clone())
    }

    async fn cluster_oidc(&self, cluster: &str) -> ProviderResult<ClusterOidc> {
        self.meter.enter("DescribeCluster", cluster).await?;
        let state = lock(&self.state);
        let issuer =
            state.clusters.get(cluster).cloned().ok_or_else(|| {
                ProviderError::new(ErrorKind::NotFound, "DescribeCluster", format!("cluster {cluster}"), "No cluster found")
            })?;
        let host = issuer.trim_start_matches("https://");
        let provider_arn = state
            .providers
            .contains(host)
            .then(|| format!("arn:{}:iam::{}:oidc-provider/{host}", self.identity.partition, self.identity.account_id));
        drop(state);
        self.meter.calls.record("ListOpenIDConnectProviders");
        Ok(ClusterOidc { issuer_url: issuer, provider_arn })
    }

    async fn create_oidc_provider(&self, issuer_url: &str) -> ProviderResult<String> {
        self.meter.enter("CreateOpenIDConnectProvider", issuer_url).await?;
        let host = issuer_url.trim_start_matches("https://").to_owned();
        if !lock(&self.state).providers.insert(host.clone()) {
            return Err(ProviderError::new(
                ErrorKind::AlreadyExists,
                "CreateOpenIDConnectProvider",
                issuer_url,
                "Provider with url already exists.",
            ));
        }
        Ok(format!("arn:{}:iam::{}:oidc-provider/{host}", self.identity.partition, self.identity.account_id))
    }
}

/// IAM roles and inline policies in memory.
#[derive(Clone, Debug)]
pub struct FakeIam {
    meter: Meter,
    state: Arc<Mutex<IamState>>,
}

#[derive(Debug, Default)]
struct IamState {
    /// By lower-cased name: IAM role names are case-insensitive.
    roles: BTreeMap<String, (Role, Instant)>,
    policies: BTreeMap<(String, String), PolicyDocument>,
}

impl IamState {
    fn visible(&self, name: &str, invisible_for: Duration) -> Option<&Role> {
        self.roles.get(&name.to_ascii_lowercase()).filter(|(_, created)| created.elapsed() >= invisible_for).map(|(r, _)| r)
    }

    fn exists(&self, name: &str) -> bool {
        self.roles.contains_key(&name.to_ascii_lowercase())
    }
}

impl FakeIam {
    pub fn new(calls: Calls) -> Self {
        FakeIam { meter: Meter::new(calls, Faults::default()), state: Arc::default() }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.meter.set_faults(faults);
    }

    /// Puts a role in place behind the tool's back (no call counted).
    pub fn insert_role(&self, mut role: Role) {
        role.arn = format!("arn:aws:iam::{ACCOUNT_ID}:role{}{}", role.path, role.name);
        let past = Instant::now().checked_sub(Duration::from_secs(3600)).unwrap_or_else(Instant::now);
        lock(&self.state).roles.insert(role.name.to_ascii_lowercase(), (role, past));
    }

    /// Changes a role behind the tool's back.
    pub fn edit_role(&self, name: &str, edit: impl FnOnce(&mut Role)) {
        if let Some((role, _)) = lock(&self.state).roles.get_mut(&name.to_ascii_lowercase()) {
            edit(role);
        }
    }

    /// Puts an inline policy behind the tool's back.
    pub fn insert_policy(&self, role: &str, policy: &str, document: PolicyDocument) {
        lock(&self.state).policies.insert((role.to_owned(), policy.to_owned()), document);
    }

    /// Every role, by name (for comparing whole states).
    pub fn roles(&self) -> BTreeMap<String, Role> {
        lock(&self.state).roles.values().map(|(r, _)| (r.name.clone(), r.clone())).collect()
    }

    /// Every inline policy, by (role, policy).
    pub fn policies(&self) -> BTreeMap<(String, String), PolicyDocument> {
        lock(&self.state).policies.clone()
    }

    pub fn role(&self, name: &str) -> Option<Role> {
        lock(&self.state).roles.get(&name.to_ascii_lowercase()).map(|(r, _)| r.clone())
    }

    pub fn role_names(&self) -> Vec<String> {
        lock(&self.state).roles.values().map(|(r, _)| r.name.clone()).collect()
    }

    pub fn policy(&self, role: &str, policy: &str) -> Option<PolicyDocument> {
        lock(&self.state).policies.get(&(role.to_owned(), policy.to_owned())).cloned()
    }

    /// Every (role, policy) pair that exists.
    pub fn policy_names(&self) -> Vec<(String, String)> {
        lock(&self.state).policies.keys().cloned().collect()
    }

    fn no_role(op: &str, name: &str) -> ProviderError {
        ProviderError::new(ErrorKind::NotFound, op, format!("role {name}"), format!("The role with name {name} cannot be found."))
    }

    fn write_role(&self, op: &'static str, name: &str, edit: impl FnOnce(&mut Role)) -> ProviderResult<()> {
        let mut state = lock(&self.state);
        let (role, _) = state.roles.get_mut(&name.to_ascii_lowercase()).ok_or_else(|| Self::no_role(op, name))?;
        edit(role);
        Ok(())
    }
}

#[async_trait]
impl IamApi for FakeIam {
    async fn get_role(&self, name: &str) -> ProviderResult<Option<Role>> {
        self.meter.enter("GetRole", name).await?;
        Ok(lock(&self.state).visible(name, self.meter.invisible_for()).cloned())
    }

    async fn create_role(&self, role: &Role) -> ProviderResult<Role> {
        self.meter.enter("CreateRole", &role.name).await?;
        let mut state = lock(&self.state);
        if state.exists(&role.name) {
            return Err(ProviderError::new(
                ErrorKind::AlreadyExists,
                "CreateRole",
                format!("role {}", role.name),
                format!("Role with name {} already exists.", role.name),
            ));
        }
        let mut created = role.clone();
        created.arn = format!("arn:aws:iam::{ACCOUNT_ID}:role{}{}", role.path, role.name);
        state.roles.insert(role.name.to_ascii_lowercase(), (created.clone(), Instant::now()));
        if self.meter.loses_create_response() {
            return Err(ProviderError::new(
                ErrorKind::Transient,
                "CreateRole",
                format!("role {}", role.name),
                "connection reset (injected, after the write)",
            ));
        }
        Ok(created)
    }

    async fn update_trust_policy(&self, name: &str, document: &PolicyDocument) -> ProviderResult<()> {
        self.meter.enter("UpdateAssumeRolePolicy", name).await?;
        self.write_role("UpdateAssumeRolePolicy", name, |r| r.trust_policy = document.clone())
    }

    async fn update_role(&self, name: &str, description: Option<&str>, max_session_duration: u32) -> ProviderResult<()> {
        self.meter.enter("UpdateRole", name).await?;
        self.write_role("UpdateRole", name, |r| {
            r.description = description.map(str::to_owned);
            r.max_session_duration = max_session_duration;
        })
    }

    async fn set_permissions_boundary(&self, name: &str, arn: Option<&str>) -> ProviderResult<()> {
        let op = if arn.is_some() { "PutRolePermissionsBoundary" } else { "DeleteRolePermissionsBoundary" };
        self.meter.enter(op, name).await?;
        self.write_role(op, name, |r| r.permissions_boundary = arn.map(str::to_owned))
    }

    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> ProviderResult<()> {
        self.meter.enter("TagRole", name).await?;
        self.write_role("TagRole", name, |r| r.tags.extend(tags.clone()))
    }

    async fn untag_role(&self, name: &str, keys: &[String]) -> ProviderResult<()> {
        self.meter.enter("UntagRole", name).await?;
        self.write_role("UntagRole", name, |r| r.tags.retain(|k, _| !keys.contains(k)))
    }

    async fn delete_role(&self, name: &str) -> ProviderResult<()> {
        self.meter.enter("DeleteRole", name).await?;
        let mut state = lock(&self.state);
        if !state.exists(name) {
            return Err(Self::no_role("DeleteRole", name));
        }
        if state.policies.keys().any(|(role, _)| role.eq_ignore_ascii_case(name)) {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                "DeleteRole",
                format!("role {name}"),
                "Cannot delete entity, must delete policies first.",
            ));
        }
        state.roles.remove(&name.to_ascii_lowercase());
        Ok(())
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> ProviderResult<Option<PolicyDocument>> {
        self.meter.enter("GetRolePolicy", role).await?;
        let state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Ok(None);
        }
        Ok(state.policies.get(&(role.to_owned(), policy.to_owned())).cloned())
    }

    async fn put_role_policy(&self, role: &str, policy: &str, document: &PolicyDocument) -> ProviderResult<()> {
        self.meter.enter("PutRolePolicy", role).await?;
        let mut state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Err(Self::no_role("PutRolePolicy", role));
        }
        state.policies.insert((role.to_owned(), policy.to_owned()), document.clone());
        Ok(())
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> ProviderResult<()> {
        self.meter.enter("DeleteRolePolicy", role).await?;
        let mut state = lock(&self.state);
        match state.policies.remove(&(role.to_owned(), policy.to_owned())) {
            Some(_) => Ok(()),
            None => Err(ProviderError::new(
                ErrorKind::NotFound,
                "DeleteRolePolicy",
                format!("role {role}"),
                format!("The role policy with name {policy} cannot be found."),
            )),
        }
    }

    async fn list_managed_roles(&self, path_prefix: &str, cluster: &str) -> ProviderResult<Vec<Role>> {
        self.meter.enter("ListRoles", path_prefix).await?;
        Ok(lock(&self.state)
            .roles
            .values()
            .map(|(r, _)| r)
            .filter(|r| r.path.starts_with(path_prefix) && tags::is_managed_role(&r.tags, cluster))
            .cloned()
            .collect())
    }
}

/// Profiles (and the namespaces the Kubeflow controller makes) in memory.
#[derive(Clone, Debug)]
pub struct FakeProfiles {
    meter: Meter,
    state: Arc<Mutex<ProfileState>>,
}

#[derive(Debug, Default)]
struct ProfileState {
    profiles: BTreeMap<String, Profile>,
    namespaces: BTreeSet<String>,
    accounts: BTreeMap<(String, String), ServiceAccount>,
}

impl FakeProfiles {
    /// Every Profile, by name (for comparing whole states).
    pub fn profiles(&self) -> BTreeMap<String, Profile> {
        lock(&self.state).profiles.clone()
    }

    /// Every service account, by (namespace, name).
    pub fn service_accounts(&self) -> BTreeMap<(String, String), ServiceAccount> {
        lock(&self.state).accounts.clone()
    }

    pub fn new(calls: Calls) -> Self {
        FakeProfiles { meter: Meter::new(calls, Faults::default()), state: Arc::default() }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.meter.set_faults(faults);
    }

    pub fn insert_profile(&self, profile: Profile) {
        let mut state = lock(&self.state);
        state.namespaces.insert(profile.name.clone());
        state.profiles.insert(profile.name.clone(), profile);
    }

    pub fn insert_namespace(&self, name: &str) {
        lock(&self.state).namespaces.insert(name.to_owned());
    }

    pub fn edit_profile(&self, name: &str, edit: impl FnOnce(&mut Profile)) {
        if let Some(p) = lock(&self.state).profiles.get_mut(name) {
            edit(p);
        }
    }

    pub fn profile(&self, name: &str) -> Option<Profile> {
        lock(&self.state).profiles.get(name).cloned()
    }

    pub fn profile_names(&self) -> Vec<String> {
        lock(&self.state).profiles.keys().cloned().collect()
    }

    pub fn service_account(&self, namespace: &str, name: &str) -> Option<ServiceAccount> {
        lock(&self.state).accounts.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Puts a service account in place behind the tool's back.
    pub fn insert_service_account(&self, account: ServiceAccount) {
        let mut state = lock(&self.state);
        state.namespaces.insert(account.namespace.clone());
        state.accounts.insert((account.namespace.clone(), account.name.clone()), account);
    }
}

#[async_trait]
impl ProfileApi for FakeProfiles {
    async fn list_profiles(&self) -> ProviderResult<Vec<Profile>> {
        self.meter.enter("ListProfiles", "profiles").await?;
        Ok(lock(&self.state).profiles.values().cloned().collect())
    }

    async fn namespace_exists(&self, name: &str) -> ProviderResult<bool> {
        self.meter.enter("GetNamespace", name).await?;
        Ok(lock(&self.state).namespaces.contains(name))
    }

    async fn apply_profile(&self, profile: &Profile) -> ProviderResult<()> {
        self.meter.enter("ApplyProfile", &profile.name).await?;
        let mut state = lock(&self.state);
        state.namespaces.insert(profile.name.clone());
        state.profiles.insert(profile.name.clone(), Profile { managed: true, ..profile.clone() });
        Ok(())
    }

    async fn delete_profile(&self, name: &str) -> ProviderResult<()> {
        self.meter.enter("DeleteProfile", name).await?;
        let mut state = lock(&self.state);
        match state.profiles.remove(name) {
            Some(_) => {
                state.namespaces.remove(name);
                state.accounts.retain(|(ns, _), _| ns != name);
                Ok(())
            }
            None => {
                Err(ProviderError::new(ErrorKind::NotFound, "DeleteProfile", format!("profile {name}"), "profiles.kubeflow.org not found"))
            }
        }
    }

    async fn get_service_account(&self, namespace: &str, name: &str) -> ProviderResult<Option<ServiceAccount>> {
        self.meter.enter("GetServiceAccount", name).await?;
        Ok(lock(&self.state).accounts.get(&(namespace.to_owned(), name.to_owned())).cloned())
    }

    async fn apply_service_account(&self, account: &ServiceAccount) -> ProviderResult<()> {
        self.meter.enter("ApplyServiceAccount", &account.name).await?;
        let mut state = lock(&self.state);
        if !state.namespaces.contains(&account.namespace) {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                "ApplyServiceAccount",
                format!("service account {}/{}", account.namespace, account.name),
                format!("namespaces \"{}\" not found", account.namespace),
            ));
        }
        state.accounts.insert((account.namespace.clone(), account.name.clone()), ServiceAccount { managed: true, ..account.clone() });
        Ok(())
    }

    /// The fake's controller is instantaneous: a stored Profile is ready.
    async fn wait_ready(&self, profile: &Profile, _timeout: Duration) -> ProviderResult<()> {
        self.meter.enter("WaitReady", &profile.name).await?;
        match lock(&self.state).profiles.contains_key(&profile.name) {
            true => Ok(()),
            false => {
                Err(ProviderError::new(ErrorKind::NotFound, "WaitReady", format!("profile {}", profile.name), "the Profile does not exist"))
            }
        }
    }
}
