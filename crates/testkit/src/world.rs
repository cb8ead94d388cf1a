//! A whole fake world (account, cluster, Kubernetes API) wired to the engine,
//! so a test reads as the operator's steps: plan, apply, plan again.

use kfp_tenant_core::apply::{self, Providers, Quiet, Report};
use kfp_tenant_core::plan::ClusterContext;
use kfp_tenant_core::plan::{self, Plan, PlanOptions};
use kfp_tenant_core::policy::admits_pod_identity;
use kfp_tenant_core::refresh::{self, Observed, ReadSet, RefreshMode};
use kfp_tenant_core::spec::{Desired, Road, Tenant, TenantInput, TenantsFile};
use kfp_tenant_core::trust;

use crate::{Calls, FakeCluster, FakeDirectory, FakeIam, FakeKube};

pub const CLUSTER: &str = "kf-prod";

#[derive(Clone, Debug)]
pub struct FakeWorld {
    pub calls: Calls,
    pub cluster: FakeCluster,
    /// The owners' Cognito pools.
    pub directory: FakeDirectory,
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
            directory: FakeDirectory::new(calls.clone()),
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
        Providers { cluster: &self.cluster, iam: &self.iam, kube: &self.kube, pod_identity: &self.iam, directory: &self.directory }
    }

    pub async fn observe(&self, reads: &ReadSet) -> Result<Observed, String> {
        refresh::refresh(reads, self.providers(), 10, self.refresh_mode).await.map_err(|e| error_chain(&e))
    }

    pub async fn plan(&self, desired: &Desired, options: PlanOptions) -> Result<Plan, String> {
        let observed = self.observe(&ReadSet::for_desired(desired, false)).await?;
        plan::plan(desired, &observed, options).map_err(|e| e.to_string())
    }

    pub async fn plan_destroy(&self, desired: &Desired) -> Result<Plan, String> {
        let observed = self.observe(&ReadSet::for_destroy(desired, false)).await?;
        plan::plan_destroy(desired, &observed).map_err(|e| e.to_string())
    }

    pub async fn apply(&self, plan: &Plan) -> Report {
        apply::apply(plan, self.providers(), &apply::ApplyOptions::default(), &Quiet).await
    }
}

impl FakeWorld {
    /// The road by which a pod of service account `sa` of `tenant`,
    /// started now, gets the tenant's role, or `None` when it gets none.
    /// The role annotation decides first (IRSA wins in the AWS SDKs'
    /// credential chain): with it, only the role's trust of the pod's web
    /// identity counts (IAM's evaluation, [`trust::evaluate`]); without it,
    /// an association of the pair to the role, and a trust that admits Pod
    /// Identity with the pair's session tags.
    pub fn road_of(&self, cluster: &ClusterContext, tenant: &Tenant, sa: &str) -> Option<Road> {
        let ns = tenant.namespace.as_str();
        let role = self.iam.role(&tenant.role_name)?;
        let annotation = self.kube.service_accounts().get(&(ns.to_owned(), sa.to_owned())).and_then(|a| a.role_arn.clone());
        if let Some(arn) = annotation {
            let issuer = cluster.oidc_issuer.trim_start_matches("https://");
            let request = trust::Request::web_identity(
                &cluster.oidc_provider_arn,
                issuer,
                &format!("system:serviceaccount:{ns}:{sa}"),
                &["sts.amazonaws.com".to_owned()],
            );
            let admitted = matches!(trust::evaluate(&role.trust_policy, &request), trust::Decision::Allowed { .. });
            return (arn == role.arn && admitted).then_some(Road::Irsa);
        }
        let associated = self
            .iam
            .associations(CLUSTER)
            .iter()
            .any(|a| a.namespace == ns && a.service_account == sa && a.role_arn.as_deref() == Some(&role.arn));
        let tagged = role.trust_policy.statements().iter().any(|s| {
            let tags = &s["Condition"]["StringEquals"];
            let has = |v: &serde_json::Value, want: &str| v == want || v.as_array().is_some_and(|a| a.iter().any(|x| x == want));
            has(&tags["aws:RequestTag/kubernetes-namespace"], ns) && has(&tags["aws:RequestTag/kubernetes-service-account"], sa)
        });
        (associated && tagged && admits_pod_identity(&role.trust_policy)).then_some(Road::PodIdentity)
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
