//! S3 with a tenant role's temporary credentials: the probe of `verify`.
//! One client per credentials, on the configuration's region and endpoint
//! (path-style addressing when an endpoint is set, as emulators need).

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use kfp_tenant_core::ports::{ErrorKind, ObjectStoreApi, ProviderError, ProviderResult, TemporaryCredentials};

use crate::{CallCounter, provider_error};

#[derive(Clone, Debug)]
pub struct S3Probe {
    sdk: aws_types::SdkConfig,
    counter: CallCounter,
}

impl S3Probe {
    pub(crate) fn new(sdk: &aws_types::SdkConfig, counter: CallCounter) -> Self {
        S3Probe { sdk: sdk.clone(), counter }
    }

    fn client(&self, credentials: &TemporaryCredentials) -> aws_sdk_s3::Client {
        let credentials = Credentials::new(
            &credentials.access_key_id,
            &credentials.secret_access_key,
            Some(credentials.session_token.clone()),
            None,
            "kfp-tenant-verify",
        );
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .credentials_provider(credentials)
            .force_path_style(self.sdk.endpoint_url().is_some())
            .interceptor(self.counter.clone())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

#[async_trait]
impl ObjectStoreApi for S3Probe {
    async fn put_object(&self, credentials: &TemporaryCredentials, bucket: &str, key: &str, body: &[u8]) -> ProviderResult<()> {
        let target = format!("s3://{bucket}/{key}");
        self.client(credentials)
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("PutObject", &target, e))
    }

    async fn get_object(&self, credentials: &TemporaryCredentials, bucket: &str, key: &str) -> ProviderResult<Vec<u8>> {
        let target = format!("s3://{bucket}/{key}");
        let out = self
            .client(credentials)
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| provider_error("GetObject", &target, e))?;
        let body = out.body.collect().await.map_err(|e| ProviderError::new(ErrorKind::Transient, "GetObject", &target, e.to_string()))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn delete_object(&self, credentials: &TemporaryCredentials, bucket: &str, key: &str) -> ProviderResult<()> {
        let target = format!("s3://{bucket}/{key}");
        self.client(credentials)
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("DeleteObject", &target, e))
    }
}
