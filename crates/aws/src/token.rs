//! The EKS bearer token, made in Rust exactly as `aws eks get-token` makes
//! it: an STS GetCallerIdentity request, presigned (SigV4 in the query
//! string, 60 s to start) with the cluster's name in the signed header
//! `x-k8s-aws-id`, base64url-encoded without padding after `k8s-aws-v1.`.
//! EKS forwards it to STS and maps the answering identity to Kubernetes
//! users; it accepts a token for 15 minutes after it was made.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use kfp_tenant_core::identity::base64_encode;
use kfp_tenant_core::ports::{BearerToken, ErrorKind, ProviderError, ProviderResult, TokenSource};

/// How long EKS accepts a token after it was made.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Makes tokens for one cluster from the standard credential chain.
#[derive(Clone, Debug)]
pub struct EksTokens {
    pub(crate) credentials: SharedCredentialsProvider,
    pub(crate) region: String,
    /// STS's URL: the configured endpoint (`AWS_ENDPOINT_URL`), else the region's.
    pub(crate) sts_url: String,
    pub(crate) cluster: String,
}

/// STS's regional endpoint.
pub fn regional_sts(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://sts.{region}.{suffix}/")
}

fn base64url(bytes: &[u8]) -> String {
    base64_encode(bytes).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

impl EksTokens {
    /// The token for `at`, signed with these credentials.
    pub fn presign(&self, credentials: aws_credential_types::Credentials, at: SystemTime) -> ProviderResult<String> {
        let error = |e: String| ProviderError::new(ErrorKind::Other, "PresignGetCallerIdentity", format!("cluster {}", self.cluster), e);
        let url = format!("{}?Action=GetCallerIdentity&Version=2011-06-15", self.sts_url);
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(60));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(at)
            .settings(settings)
            .build()
            .map_err(|e| error(e.to_string()))?
            .into();
        let request =
            SignableRequest::new("GET", url.clone(), std::iter::once(("x-k8s-aws-id", self.cluster.as_str())), SignableBody::Bytes(&[]))
                .map_err(|e| error(e.to_string()))?;
        let (instructions, _) = sign(request, &params).map_err(|e| error(e.to_string()))?.into_parts();
        let mut signed = http::Request::builder().uri(&url).body(()).map_err(|e| error(e.to_string()))?;
        instructions.apply_to_request_http1x(&mut signed);
        Ok(format!("k8s-aws-v1.{}", base64url(signed.uri().to_string().as_bytes())))
    }
}

#[async_trait]
impl TokenSource for EksTokens {
    async fn token(&self) -> ProviderResult<BearerToken> {
        let credentials = self.credentials.provide_credentials().await.map_err(|e| {
            ProviderError::new(
                ErrorKind::AccessDenied,
                "GetToken",
                format!("cluster {}", self.cluster),
                format!("no AWS credentials to make a token with: {e}; set AWS_PROFILE (and aws sso login) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
            )
        })?;
        Ok(BearerToken { value: self.presign(credentials, SystemTime::now())?, valid_for: TOKEN_LIFETIME })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_presigned_get_caller_identity_naming_the_cluster() {
        let tokens = EksTokens {
            credentials: SharedCredentialsProvider::new(aws_credential_types::Credentials::for_tests()),
            region: "us-west-2".into(),
            sts_url: regional_sts("us-west-2"),
            cluster: "demo".into(),
        };
        let token = tokens
            .presign(aws_credential_types::Credentials::for_tests(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
        let encoded = token.strip_prefix("k8s-aws-v1.").expect("the EKS prefix");
        assert!(!encoded.contains(['=', '+', '/']), "base64url without padding: {encoded}");
        let standard = encoded.replace('-', "+").replace('_', "/");
        let url = String::from_utf8(kfp_tenant_core::identity::base64_decode(&standard).unwrap()).unwrap();
        assert!(url.starts_with("https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"), "{url}");
        for part in ["X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Expires=60", "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id", "X-Amz-Signature="]
        {
            assert!(url.contains(part), "{part} in {url}");
        }
        assert!(url.contains("%2Fus-west-2%2Fsts%2Faws4_request"), "{url}");
    }
}
