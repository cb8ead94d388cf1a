//! The real providers of one cluster, with retries and IAM pacing around
//! them, and the apply lock.

use std::sync::Arc;

use anyhow::{Context, Result};
use kfp_tenant_aws::{Aws, AwsOptions};
use kfp_tenant_core::apply::Providers;
use kfp_tenant_core::refresh::{Observed, ReadSet, refresh, refresh_cluster};
use kfp_tenant_core::resilience::{AdaptiveRate, Resilient, RetryPolicy};
use kfp_tenant_k8s::{Kube, KubeOptions, LeaseGuard, LockOptions};

use crate::output;
use crate::request::Run;

pub struct Live {
    aws: Aws,
    kube: Kube,
    cluster: Resilient<Aws>,
    iam: Resilient<Aws>,
    kubernetes: Resilient<Kube>,
    s3: kfp_tenant_aws::S3Probe,
    /// `--stats`: print the calls made when done, whatever the outcome.
    stats: bool,
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.stats {
            output::print_stats(&self.aws.counter().calls(), &self.kube.counter().calls());
        }
    }
}

impl Live {
    /// The providers for EKS cluster `cluster` in `region`.
    pub async fn connect(run: &Run, cluster: &str, region: &str) -> Result<Self> {
        let options = AwsOptions { profile: run.aws_profile.clone(), region: Some(region.to_owned()), ..Default::default() };
        let aws = Aws::connect(&options).await?;
        let kube = if run.eks_auth || no_kubeconfig(run) {
            connect_eks(&aws, run, cluster).await?
        } else {
            connect_kube(run.kubeconfig.clone(), run.context.clone()).await?
        };
        // IAM publishes no rate: pace only once it throttles.
        let limiter = Arc::new(AdaptiveRate::new(1.0, 500.0));
        let iam = Resilient::new(aws.clone(), RetryPolicy::default()).with_limiter(limiter);
        let cluster = Resilient::new(aws.clone(), RetryPolicy::default());
        let kubernetes = Resilient::new(kube.clone(), RetryPolicy::default());
        let s3 = aws.s3_probe();
        Ok(Live { aws, kube, cluster, iam, kubernetes, s3, stats: run.stats })
    }

    /// The Kubernetes client itself, for what only the controller does
    /// (KubeflowTenants, the Lease as leader election).
    pub fn kube(&self) -> &Kube {
        &self.kube
    }

    /// The counters of the AWS calls (by operation) and of the Kubernetes
    /// requests (by `METHOD resource`) this run makes.
    pub fn counters(&self) -> (kfp_tenant_aws::CallCounter, kfp_tenant_k8s::RequestCounter) {
        (self.aws.counter().clone(), self.kube.counter().clone())
    }

    pub fn providers(&self) -> Providers<'_> {
        // Pod Identity goes through IAM's wrapper: EKS's "role does not exist"
        // and "trust policy invalid" are retried only for roles that this
        // wrapper saw created or given a new trust policy.
        Providers { cluster: &self.cluster, iam: &self.iam, kube: &self.kubernetes, pod_identity: &self.iam, directory: &self.cluster }
    }

    pub fn verify_ports(&self) -> kfp_tenant_core::verify::Ports<'_> {
        kfp_tenant_core::verify::Ports { cluster: &self.cluster, iam: &self.iam, kube: &self.kubernetes, s3: &self.s3 }
    }

    /// The cluster's facts, then the whole account and cluster as audit reads them.
    pub async fn audit(&self, desired: &kfp_tenant_core::spec::Desired, vouched: bool) -> Result<kfp_tenant_core::audit::Report> {
        let observed = refresh_cluster(&desired.cluster.name, vouched, &self.cluster, &self.kubernetes).await?;
        Ok(kfp_tenant_core::audit::run(desired, &observed, &self.iam, &self.kubernetes).await?)
    }

    /// Shows that the Kubernetes API is EKS cluster `name` (refresh's first
    /// round alone): what a run does before it writes anything, the lock
    /// included.
    pub async fn prove(&self, name: &str, vouched: bool) -> Result<()> {
        refresh_cluster(name, vouched, &self.cluster, &self.kubernetes).await?;
        Ok(())
    }

    pub async fn observe(&self, reads: &ReadSet, run: &Run) -> Result<Observed> {
        Ok(refresh(reads, self.providers(), run.parallelism, run.refresh_mode).await?)
    }

    pub async fn lock(&self, namespace: &str, verb: &str) -> Result<LeaseGuard> {
        let options = LockOptions { namespace: namespace.to_owned(), ..LockOptions::new(holder(verb)) };
        Ok(self.kube.lock(&options).await?)
    }
}

/// Who holds a lock, as others see it.
fn holder(verb: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".to_owned());
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "a host".to_owned());
    format!("kfp-tenant {verb} by {user}@{host} (pid {})", std::process::id())
}

/// Nothing to read a kubeconfig from, and not inside a cluster.
fn no_kubeconfig(run: &Run) -> bool {
    let configured = run.kubeconfig.is_some() || run.context.is_some();
    let env = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    let home = std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".kube/config")).is_some_and(|p| p.exists());
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    !(configured || env || home || in_cluster)
}

/// `--eks-auth`: the cluster's API from DescribeCluster and a token of our own.
async fn connect_eks(aws: &Aws, run: &Run, cluster: &str) -> Result<Kube> {
    use kfp_tenant_core::ports::ClusterApi;
    let described = aws.describe_cluster(cluster).await.context("cannot reach the cluster from AWS alone (--eks-auth)")?;
    let server = run.eks_endpoint.clone().unwrap_or_else(|| described.endpoint.clone());
    let tokens = Arc::new(aws.eks_tokens(cluster)?);
    let options = KubeOptions::default();
    let from_eks = run.eks_endpoint.is_none();
    Ok(Kube::connect_eks(&server, described.certificate_authority.as_deref(), tokens, options, from_eks).await?)
}

/// A kubeconfig's cluster (`--kubeconfig`, `--context`, or kubectl's chain).
pub async fn connect_kube(kubeconfig: Option<std::path::PathBuf>, context: Option<String>) -> Result<Kube> {
    Ok(Kube::connect(KubeOptions { kubeconfig, context, ..Default::default() }).await?)
}
