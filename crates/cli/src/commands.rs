//! The commands that talk to AWS and the cluster: plan, apply, destroy,
//! force-unlock.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kfp_tenant_core::apply::{self, ApplyOptions};
use kfp_tenant_core::graph::Stop;
use kfp_tenant_core::plan::{self, ClusterContext, Plan};
use kfp_tenant_core::refresh::{Observed, ReadSet};
use kfp_tenant_core::render;
use kfp_tenant_k8s::LeaseGuard;

use crate::interrupt;
use crate::live::{Live, connect_kube};
use crate::output::{self, ApplyProgress, note, say};
use crate::request::{
    ApplyRequest, DestroyRequest, ForceUnlockRequest, Lifecycle, PlanRequest, Planning, ProgressStyle, ReportRequest, Run, Tenants,
};

/// How long changes in flight may still finish after Ctrl-C.
const GRACE: Duration = Duration::from_secs(5);

pub fn print_plan(plan: &Plan, json: bool, no_color: bool) -> Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(&render::plan_json(plan))?)?;
    } else {
        output::out(render::plan_text(plan, output::stdout_color(no_color)))?;
    }
    Ok(())
}

pub fn read_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the plan file {}", path.display()))?;
    let plan: Plan = match serde_json::from_str(&text) {
        Ok(plan) => plan,
        // `apply tenants.yaml` as Terraform users type it: say what to type.
        Err(_) if crate::input::parse(&text).is_ok() => {
            bail!("{0} is a tenants file, not a saved plan: use `-f {0}` (a saved plan is what `plan --out FILE` writes)", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("{} is not a kfp-tenant plan file", path.display())),
    };
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

/// `--prune` asks for the whole of the cluster's tenants: one tenant from
/// flags or the page's variables is a partial view, like `--target`, and
/// every other tenant would look removed.
fn refuse_partial_prune(tenants: &Tenants, planning: &Planning) -> Result<()> {
    if planning.prune && tenants.file.is_none() {
        bail!(
            "--prune needs a tenants file (-f FILE) that lists every tenant of the cluster: one tenant from flags or the page's variables (PROFILE_NAMESPACE, ...) is a partial view, and every other tenant would be destroyed"
        );
    }
    Ok(())
}

/// `--replace` names tenants of the input, like `--target`.
fn check_replace(desired: &kfp_tenant_core::spec::Desired, planning: &Planning) -> Result<()> {
    for address in &planning.replace {
        let ns = address.namespace().unwrap_or_default();
        if !desired.tenants.iter().any(|t| t.namespace == ns) {
            bail!("--replace {address}: no such tenant in the input (or it is outside --target)");
        }
    }
    Ok(())
}

pub async fn plan(args: PlanRequest, no_color: bool) -> Result<ExitCode> {
    refuse_partial_prune(&args.tenants, &args.planning)?;
    let desired = args.tenants.desired()?;
    check_replace(&desired, &args.planning)?;
    let live = Live::connect(&args.run, &desired.cluster.name, &desired.cluster.region).await?;
    let reads = match args.destroy {
        true => ReadSet::for_destroy(&desired, args.run.bind_cluster),
        false => ReadSet::for_desired(&desired, args.run.bind_cluster),
    };
    let observed = live.observe(&reads, &args.run).await?;
    let plan = if args.destroy {
        plan::plan_destroy(&desired, &observed)?
    } else {
        plan::plan(&desired, &observed, args.planning.options(&args.tenants))?
    };
    // With --refresh-only, only existing resources that differ are drift;
    // resources not created yet are not.
    let changed = if args.refresh_only { !drift(&plan).is_empty() } else { plan.has_changes() };
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&plan)?).with_context(|| format!("cannot write the plan to {}", out.display()))?;
        note!("Saved the plan to {}; apply it exactly with: kfp-tenant apply {}", out.display(), out.display());
    }
    if args.refresh_only {
        print_drift(&plan)?;
    } else {
        print_plan(&plan, args.json, no_color)?;
    }
    Ok(if args.detailed_exitcode && changed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Existing resources that differ from the tenants file.
fn drift(plan: &Plan) -> Vec<&plan::ResourceChange> {
    plan.changes.iter().filter(|c| c.before.is_some() && c.action != plan::Action::NoOp).collect()
}

/// `--refresh-only`: what differs from the tenants file, as a report.
fn print_drift(plan: &Plan) -> Result<()> {
    let drift = drift(plan);
    let missing = plan.changes.iter().filter(|c| c.before.is_none()).count();
    if drift.is_empty() {
        say!("No drift: every existing resource matches the tenants file.")?;
    } else {
        say!("Changed outside kfp-tenant (or not yet applied):")?;
        for c in drift {
            let reason = c.reason.as_ref().map(ToString::to_string).unwrap_or_default();
            say!("  ~ {}: {reason}", c.address)?;
        }
    }
    if missing > 0 {
        let (s, es) = if missing == 1 { ("", "es") } else { ("s", "") };
        say!("{missing} resource{s} of the tenants file do{es} not exist yet.")?;
    }
    for w in &plan.warnings {
        say!("Warning: {w}")?;
    }
    Ok(())
}

pub async fn apply(args: ApplyRequest, no_color: bool) -> Result<ExitCode> {
    if let Some(path) = &args.plan_file {
        if args.tenants.file.is_some() || args.planning.any() {
            bail!(
                "a saved plan already fixes the tenants and options: give either PLANFILE or -f/--prune/--adopt/--create-oidc-provider/--replace"
            );
        }
        let plan = read_plan(path)?;
        let live = Live::connect(&args.run, &plan.cluster.name, &plan.cluster.region).await?;
        let vouched = args.run.bind_cluster || plan::reads_of(&plan).vouched;
        return locked(&live, (&plan.cluster.name, vouched), &args.lifecycle, "apply", async |stop| {
            let observed = until_stopped(&stop, live.observe(&plan::reads_of(&plan), &args.run)).await?;
            check_cluster(&plan.cluster, &observed)?;
            plan::check_fresh(&plan, &observed)?;
            let writer = Writer { live: &live, run: &args.run, lifecycle: &args.lifecycle, wait: args.wait };
            Ok(carry_out(&writer, &plan, stop).await)
        })
        .await;
    }
    refuse_partial_prune(&args.tenants, &args.planning)?;
    let desired = args.tenants.desired()?;
    check_replace(&desired, &args.planning)?;
    let live = Live::connect(&args.run, &desired.cluster.name, &desired.cluster.region).await?;
    let applied = locked(&live, (&desired.cluster.name, args.run.bind_cluster), &args.lifecycle, "apply", async |stop| {
        let reads = ReadSet::for_desired(&desired, args.run.bind_cluster);
        let observed = until_stopped(&stop, live.observe(&reads, &args.run)).await?;
        let plan = plan::plan(&desired, &observed, args.planning.options(&args.tenants))?;
        let question = "Do you want to perform these actions?";
        let wait = args.wait || args.verify;
        let writer = Writer { live: &live, run: &args.run, lifecycle: &args.lifecycle, wait };
        confirm_and_apply(&writer, &plan, no_color, question, stop).await
    })
    .await?;
    if applied != ExitCode::SUCCESS || !args.verify {
        return Ok(applied);
    }
    say!()?;
    let report = run_verify(&live, &desired, &args.run).await?;
    output::out(&report)?;
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run_verify(live: &Live, desired: &kfp_tenant_core::spec::Desired, run: &Run) -> Result<kfp_tenant_core::verify::Report> {
    // Ctrl-C: no new service account is started; those under way finish, their probes deleted.
    let stop = interrupt::install(GRACE);
    let observed = until_stopped(&stop, live.observe(&ReadSet::for_desired(desired, run.bind_cluster), run)).await?;
    Ok(kfp_tenant_core::verify::verify(desired, &observed, live.verify_ports(), run.parallelism, &stop).await)
}

/// Token, issuer, trust, STS and S3 for every service account of every tenant.
pub async fn verify(args: ReportRequest) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    let live = Live::connect(&args.run, &desired.cluster.name, &desired.cluster.region).await?;
    let report = run_verify(&live, &desired, &args.run).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        output::out(&report)?;
    }
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Every role trusting the cluster's OIDC provider, with its findings.
pub async fn audit(args: ReportRequest) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    let live = Live::connect(&args.run, &desired.cluster.name, &desired.cluster.region).await?;
    let report = live.audit(&desired, args.run.bind_cluster).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        output::out(&report)?;
    }
    Ok(if report.findings() == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub async fn destroy(args: DestroyRequest, no_color: bool) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    let live = Live::connect(&args.run, &desired.cluster.name, &desired.cluster.region).await?;
    locked(&live, (&desired.cluster.name, args.run.bind_cluster), &args.lifecycle, "destroy", async |stop| {
        let reads = ReadSet::for_destroy(&desired, args.run.bind_cluster);
        let observed = until_stopped(&stop, live.observe(&reads, &args.run)).await?;
        let plan = plan::plan_destroy(&desired, &observed)?;
        let question = "Do you really want to destroy these tenants?";
        let writer = Writer { live: &live, run: &args.run, lifecycle: &args.lifecycle, wait: false };
        confirm_and_apply(&writer, &plan, no_color, question, stop).await
    })
    .await
}

