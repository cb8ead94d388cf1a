//! Each command's flags become its plain request once, here: nothing past
//! this module sees clap's types.

use super::*;
use crate::request::{ApplyRequest, DestroyRequest, ForceUnlockRequest, PlanRequest, Planning, RenderRequest, ReportRequest, Run, Tenants};

impl From<TenantFlags> for Tenants {
    fn from(f: TenantFlags) -> Self {
        Tenants {
            file: f.file,
            cluster: f.cluster,
            region: f.region,
            bucket: f.bucket,
            namespace: f.namespace,
            owner: f.owner,
            target: f.target,
        }
    }
}

impl From<RunFlags> for Run {
    fn from(f: RunFlags) -> Self {
        Run {
            aws_profile: f.aws_profile,
            kubeconfig: f.kubeconfig,
            context: f.context,
            eks_auth: f.eks_auth,
            eks_endpoint: f.eks_endpoint,
            bind_cluster: f.bind_cluster,
            parallelism: f.parallelism,
            refresh_mode: f.refresh_mode,
            stats: f.stats,
        }
    }
}

impl From<PlanFlags> for Planning {
    fn from(f: PlanFlags) -> Self {
        Planning { prune: f.prune, adopt: f.adopt, create_oidc_provider: f.create_oidc_provider, replace: f.replace }
    }
}

impl From<Lifecycle> for crate::request::Lifecycle {
    fn from(f: Lifecycle) -> Self {
        let progress = match f.progress {
            ProgressArg::Auto => crate::request::ProgressStyle::Auto,
            ProgressArg::Plain => crate::request::ProgressStyle::Plain,
            ProgressArg::Json => crate::request::ProgressStyle::Json,
        };
        crate::request::Lifecycle { auto_approve: f.auto_approve, timeout: f.timeout, lock_namespace: f.lock_namespace, progress }
    }
}

impl From<PlanArgs> for PlanRequest {
    fn from(a: PlanArgs) -> Self {
        PlanRequest {
            tenants: a.tenants.into(),
            run: a.run.into(),
            out: a.out,
            json: a.json,
            detailed_exitcode: a.detailed_exitcode,
            destroy: a.destroy,
            refresh_only: a.refresh_only,
            planning: a.planning.into(),
        }
    }
}

impl From<ApplyArgs> for ApplyRequest {
    fn from(a: ApplyArgs) -> Self {
        ApplyRequest {
            plan_file: a.plan_file,
            tenants: a.tenants.into(),
            run: a.run.into(),
            lifecycle: a.lifecycle.into(),
            wait: a.wait,
            verify: a.verify,
            planning: a.planning.into(),
        }
    }
}

impl From<ReportArgs> for ReportRequest {
    fn from(a: ReportArgs) -> Self {
        ReportRequest { tenants: a.tenants.into(), run: a.run.into(), json: a.json }
    }
}

impl From<PermissionsArgs> for crate::request::PermissionsRequest {
    fn from(a: PermissionsArgs) -> Self {
        crate::request::PermissionsRequest {
            tenants: a.tenants.into(),
            account_id: a.account_id,
            create_oidc_provider: a.create_oidc_provider,
            kubernetes: a.kubernetes,
            controller: a.controller,
            user: a.user,
            lock_namespace: a.lock_namespace,
        }
    }
}

impl From<ControllerArgs> for crate::request::ControllerRequest {
    fn from(a: ControllerArgs) -> Self {
        crate::request::ControllerRequest {
            settings: a.settings,
            run: a.run.into(),
            resync: a.resync,
            metrics_addr: a.metrics_addr,
            lock_namespace: a.lock_namespace,
            lease_duration: a.lease_duration,
            timeout: a.timeout,
        }
    }
}

impl From<DestroyArgs> for DestroyRequest {
    fn from(a: DestroyArgs) -> Self {
        DestroyRequest { tenants: a.tenants.into(), run: a.run.into(), lifecycle: a.lifecycle.into() }
    }
}

impl From<ForceUnlockArgs> for ForceUnlockRequest {
    fn from(a: ForceUnlockArgs) -> Self {
        ForceUnlockRequest {
            lock_id: a.lock_id,
            kubeconfig: a.kubeconfig,
            context: a.context,
            stats: a.stats,
            lock_namespace: a.lock_namespace,
            force: a.force,
        }
    }
}

impl From<RenderArgs> for RenderRequest {
    fn from(a: RenderArgs) -> Self {
        RenderRequest { tenants: a.tenants.into(), account_id: a.account_id, oidc_issuer: a.oidc_issuer, out: a.out }
    }
}
