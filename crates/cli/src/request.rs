//! What each command is asked to do, as plain data: `flags` turns clap's
//! types into these once, and nothing else in the binary sees clap.

use std::path::PathBuf;
use std::time::Duration;

use kfp_tenant_core::address::Address;
use kfp_tenant_core::plan::{Listing, PlanOptions};
use kfp_tenant_core::refresh::RefreshMode;

/// Where the tenants come from: a tenants file, or one tenant from flags
/// that fall back to the seed page's environment variables (`input`).
#[derive(Clone, Debug, Default)]
pub struct Tenants {
    pub file: Option<PathBuf>,
    pub cluster: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub namespace: Option<String>,
    pub owner: Option<String>,
    /// Limit the work to these tenants.
    pub target: Vec<String>,
}

/// How a run reaches AWS and the cluster, how much it does at once, and
/// whether it reports its API calls.
#[derive(Clone, Debug)]
pub struct Run {
    pub aws_profile: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub eks_auth: bool,
    pub eks_endpoint: Option<String>,
    pub bind_cluster: bool,
    pub parallelism: usize,
    pub refresh_mode: RefreshMode,
    pub stats: bool,
}

/// How a plan treats what it finds; shared by `plan` and `apply`.
#[derive(Clone, Debug, Default)]
pub struct Planning {
    pub prune: bool,
    pub adopt: bool,
    pub create_oidc_provider: bool,
    pub replace: Vec<Address>,
}

impl Planning {
    /// The plan's options for `tenants`: a file lists the cluster's
    /// tenants, one tenant from flags only itself.
    pub fn options(&self, tenants: &Tenants) -> PlanOptions {
        PlanOptions {
            adopt: self.adopt,
            prune: self.prune,
            create_oidc_provider: self.create_oidc_provider,
            replace: self.replace.iter().cloned().collect(),
            listing: if tenants.file.is_some() { Listing::Whole } else { Listing::Partial },
        }
    }

    /// Whether any was given (a saved plan takes none).
    pub fn any(&self) -> bool {
        self.prune || self.adopt || self.create_oidc_provider || !self.replace.is_empty()
    }
}

/// How changes are reported on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A live line on a terminal, plain lines otherwise.
    Auto,
    Plain,
    Json,
}

/// Confirmation, time and the lock, for the commands that write.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub auto_approve: bool,
    pub timeout: Duration,
    pub lock_namespace: String,
    pub progress: ProgressStyle,
}

#[derive(Debug)]
pub struct PlanRequest {
    pub tenants: Tenants,
    pub run: Run,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub detailed_exitcode: bool,
    pub destroy: bool,
    pub refresh_only: bool,
    pub planning: Planning,
}

#[derive(Debug)]
pub struct ApplyRequest {
    pub plan_file: Option<PathBuf>,
    pub tenants: Tenants,
    pub run: Run,
    pub lifecycle: Lifecycle,
    pub wait: bool,
    pub verify: bool,
    pub planning: Planning,
}

/// `permissions`.
#[derive(Debug)]
pub struct PermissionsRequest {
    pub tenants: Tenants,
    pub account_id: Option<String>,
    pub create_oidc_provider: bool,
    pub kubernetes: bool,
    pub controller: bool,
    pub user: Option<String>,
    pub lock_namespace: String,
}

/// `controller`.
#[derive(Debug)]
pub struct ControllerRequest {
    pub settings: PathBuf,
    pub run: Run,
    pub resync: Duration,
    pub metrics_addr: String,
    pub lock_namespace: String,
    pub lease_duration: Duration,
    pub timeout: Duration,
}

/// `verify` and `audit`.
#[derive(Debug)]
pub struct ReportRequest {
    pub tenants: Tenants,
    pub run: Run,
    pub json: bool,
}

#[derive(Debug)]
pub struct DestroyRequest {
    pub tenants: Tenants,
    pub run: Run,
    pub lifecycle: Lifecycle,
}

#[derive(Debug)]
pub struct ForceUnlockRequest {
    pub lock_id: String,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub stats: bool,
    pub lock_namespace: String,
    pub force: bool,
}

#[derive(Debug)]
pub struct RenderRequest {
    pub tenants: Tenants,
    pub account_id: Option<String>,
    pub oidc_issuer: Option<String>,
    pub out: Option<PathBuf>,
}
