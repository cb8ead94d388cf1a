//! kfp-tenant's AWS provider: core's [`ClusterApi`] and [`IamApi`] on the AWS
//! SDK for Rust.
//!
//! One [`Aws`] holds STS, EKS and IAM clients built from the standard chains
//! (credentials: environment, shared profile, SSO, web identity; region;
//! `AWS_ENDPOINT_URL`), with the SDK's adaptive retry mode so throttling backs
//! off on the client, and an interceptor that counts every call per operation
//! ([`Aws::calls`]).
//!
//! The key decision is what is absorbed here and what is not. IAM's wire
//! quirks are: documents arrive URL-encoded and are decoded before core sees
//! them, and service errors are sorted into core's [`ErrorKind`]s. Retrying is
//! not, beyond the SDK's own few attempts: core's `resilience::Resilient`
//! wraps this provider (and any other) with one retry and pacing policy,
//! including IAM's eventual consistency (a role just created is not yet
//! visible to PutRolePolicy; an OIDC provider just created is an "Invalid
//! principal" for a while).

mod account;
mod s3;
mod token;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_types::region::Region;
use kfp_tenant_core::plan::role_description_marker;
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{
    AssumedRole, BearerToken, CallerIdentity, ClusterApi, ClusterOidc, EksCluster, ErrorKind, IamApi, OidcProviderDetails, ProviderError,
    ProviderResult, Role, RoleDetail, TemporaryCredentials,
};
use kfp_tenant_core::tags;

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
        let eks = aws_sdk_eks::Client::from_conf(aws_sdk_eks::config::Builder::from(&sdk).interceptor(counter.clone()).build());
        let iam = aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&sdk).interceptor(counter.clone()).build());
        Ok(Aws { sts, eks, iam, counter, region, page_size: options.page_size.unwrap_or(1000), sdk })
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

/// Sorts an SDK error into core's kinds, keeping the service's message.
pub fn provider_error<E>(operation: &str, target: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, message) = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().map(str::to_owned).unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            (kind_of(code, status), format!("{message} ({code})"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let text = error_chain(&err);
            if text.contains("credentials") {
                (
                    ErrorKind::AccessDenied,
                    format!("{text}; set AWS credentials (AWS_PROFILE and aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"),
                )
            } else {
                (ErrorKind::Transient, format!("{text}; is AWS reachable? check the network, the region and AWS_ENDPOINT_URL"))
            }
        }
        _ => (ErrorKind::Other, DisplayErrorContext(&err).to_string()),
    };
    ProviderError::new(kind, operation, target, message)
}

/// An error and its sources, by Display only (the SDK's Debug output is for developers).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// The kind of an AWS error code (IAM, EKS and STS codes share one space here).
pub fn kind_of(code: &str, status: u16) -> ErrorKind {
    match code {
        "NoSuchEntity" | "ResourceNotFoundException" => ErrorKind::NotFound,
        "EntityAlreadyExists" | "ResourceInUseException" => ErrorKind::AlreadyExists,
        "DeleteConflict" | "ConcurrentModification" => ErrorKind::Conflict,
        "MalformedPolicyDocument" | "InvalidInput" | "ValidationError" | "InvalidParameterException" | "UnmodifiableEntity" => {
            ErrorKind::InvalidInput
        }
        "LimitExceeded" | "PolicyNotAttachable" => ErrorKind::LimitExceeded,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "SignatureDoesNotMatch" => ErrorKind::AccessDenied,
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => ErrorKind::Throttled,
        "ServiceFailure" | "ServiceUnavailable" | "InternalFailure" | "ServerException" => ErrorKind::Transient,
        _ if status >= 500 => ErrorKind::Transient,
        _ if status == 429 => ErrorKind::Throttled,
        _ => ErrorKind::Other,
    }
}

fn missing(operation: &str, target: &str, field: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, operation, target, format!("the response has no {field}"))
}

