//! STS, EKS and S3's bucket check in memory: [`FakeCluster`], one account
//! with its clusters, their OIDC providers and its buckets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kfp_tenant_core::identity::base64_encode;
use kfp_tenant_core::ports::{
    AssumedRole, BearerToken, CallerIdentity, ClusterApi, ClusterOidc, EksCluster, ErrorKind, ProviderError, ProviderResult,
    TemporaryCredentials,
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
    /// Buckets set by a test: their region, or `None` for none.
    buckets: BTreeMap<String, Option<String>>,
}

impl FakeCluster {
    /// One account (`aws` partition) with `cluster` and its IAM OIDC provider.
    pub fn new(calls: Calls, cluster: &str) -> Self {
        let state = ClusterState {
            clusters: BTreeMap::from([(cluster.to_owned(), ISSUER.to_owned())]),
            providers: BTreeSet::from([ISSUER.trim_start_matches("https://").to_owned()]),
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
