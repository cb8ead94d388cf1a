//! [`ClusterApi`] on STS and EKS: who calls, the cluster and its OIDC issuer,
//! the account's IAM OIDC provider for it, and AssumeRoleWithWebIdentity
//! (`verify`).

use async_trait::async_trait;
use kfp_tenant_core::ports::{
    AssumedRole, BearerToken, CallerIdentity, ClusterApi, ClusterOidc, EksCluster, ErrorKind, ProviderError, ProviderResult,
    TemporaryCredentials,
};

use kfp_tenant_core::tags;

use crate::errors::{missing, provider_error};
use crate::iam::tag;
use crate::{Aws, EKS_OIDC_ROOT_CA_THUMBPRINT};

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

    async fn bucket_region(&self, bucket: &str) -> ProviderResult<Option<String>> {
        let target = format!("s3://{bucket}");
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(out) => Ok(Some(out.bucket_region.unwrap_or_else(|| self.region.clone()))),
            Err(e) => {
                // S3 names the region even when it refuses (403) or redirects (301).
                let named = e.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_owned);
                let status = e.raw_response().map(|r| r.status().as_u16());
                match (named, status) {
                    (Some(region), _) => Ok(Some(region)),
                    (None, Some(404)) => Ok(None),
                    _ => Err(provider_error("HeadBucket", &target, e)),
                }
            }
        }
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
