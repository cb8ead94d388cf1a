//! The command line: clap's types, each command's converted once into its
//! plain request (`crate::request`); no other module of the binary names
//! clap (the tidy test holds it). Shell completions are made here too, from
//! the same definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use kfp_tenant_core::address::{Address, Kind};
use kfp_tenant_core::apply;
use kfp_tenant_core::refresh::RefreshMode;

use crate::output;

mod convert;

#[derive(Debug, Parser)]
#[command(
    name = "kfp-tenant",
    version,
    about = "Plan, apply and destroy Kubeflow tenants on EKS: IAM role, S3 policy and Profile",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More detail on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never colour the output (NO_COLOR does the same).
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what apply would change, reading live state only.
    Plan(PlanArgs),
    /// Make the account and the cluster match the tenants (or a saved plan).
    Apply(ApplyArgs),
    /// Delete the tenants' Profiles, inline policies and roles.
    Destroy(DestroyArgs),
    /// Print a saved plan.
    Show {
        /// A plan saved with `plan --out`.
        plan_file: PathBuf,
        /// Print it as versioned JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the tenants offline and report every problem.
    Validate(#[command(flatten)] TenantFlags),
    /// Print each tenant's trust policy, S3 policy and Profile, offline (GitOps review).
    Render(RenderArgs),
    /// Print the resource graph as Graphviz DOT.
    Graph {
        #[command(flatten)]
        tenants: TenantFlags,
        /// A saved plan: draw the order apply walks it in (every edge, those
        /// that depend on a change's direction included), each node with its
        /// planned action.
        plan_file: Option<PathBuf>,
    },
    /// Prove that each tenant's pods reach their artifacts: token, issuer,
    /// trust, STS and S3, link by link (writes only an S3 probe object).
    Verify(ReportArgs),
    /// List every IAM role that trusts the cluster's OIDC provider, and what
    /// is wrong with each (exit 2 with findings).
    Audit(ReportArgs),
    /// Remove the apply lock of a run that is gone (shows its holder, asks first).
    ForceUnlock(ForceUnlockArgs),
    /// Print the JSON Schema of the tenants file.
    Schema,
    /// Print the KubeflowTenant CustomResourceDefinition (kubectl apply -f -).
    Crd,
    /// Print the least IAM policy (or, with --kubernetes, RBAC) that running
    /// kfp-tenant on this file needs, each statement saying what needs it.
    Permissions(PermissionsArgs),
    /// Reconcile KubeflowTenant resources in the cluster, continuously, as a
    /// leader-elected controller (the replicas share apply's Lease).
    Controller(ControllerArgs),
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// One tenant from flags; each falls back to the page's variable.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TenantFlags {
    /// Tenants file (YAML or JSON; `-` reads standard input); see `kfp-tenant schema`.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// EKS cluster name [env: CLUSTER_NAME]
    #[arg(long)]
    pub cluster: Option<String>,
    /// Region of the cluster [env: CLUSTER_REGION]
    #[arg(long)]
    pub region: Option<String>,
    /// S3 bucket of Kubeflow Pipelines [env: S3_BUCKET]
    #[arg(long)]
    pub bucket: Option<String>,
    /// Profile namespace of the one tenant [env: PROFILE_NAMESPACE]
    #[arg(long)]
    pub namespace: Option<String>,
    /// Owner's e-mail of the one tenant [env: PROFILE_USER]
    #[arg(long)]
    pub owner: Option<String>,
    /// Limit the work to these tenants (repeatable).
    #[arg(long, value_name = "NAMESPACE")]
    pub target: Vec<String>,
}

/// How a run reaches AWS and the cluster, how much it does at once, and
/// whether it reports its API calls.
#[derive(Clone, Debug, Args)]
pub struct RunFlags {
    /// AWS shared-config profile.
    #[arg(long, env = "AWS_PROFILE", hide_env_values = true)]
    pub aws_profile: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Reach the cluster from AWS credentials alone: its EKS endpoint and CA,
    /// and a token made like `aws eks get-token`; no kubeconfig is read. Also
    /// the default when there is no kubeconfig at all.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub eks_auth: bool,
    /// With --eks-auth, reach the API server here instead of at its EKS
    /// endpoint (a proxy, a private alias, a test server); the run is then
    /// bound to the cluster by its identity record, as with a kubeconfig.
    #[arg(long, value_name = "URL", requires = "eks_auth")]
    pub eks_endpoint: Option<String>,
    /// The Kubernetes API is the file's cluster although the kubeconfig's
    /// server is not its EKS endpoint (a proxy, a private alias): apply
    /// records it in the cluster, and later runs check that record.
    #[arg(long)]
    pub bind_cluster: bool,
    /// Resources read or changed at once.
    #[arg(long, default_value_t = apply::DEFAULT_PARALLELISM, value_parser = parse_parallelism)]
    pub parallelism: usize,
    /// How to read IAM roles: `per-role` (GetRole, ListRolePolicies,
    /// ListAttachedRolePolicies and GetRolePolicy per tenant), `bulk` (the
    /// whole account, 1,000 roles a call), or `auto`
    /// (the cheaper for this account and file; -v says which).
    #[arg(long, value_name = "MODE", default_value_t = RefreshMode::Auto,
          value_parser = clap::builder::PossibleValuesParser::new(RefreshMode::NAMES).map(|s| s.parse::<RefreshMode>().expect("one of NAMES")))]
    pub refresh_mode: RefreshMode,
    /// Print the API calls made, per operation, on stderr.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub tenants: TenantFlags,
    #[command(flatten)]
    pub run: RunFlags,
    /// Save the plan for `apply PLANFILE`.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,
    /// Print the plan as versioned JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 2 when there are changes (or drift with --refresh-only).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan deleting the tenants.
    #[arg(long, conflicts_with_all = ["prune", "adopt", "refresh_only", "create_oidc_provider"])]
    pub destroy: bool,
    /// Only report what differs from the tenants file; plan no changes.
    #[arg(long, conflicts_with = "out")]
    pub refresh_only: bool,
    #[command(flatten)]
    pub planning: PlanFlags,
}

