//! Building a [`Kube`] (a kubeconfig like kubectl reads it, or an EKS
//! endpoint with a bearer token), the typed APIs it hands out, and the one
//! bounded wait every waiting method shares (watches first, GETs while they
//! have not listed).

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kfp_tenant_core::identity;
use kfp_tenant_core::ports::{ErrorKind, KubeEndpoint, ProviderError, ProviderResult};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Config};

use super::Kube;
use crate::watches::Watches;
use crate::{KubeError, KubeOptions, KubeflowProfile, RequestCounter, eks_auth};

/// DER certificates as PEM text.
pub(crate) fn pem(certificates: &[Vec<u8>]) -> String {
    certificates
        .iter()
        .map(|der| {
            let body = identity::base64_encode(der);
            let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
            format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
        })
        .collect()
}

impl Kube {
    /// Reads the configuration like kubectl does. Makes no call.
    pub async fn connect(options: KubeOptions) -> Result<Self, KubeError> {
        let kube_options = KubeConfigOptions { context: options.context.clone(), ..Default::default() };
        let (config, context) = match &options.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig { path: path.clone(), source })?;
                let context = options.context.clone().or_else(|| file.current_context.clone());
                (Config::from_custom_kubeconfig(file, &kube_options).await.map_err(|e| KubeError::Config(Box::new(e)))?, context)
            }
            None => match Kubeconfig::read() {
                Ok(file) => {
                    let context = options.context.clone().or_else(|| file.current_context.clone());
                    (Config::from_custom_kubeconfig(file, &kube_options).await.map_err(|e| KubeError::Config(Box::new(e)))?, context)
                }
                Err(_) if options.context.is_none() => (Config::infer().await.map_err(|e| KubeError::Config(Box::new(e)))?, None),
                Err(e) => return Err(KubeError::Config(Box::new(e))),
            },
        };
        let endpoint = KubeEndpoint {
            server: config.cluster_url.to_string(),
            certificate_authority: config.root_cert.as_deref().map(pem),
            context,
            from_eks: false,
        };
        Self::from_config(config, options, endpoint)
    }

    /// A client of `config`, counted; `endpoint` says where it connects.
    pub fn from_config(config: Config, options: KubeOptions, endpoint: KubeEndpoint) -> Result<Self, KubeError> {
        Self::build(config, options, endpoint, None)
    }

    pub(crate) fn build(
        config: Config,
        options: KubeOptions,
        endpoint: KubeEndpoint,
        bearer: Option<&eks_auth::Bearer>,
    ) -> Result<Self, KubeError> {
        let counter = RequestCounter::default();
        let builder = kube::client::ClientBuilder::try_from(config).map_err(KubeError::Client)?;
        let client = match bearer {
            Some(bearer) => builder.with_layer(bearer).with_layer(&counter).build(),
            None => builder.with_layer(&counter).build(),
        };
        Ok(Kube { client, options, counter, endpoint, renew: None, watches: Default::default() })
    }

    pub fn counter(&self) -> &RequestCounter {
        &self.counter
    }

    pub(crate) fn profiles(&self) -> Api<KubeflowProfile> {
        Api::all(self.client.clone())
    }

    pub(crate) fn accounts(&self, namespace: &str) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Waits until the run's watches say done (`None`), failing with
    /// [`ErrorKind::Timeout`] and the last word after `timeout`. `direct`
    /// asks the API server instead: until the watches have listed
    /// everything once (every `poll` meanwhile), and every `resync` after
    /// that, in case a watch missed something.
    pub(crate) async fn wait<W, F, Fut>(
        &self,
        operation: &str,
        target: &str,
        timeout: Duration,
        watched: W,
        mut direct: F,
    ) -> ProviderResult<()>
    where
        W: Fn(&Watches) -> Option<String>,
        F: FnMut() -> Fut,
        Fut: Future<Output = ProviderResult<Option<String>>>,
    {
        let now = tokio::time::Instant::now();
        let deadline = now + timeout;
        let watches = self.watches.get_or_init(|| async { Watches::start(&self.client) }).await;
        // A first list takes milliseconds; waiting for it spares a GET per tenant.
        watches.until_listed(FIRST_LIST, timeout).await;
        let mut changes = watches.changes.clone();
        let mut resync = now + self.options.resync;
        loop {
            let now = tokio::time::Instant::now();
            let ask_server = !watches.listed() || now >= resync;
            if ask_server {
                resync = now + self.options.resync;
            }
            let waiting = if ask_server { direct().await? } else { watched(watches) };
            let Some(waiting) = waiting else { return Ok(()) };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ProviderError::new(
                    ErrorKind::Timeout,
                    operation,
                    target,
                    format!("gave up after {}: {waiting}", human(timeout)),
                ));
            }
            let wake = if watches.listed() { resync } else { now + self.options.poll }.min(deadline);
            tokio::select! {
                changed = changes.changed() => if changed.is_err() {
                    // The watches are gone: poll.
                    tokio::time::sleep_until((now + self.options.poll).min(deadline)).await;
                },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// How long a wait gives the watches to list before it asks the API server itself.
const FIRST_LIST: Duration = Duration::from_secs(5);

/// `5m`, `90s`, `1.9s`, `200ms`.
fn human(d: Duration) -> String {
    match d.as_millis() {
        ms if ms >= 60_000 && ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms >= 10_000 || (ms >= 1000 && ms % 1000 == 0) => format!("{}s", ms / 1000),
        ms if ms >= 1000 => format!("{:.1}s", d.as_secs_f64()),
        ms => format!("{ms}ms"),
    }
}
