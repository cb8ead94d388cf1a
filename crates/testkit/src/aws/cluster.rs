//! STS, EKS and Cognito in memory: [`FakeCluster`], one account with its
//! clusters, their OIDC providers and the owners' user pools.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kfp_tenant_core::identity::base64_encode;
use kfp_tenant_core::ports::{
    AssumedRole, BearerToken, CallerIdentity, ClusterApi, ClusterOidc, DirectoryUser, EksCluster, ErrorKind, ProviderError, ProviderResult,
    TemporaryCredentials, UserDirectoryApi,
};

use crate::faults::{Calls, Faults, Meter};
use crate::{ACCOUNT_ID, ISSUER, lock};

/// The thumbprint the fake account's OIDC provider carries.
pub const THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// The API server endpoint EKS gives for a fake cluster.
pub fn fake_endpoint(cluster: &str) -> String {
    format!("https://{cluster}.fake.eks.amazonaws.com")
}

/// The CA certificate of a fake cluster, as PEM.
pub fn fake_ca(cluster: &str) -> String {
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64_encode(format!("fake CA of {cluster}").as_bytes()))
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
    /// Cognito user pools: whether usernames are e-mails, and the users.
    pools: BTreeMap<String, (bool, Vec<DirectoryUser>)>,
    /// Buckets set by a test: their region, or `None` for none.
    buckets: BTreeMap<String, Option<String>>,
}

impl FakeCluster {
    /// One account (`aws` partition) with `cluster` and its IAM OIDC provider.
    pub fn new(calls: Calls, cluster: &str) -> Self {
        let state = ClusterState {
            clusters: BTreeMap::from([(cluster.to_owned(), ISSUER.to_owned())]),
            providers: BTreeSet::from([ISSUER.trim_start_matches("https://").to_owned()]),
            pools: BTreeMap::new(),
            buckets: BTreeMap::new(),
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

    /// Adds a Cognito user pool; with `email_usernames` its usernames are
    /// e-mails (`UsernameAttributes=[email]`) and Cognito names users by a UUID.
    pub fn add_user_pool(&self, id: &str, email_usernames: bool) {
        lock(&self.state).pools.insert(id.to_owned(), (email_usernames, Vec::new()));
    }

    /// Adds a user behind the tool's back.
    pub fn add_user(&self, pool: &str, username: &str, email: &str) {
        if let Some((_, users)) = lock(&self.state).pools.get_mut(pool) {
            users.push(DirectoryUser { username: username.to_owned(), email: email.to_owned(), status: Some("CONFIRMED".to_owned()) });
        }
    }

    /// The users of a pool.
    pub fn users(&self, pool: &str) -> Vec<DirectoryUser> {
        lock(&self.state).pools.get(pool).map(|(_, users)| users.clone()).unwrap_or_default()
    }

    /// Adds another cluster, with the same issuer (as moto does).
    pub fn add_cluster(&self, cluster: &str) {
        lock(&self.state).clusters.insert(cluster.to_owned(), ISSUER.to_owned());
    }

    /// Removes the account's IAM OIDC provider for every issuer.
    /// Gives `bucket` a region, or with `None` makes it not exist.
    pub fn set_bucket(&self, bucket: &str, region: Option<&str>) {
        lock(&self.state).buckets.insert(bucket.to_owned(), region.map(str::to_owned));
    }

    pub fn remove_oidc_providers(&self) {
        lock(&self.state).providers.clear();
    }
}

fn no_pool(op: &str, pool: &str) -> ProviderError {
    ProviderError::new(ErrorKind::NotFound, op, format!("user pool {pool}"), format!("User pool {pool} does not exist."))
}

/// Cognito as moto plays it: ListUsers by e-mail, AdminCreateUser under the
/// e-mail (a UUID username where usernames are e-mails), AdminDeleteUser.
#[async_trait]
impl UserDirectoryApi for FakeCluster {
    async fn find_users(&self, pool: &str, email: &str) -> ProviderResult<Vec<DirectoryUser>> {
        self.meter.enter("ListUsers", pool).await?;
        let state = lock(&self.state);
        let (_, users) = state.pools.get(pool).ok_or_else(|| no_pool("ListUsers", pool))?;
        Ok(users.iter().filter(|u| u.email == email).cloned().collect())
    }

    async fn create_user(&self, pool: &str, email: &str, _invite: bool) -> ProviderResult<DirectoryUser> {
        self.meter.enter("AdminCreateUser", email).await?;
        let mut state = lock(&self.state);
        let (email_usernames, users) = state.pools.get_mut(pool).ok_or_else(|| no_pool("AdminCreateUser", pool))?;
        let taken = users.iter().any(|u| u.username == email || (*email_usernames && u.email == email));
        if taken {
            return Err(ProviderError::new(ErrorKind::AlreadyExists, "AdminCreateUser", email, "User account already exists"));
        }
        let username = if *email_usernames { format!("{:08x}-fake-uuid-{}", users.len(), users.len()) } else { email.to_owned() };
        let user = DirectoryUser { username, email: email.to_owned(), status: Some("FORCE_CHANGE_PASSWORD".to_owned()) };
        users.push(user.clone());
        Ok(user)
    }

    async fn delete_user(&self, pool: &str, username: &str) -> ProviderResult<()> {
        self.meter.enter("AdminDeleteUser", username).await?;
        let mut state = lock(&self.state);
        let (_, users) = state.pools.get_mut(pool).ok_or_else(|| no_pool("AdminDeleteUser", pool))?;
        let before = users.len();
        users.retain(|u| u.username != username);
        if users.len() == before {
            return Err(ProviderError::new(ErrorKind::NotFound, "AdminDeleteUser", username, "User does not exist."));
        }
        Ok(())
    }
}

#[async_trait]
impl ClusterApi for FakeCluster {
    async fn caller_identity(&self) -> ProviderResult<CallerIdentity> {
        self.meter.enter("GetCallerIdentity", "caller").await?;
        Ok(self.identity.clone())
    }

    async fn describe_cluster(&self, cluster: &str) -> ProviderResult<EksCluster> {
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
        Ok(EksCluster {
            arn: format!("arn:aws:eks:us-west-2:{}:cluster/{cluster}", self.identity.account_id),
            endpoint: fake_endpoint(cluster),
            certificate_authority: Some(base64_encode(fake_ca(cluster).as_bytes())),
            oidc: ClusterOidc { issuer_url: issuer, provider_arn },
        })
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

    /// Every bucket exists, in us-west-2, unless [`FakeCluster::set_bucket`] says otherwise.
    async fn bucket_region(&self, bucket: &str) -> ProviderResult<Option<String>> {
        self.meter.enter("HeadBucket", bucket).await?;
        Ok(lock(&self.state).buckets.get(bucket).cloned().unwrap_or_else(|| Some("us-west-2".to_owned())))
    }

    /// Like moto's STS: any token is accepted for any role of the account.
    async fn assume_role_with_web_identity(&self, role_arn: &str, session: &str, _token: &BearerToken) -> ProviderResult<AssumedRole> {
        self.meter.enter("AssumeRoleWithWebIdentity", role_arn).await?;
        let role = role_arn.rsplit('/').next().unwrap_or_default();
        Ok(AssumedRole {
            arn: format!("arn:{}:sts::{}:assumed-role/{role}/{session}", self.identity.partition, self.identity.account_id),
            credentials: TemporaryCredentials {
                access_key_id: format!("ASIA{role}"),
                secret_access_key: "fake-secret".to_owned(),
                session_token: format!("fake-session-{role}"),
            },
        })
    }
}