/// Runs `work` holding the apply lock, with Ctrl-C handled, and releases
/// the lock whatever happened; `work` says whether every change succeeded.
/// An interrupt before any change ends `work` at once; a lost lock ends it
/// at once whenever it comes.
///
/// The Kubernetes API is shown to be `cluster` first: a run against the
/// wrong cluster is refused before it writes anything there, the Lease
/// included.
async fn locked(
    live: &Live,
    cluster: (&str, bool),
    lifecycle: &Lifecycle,
    verb: &str,
    work: impl AsyncFnOnce(Stop) -> Result<bool>,
) -> Result<ExitCode> {
    live.prove(cluster.0, cluster.1).await?;
    let guard = live.lock(&lifecycle.lock_namespace, verb).await?;
    let stop = interrupt::install(GRACE);
    // A lock that could not be renewed may be another run's a third of its
    // duration later: nothing more is written, not even what is under way.
    let finished = tokio::select! {
        result = work(stop.clone()) => Some(result),
        () = guard.lost() => None,
    };
    match finished {
        Some(result) => unlock(guard, result).await,
        // Not released: it is another run's now, or the API server does not
        // answer (a release would hang on it); it expires by itself.
        None => {
            stop.stop();
            drop(guard);
            bail!(
                "lost the apply lock: it could not be renewed in time (is the Kubernetes API reachable?) or was taken over with force-unlock; stopped writing at once; run plan to see what was done"
            )
        }
    }
}

