//! kfp-tenant's AWS provider: core's `ClusterApi`, `IamApi`,
//! `PodIdentityApi` and `UserDirectoryApi` on the AWS SDK for Rust, and S3
//! with an assumed role's credentials for `verify` ([`S3Probe`]).
//!
//! One [`Aws`] holds the STS, EKS, IAM and S3 clients built from the
//! standard chains (credentials: environment, shared profile, SSO, web
//! identity; region; `AWS_ENDPOINT_URL`), with the SDK's adaptive retry mode
//! so throttling backs off on the client, and an interceptor that counts
//! every call per operation ([`Aws::counter`]).
//!
//! The key decision is what is absorbed here and what is not. IAM's wire
//! quirks are: documents arrive URL-encoded and are decoded before core sees
//! them, and service errors are sorted into core's `ErrorKind`s. Retrying is
//! not, beyond the SDK's own few attempts: core's `resilience::Resilient`
//! wraps this provider (and any other) with one retry and pacing policy,
//! including IAM's eventual consistency (a role just created is not yet
//! visible to PutRolePolicy; an OIDC provider just created is an "Invalid
//! principal" for a while).

mod account;
mod cluster;
mod cognito;
mod errors;
mod iam;
mod pod_identity;
mod s3;
mod token;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_types::region::Region;

pub use crate::errors::{decode_document, kind_of, provider_error};
pub use crate::s3::S3Probe;
pub use crate::token::{EksTokens, TOKEN_LIFETIME, regional_sts};

/// The SHA-1 thumbprint of the root CA of EKS's OIDC endpoints, as AWS
/// documents it for `create-open-id-connect-provider` with EKS.
pub const EKS_OIDC_ROOT_CA_THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// How to reach AWS; everything left `None` comes from the standard chains.
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// A named profile (`--aws-profile`, else `AWS_PROFILE`).
    pub profile: Option<String>,
    /// The cluster's region; EKS is regional, IAM is not.
    pub region: Option<String>,
    /// Maximum attempts per call, throttling and transient faults included.
    pub max_attempts: Option<u32>,
    /// Items per page of IAM's listings (MaxItems); IAM's largest, 1,000,
    /// unless set (tests set less to see paging).
    pub page_size: Option<i32>,
    /// Every service at this URL (as `AWS_ENDPOINT_URL` would), for tests
    /// with more than one emulator.
    pub endpoint: Option<String>,
    /// EKS alone at this URL (as `AWS_ENDPOINT_URL_EKS` would), e.g. a
    /// Pod Identity emulator in front of moto.
    pub eks_endpoint: Option<String>,
}

/// Setting up the clients failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: set region in the tenants file, --region, AWS_REGION or a profile's region")]
    NoRegion,
    #[error("no AWS credentials provider to make a Kubernetes token with: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")]
    NoCredentials,
}

/// SDK calls per operation (`GetRole`, `CreateRole`, ...), shared by the clients.
#[derive(Clone, Debug, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallCounter {
    /// Calls made, one per operation invoked (retries not counted).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.calls.lock() {
            m.clear();
        }
    }

    fn bump(&self, cfg: &aws_smithy_types::config_bag::ConfigBag) {
        let name = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_else(|| "unknown".to_owned());
        if let Ok(mut m) = self.calls.lock() {
            *m.entry(name).or_default() += 1;
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "kfp-tenant call counter"
    }

    // Once per call; client interceptors' read_before_execution runs before the
    // operation's metadata is in the bag, this runs after.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), BoxError> {
        self.bump(cfg);
        Ok(())
    }
}

/// STS, EKS and IAM clients of one account and region.
#[derive(Clone)]
pub struct Aws {
    sts: aws_sdk_sts::Client,
    eks: aws_sdk_eks::Client,
    iam: aws_sdk_iam::Client,
    /// With the caller's own credentials: only HeadBucket (the plan's check).
    s3: aws_sdk_s3::Client,
    counter: CallCounter,
    region: String,
    page_size: i32,
    sdk: aws_types::SdkConfig,
}

impl fmt::Debug for Aws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws").field("region", &self.region).finish_non_exhaustive()
    }
}

impl Aws {
    /// Loads the standard configuration chains and builds the clients. Makes no call.
    pub async fn connect(options: &AwsOptions) -> Result<Self, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::adaptive().with_max_attempts(options.max_attempts.unwrap_or(3)))
            .timeout_config(
                TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).operation_attempt_timeout(Duration::from_secs(30)).build(),
            );
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(ToString::to_string).ok_or(AwsError::NoRegion)?;
        let counter = CallCounter::default();
        let sts = aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(&sdk).interceptor(counter.clone()).build());
        let mut eks = aws_sdk_eks::config::Builder::from(&sdk).interceptor(counter.clone());
        if let Some(endpoint) = &options.eks_endpoint {
            eks = eks.endpoint_url(endpoint);
        }
        let eks = aws_sdk_eks::Client::from_conf(eks.build());
        let iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&sdk).interceptor(counter.clone()).build());
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(sdk.endpoint_url().is_some()).interceptor(counter.clone()).build(),
        );
        Ok(Aws { sts, eks, iam, s3, counter, region, page_size: options.page_size.unwrap_or(1000), sdk })
    }

    /// What makes bearer tokens for `cluster`'s Kubernetes API (`--eks-auth`).
    pub fn eks_tokens(&self, cluster: &str) -> Result<EksTokens, AwsError> {
        let credentials = self.sdk.credentials_provider().ok_or(AwsError::NoCredentials)?;
        let sts_url =
            self.sdk.endpoint_url().map(|u| format!("{}/", u.trim_end_matches('/'))).unwrap_or_else(|| regional_sts(&self.region));
        Ok(EksTokens { credentials, region: self.region.clone(), sts_url, cluster: cluster.to_owned() })
    }

    /// S3 with the credentials of an assumed role (`verify`'s probe), on this
    /// configuration's region and endpoint.
    pub fn s3_probe(&self) -> S3Probe {
        S3Probe::new(&self.sdk, self.counter.clone())
    }

    pub fn counter(&self) -> &CallCounter {
        &self.counter
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The raw IAM client, for tests and tooling that change things behind
    /// kfp-tenant's back.
    pub fn iam_client(&self) -> &aws_sdk_iam::Client {
        &self.iam
    }

    pub fn eks_client(&self) -> &aws_sdk_eks::Client {
        &self.eks
    }
}
