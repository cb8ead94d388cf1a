//! The edges of issue #11, each through the built binary against moto and
//! the Kubernetes fake: the wrong cluster, grants left behind, drift of role
//! annotations, interrupts, timeouts, a closed pipe, a stale lock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kfp_tenant_core::ports::IamApi;
use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer, ROLE_ARN_ANNOTATION};
use serde_json::json;

/// A scratch folder with a kubeconfig for `server`.
fn scratch(name: &str, server: &FakeApiServer) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kfp-tenant-edges-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kubeconfig"), server.kubeconfig()).unwrap();
    dir
}

fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn tenants(cluster: &str, body: &str) -> String {
    format!("cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n{body}")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"));
    cmd.args(args).env("KUBECONFIG", dir.join("kubeconfig")).env("NO_COLOR", "1").env_remove("AWS_PROFILE").stdin(Stdio::null());
    cmd
}

fn kfp(dir: &Path, args: &[&str]) -> Run {
    let out = command(dir, args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The write calls a `--stats` line reports.
fn writes(stderr: &str) -> Vec<String> {
    let stats = stderr.lines().find(|l| l.starts_with("API calls:")).unwrap_or_else(|| panic!("no --stats line: {stderr}"));
    let writes = ["Create", "Delete", "Put", "Update", "Tag", "Untag", "PATCH", "DELETE", "POST ", "PUT "];
    stats
        .split(['(', ',', ')'])
        .map(str::trim)
        .filter(|op| writes.iter().any(|w| op.starts_with(w)) && !op.contains("leases"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_file_for_another_cluster_is_refused_before_anything_is_listed_or_written() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-demo").await;
    support::cluster_with_provider(&aws, "edge-other").await;
    let server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    let dir = scratch("wrong-cluster", &server);
    let demo = file(
        &dir,
        "demo.yaml",
        &tenants("edge-demo", "  - namespace: team-a\n    owner: a@example.com\n  - namespace: team-b\n    owner: b@example.com\n"),
    );
    let bound = kfp(&dir, &["apply", "-f", &demo, "--bind-cluster", "--auto-approve", "--wait", "--timeout", "20s"]);
    assert_eq!(bound.code, 0, "{}{}", bound.stdout, bound.stderr);
    assert!(bound.stdout.contains("cluster_identity"), "the first apply records the cluster: {}", bound.stdout);
    let record = server.object("configmaps", "kube-system", "kfp-tenant-cluster").unwrap();
    assert_eq!(record["data"]["clusterArn"], "arn:aws:eks:us-west-2:123456789012:cluster/edge-demo");

    // The same Kubernetes API, a tenants file for another EKS cluster, even with --prune.
    let other = file(&dir, "other.yaml", &tenants("edge-other", "  - namespace: team-c\n    owner: c@example.com\n"));
    for args in [&["plan", "-f", &other, "--stats"][..], &["apply", "-f", &other, "--prune", "--auto-approve", "--stats"][..]] {
        let refused = kfp(&dir, args);
        assert_eq!(refused.code, 1, "{args:?}: {}{}", refused.stdout, refused.stderr);
        assert!(
            refused.stderr.contains("is not EKS cluster edge-other (arn:aws:eks:us-west-2:123456789012:cluster/edge-other)"),
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("names arn:aws:eks:us-west-2:123456789012:cluster/edge-demo") && refused.stderr.contains("--context")
        );
        assert_eq!(writes(&refused.stderr), Vec::<String>::new(), "{}", refused.stderr);
        assert!(
            !refused.stderr.contains("LIST profiles") && !refused.stderr.contains("GET profiles") && !refused.stderr.contains("ListRoles"),
            "nothing was listed: {}",
            refused.stderr
        );
    }
    // --bind-cluster cannot override a record naming another cluster.
    let vouched = kfp(&dir, &["plan", "-f", &other, "--bind-cluster"]);
    assert_eq!(vouched.code, 1, "{}", vouched.stderr);
    for ns in ["team-a", "team-b"] {
        assert!(server.object("profiles", "", ns).is_some(), "{ns} untouched");
    }
    let plan = kfp(&dir, &["plan", "-f", &demo, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "the right file still plans no changes: {}{}", plan.stdout, plan.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn renaming_a_role_or_dropping_a_service_account_leaves_no_grant_behind() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-grants").await;
    let server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    support::bind(&server, "edge-grants");
    let dir = scratch("grants", &server);
    let before = file(
        &dir,
        "before.yaml",
        &tenants(
            "edge-grants",
            "  - namespace: team-a\n    owner: a@example.com\n    roleName: team-a-old\n    serviceAccounts: [default-editor, runner]\n",
        ),
    );
    let first = kfp(&dir, &["apply", "-f", &before, "--auto-approve", "--wait", "--timeout", "20s"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(server.object("serviceaccounts", "team-a", "runner").is_some());

    let after =
        file(&dir, "after.yaml", &tenants("edge-grants", "  - namespace: team-a\n    owner: a@example.com\n    roleName: team-a-new\n"));
    let plan = kfp(&dir, &["plan", "-f", &after]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    for expected in [
        r#"# tenant["team-a"].iam_role will be created"#,
        r#"# tenant["team-a"].deposed_role["team-a-old"] will be destroyed: the tenant's role is now team-a-new"#,
        r#"# tenant["team-a"].service_account["runner"] will be destroyed: it is no longer in the tenant's serviceAccounts"#,
    ] {
        assert!(plan.stdout.contains(expected), "missing {expected:?} in {}", plan.stdout);
    }
    let applied = kfp(&dir, &["apply", "-f", &after, "--auto-approve", "--wait", "--timeout", "20s"]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    // The old grant is gone: no role to assume, no account annotated with it.
    assert_eq!(aws.get_role("team-a-old").await.unwrap(), None);
    assert!(server.object("serviceaccounts", "team-a", "runner").is_none());
    let editor = server.object("serviceaccounts", "team-a", "default-editor").unwrap();
    assert_eq!(editor["metadata"]["annotations"][ROLE_ARN_ANNOTATION], "arn:aws:iam::123456789012:role/team-a-new");
    let trust = aws.get_role("team-a-new").await.unwrap().unwrap().trust_policy.to_compact_json();
    assert!(!trust.contains("runner"), "{trust}");
    assert_eq!(kfp(&dir, &["plan", "-f", &after, "--detailed-exitcode"]).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_role_annotation_removed_by_hand_is_drift_and_apply_restores_it() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-annotation").await;
    let mut server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    support::bind(&server, "edge-annotation");
    let dir = scratch("annotation", &server);
    let tenants = file(
        &dir,
        "t.yaml",
        &tenants("edge-annotation", "  - namespace: team-a\n    owner: a@example.com\n    serviceAccounts: [default-editor, runner]\n"),
    );
    assert_eq!(kfp(&dir, &["apply", "-f", &tenants, "--auto-approve", "--wait", "--timeout", "20s"]).code, 0);
    // The controller is down: nobody puts default-editor's annotation back.
    server.stop_controller();
    for sa in ["default-editor", "runner"] {
        server.edit_object("serviceaccounts", "team-a", sa, |o| {
            o["metadata"]["annotations"].as_object_mut().unwrap().remove(ROLE_ARN_ANNOTATION);
        });
    }
    let drift = kfp(&dir, &["plan", "-f", &tenants, "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(
        drift.stdout.contains(r#"~ tenant["team-a"].service_account["default-editor"]: its role annotation differs"#),
        "{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains(r#"~ tenant["team-a"].service_account["runner"]: it differs from the tenants file in role_arn"#),
        "{}",
        drift.stdout
    );
    let repaired = kfp(&dir, &["apply", "-f", &tenants, "--auto-approve"]);
    assert_eq!(repaired.code, 0, "{}{}", repaired.stdout, repaired.stderr);
    for sa in ["default-editor", "runner"] {
        let account = server.object("serviceaccounts", "team-a", sa).unwrap();
        assert_eq!(account["metadata"]["annotations"][ROLE_ARN_ANNOTATION], "arn:aws:iam::123456789012:role/team-a-edge-annotation-role");
    }
    assert_eq!(kfp(&dir, &["plan", "-f", &tenants, "--refresh-only", "--detailed-exitcode"]).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn ctrl_c_mid_apply_finishes_what_runs_releases_the_lock_and_a_rerun_converges() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-sigint").await;
    // A slow controller keeps each tenant's wait going for a while, and 60
    // tenants at parallelism 1 keep writes queued behind the first ones
    // (waits give their slot back, so only the writes queue).
    let server = FakeApiServer::start(FakeApiOptions { reconcile_delay: Duration::from_secs(3), ..Default::default() }).await.unwrap();
    support::bind(&server, "edge-sigint");
    let dir = scratch("sigint", &server);
    let body: String = (0..60).map(|i| format!("  - namespace: team-{i:02}\n    owner: o{i}@example.com\n")).collect();
    let tenants = file(&dir, "t.yaml", &tenants("edge-sigint", &body));
    // Output goes to files: 60 tenants' plan is more than a pipe holds, and
    // nobody reads the pipe while the run goes on.
    let (out_path, err_path) = (Path::new(&dir).join("sigint.out"), Path::new(&dir).join("sigint.err"));
    let mut child = command(&dir, &["apply", "-f", &tenants, "--auto-approve", "--wait", "--parallelism", "1"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // Interrupt once the first Profile is written: by then changes have been
    // made and many have not started, however loaded the machine is.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.object("profiles", "", "team-00").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the apply wrote no Profile in 20 s: {}", std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.object("leases", "kubeflow", "kfp-tenant-lock").is_some(), "the run holds the lock");
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let started = Instant::now();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "in-flight changes get 5 s: {:?}", started.elapsed());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Interrupt received: starting no new changes"), "{stderr}");
    assert!(stderr.contains("Interrupted: ") && stderr.contains(": not started"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(server.object("leases", "kubeflow", "kfp-tenant-lock").is_none(), "the lock was released");

    let rerun = kfp(&dir, &["apply", "-f", &tenants, "--auto-approve", "--wait", "--timeout", "60s"]);
    assert_eq!(rerun.code, 0, "{}{}", rerun.stdout, rerun.stderr);
    assert_eq!(kfp(&dir, &["plan", "-f", &tenants, "--detailed-exitcode"]).code, 0, "converged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_timeout_bounds_the_whole_wait_and_is_not_retried() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-timeout").await;
    // No controller: nothing ever makes the namespace, nothing releases a finalizer.
    let server = FakeApiServer::start(FakeApiOptions { controller: false, ..Default::default() }).await.unwrap();
    support::bind(&server, "edge-timeout");
    let dir = scratch("timeout", &server);
    let tenants = file(&dir, "t.yaml", &tenants("edge-timeout", "  - namespace: team-a\n    owner: a@example.com\n"));
    let started = Instant::now();
    let apply = kfp(&dir, &["apply", "-f", &tenants, "--auto-approve", "--wait", "--timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert!(took < Duration::from_secs(3), "--timeout 2s ended after {took:?}");
    assert!(apply.stderr.contains("gave up after ") && apply.stderr.contains("namespace team-a does not exist yet"), "{}", apply.stderr);

    server.edit_object("profiles", "", "team-a", |p| p["metadata"]["finalizers"] = json!(["profile-finalizer"]));
    let started = Instant::now();
    let destroy = kfp(&dir, &["destroy", "-f", &tenants, "--auto-approve", "--timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(destroy.code, 1, "{}", destroy.stderr);
    assert!(took < Duration::from_secs(3), "destroy --timeout 2s ended after {took:?}");
    assert!(
        destroy.stderr.contains("its finalizer profile-finalizer is waiting for the Kubeflow profile controller"),
        "{}",
        destroy.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_reader_that_closes_the_pipe_early_ends_the_program_quietly() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-pipe").await;
    let server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    support::bind(&server, "edge-pipe");
    let dir = scratch("pipe", &server);
    // Enough tenants that the plan outgrows the pipe's buffer.
    let body: String = (0..150).map(|i| format!("  - namespace: team-{i:03}\n    owner: o{i}@example.com\n")).collect();
    let tenants = file(&dir, "t.yaml", &tenants("edge-pipe", &body));
    let planfile = dir.join("big.plan").display().to_string();
    assert_eq!(kfp(&dir, &["plan", "-f", &tenants, "--out", &planfile]).code, 0);
    for args in [&["plan", "-f", &tenants][..], &["show", &planfile, "--json"][..]] {
        let mut child = command(&dir, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // `head -1`: the reader goes away after one line.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(!first.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_unlock_removes_only_the_lock_it_names() {
    let server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    let dir = scratch("unlock", &server);
    let now = kfp_tenant_testkit::apiserver::now_micro();
    server.put_object(
        "leases",
        "kubeflow",
        json!({"metadata": {"name": "kfp-tenant-lock", "annotations": {"kfp-tenant/lock-id": "0123456789abcdef"}},
            "spec": {"holderIdentity": "kfp-tenant apply by carol@ci (pid 1)", "leaseDurationSeconds": 60, "renewTime": now, "acquireTime": now}}),
    );
    let wrong = kfp(&dir, &["force-unlock", "fedcba9876543210", "--force"]);
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("the apply lock now has ID 0123456789abcdef (kfp-tenant apply by carol@ci (pid 1)), not fedcba9876543210"),
        "{}",
        wrong.stderr
    );
    assert!(server.object("leases", "kubeflow", "kfp-tenant-lock").is_some());
    let unasked = kfp(&dir, &["force-unlock", "0123456789abcdef"]);
    assert_eq!(unasked.code, 1, "without a terminal it asks nobody: {}", unasked.stderr);
    assert!(unasked.stderr.contains("--force"), "{}", unasked.stderr);
    let done = kfp(&dir, &["force-unlock", "0123456789abcdef", "--force"]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("is held by kfp-tenant apply by carol@ci (pid 1)") && done.stdout.contains("was removed"),
        "{}",
        done.stdout
    );
    assert!(server.object("leases", "kubeflow", "kfp-tenant-lock").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn eks_auth_runs_the_life_cycle_from_aws_credentials_alone() {
    let aws = support::aws().await;
    support::cluster_with_provider(&aws, "edge-eks-auth").await;
    let moto = support::moto_endpoint();
    let eks_auth = Some(kfp_tenant_testkit::apiserver::EksAuth { sts: moto.clone(), account: "123456789012".into() });
    let server = FakeApiServer::start(FakeApiOptions { eks_auth, ..Default::default() }).await.unwrap();
    let dir = scratch("eks-auth", &server);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tenants = file(&dir, "t.yaml", &tenants("edge-eks-auth", "  - namespace: team-a\n    owner: a@example.com\n"));
    // No kubeconfig anywhere: not in KUBECONFIG, not in ~/.kube.
    let run = |args: &[&str]| {
        let mut cmd = command(&dir, args);
        cmd.env_remove("KUBECONFIG").env("HOME", &home).env_remove("KUBERNETES_SERVICE_HOST");
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let url = server.url();
    let endpoint = ["--eks-auth", "--eks-endpoint", url.as_str()];
    let apply =
        run(&[&["apply", "-f", &tenants, "--bind-cluster", "--auto-approve", "--wait", "--timeout", "20s"][..], &endpoint].concat());
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let plan = run(&[&["plan", "-f", &tenants, "--detailed-exitcode"][..], &endpoint].concat());
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let destroy = run(&[&["destroy", "-f", &tenants, "--auto-approve"][..], &endpoint].concat());
    assert_eq!(destroy.code, 0, "{}{}", destroy.stdout, destroy.stderr);
    assert_eq!(server.requests().get("UNAUTHORIZED"), None, "every request carried a token STS accepted");
    assert!(server.requests().contains_key("PATCH profiles") && server.requests().contains_key("DELETE profiles"));

    // Without a token the fake says so, as EKS does.
    let anonymous = kfp_tenant_testkit::apiserver::kubeconfig(&url);
    std::fs::write(dir.join("kubeconfig"), anonymous).unwrap();
    let refused = kfp(&dir, &["plan", "-f", &tenants]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("Unauthorized: no bearer token"), "{}", refused.stderr);
}
