//! Engine benchmarks on the testkit fakes. They print figures; nothing here
//! asserts a time. See BENCHMARKS.md for what they mean.
//!
//!     cargo bench -p kfp-tenant-testkit --bench engine            # B1, B2, B4, B5 (with B5's no-op plan)
//!     cargo bench -p kfp-tenant-testkit --bench engine -- b1      # one of them
//!
//! B1 runs each size in a child process of its own, so that the peak memory
//! (VmHWM) is that size's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kfp_tenant_core::apply::{self, ApplyOptions, Providers, Quiet};
use kfp_tenant_core::plan::{Plan, PlanOptions};
use kfp_tenant_core::refresh::{ReadSet, RefreshMode, refresh};
use kfp_tenant_core::resilience::{AdaptiveRate, Resilient, RetryPolicy};
use kfp_tenant_core::spec::Desired;
use kfp_tenant_core::validate;
use kfp_tenant_testkit::Faults;
use kfp_tenant_testkit::world::{FakeWorld, sample_file};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A memory figure of this process from /proc/self/status, in MiB
/// (`VmHWM`: peak resident; `VmRSS`: resident now).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 =
        status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kib / 1024.0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

async fn applied(n: usize) -> (FakeWorld, Desired) {
    let world = FakeWorld::new();
    let desired = validate(&sample_file(n)).expect("valid");
    let plan = world.plan(&desired, PlanOptions::default()).await.expect("plan");
    assert!(world.apply(&plan).await.is_success());
    (world, desired)
}

/// B1, one size and refresh mode, in this (child) process: prints
/// `seconds peak_mib account_mib`.
fn b1_child(n: usize, mode: RefreshMode, runs: usize) {
    runtime().block_on(async {
        let (mut world, desired) = applied(n).await;
        world.refresh_mode = mode;
        // What the fake account holds, before the engine plans.
        let before = status_mib("VmRSS:");
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let plan = world.plan(&desired, PlanOptions::default()).await.expect("plan");
            times.push(start.elapsed().as_secs_f64());
            assert!(!plan.has_changes());
        }
        println!("{} {} {}", median(times), status_mib("VmHWM:"), before);
    });
}

fn b1() {
    println!("B1 engine scale: no-op plan (refresh + plan) on zero-latency fakes, median of 5, each size and mode in its own process");
    println!(
        "{:>8} {:>9} {:>12} {:>16} {:>18} {:>14}",
        "tenants", "refresh", "wall (ms)", "process peak MiB", "fake account MiB", "engine MiB"
    );
    for n in [100, 1_000, 10_000] {
        for mode in [RefreshMode::PerRole, RefreshMode::Bulk] {
            let exe = std::env::current_exe().expect("own path");
            let out = std::process::Command::new(exe).args(["--b1-child", &n.to_string(), &mode.to_string()]).output().expect("child");
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let mut next = || parts.next().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
            let (secs, peak, account) = (next(), next(), next());
            println!("{n:>8} {mode:>9} {:>12.1} {peak:>16.1} {account:>18.1} {:>14.1}", secs * 1000.0, peak - account);
        }
    }
    println!("  fake account = RSS after the fakes were filled by applying the tenants; engine = process peak minus that.");
}

fn b2() {
    println!("\nB2 latency-bound: 20 ms per call, apply of 200 tenants (600 writes), median of 3");
    println!("{:>12} {:>10} {:>10} {:>8}", "parallelism", "wall (s)", "ideal (s)", "ratio");
    let rt = runtime();
    for parallelism in [1usize, 10, 50] {
        let mut times = Vec::new();
        let mut calls = 0;
        for _ in 0..3 {
            let world = FakeWorld::new();
            let desired = validate(&sample_file(200)).expect("valid");
            let plan = rt.block_on(world.plan(&desired, PlanOptions::default())).expect("plan");
            let latency = Faults { latency: Duration::from_millis(20), ..Default::default() };
            world.set_faults(latency);
            world.calls.reset();
            let start = Instant::now();
            let report = rt.block_on(apply::apply(&plan, world.providers(), &ApplyOptions { parallelism, ..Default::default() }, &Quiet));
            times.push(start.elapsed().as_secs_f64());
            assert!(report.is_success());
            calls = world.calls.total();
        }
        let ideal = calls as f64 * 0.020 / parallelism as f64;
        let wall = median(times);
        println!("{parallelism:>12} {wall:>10.2} {ideal:>10.2} {:>8.3}", wall / ideal);
    }
    println!("  ideal = calls x latency / parallelism; at parallelism 50 the graph's depth (role, then policy and Profile) bounds it too.");
}

fn b4() {
    println!("\nB4 API economy on the fakes, 100 tenants: calls per tenant (per-run constants separate)");
    let rt = runtime();
    rt.block_on(async {
        let world = FakeWorld::new();
        let desired = validate(&sample_file(100)).expect("valid");
        let show = |label: &str, calls: std::collections::BTreeMap<&'static str, u64>| {
            let per: Vec<String> = calls
                .iter()
                .map(|(op, n)| if *n >= 100 { format!("{op} {:.2}", *n as f64 / 100.0) } else { format!("{op} {n} (per run)") })
                .collect();
            println!("  {label:<22} {}", per.join(", "));
        };
        world.calls.reset();
        let plan = world.plan(&desired, PlanOptions::default()).await.expect("plan");
        show("plan before create", world.calls.snapshot());
        world.calls.reset();
        assert!(world.apply(&plan).await.is_success());
        show("create (apply)", world.calls.snapshot());
        world.calls.reset();
        let noop = world.plan(&desired, PlanOptions::default()).await.expect("plan");
        assert!(!noop.has_changes());
        show("no-op plan", world.calls.snapshot());
        world.calls.reset();
        let destroy = world.plan_destroy(&desired).await.expect("plan");
        show("plan before destroy", world.calls.snapshot());
        world.calls.reset();
        assert!(world.apply(&destroy).await.is_success());
        show("destroy (apply)", world.calls.snapshot());
    });
    println!("  minimum: no-op 2 IAM reads; create 2 IAM writes + 1 Kubernetes write; destroy 2 IAM writes + 1 Kubernetes delete");
}