/// IAM hands documents back percent-encoded (moto's listings do not: JSON
/// as it is is taken as it is; an encoded document never starts with `{`).
pub fn decode_document(operation: &str, target: &str, encoded: &str) -> ProviderResult<PolicyDocument> {
    let text = match encoded.trim_start().starts_with('{') {
        true => std::borrow::Cow::Borrowed(encoded),
        false => percent_encoding::percent_decode_str(encoded).decode_utf8().map_err(|e| {
            ProviderError::new(ErrorKind::Other, operation, target, format!("the policy document is not UTF-8 after URL-decoding: {e}"))
        })?,
    };
    PolicyDocument::parse(&text)
        .map_err(|e| ProviderError::new(ErrorKind::Other, operation, target, format!("the policy document is not JSON: {e}")))
}

fn tag(key: &str, value: &str) -> ProviderResult<aws_sdk_iam::types::Tag> {
    aws_sdk_iam::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| ProviderError::new(ErrorKind::InvalidInput, "Tag", key, e.to_string()))
}

fn role_from_sdk(operation: &str, role: aws_sdk_iam::types::Role) -> ProviderResult<Role> {
    let target = format!("role {}", role.role_name);
    let trust = role.assume_role_policy_document.as_deref().ok_or_else(|| missing(operation, &target, "AssumeRolePolicyDocument"))?;
    Ok(Role {
        trust_policy: decode_document(operation, &target, trust)?,
        name: role.role_name,
        path: role.path,
        arn: role.arn,
        description: role.description.filter(|d| !d.is_empty()),
        tags: role.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
        max_session_duration: role.max_session_duration.and_then(|s| u32::try_from(s).ok()).unwrap_or(3600),
        permissions_boundary: role.permissions_boundary.and_then(|b| b.permissions_boundary_arn),
    })
}

#[async_trait]
impl ClusterApi for Aws {
    async fn caller_identity(&self) -> ProviderResult<CallerIdentity> {
        let out = self.sts.get_caller_identity().send().await.map_err(|e| provider_error("GetCallerIdentity", "caller", e))?;
        let arn = out.arn.ok_or_else(|| missing("GetCallerIdentity", "caller", "Arn"))?;
        CallerIdentity::from_arn(&arn).ok_or_else(|| {
            ProviderError::new(ErrorKind::Other, "GetCallerIdentity", "caller", format!("cannot read partition and account from {arn}"))
        })
    }

    async fn describe_cluster(&self, cluster: &str) -> ProviderResult<EksCluster> {
        let target = format!("cluster {cluster} in {}", self.region);
        let out = self.eks.describe_cluster().name(cluster).send().await.map_err(|e| {
            let mut err = provider_error("DescribeCluster", &target, e);
            if err.kind == ErrorKind::NotFound {
                err.message = format!("there is no EKS cluster {cluster} in region {} (check cluster and region)", self.region);
            }
            err
        })?;
        let described = out.cluster.ok_or_else(|| missing("DescribeCluster", &target, "cluster"))?;
        let arn = described.arn.clone().ok_or_else(|| missing("DescribeCluster", &target, "cluster.arn"))?;
        let endpoint = described.endpoint.clone().unwrap_or_default();
        let certificate_authority = described.certificate_authority.as_ref().and_then(|c| c.data.clone());
        let issuer_url = described
            .identity
            .and_then(|i| i.oidc)
            .and_then(|o| o.issuer)
            .ok_or_else(|| missing("DescribeCluster", &target, "cluster.identity.oidc.issuer"))?;
        let host = issuer_url.trim_start_matches("https://").to_owned();
        let providers = self
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| provider_error("ListOpenIDConnectProviders", "account", e))?;
        let suffix = format!(":oidc-provider/{host}");
        let provider_arn = providers
            .open_id_connect_provider_list
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.arn)
            .find(|arn| arn.ends_with(&suffix));
        Ok(EksCluster { arn, endpoint, certificate_authority, oidc: ClusterOidc { issuer_url, provider_arn } })
    }

    /// As `eksctl utils associate-iam-oidc-provider`: audience
    /// `sts.amazonaws.com`, tagged as kfp-tenant's. IAM checks an EKS
    /// issuer's certificate against its own trusted CAs, not the thumbprint;
    /// the thumbprint of the root CA of every EKS OIDC endpoint (the one AWS
    /// documents for EKS) is still sent, so the provider is complete.
    async fn create_oidc_provider(&self, issuer_url: &str) -> ProviderResult<String> {
        let target = format!("OIDC provider {issuer_url}");
        let out = self
            .iam
            .create_open_id_connect_provider()
            .url(issuer_url)
            .client_id_list("sts.amazonaws.com")
            .thumbprint_list(EKS_OIDC_ROOT_CA_THUMBPRINT)
            .tags(tag(tags::MANAGED_BY, tags::MANAGER)?)
            .send()
            .await
            .map_err(|e| provider_error("CreateOpenIDConnectProvider", &target, e))?;
        out.open_id_connect_provider_arn.ok_or_else(|| missing("CreateOpenIDConnectProvider", &target, "OpenIDConnectProviderArn"))
    }

    async fn assume_role_with_web_identity(&self, role_arn: &str, session: &str, token: &BearerToken) -> ProviderResult<AssumedRole> {
        let target = format!("role {role_arn}");
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session)
            .web_identity_token(&token.value)
            .duration_seconds(900)
            .send()
            .await
            .map_err(|e| provider_error("AssumeRoleWithWebIdentity", &target, e))?;
        let arn = out.assumed_role_user.map(|u| u.arn).ok_or_else(|| missing("AssumeRoleWithWebIdentity", &target, "AssumedRoleUser"))?;
        let c = out.credentials.ok_or_else(|| missing("AssumeRoleWithWebIdentity", &target, "Credentials"))?;
        let credentials =
            TemporaryCredentials { access_key_id: c.access_key_id, secret_access_key: c.secret_access_key, session_token: c.session_token };
        Ok(AssumedRole { arn, credentials })
    }
}