/// Reading before any change: an interrupt ends it at once.
async fn until_stopped<T>(stop: &Stop, reading: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        result = reading => result,
        () = stop.stopped() => bail!("interrupted before any change: nothing was changed"),
    }
}

/// Releases the apply lock whatever happened while it was held.
async fn unlock(guard: LeaseGuard, result: Result<bool>) -> Result<ExitCode> {
    let released = guard.release().await;
    let ok = result?;
    released.context("the run ended, but the apply lock could not be released; it expires by itself")?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What a writing run carries out a plan with: the providers, how it
/// reaches them, its confirmation, time and lock, and whether it waits for
/// the controller.
struct Writer<'a> {
    live: &'a Live,
    run: &'a Run,
    lifecycle: &'a Lifecycle,
    wait: bool,
}

/// Shows the plan, asks unless approved in advance, applies.
async fn confirm_and_apply(writer: &Writer<'_>, plan: &Plan, no_color: bool, question: &str, stop: Stop) -> Result<bool> {
    print_plan(plan, false, no_color)?;
    if !plan.has_changes() {
        return Ok(true);
    }
    if !writer.lifecycle.auto_approve {
        let question = question.to_owned();
        let asking = tokio::task::spawn_blocking(move || output::confirm(&question, "--auto-approve"));
        let answer = tokio::select! {
            answer = asking => answer.context("the prompt failed")??,
            () = stop.stopped() => false,
        };
        if !answer {
            note!("Cancelled: nothing was changed.");
            return Ok(false);
        }
    }
    if stop.is_stopped() {
        note!("Interrupted before any change: nothing was changed.");
        return Ok(false);
    }
    Ok(carry_out(writer, plan, stop).await)
}

async fn carry_out(writer: &Writer<'_>, plan: &Plan, stop: Stop) -> bool {
    let Writer { live, run, lifecycle, wait } = *writer;
    if lifecycle.progress != ProgressStyle::Json {
        note!();
    }
    let options = ApplyOptions { parallelism: run.parallelism, wait, timeout: lifecycle.timeout, stop, grace: GRACE };
    let total = plan.changes.iter().filter(|c| c.action != plan::Action::NoOp).count();
    let progress = ApplyProgress::new(lifecycle.progress, total);
    let report = apply::apply(plan, live.providers(), &options, &progress).await;
    progress.finish();
    output::summarize(&report, plan.mode)
}

/// A saved plan is for one account and cluster.
fn check_cluster(planned: &ClusterContext, observed: &Observed) -> Result<()> {
    if planned.account_id != observed.identity.account_id {
        bail!("the plan is for account {}, but the credentials are for account {}", planned.account_id, observed.identity.account_id);
    }
    Ok(())
}

/// `--stats` for a command that only talks to Kubernetes, on every exit path.
struct KubeStats<'a>(&'a kfp_tenant_k8s::Kube, bool);

impl Drop for KubeStats<'_> {
    fn drop(&mut self) {
        if self.1 {
            output::print_stats(&Default::default(), &self.0.counter().calls());
        }
    }
}

pub async fn force_unlock(args: ForceUnlockRequest) -> Result<ExitCode> {
    let kube = connect_kube(args.kubeconfig.clone(), args.context.clone()).await?;
    let _stats = KubeStats(&kube, args.stats);
    let name = kfp_tenant_k8s::LockOptions::new("").name;
    let Some(held) = kube.lock_holder(&args.lock_namespace, &name).await? else {
        bail!("{}", kfp_tenant_k8s::LockError::NotHeld(format!("{}/{name}", args.lock_namespace)));
    };
    if held.id != args.lock_id {
        bail!("{}", kfp_tenant_k8s::LockError::OtherId { requested: args.lock_id.clone(), current: held.id, holder: held.holder });
    }
    say!("The apply lock {} is held by {} (expires in {}s unless renewed).", held.id, held.holder, held.expires_in)?;
    if !args.force {
        let question = "Remove it? Only do so if that run is gone: two runs at once can undo each other's changes.".to_owned();
        let answer = tokio::task::spawn_blocking(move || output::confirm(&question, "--force")).await.context("the prompt failed")??;
        if !answer {
            note!("Cancelled: the lock stays.");
            return Ok(ExitCode::FAILURE);
        }
    }
    kube.force_unlock(&args.lock_namespace, &name, &args.lock_id).await?;
    say!("The apply lock {} was removed.", args.lock_id)?;
    Ok(ExitCode::SUCCESS)
}
