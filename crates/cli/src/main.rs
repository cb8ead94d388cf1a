//! `kfp-tenant`: Terraform-style plan / apply / destroy for Kubeflow tenants
//! on EKS.
//!
//! The binary is thin: clap types are turned into core's request types here
//! and go no further; `run` builds the real providers and returns the exit
//! code (0 success, 1 error, 2 changes present under `--detailed-exitcode`).

mod input;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use kfp_tenant_aws::{Aws, AwsOptions};
use kfp_tenant_core::apply::{self, ApplyOptions, Providers};
use kfp_tenant_core::plan::{self, ClusterContext, Plan, PlanOptions};
use kfp_tenant_core::refresh::{Observed, ReadSet, refresh};
use kfp_tenant_core::render;
use kfp_tenant_core::resilience::{AdaptiveRate, Resilient, RetryPolicy};
use kfp_tenant_core::spec::Desired;
use kfp_tenant_k8s::{Kube, KubeOptions, LockOptions};

use crate::input::TenantFlags;
use crate::output::StderrProgress;

#[derive(Debug, Parser)]
#[command(
    name = "kfp-tenant",
    version,
    about = "Plan, apply and destroy Kubeflow tenants on EKS: IAM role, S3 policy and Profile",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More detail on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Never colour the output (NO_COLOR does the same).
    #[arg(long, global = true)]
    no_color: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what apply would change, reading live state only.
    Plan(PlanArgs),
    /// Make the account and the cluster match the tenants (or a saved plan).
    Apply(ApplyArgs),
    /// Delete the tenants' Profiles, inline policies and roles.
    Destroy(DestroyArgs),
    /// Print a saved plan.
    Show {
        plan_file: PathBuf,
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
        /// A saved plan: nodes show their planned action.
        plan_file: Option<PathBuf>,
    },
    /// Print the JSON Schema of the tenants file.
    Schema,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

/// Reaching AWS and the cluster.
#[derive(Clone, Debug, Args)]
struct Connection {
    /// AWS shared-config profile.
    #[arg(long, env = "AWS_PROFILE")]
    aws_profile: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// Resources read or changed at once.
    #[arg(long, default_value_t = apply::DEFAULT_PARALLELISM, value_parser = parse_parallelism)]
    parallelism: usize,
    /// Print the API calls made, per operation, on stderr.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    tenants: TenantFlags,
    #[command(flatten)]
    connection: Connection,
    /// Save the plan for `apply PLANFILE`.
    #[arg(long, value_name = "PLANFILE")]
    out: Option<PathBuf>,
    /// Print the plan as versioned JSON.
    #[arg(long)]
    json: bool,
    /// Exit 2 when there are changes (or drift with --refresh-only).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Plan deleting the tenants.
    #[arg(long, conflicts_with_all = ["prune", "adopt", "refresh_only", "create_oidc_provider"])]
    destroy: bool,
    /// Only report what differs from the tenants file; plan no changes.
    #[arg(long, conflicts_with = "out")]
    refresh_only: bool,
    #[command(flatten)]
    planning: PlanFlags,
}

/// How a plan treats what it finds; shared by `plan` and `apply`.
#[derive(Clone, Debug, Args)]
struct PlanFlags {
    /// Also delete managed tenants that are no longer in the input (not with
    /// --target: every tenant outside the target would look removed).
    #[arg(long, conflicts_with = "target")]
    prune: bool,
    /// Take over same-named resources that kfp-tenant did not create.
    #[arg(long)]
    adopt: bool,
    /// Create the cluster's IAM OIDC provider if the account has none (as
    /// eksctl utils associate-iam-oidc-provider does); destroy never deletes it.
    #[arg(long)]
    create_oidc_provider: bool,
}

impl PlanFlags {
    fn options(&self) -> PlanOptions {
        PlanOptions { adopt: self.adopt, prune: self.prune, create_oidc_provider: self.create_oidc_provider }
    }

    fn any(&self) -> bool {
        self.prune || self.adopt || self.create_oidc_provider
    }
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// A plan saved with `plan --out`; asks nothing, refuses it when stale.
    plan_file: Option<PathBuf>,
    #[command(flatten)]
    tenants: TenantFlags,
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    lifecycle: Lifecycle,
    #[command(flatten)]
    planning: PlanFlags,
}

