//! A Kubernetes client made from AWS alone (`--eks-auth`): the cluster's
//! endpoint and CA as DescribeCluster gives them, and an EKS bearer token
//! made from AWS credentials ([`TokenSource`]), renewed well before EKS
//! stops accepting it. No kubeconfig, no aws CLI, no exec plugin.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderValue;
use kfp_tenant_core::identity::base64_decode;
use kfp_tenant_core::ports::{KubeEndpoint, TokenSource};
use kube::Config;

use crate::hook::{Hooked, OnRequest};
use crate::{Kube, KubeError, KubeOptions};

/// The current token, shared by the request layer and the renewing task.
#[derive(Clone, Default)]
pub struct Bearer(Arc<RwLock<Option<HeaderValue>>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Bearer {
    fn set(&self, token: &str) -> Result<(), KubeError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| KubeError::Config(Box::new(e)))?;
        value.set_sensitive(true);
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }

    fn get(&self) -> Option<HeaderValue> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<S> tower::Layer<S> for Bearer {
    type Service = Hooked<S, Bearer>;

    fn layer(&self, inner: S) -> Self::Service {
        Hooked { inner, hook: self.clone() }
    }
}

/// Puts the current token on every request.
impl OnRequest for Bearer {
    fn on_request<B>(&self, request: &mut http::Request<B>) {
        if let Some(value) = self.get() {
            request.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
    }
}

/// The DER certificates of EKS's `certificateAuthority.data` (base64 of PEM).
fn certificates(eks_ca: &str) -> Vec<Vec<u8>> {
    let Some(pem) = base64_decode(eks_ca).and_then(|b| String::from_utf8(b).ok()) else { return Vec::new() };
    let mut found = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END") {
            inside = false;
            found.extend(base64_decode(&body));
        } else if inside {
            body.push_str(line.trim());
        }
    }
    found
}

impl Kube {
    /// A client of the API server at `server` (DescribeCluster's endpoint,
    /// unless overridden), trusting `eks_ca`, authenticating with `tokens`.
    /// `from_eks` says the address is EKS's own, so the client cannot be
    /// talking to another cluster.
    pub async fn connect_eks(
        server: &str,
        eks_ca: Option<&str>,
        tokens: Arc<dyn TokenSource>,
        options: KubeOptions,
        from_eks: bool,
    ) -> Result<Self, KubeError> {
        let url = server.parse().map_err(|e: http::uri::InvalidUri| KubeError::Config(Box::new(e)))?;
        let mut config = Config::new(url);
        let roots = eks_ca.map(certificates).filter(|c| !c.is_empty());
        config.root_cert = roots.clone();
        let bearer = Bearer::default();
        let first = tokens.token().await.map_err(|e| KubeError::Config(Box::new(e)))?;
        bearer.set(&first.value)?;
        let renewing = bearer.clone();
        let renew = tokio::spawn(async move {
            // EKS accepts a token for 15 minutes; a new one comes at 10.
            let mut every = first.valid_for.mul_f64(2.0 / 3.0).max(Duration::from_secs(1));
            loop {
                tokio::time::sleep(every).await;
                match tokens.token().await {
                    Ok(token) => {
                        every = token.valid_for.mul_f64(2.0 / 3.0).max(Duration::from_secs(1));
                        let _ = renewing.set(&token.value);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the EKS token; trying again in 10 s");
                        every = Duration::from_secs(10);
                    }
                }
            }
        });
        let endpoint =
            KubeEndpoint { server: server.to_owned(), certificate_authority: roots.as_deref().map(crate::pem), context: None, from_eks };
        let mut kube = Self::build(config, options, endpoint, Some(&bearer))?;
        kube.renew = Some(Arc::new(AbortOnDrop(renew)));
        Ok(kube)
    }
}

/// Stops the renewing task with the last client.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_come_out_of_eks_base64_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBQY=\n-----END CERTIFICATE-----\n";
        let eks = kfp_tenant_core::identity::base64_encode(pem.as_bytes());
        assert_eq!(certificates(&eks), vec![vec![0, 1, 2, 3, 4], vec![5, 6]]);
        assert!(certificates("not base64!").is_empty());
    }
}
