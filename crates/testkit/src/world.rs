//! A whole fake world (account, cluster, Kubernetes API) wired to the engine,
//! so a test reads as the operator's steps: plan, apply, plan again.

use kfp_tenant_core::apply::{self, Providers, Quiet, Report};
use kfp_tenant_core::plan::{self, Plan, PlanOptions};
use kfp_tenant_core::refresh::{self, Observed, ReadSet, RefreshMode};
use kfp_tenant_core::spec::{Desired, TenantInput, TenantsFile};

use crate::{Calls, FakeCluster, FakeIam, FakeKube};

pub const CLUSTER: &str = "kf-prod";

#[derive(Clone, Debug)]
pub struct FakeWorld {
    pub calls: Calls,
    pub cluster: FakeCluster,
    pub iam: FakeIam,
    pub kube: FakeKube,
    /// How plans read the roles ([`RefreshMode::Auto`] unless a test says).
    pub refresh_mode: RefreshMode,
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeWorld {
    /// An account with cluster [`CLUSTER`] and its OIDC provider; no tenants.
    pub fn new() -> Self {
        let calls = Calls::default();
        FakeWorld {
            cluster: FakeCluster::new(calls.clone(), CLUSTER),
            iam: FakeIam::new(calls.clone()),
            kube: FakeKube::new(calls.clone(), CLUSTER),
            calls,
            refresh_mode: RefreshMode::Auto,
        }
    }

    /// The same faults for IAM and the Kubernetes side.
    pub fn set_faults(&self, faults: crate::Faults) {
        self.iam.set_faults(faults.clone());
        self.kube.set_faults(faults);
    }

    pub fn providers(&self) -> Providers<'_> {
        Providers { cluster: &self.cluster, iam: &self.iam, kube: &self.kube, pod_identity: &self.iam }
    }

    pub async fn observe(&self, reads: &ReadSet) -> Result<Observed, String> {
        refresh::refresh(reads, self.providers(), 10, self.refresh_mode).await.map_err(|e| error_chain(&e))
    }

    pub async fn plan(&self, desired: &Desired, options: PlanOptions) -> Result<Plan, String> {
        let observed = self.observe(&ReadSet::for_desired(desired, false)).await?;
        plan::plan(desired, &observed, options).map_err(|e| e.to_string())
    }

    pub async fn plan_destroy(&self, desired: &Desired) -> Result<Plan, String> {
        let observed = self.observe(&ReadSet::for_desired(desired, false)).await?;
        plan::plan_destroy(desired, &observed).map_err(|e| e.to_string())
    }

    pub async fn apply(&self, plan: &Plan) -> Report {
        apply::apply(plan, self.providers(), &apply::ApplyOptions::default(), &Quiet).await
    }
}

pub use kfp_tenant_core::ports::error_chain;

/// A tenants file for [`CLUSTER`] with `n` plain tenants `team-0000`...
pub fn sample_file(n: usize) -> TenantsFile {
    TenantsFile {
        cluster: CLUSTER.to_owned(),
        region: "us-west-2".to_owned(),
        bucket: "kfp-artifacts".to_owned(),
        tenants: (0..n)
            .map(|i| TenantInput { namespace: format!("team-{i:04}"), owner: format!("owner{i}@example.com"), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}