#[derive(Debug, Args)]
struct DestroyArgs {
    #[command(flatten)]
    tenants: TenantFlags,
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    lifecycle: Lifecycle,
}

#[derive(Clone, Debug, Args)]
struct Lifecycle {
    /// Do not ask for confirmation.
    #[arg(long)]
    auto_approve: bool,
    /// Wait until each Profile's namespace and service account are ready.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits per Profile.
    #[arg(long, default_value = "5m", value_parser = output::parse_duration, requires = "wait")]
    timeout: Duration,
    /// Namespace of the Lease that keeps two applies off one cluster.
    #[arg(long, default_value = "kubeflow")]
    lock_namespace: String,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    tenants: TenantFlags,
    /// Fill in the account id instead of ${AWS_ACCOUNT_ID}.
    #[arg(long)]
    account_id: Option<String>,
    /// Fill in the cluster's OIDC issuer URL instead of ${OIDC_URL}.
    #[arg(long)]
    oidc_issuer: Option<String>,
}

fn parse_parallelism(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a parallelism from 1 to 256")),
    }
}

fn main() -> ExitCode {
    // Usage errors exit 1 like every other error: 2 means "changes present".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    output::init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let no_color = cli.no_color;
    match cli.command {
        Command::Plan(args) => plan_command(args, no_color).await,
        Command::Apply(args) => apply_command(args, no_color).await,
        Command::Destroy(args) => destroy_command(args, no_color).await,
        Command::Show { plan_file, json } => {
            let plan = read_plan(&plan_file)?;
            print_plan(&plan, json, no_color);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(tenants) => {
            let desired = tenants.desired()?;
            println!(
                "The tenants file is valid: {} tenant{} on cluster {}.",
                desired.tenants.len(),
                if desired.tenants.len() == 1 { "" } else { "s" },
                desired.cluster.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Render(args) => render_command(&args),
        Command::Graph { tenants, plan_file } => {
            let text = match plan_file {
                Some(path) => {
                    let plan = read_plan(&path)?;
                    let mut namespaces: Vec<&str> = plan.changes.iter().filter_map(|c| c.address.namespace()).collect();
                    namespaces.dedup();
                    render::graph_dot(&kfp_tenant_core::address::resource_graph(namespaces), Some(&plan))
                }
                None => {
                    let desired = tenants.desired()?;
                    render::graph_dot(&kfp_tenant_core::address::resource_graph(desired.tenants.iter().map(|t| t.namespace.as_str())), None)
                }
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            let schema = schemars::schema_for!(kfp_tenant_core::spec::TenantsFile);
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kfp-tenant", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The real providers of one cluster, with retries and IAM pacing around them.
struct Live {
    aws: Aws,
    kube: Kube,
    iam: Resilient<Aws>,
    profiles: Resilient<Kube>,
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
    async fn connect(connection: &Connection, region: &str) -> Result<Self> {
        let options = AwsOptions { profile: connection.aws_profile.clone(), region: Some(region.to_owned()), max_attempts: None };
        let aws = Aws::connect(&options).await?;
        let kube = Kube::connect(KubeOptions {
            kubeconfig: connection.kubeconfig.clone(),
            context: connection.context.clone(),
            ..Default::default()
        })
        .await?;
        // IAM publishes no rate: pace only once it throttles.
        let limiter = Arc::new(AdaptiveRate::new(1.0, 500.0));
        let iam = Resilient::new(aws.clone(), RetryPolicy::default()).with_limiter(limiter);
        let profiles = Resilient::new(kube.clone(), RetryPolicy::default());
        Ok(Live { aws, kube, iam, profiles, stats: connection.stats })
    }

    fn providers(&self) -> Providers<'_> {
        Providers { cluster: &self.aws, iam: &self.iam, profiles: &self.profiles }
    }

    async fn observe(&self, reads: &ReadSet, parallelism: usize) -> Result<Observed> {
        Ok(refresh(reads, &self.aws, &self.iam, &self.profiles, parallelism).await?)
    }

    async fn lock(&self, lifecycle: &Lifecycle, verb: &str) -> Result<kfp_tenant_k8s::LeaseGuard> {
        let user = std::env::var("USER").unwrap_or_else(|_| "someone".to_owned());
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "a host".to_owned());
        let holder = format!("kfp-tenant {verb} by {user}@{host} (pid {})", std::process::id());
        let options = LockOptions { namespace: lifecycle.lock_namespace.clone(), ..LockOptions::new(holder) };
        Ok(self.kube.lock(&options).await?)
    }
}

fn print_plan(plan: &Plan, json: bool, no_color: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(&render::plan_json(plan)).expect("invariant: JSON values serialize"));
    } else {
        print!("{}", render::plan_text(plan, output::stdout_color(no_color)));
    }
}

fn read_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the plan file {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| format!("{} is not a kfp-tenant plan file", path.display()))?;
    if plan.format_version != plan::FORMAT_VERSION {
        bail!(
            "{} has plan format {}, this kfp-tenant reads {}; make the plan again",
            path.display(),
            plan.format_version,
            plan::FORMAT_VERSION
        );
    }
    Ok(plan)
}

fn make_plan(desired: &Desired, observed: &Observed, destroy: bool, options: PlanOptions) -> Result<Plan> {
    Ok(if destroy { plan::plan_destroy(desired, observed)? } else { plan::plan(desired, observed, options)? })
}

async fn plan_command(args: PlanArgs, no_color: bool) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    let live = Live::connect(&args.connection, &desired.cluster.region).await?;
    let observed = live.observe(&ReadSet::for_desired(&desired, args.planning.prune), args.connection.parallelism).await?;
    let plan = make_plan(&desired, &observed, args.destroy, args.planning.options())?;
    // With --refresh-only, only existing resources that differ are drift;
    // resources not created yet are not.
    let changed = if args.refresh_only { !drift(&plan).is_empty() } else { plan.has_changes() };
    if args.refresh_only {
        print_drift(&plan);
    } else {
        print_plan(&plan, args.json, no_color);
    }
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&plan)?).with_context(|| format!("cannot write the plan to {}", out.display()))?;
        eprintln!("Saved the plan to {}; apply it exactly with: kfp-tenant apply {}", out.display(), out.display());
    }
    Ok(if args.detailed_exitcode && changed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Existing resources that differ from the tenants file.
fn drift(plan: &Plan) -> Vec<&plan::ResourceChange> {
    plan.changes.iter().filter(|c| c.before.is_some() && c.action != plan::Action::NoOp).collect()
}

/// `--refresh-only`: what differs from the tenants file, as a report.
fn print_drift(plan: &Plan) {
    let drift = drift(plan);
    let missing = plan.changes.iter().filter(|c| c.before.is_none()).count();
    if drift.is_empty() {
        println!("No drift: every existing resource matches the tenants file.");
    } else {
        println!("Changed outside kfp-tenant (or not yet applied):");
        for c in drift {
            let reason = c.reason.as_ref().map(ToString::to_string).unwrap_or_default();
            println!("  ~ {}: {reason}", c.address);
        }
    }
    if missing > 0 {
        println!(
            "{missing} resource{} of the tenants file do{} not exist yet.",
            if missing == 1 { "" } else { "s" },
            if missing == 1 { "es" } else { "" }
        );
    }
}

async fn apply_command(args: ApplyArgs, no_color: bool) -> Result<ExitCode> {
    if let Some(path) = &args.plan_file {
        if args.tenants.file.is_some() || args.planning.any() {
            bail!("a saved plan already fixes the tenants and options: give either PLANFILE or -f/--prune/--adopt/--create-oidc-provider");
        }
        let plan = read_plan(path)?;
        let live = Live::connect(&args.connection, &plan.cluster.region).await?;
        let guard = live.lock(&args.lifecycle, "apply").await?;
        let result = async {
            let observed = live.observe(&plan::reads_of(&plan), args.connection.parallelism).await?;
            check_cluster(&plan.cluster, &observed)?;
            plan::check_fresh(&plan, &observed)?;
            Ok(carry_out(&live, &plan, &args.connection, &args.lifecycle).await)
        }
        .await;
        return unlock(guard, result).await;
    }
    let desired = args.tenants.desired()?;
    let live = Live::connect(&args.connection, &desired.cluster.region).await?;
    let guard = live.lock(&args.lifecycle, "apply").await?;
    let result = async {
        let observed = live.observe(&ReadSet::for_desired(&desired, args.planning.prune), args.connection.parallelism).await?;
        let plan = plan::plan(&desired, &observed, args.planning.options())?;
        confirm_and_apply(&live, &plan, &args.connection, &args.lifecycle, no_color, "Do you want to perform these actions?").await
    }
    .await;
    unlock(guard, result).await
}

async fn destroy_command(args: DestroyArgs, no_color: bool) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    let live = Live::connect(&args.connection, &desired.cluster.region).await?;
    let guard = live.lock(&args.lifecycle, "destroy").await?;
    let result = async {
        let observed = live.observe(&ReadSet::for_desired(&desired, false), args.connection.parallelism).await?;
        let plan = plan::plan_destroy(&desired, &observed)?;
        confirm_and_apply(&live, &plan, &args.connection, &args.lifecycle, no_color, "Do you really want to destroy these tenants?").await
    }
    .await;
    unlock(guard, result).await
}