/// B5 on tokio's paused clock: the fake's sliding-window rate limit and the
/// limiter both run on virtual time, so the figure is the pacing algorithm's,
/// free of this machine's noise.
fn b5() {
    println!(
        "\nB5 rate-limited: IAM allows R calls/s (sliding window) and throttles above; apply of 200 tenants through the adaptive limiter"
    );
    println!("{:>6} {:>10} {:>12} {:>10} {:>10} {:>8}", "R", "IAM calls", "throttled", "time (s)", "rate/R", "failed");
    for rate in [5.0, 10.0, 20.0] {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
        rt.block_on(async {
            let world = FakeWorld::new();
            let desired = validate(&sample_file(200)).expect("valid");
            let plan: Plan = world.plan(&desired, PlanOptions::default()).await.expect("plan");
            world.iam.set_faults(Faults { rate_limit: Some(rate), ..Default::default() });
            let limiter = Arc::new(AdaptiveRate::new(1.0, 500.0));
            let iam = Resilient::new(world.iam.clone(), RetryPolicy::default()).with_limiter(limiter);
            world.calls.reset();
            let start = tokio::time::Instant::now();
            let report = apply::apply(
                &plan,
                Providers { cluster: &world.cluster, iam: &iam, kube: &world.kube, pod_identity: &iam, directory: &world.directory },
                &ApplyOptions::default(),
                &Quiet,
            )
            .await;
            let elapsed = start.elapsed().as_secs_f64();
            let calls = world.calls.snapshot();
            let attempts: u64 = ["CreateRole", "PutRolePolicy"].iter().map(|op| calls.get(op).copied().unwrap_or(0)).sum();
            let throttled = iam.retries().get(&kfp_tenant_core::ports::ErrorKind::Throttled).copied().unwrap_or(0);
            let succeeded = attempts - throttled;
            let failed_tenants = report.failed();
            println!(
                "{rate:>6} {succeeded:>10} {throttled:>12} {elapsed:>10.1} {:>10.3} {failed_tenants:>8}",
                succeeded as f64 / elapsed / rate
            );
        });
    }
    println!("  rate/R = successful IAM calls per second over R; time is virtual (paused clock), calls are real.");

    println!("\nB5 no-op plan of 2,000 tenants with IAM at R = 10 calls/s, per role and auto (virtual time)");
    println!("{:>9} {:>10} {:>12} {:>10}", "refresh", "IAM calls", "throttled", "time (s)");
    for mode in [RefreshMode::PerRole, RefreshMode::Auto] {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
        rt.block_on(async {
            let (world, desired) = applied(2_000).await;
            world.iam.set_faults(Faults { rate_limit: Some(10.0), ..Default::default() });
            let iam = Resilient::new(world.iam.clone(), RetryPolicy::default()).with_limiter(Arc::new(AdaptiveRate::new(1.0, 500.0)));
            world.calls.reset();
            let start = tokio::time::Instant::now();
            let observed = refresh(
                &ReadSet::for_desired(&desired, false),
                Providers { cluster: &world.cluster, iam: &iam, kube: &world.kube, pod_identity: &iam, directory: &world.directory },
                10,
                mode,
            )
            .await
            .expect("refresh");
            let plan = kfp_tenant_core::plan::plan(&desired, &observed, PlanOptions::default()).expect("plan");
            let elapsed = start.elapsed().as_secs_f64();
            assert!(!plan.has_changes());
            let calls = world.calls.snapshot();
            let iam_ops = ["GetRole", "GetRolePolicy", "ListRoles", "GetAccountAuthorizationDetails", "GetAccountSummary"];
            let iam_calls: u64 = iam_ops.iter().map(|op| calls.get(op).copied().unwrap_or(0)).sum();
            let throttled = iam.retries().get(&kfp_tenant_core::ports::ErrorKind::Throttled).copied().unwrap_or(0);
            println!("{mode:>9} {iam_calls:>10} {throttled:>12} {elapsed:>10.1}");
        });
    }
    println!(
        "  IAM calls include throttled attempts; auto reads the 2,000 roles in bulk (GetAccountSummary, 2 pages each of GetAccountAuthorizationDetails and ListRoles)."
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [flag, n, mode] = args.as_slice()
        && flag == "--b1-child"
    {
        b1_child(n.parse().expect("a size"), mode.parse().expect("a refresh mode"), 5);
        return;
    }
    let only = args.first().map(String::as_str);
    let want = |name: &str| only.is_none_or(|o| o == name);
    println!("machine: {} cores; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), std::env::consts::ARCH);
    if want("b1") {
        b1();
    }
    if want("b2") {
        b2();
    }
    if want("b4") {
        b4();
    }
    if want("b5") {
        b5();
    }
}