/// How a plan treats what it finds; shared by `plan` and `apply`.
#[derive(Clone, Debug, Args)]
pub struct PlanFlags {
    /// Also delete managed tenants that are no longer in the input (not with
    /// --target: every tenant outside the target would look removed).
    #[arg(long, conflicts_with = "target")]
    pub prune: bool,
    /// Take over same-named resources that kfp-tenant did not create, or
    /// created for another cluster.
    #[arg(long)]
    pub adopt: bool,
    /// Create the cluster's IAM OIDC provider if the account has none (as
    /// eksctl utils associate-iam-oidc-provider does); destroy never deletes it.
    #[arg(long)]
    pub create_oidc_provider: bool,
    /// Replace this tenant's Profile (repeatable), e.g. 'tenant["team-a"].profile':
    /// deletes its namespace and everything in it, then makes it again. No
    /// plan does that unless named here (an owner change that the
    /// namespace's owner annotation does not allow is refused without it).
    #[arg(long, value_name = "ADDRESS", value_parser = parse_replace)]
    pub replace: Vec<Address>,
}

/// `--replace`: a tenant's Profile, the one resource whose replacement
/// deletes what users keep (a namespace).
fn parse_replace(text: &str) -> Result<Address, String> {
    let address: Address = text.parse()?;
    match address.kind() {
        Some(Kind::Profile) => Ok(address),
        _ => Err(format!("{text} cannot be replaced on request: only a tenant's Profile can, e.g. 'tenant[\"team-a\"].profile'")),
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; asks nothing, refuses it when stale.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub tenants: TenantFlags,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
    /// Wait until each Profile's namespace and service accounts are ready.
    #[arg(long)]
    pub wait: bool,
    /// After applying, verify every tenant (see `verify`); implies --wait.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub planning: PlanFlags,
}

/// `verify` and `audit`: the tenants, the run, and the report's form.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub tenants: TenantFlags,
    #[command(flatten)]
    pub run: RunFlags,
    /// Print the report as versioned JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    #[command(flatten)]
    pub tenants: TenantFlags,
    /// The account the roles are in (default: any, `*`).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Include creating the cluster's IAM OIDC provider.
    #[arg(long)]
    pub create_oidc_provider: bool,
    /// Print the Kubernetes RBAC instead: a ClusterRole and Roles in
    /// kube-system and the lock's namespace, no bindings; with a user, the
    /// admission policy that narrows what RBAC cannot.
    #[arg(long)]
    pub kubernetes: bool,
    /// With --kubernetes: what `kfp-tenant controller` needs instead (no
    /// token requests; KubeflowTenants, Events).
    #[arg(long, requires = "kubernetes")]
    pub controller: bool,
    /// With --kubernetes: the user the roles are bound to (a service account
    /// is system:serviceaccount:NAMESPACE:NAME), whose ConfigMap writes and
    /// token requests the admission policy limits to kfp-tenant's [default
    /// with --controller: deploy/'s, system:serviceaccount:LOCK_NAMESPACE:kfp-tenant]
    #[arg(long, value_name = "NAME", requires = "kubernetes")]
    pub user: Option<String>,
    /// Namespace of the Lease.
    #[arg(long, value_name = "NAMESPACE", default_value = "kubeflow")]
    pub lock_namespace: String,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The settings: a tenants file whose header (cluster, region, bucket,
    /// defaults, identityProvider) applies to every KubeflowTenant; its own
    /// tenants are managed too.
    #[arg(short = 'f', long = "file", value_name = "SETTINGS")]
    pub settings: PathBuf,
    #[command(flatten)]
    pub run: RunFlags,
    /// How often everything is read again from AWS and repaired, changes or not (at least 1s).
    #[arg(long, default_value = "10m", value_parser = output::parse_positive_duration)]
    pub resync: Duration,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Namespace of the Lease the replicas compete for (the one apply takes).
    #[arg(long, value_name = "NAMESPACE", default_value = "kubeflow")]
    pub lock_namespace: String,
    /// How long a leader that stopped renewing keeps the Lease (at least 1s).
    #[arg(long, default_value = "15s", value_parser = output::parse_positive_duration)]
    pub lease_duration: Duration,
    /// How long a tenant may wait for the cluster (its namespace to appear,
    /// to become usable) before its status says Failed. A cycle waits only
    /// moments and retries a waiting tenant later, so none holds another back.
    #[arg(long, default_value = "5m", value_parser = output::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub tenants: TenantFlags,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
}

/// Confirmation, time and the lock, for the commands that write.
#[derive(Clone, Debug, Args)]
pub struct Lifecycle {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Bounds every wait of the run together: readiness (--wait), a
    /// Profile's deletion, a namespace the controller has yet to make.
    #[arg(long, default_value = "5m", value_parser = output::parse_duration)]
    pub timeout: Duration,
    /// Namespace of the Lease that keeps two applies off one cluster.
    #[arg(long, value_name = "NAMESPACE", default_value = "kubeflow")]
    pub lock_namespace: String,
    /// How changes are reported on stderr: `auto` draws a live line with
    /// done/total, failures and an ETA on a terminal and writes plain lines
    /// otherwise; `plain` never draws; `json` writes one JSON event per line.
    #[arg(long, value_name = "STYLE", value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Plain,
    Json,
}

#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The lock ID, as the refused run printed it.
    pub lock_id: String,
    /// kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Print the API calls made, per operation, on stderr.
    #[arg(long)]
    pub stats: bool,
    /// Namespace of the Lease.
    #[arg(long, value_name = "NAMESPACE", default_value = "kubeflow")]
    pub lock_namespace: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub tenants: TenantFlags,
    /// Fill in the account id instead of ${AWS_ACCOUNT_ID}.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Fill in the cluster's OIDC issuer URL instead of ${OIDC_URL}.
    #[arg(long)]
    pub oidc_issuer: Option<String>,
    /// Write a directory for GitOps and IAM review instead of one stream
    /// (needs --account-id): <namespace>.yaml per tenant (for kubectl apply
    /// -f DIR), iam/<namespace>/ (trust-policy.json, inline-policy.json) and
    /// SUMMARY.md. A file of the same name that kfp-tenant did not write
    /// stops the render before anything is written; its own are replaced,
    /// and those of tenants no longer in the file removed.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Completions for `shell`, from the command line's own definition.
pub fn completions(shell: clap_complete::Shell) -> String {
    use clap::CommandFactory;
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kfp-tenant", &mut text);
    String::from_utf8_lossy(&text).into_owned()
}

fn parse_parallelism(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a parallelism from 1 to 256")),
    }
}