/// Releases the apply lock whatever happened while it was held; `ok` is
/// whether every change succeeded.
async fn unlock(guard: kfp_tenant_k8s::LeaseGuard, result: Result<bool>) -> Result<ExitCode> {
    let released = guard.release().await;
    let ok = result?;
    released.context("the changes were made, but the apply lock could not be released; it expires by itself")?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Shows the plan, asks unless approved in advance, applies.
async fn confirm_and_apply(
    live: &Live,
    plan: &Plan,
    connection: &Connection,
    lifecycle: &Lifecycle,
    no_color: bool,
    question: &str,
) -> Result<bool> {
    print_plan(plan, false, no_color);
    if !plan.has_changes() {
        return Ok(true);
    }
    if !lifecycle.auto_approve && !output::confirm(question)? {
        eprintln!("Cancelled: nothing was changed.");
        return Ok(false);
    }
    Ok(carry_out(live, plan, connection, lifecycle).await)
}

async fn carry_out(live: &Live, plan: &Plan, connection: &Connection, lifecycle: &Lifecycle) -> bool {
    eprintln!();
    let options = ApplyOptions { parallelism: connection.parallelism, wait: lifecycle.wait.then_some(lifecycle.timeout) };
    let report = apply::apply(plan, live.providers(), options, &StderrProgress).await;
    output::summarize(&report, plan.mode == plan::Mode::Destroy)
}

/// A saved plan is for one account and cluster.
fn check_cluster(planned: &ClusterContext, observed: &Observed) -> Result<()> {
    if planned.account_id != observed.identity.account_id {
        bail!("the plan is for account {}, but the credentials are for account {}", planned.account_id, observed.identity.account_id);
    }
    Ok(())
}

fn render_command(args: &RenderArgs) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    let partition = kfp_tenant_core::validate::partition_of_region(&desired.cluster.region);
    let cluster = ClusterContext {
        name: desired.cluster.name.clone(),
        region: desired.cluster.region.clone(),
        bucket: desired.cluster.bucket.clone(),
        account_id: args.account_id.clone().unwrap_or_else(|| "${AWS_ACCOUNT_ID}".to_owned()),
        partition: partition.to_owned(),
        oidc_issuer: args.oidc_issuer.clone().unwrap_or_else(|| "https://${OIDC_URL}".to_owned()),
        oidc_provider_arn: String::new(),
    };
    for tenant in &desired.tenants {
        let role = plan::desired_role(tenant, &cluster);
        let s3 = plan::desired_s3_policy(tenant, &cluster);
        let profile = kfp_tenant_k8s::to_resource(&plan::desired_profile(tenant, &role.arn));
        println!("# tenant {}: IAM role {} (path {})", tenant.namespace, role.name, role.path);
        println!("# trust policy ({} characters of {})", role.trust_policy.minified_len(), desired.cluster.trust_policy_quota);
        println!("{}", serde_json::to_string_pretty(role.trust_policy.as_json())?);
        println!("# inline policy {} ({} characters)", s3.policy_name, s3.document.minified_len());
        println!("{}", serde_json::to_string_pretty(s3.document.as_json())?);
        println!("# Profile\n---\n{}", serde_yaml_ng::to_string(&profile)?);
    }
    Ok(ExitCode::SUCCESS)
}