#[async_trait]
impl IamApi for Aws {
    async fn get_role(&self, name: &str) -> ProviderResult<Option<Role>> {
        let target = format!("role {name}");
        match self.iam.get_role().role_name(name).send().await {
            Ok(out) => out.role.map(|r| role_from_sdk("GetRole", r)).transpose(),
            Err(e) => match provider_error("GetRole", &target, e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn create_role(&self, role: &Role) -> ProviderResult<Role> {
        let target = format!("role {}", role.name);
        let tags = role.tags.iter().map(|(k, v)| tag(k, v)).collect::<ProviderResult<Vec<_>>>()?;
        let out = self
            .iam
            .create_role()
            .role_name(&role.name)
            .path(&role.path)
            .assume_role_policy_document(role.trust_policy.to_compact_json())
            .set_description(role.description.clone())
            .max_session_duration(i32::try_from(role.max_session_duration).unwrap_or(3600))
            .set_permissions_boundary(role.permissions_boundary.clone())
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| provider_error("CreateRole", &target, e))?;
        role_from_sdk("CreateRole", out.role.ok_or_else(|| missing("CreateRole", &target, "Role"))?)
    }

    async fn update_trust_policy(&self, name: &str, document: &PolicyDocument) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(document.to_compact_json())
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UpdateAssumeRolePolicy", &target, e))
    }

    async fn update_role(&self, name: &str, description: Option<&str>, max_session_duration: u32) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam
            .update_role()
            .role_name(name)
            .description(description.unwrap_or_default())
            .max_session_duration(i32::try_from(max_session_duration).unwrap_or(3600))
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UpdateRole", &target, e))
    }

    async fn set_permissions_boundary(&self, name: &str, arn: Option<&str>) -> ProviderResult<()> {
        let target = format!("role {name}");
        match arn {
            Some(arn) => self
                .iam
                .put_role_permissions_boundary()
                .role_name(name)
                .permissions_boundary(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| provider_error("PutRolePermissionsBoundary", &target, e)),
            None => self
                .iam
                .delete_role_permissions_boundary()
                .role_name(name)
                .send()
                .await
                .map(drop)
                .map_err(|e| provider_error("DeleteRolePermissionsBoundary", &target, e)),
        }
    }

    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> ProviderResult<()> {
        let target = format!("role {name}");
        let tags = tags.iter().map(|(k, v)| tag(k, v)).collect::<ProviderResult<Vec<_>>>()?;
        self.iam.tag_role().role_name(name).set_tags(Some(tags)).send().await.map(drop).map_err(|e| provider_error("TagRole", &target, e))
    }

    async fn untag_role(&self, name: &str, keys: &[String]) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam
            .untag_role()
            .role_name(name)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UntagRole", &target, e))
    }

    async fn delete_role(&self, name: &str) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam.delete_role().role_name(name).send().await.map(drop).map_err(|e| {
            let mut err = provider_error("DeleteRole", &target, e);
            if err.kind == ErrorKind::Conflict {
                err.message =
                    format!("{}; the role has policies kfp-tenant did not put there: detach or delete them, then run again", err.message);
            }
            err
        })
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> ProviderResult<Option<PolicyDocument>> {
        let target = format!("role {role}");
        match self.iam.get_role_policy().role_name(role).policy_name(policy).send().await {
            Ok(out) => decode_document("GetRolePolicy", &target, &out.policy_document).map(Some),
            Err(e) => match provider_error("GetRolePolicy", &target, e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn put_role_policy(&self, role: &str, policy: &str, document: &PolicyDocument) -> ProviderResult<()> {
        let target = format!("role {role}");
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document.to_compact_json())
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("PutRolePolicy", &target, e))
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> ProviderResult<()> {
        let target = format!("role {role}");
        self.iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("DeleteRolePolicy", &target, e))
    }

    async fn account_roles(&self) -> ProviderResult<Vec<RoleDetail>> {
        account::roles(&self.iam, self.page_size).await
    }

    async fn get_oidc_provider(&self, arn: &str) -> ProviderResult<Option<OidcProviderDetails>> {
        let target = format!("OIDC provider {arn}");
        match self.iam.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await {
            Ok(out) => Ok(Some(OidcProviderDetails {
                url: out.url.unwrap_or_default(),
                client_ids: out.client_id_list.unwrap_or_default(),
                thumbprints: out.thumbprint_list.unwrap_or_default(),
            })),
            Err(e) => match provider_error("GetOpenIDConnectProvider", &target, e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    /// ListRoles under the path (paged), narrowed to the roles whose
    /// description kfp-tenant wrote for this cluster; only those are read
    /// whole (GetRole, tags included) to confirm the ownership tags. Cost:
    /// one call per page plus one per kfp-tenant role.
    async fn list_managed_roles(&self, path_prefix: &str, cluster: &str) -> ProviderResult<Vec<Role>> {
        let marker = role_description_marker(cluster);
        let mut pages = self.iam.list_roles().path_prefix(path_prefix).max_items(self.page_size).into_paginator().send();
        let mut candidates = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| provider_error("ListRoles", path_prefix, e))?;
            candidates.extend(
                page.roles.into_iter().filter(|r| r.description.as_deref().is_some_and(|d| d.ends_with(&marker))).map(|r| r.role_name),
            );
        }
        let mut managed = Vec::new();
        for name in candidates {
            if let Some(role) = self.get_role(&name).await?
                && tags::is_managed_role(&role.tags, cluster)
            {
                managed.push(role);
            }
        }
        Ok(managed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            ("NoSuchEntity", 404, ErrorKind::NotFound),
            ("EntityAlreadyExists", 409, ErrorKind::AlreadyExists),
            ("DeleteConflict", 409, ErrorKind::Conflict),
            ("MalformedPolicyDocument", 400, ErrorKind::InvalidInput),
            ("LimitExceeded", 409, ErrorKind::LimitExceeded),
            ("AccessDenied", 403, ErrorKind::AccessDenied),
            ("Throttling", 400, ErrorKind::Throttled),
            ("Whatever", 503, ErrorKind::Transient),
            ("ResourceNotFoundException", 404, ErrorKind::NotFound),
        ];
        for (code, status, kind) in cases {
            assert_eq!(kind_of(code, status), kind, "{code}");
        }
    }

    #[test]
    fn documents_are_url_decoded() {
        let doc = decode_document("GetRole", "role r", "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D").unwrap();
        assert_eq!(doc.as_json()["Version"], "2012-10-17");
        assert!(decode_document("GetRole", "role r", "%7Bnot json").is_err());
    }
}
