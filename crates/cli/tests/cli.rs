//! The built `kfp-tenant` binary against moto (AWS) and the testkit's
//! Kubernetes API fake, as an operator runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kfp_tenant_core::ports::IamApi;
use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer};

/// One cluster in moto and a fresh Kubernetes fake, with a scratch folder.
struct Setup {
    cluster: String,
    issuer_host: String,
    _server: FakeApiServer,
    dir: PathBuf,
}

impl Setup {
    async fn new(cluster: &str) -> Self {
        let aws = support::aws().await;
        let issuer = support::cluster_with_provider(&aws, cluster).await;
        support::ensure_bucket(&support::moto_endpoint(), "kfp-artifacts").await;
        let server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
        support::bind(&server, cluster);
        let dir = std::env::temp_dir().join(format!("kfp-tenant-cli-{}-{cluster}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kubeconfig"), server.kubeconfig()).unwrap();
        Setup { cluster: cluster.to_owned(), issuer_host: issuer.trim_start_matches("https://").to_owned(), _server: server, dir }
    }

    /// Writes a tenants file for this cluster with these namespaces.
    fn tenants(&self, name: &str, namespaces: &[&str]) -> PathBuf {
        let mut text = format!("cluster: {}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n", self.cluster);
        for ns in namespaces {
            text.push_str(&format!("  - namespace: {ns}\n    owner: {ns}@example.com\n"));
        }
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn kfp(&self, args: &[&str]) -> Run {
        kfp_with(args, &self.dir.join("kubeconfig"))
    }

    /// Output with the run's random parts (moto's issuer id) replaced.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.issuer_host, "oidc.eks.us-west-2.amazonaws.com/id/[ISSUER]")
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kfp_with(args: &[&str], kubeconfig: &Path) -> Run {
    kfp_env(args, kubeconfig, &[])
}

/// [`kfp_with`], with more environment variables.
fn kfp_env(args: &[&str], kubeconfig: &Path, env: &[(&str, &str)]) -> Run {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(args)
        .envs(env.iter().copied())
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("run kfp-tenant");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn plan_exits_2_before_apply_and_0_after() {
    let s = Setup::new("cli-cycle").await;
    let file = s.tenants("tenants.yaml", &["team-a"]);
    let plan = s.kfp(&["plan", "-f", path(&file), "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    insta::assert_snapshot!("plan_create.txt", s.redact(&plan.stdout));
    let json = s.kfp(&["plan", "-f", path(&file), "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    insta::assert_snapshot!("plan_create.json", s.redact(&json.stdout));

    let apply = s.kfp(&["apply", "-f", path(&file), "--auto-approve", "--wait", "--timeout", "20s", "--stats"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains("Apply complete! Resources: 5 added, 0 changed, 0 destroyed."), "{}", apply.stdout);
    assert!(
        apply.stderr.contains("CreateRole=1") && apply.stderr.contains("PutRolePolicy=1") && apply.stderr.contains("PATCH profiles=1"),
        "{}",
        apply.stderr
    );

    let again = s.kfp(&["plan", "-f", path(&file), "--detailed-exitcode", "--stats"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    assert!(
        !again.stderr.contains("Create") && !again.stderr.contains("Put") && !again.stderr.contains("PATCH"),
        "a no-op plan writes nothing: {}",
        again.stderr
    );

    let in_sync = s.kfp(&["plan", "-f", path(&file), "--refresh-only", "--detailed-exitcode"]);
    assert_eq!((in_sync.code, in_sync.stdout.trim()), (0, "No drift: every existing resource matches the tenants file."));
    let aws = support::aws().await;
    aws.update_role(&format!("team-a-{}-role", s.cluster), Some("edited by hand"), 3600).await.unwrap();
    let drifted = s.kfp(&["plan", "-f", path(&file), "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(drifted.code, 2, "{}", drifted.stdout);
    assert!(
        drifted.stdout.contains(r#"~ tenant["team-a"].iam_role: it differs from the tenants file in description"#),
        "{}",
        drifted.stdout
    );

    let destroy = s.kfp(&["destroy", "-f", path(&file), "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.stderr);
    assert!(destroy.stdout.contains("Destroy complete! Resources: 3 destroyed."), "{}", destroy.stdout);
}

/// A Pod Identity tenant through the binary, with EKS's Pod Identity API at
/// its own endpoint (`AWS_ENDPOINT_URL_EKS`, as the SDK reads it; the
/// emulator passes every other EKS call through to moto): apply, a no-op
/// plan, the move to IRSA as a plan, destroy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_pod_identity_tenant_through_the_binary() {
    use kfp_tenant_testkit::pod_identity::{PodIdentityOptions, PodIdentityServer};
    let s = Setup::new("cli-pods").await;
    let eks = PodIdentityServer::start(&support::moto_endpoint(), PodIdentityOptions::default()).await.unwrap();
    let write = |road: &str| {
        let text = format!(
            "cluster: {}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: team-p\n    owner: p@example.com\n    identity: {road}\n",
            s.cluster
        );
        let path = s.dir.join(format!("{road}.yaml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let (pods, irsa) = (write("podIdentity"), write("irsa"));
    let kubeconfig = s.dir.join("kubeconfig");
    let kfp = |args: &[&str]| kfp_env(args, &kubeconfig, &[("AWS_ENDPOINT_URL_EKS", eks.url())]);

    let apply = kfp(&["apply", "-f", path(&pods), "--auto-approve", "--wait", "--timeout", "20s", "--stats"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains("Apply complete! Resources: 6 added, 0 changed, 0 destroyed."), "{}", apply.stdout);
    assert!(apply.stderr.contains("CreatePodIdentityAssociation=1"), "{}", apply.stderr);
    let role = format!("arn:aws:iam::123456789012:role/team-p-{}-role", s.cluster);
    assert_eq!(eks.associations(), vec![("team-p".to_owned(), "default-editor".to_owned(), role.clone())]);

    let again = kfp(&["plan", "-f", path(&pods), "--detailed-exitcode", "--stats"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stderr.contains("ListPodIdentityAssociations=1") && again.stderr.contains("DescribePodIdentityAssociation=1"),
        "{}",
        again.stderr
    );

    let moved = kfp(&["apply", "-f", path(&irsa), "--auto-approve", "--wait", "--timeout", "20s"]);
    assert_eq!(moved.code, 0, "{}{}", moved.stdout, moved.stderr);
    assert!(moved.stdout.contains(r#"tenant["team-p"].trust_statement["podIdentity"]"#), "{}", moved.stdout);
    assert_eq!(eks.associations(), vec![]);
    assert_eq!(kfp(&["plan", "-f", path(&irsa), "--detailed-exitcode"]).code, 0);

    let destroy = kfp(&["destroy", "-f", path(&irsa), "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.stderr);
}

/// On a terminal (a pty, through `script`), apply draws a live line with
/// done/total above which the per-resource lines scroll; without one its
/// lines carry no control characters; `--progress json` is one event a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn progress_is_a_live_line_on_a_terminal_and_plain_or_json_otherwise() {
    let s = Setup::new("cli-progress").await;
    let file = s.tenants("tenants.yaml", &["team-a", "team-b", "team-c"]);
    let command = format!("{} apply -f {} --auto-approve", env!("CARGO_BIN_EXE_kfp-tenant"), path(&file));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("KUBECONFIG", s.dir.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) runs the binary on a pty");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(terminal.contains("/15 changes, 0 failed"), "the live line: {terminal:?}");
    assert!(terminal.contains('\r') && terminal.contains("\x1b["), "drawn in place: {terminal:?}");
    assert!(terminal.contains(r#"tenant["team-b"].profile: Creation complete"#), "{terminal}");

    let destroy = s.kfp(&["destroy", "-f", path(&file), "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.stderr);
    assert!(
        !destroy.stderr.contains('\x1b') && !destroy.stderr.contains('\r'),
        "no control characters off a terminal: {:?}",
        destroy.stderr
    );
    assert!(destroy.stderr.contains(r#"tenant["team-c"].iam_role: Destruction complete"#), "{}", destroy.stderr);

    let json = s.kfp(&["apply", "-f", path(&file), "--auto-approve", "--progress", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let before = &json.stderr[..json.stderr.find('{').unwrap()];
    assert!(!before.starts_with('\n') && !before.ends_with("\n\n"), "no blank line before the events: {:?}", json.stderr);
    let events: Vec<serde_json::Value> =
        json.stderr.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "finished").collect();
    assert_eq!(finished.len(), 15, "{}", json.stderr);
    assert_eq!(events.len(), 30, "a started and a finished event per change: {}", json.stderr);
    assert!(
        finished.iter().all(|e| e["outcome"] == "done" && e["address"].is_string() && e["elapsed_seconds"].is_number()),
        "{finished:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn a_saved_plan_applies_and_a_stale_one_is_refused() {
    let s = Setup::new("cli-saved").await;
    let file = s.tenants("tenants.yaml", &["team-a", "team-b"]);
    let planfile = s.dir.join("tenants.plan");
    let plan = s.kfp(&["plan", "-f", path(&file), "--out", path(&planfile)]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let show = s.kfp(&["show", path(&planfile), "--json"]);
    assert!(show.stdout.contains("\"format_version\": \"2.0\""), "{}", show.stdout);

    // --wait: the next plan must not see the controller still at work.
    let apply = s.kfp(&["apply", path(&planfile), "--wait"]);
    assert_eq!(apply.code, 0, "a saved plan asks nothing: {}{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains("10 added"), "{}", apply.stdout);

    // A plan made now, then someone edits team-b's role before it is applied.
    let file_b = s.tenants("b.yaml", &["team-b"]);
    let _ = std::fs::remove_file(&planfile);
    assert_eq!(s.kfp(&["plan", "-f", path(&file_b), "--out", path(&planfile)]).code, 0);
    let aws = support::aws().await;
    aws.update_role(&format!("team-b-{}-role", s.cluster), Some("edited by hand"), 3600).await.unwrap();
    let stale = s.kfp(&["apply", path(&planfile)]);
    assert_eq!(stale.code, 1);
    assert!(
        stale.stderr.contains(r#"the saved plan is stale: tenant["team-b"].iam_role changed since it was made; run plan again"#),
        "{}",
        stale.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn an_unmanaged_role_is_refused_then_adopted() {
    let s = Setup::new("cli-adopt").await;
    let aws = support::aws().await;
    let name = format!("team-a-{}-role", s.cluster);
    aws.create_role(&kfp_tenant_testkit::unmanaged_role(&name)).await.unwrap();
    let file = s.tenants("tenants.yaml", &["team-a"]);
    let refused = s.kfp(&["apply", "-f", path(&file), "--auto-approve"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains(&format!("IAM role {name} exists but was not created by kfp-tenant")), "{}", refused.stderr);
    assert!(refused.stderr.contains("--adopt"), "{}", refused.stderr);

    let adopted = s.kfp(&["apply", "-f", path(&file), "--auto-approve", "--adopt"]);
    assert_eq!(adopted.code, 0, "{}{}", adopted.stdout, adopted.stderr);
    let tags = aws.get_role(&name).await.unwrap().unwrap().tags;
    assert_eq!(tags["kfp-tenant/managed-by"], "kfp-tenant");
    assert_eq!(s.kfp(&["plan", "-f", path(&file), "--detailed-exitcode"]).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn prune_removes_a_dropped_tenant_and_target_limits_the_work() {
    let s = Setup::new("cli-prune").await;
    let both = s.tenants("both.yaml", &["team-a", "team-b"]);
    let only_a = s.kfp(&["apply", "-f", path(&both), "--auto-approve", "--target", "team-a"]);
    assert_eq!(only_a.code, 0, "{}", only_a.stderr);
    assert!(only_a.stdout.contains("5 added"), "--target applies one tenant (with its two pipeline ConfigMaps): {}", only_a.stdout);
    assert!(!only_a.stdout.contains("team-b"), "{}", only_a.stdout);
    let bad_target = s.kfp(&["plan", "-f", path(&both), "--target", "team-z"]);
    assert_eq!(bad_target.code, 1);
    assert!(bad_target.stderr.contains("--target team-z: no such tenant"), "{}", bad_target.stderr);

    assert_eq!(s.kfp(&["apply", "-f", path(&both), "--auto-approve"]).code, 0);
    let a = s.tenants("a.yaml", &["team-a"]);
    let plain = s.kfp(&["plan", "-f", path(&a), "--detailed-exitcode"]);
    assert_eq!(plain.code, 0, "without --prune a dropped tenant is left alone: {}", plain.stdout);
    let prune = s.kfp(&["apply", "-f", path(&a), "--auto-approve", "--prune"]);
    assert_eq!(prune.code, 0, "{}{}", prune.stdout, prune.stderr);
    assert!(prune.stdout.contains("3 destroyed"), "{}", prune.stdout);
    let aws = support::aws().await;
    assert_eq!(aws.get_role(&format!("team-b-{}-role", s.cluster)).await.unwrap(), None);
    assert!(aws.get_role(&format!("team-a-{}-role", s.cluster)).await.unwrap().is_some());

    // No tenants is a configuration too: planned as nothing to do, and with
    // --prune it removes every tenant of the cluster (after the usual plan).
    let none = s.tenants("none.yaml", &[]);
    std::fs::write(&none, std::fs::read_to_string(&none).unwrap().replace("tenants:\n", "tenants: []\n")).unwrap();
    let keep = s.kfp(&["plan", "-f", path(&none), "--detailed-exitcode"]);
    assert_eq!(keep.code, 0, "without --prune nothing changes: {}{}", keep.stdout, keep.stderr);
    let said = format!("{}{}", keep.stdout, keep.stderr);
    assert!(said.contains("tenant team-a is not in the tenants file"), "{said}");
    let all = s.kfp(&["apply", "-f", path(&none), "--auto-approve", "--prune"]);
    assert_eq!(all.code, 0, "{}{}", all.stdout, all.stderr);
    assert!(all.stdout.contains("3 destroyed"), "{}", all.stdout);
    assert_eq!(aws.get_role(&format!("team-a-{}-role", s.cluster)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn without_a_terminal_apply_needs_auto_approve() {
    let s = Setup::new("cli-tty").await;
    let file = s.tenants("tenants.yaml", &["team-a"]);
    let run = s.kfp(&["apply", "-f", path(&file)]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("stdin is not a terminal") && run.stderr.contains("--auto-approve"), "{}", run.stderr);
    let aws = support::aws().await;
    assert_eq!(aws.get_role(&format!("team-a-{}-role", s.cluster)).await.unwrap(), None, "nothing was created");
    let lock = s.kfp(&["apply", "-f", path(&file), "--auto-approve"]);
    assert_eq!(lock.code, 0, "the refused run released its lock: {}", lock.stderr);
}

/// An invalid file is refused before any call: AWS and Kubernetes point at a
/// closed port, and the error is still the validation one.
#[test]
fn an_invalid_file_exits_1_naming_the_field_and_calls_nothing() {
    let dir = std::env::temp_dir().join(format!("kfp-tenant-cli-invalid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, kfp_tenant_testkit::apiserver::kubeconfig("http://127.0.0.1:9")).unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "cluster: c\nregion: us-west-2\nbucket: b\ntenants: [{namespace: Team_A, owner: a@example.com}]\n",
            "tenants[0].namespace: \"Team_A\" is not a valid namespace",
        ),
        (
            "cluster: c\nregion: us-west-2\nbucket: bkt\ntenants: [{namespace: a, ownr: a@example.com}]\n",
            "tenants[0]: unknown field `ownr`",
        ),
        (
            &format!("cluster: {}\nregion: us-west-2\nbucket: bkt\ntenants: [{{namespace: a, owner: a@example.com}}]\n", "c".repeat(60)),
            "tenants[0].roleName: the default role name",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        for command in ["plan", "apply", "validate"] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"));
            let out = cmd
                .args([command, "-f", path(&file)])
                .env("KUBECONFIG", &kubeconfig)
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env("AWS_ACCESS_KEY_ID", "x")
                .env("AWS_SECRET_ACCESS_KEY", "x")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command} {text}: {stderr}");
            assert!(stderr.contains(expected), "{command}: expected {expected:?} in {stderr}");
            assert!(!stderr.contains("127.0.0.1:9") && !stderr.contains("connect"), "{command} made a call: {stderr}");
        }
    }
}

/// kubectl's `-f -`, and Terraform's habit of `apply FILE` with a tenants
/// file, answered with what to type.
#[test]
fn the_tenants_file_from_stdin_and_a_tenants_file_given_as_a_plan() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenants.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), std::fs::read_to_string(example).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "The tenants file is valid: 2 tenants on cluster demo.");

    let mut child = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"cluster: c\nregion: us-west-2\nbucket: b\ntenants: [{namespace: a, ownr: x}]\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("standard input is not a valid tenants file") && stderr.contains("unknown field `ownr`"), "{stderr}");

    let none = std::env::temp_dir().join("kfp-tenant-no-kubeconfig");
    let apply = kfp_with(&["apply", example], &none);
    assert_eq!(apply.code, 1);
    assert!(
        apply.stderr.contains("is a tenants file, not a saved plan: use `-f ") && apply.stderr.contains("tenants.yaml`"),
        "{}",
        apply.stderr
    );
}

kfp_tenant_testkit::on_both_backends!(a_rendered_directory_is_what_kubectl_applies);

/// `render --out DIR` writes what `kubectl apply -f DIR` takes as it is
/// (checked by kubectl itself, with the real API server's OpenAPI schemas
/// there; the fake has none, so kubectl checks only that every kind maps),
/// the IAM documents for review, and on a second render drops the files of
/// a tenant that left the file, but nothing it did not write.
async fn a_rendered_directory_is_what_kubectl_applies(backend: kfp_tenant_testkit::backend::Backend) {
    use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
    let kube = TestKube::start(backend, TestKubeOptions { controller: false, ..Default::default() }).await;
    let dir = std::env::temp_dir().join(format!("kfp-tenant-render-{}-{}", std::process::id(), kube.name("out")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (kube.name("team-a"), kube.name("team-b"));
    let tenants = dir.join("tenants.yaml");
    let file = |extra: bool| {
        let mut text = format!(
            "cluster: render\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: {a}\n    owner: a@example.com\n    serviceAccounts: [default-editor, pipeline-runner]\n"
        );
        if extra {
            text.push_str(&format!("  - namespace: {b}\n    owner: b@example.com\n    resourceQuota: {{hard: {{cpu: \"8\"}}}}\n"));
        }
        std::fs::write(&tenants, text).unwrap();
    };
    file(true);
    let out = dir.join("rendered");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("NOTES.txt"), "ours, not kfp-tenant's").unwrap();
    // Onto a file: refused saying so (it said only "File exists (os error 17)").
    let onto = dir.join("a-file");
    std::fs::write(&onto, "x").unwrap();
    let refused = kfp_with(&["render", "-f", path(&tenants), "--account-id", "123456789012", "--out", path(&onto)], kube.kubeconfig());
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("is a file, not a directory"), "{}", refused.stderr);
    let render = kfp_with(&["render", "-f", path(&tenants), "--account-id", "123456789012", "--out", path(&out)], kube.kubeconfig());
    assert_eq!(render.code, 0, "{}", render.stderr);
    for file in [
        format!("{a}.yaml"),
        format!("{b}.yaml"),
        "SUMMARY.md".into(),
        format!("iam/{a}/trust-policy.json"),
        format!("iam/{b}/inline-policy.json"),
    ] {
        assert!(out.join(&file).is_file(), "{file} was not written");
    }
    let trust: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(format!("iam/{a}/trust-policy.json"))).unwrap()).unwrap();
    assert_eq!(trust["Statement"][0]["Action"], "sts:AssumeRoleWithWebIdentity");

    let validate = if backend == Backend::Real { "--validate=strict" } else { "--validate=false" };
    let applied = Command::new("kubectl")
        .args(["apply", "--dry-run=client", validate, "-f", path(&out)])
        .env("KUBECONFIG", kube.kubeconfig())
        .output()
        .expect("kubectl is on the machine");
    let (stdout, stderr) = (String::from_utf8_lossy(&applied.stdout), String::from_utf8_lossy(&applied.stderr));
    assert!(applied.status.success(), "kubectl refused the rendered directory: {stderr}");
    for expected in [
        format!("profile.kubeflow.org/{a} created (dry run)"),
        format!("profile.kubeflow.org/{b} created (dry run)"),
        "serviceaccount/pipeline-runner created (dry run)".into(),
    ] {
        assert!(stdout.contains(&expected), "{expected} in {stdout}");
    }

    // team-b leaves the file: its files go, the foreign files stay, even
    // policy files of a tenant kfp-tenant never rendered.
    std::fs::create_dir_all(out.join("iam/someone-else")).unwrap();
    std::fs::write(out.join("iam/someone-else/trust-policy.json"), "{}").unwrap();
    file(false);
    let render_to =
        |dir: &Path| kfp_with(&["render", "-f", path(&tenants), "--account-id", "123456789012", "--out", path(dir)], kube.kubeconfig());
    let again = render_to(&out);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!out.join(format!("{b}.yaml")).exists() && !out.join(format!("iam/{b}")).exists());
    assert!(out.join(format!("{a}.yaml")).is_file() && out.join("NOTES.txt").is_file());
    assert!(out.join("iam/someone-else/trust-policy.json").is_file());

    // Without the account id the Profiles would name arn:aws:iam::${AWS_ACCOUNT_ID}:...,
    // which kubectl applies silently: refused, nothing written.
    let fresh = dir.join("no-account");
    let placeholder = kfp_with(&["render", "-f", path(&tenants), "--out", path(&fresh)], kube.kubeconfig());
    assert_eq!(placeholder.code, 1);
    assert!(placeholder.stderr.contains("give --account-id"), "{}", placeholder.stderr);
    assert!(!fresh.exists(), "nothing is written");

    // A hand-written file of a name kfp-tenant would write is never overwritten.
    let hand = dir.join("hand-written");
    std::fs::create_dir_all(&hand).unwrap();
    std::fs::write(hand.join(format!("{a}.yaml")), "# mine\n").unwrap();
    let refused = render_to(&hand);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("would overwrite files kfp-tenant did not write") && refused.stderr.contains(&format!("{a}.yaml")),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(hand.join(format!("{a}.yaml"))).unwrap(), "# mine\n");
    assert!(!hand.join("SUMMARY.md").exists() && !hand.join("iam").exists(), "nothing else was written either");
}

/// Every command's help has one layout (help beside each option, not on the
/// next line) and a text for every argument; AWS_PROFILE's value is never
/// shown.
#[test]
fn every_help_documents_every_argument_in_one_layout() {
    let none = std::env::temp_dir().join("kfp-tenant-no-kubeconfig");
    for command in
        ["plan", "apply", "destroy", "show", "validate", "render", "graph", "verify", "audit", "force-unlock", "schema", "completions"]
    {
        let help = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
            .args([command, "--help"])
            .env("KUBECONFIG", &none)
            .env("AWS_PROFILE", "secret-profile-name")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success(), "{command}: {text}");
        assert!(!text.contains("secret-profile-name"), "{command} shows AWS_PROFILE's value");
        for line in
            text.lines().filter(|l| l.starts_with("  -") || l.starts_with("      --") || l.starts_with("  <") || l.starts_with("  ["))
        {
            let described = line.trim_start().split_once("  ").is_some_and(|(_, help)| !help.trim().is_empty());
            assert!(described, "{command}: {line:?} has no help beside it");
        }
    }
}

#[test]
fn offline_commands() {
    let dir = std::env::temp_dir().join(format!("kfp-tenant-cli-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let none = dir.join("no-kubeconfig");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenants.yaml");
    let validate = kfp_with(&["validate", "-f", example], &none);
    assert_eq!((validate.code, validate.stdout.trim()), (0, "The tenants file is valid: 2 tenants on cluster demo."));
    let render = kfp_with(
        &["render", "-f", example, "--account-id", "123456789012", "--oidc-issuer", "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"],
        &none,
    );
    assert_eq!(render.code, 0, "{}", render.stderr);
    insta::assert_snapshot!("render", render.stdout);
    // One YAML stream; each document says where `render --out` puts it.
    let documents: Vec<serde_json::Value> =
        render.stdout.split("---\n").filter(|d| !d.trim().is_empty()).map(|d| serde_yaml_ng::from_str(d).unwrap()).collect();
    let sources: Vec<&str> = render.stdout.lines().filter_map(|l| l.strip_prefix("# Source: ")).collect();
    assert_eq!(documents.len(), sources.len(), "a Source line per document");
    for (document, source) in documents.iter().zip(&sources) {
        let kubernetes = source.split(' ').next().is_some_and(|f| f.ends_with(".yaml"));
        assert_eq!(document.get("kind").is_some(), kubernetes, "{source}: {document}");
        assert_eq!(document.get("Statement").is_some(), !kubernetes, "{source}: {document}");
    }
    let graph = kfp_with(&["graph", "-f", example], &none);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    insta::assert_snapshot!("graph.dot", graph.stdout);
    let schema = kfp_with(&["schema"], &none);
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    assert_eq!(schema["additionalProperties"], false, "unknown fields are rejected");
    assert!(schema["properties"]["tenants"].is_object());
    // Usage errors exit 1 (2 means changes present); pruning a targeted plan is refused.
    let usage = kfp_with(&["apply", "-f", example, "--prune", "--target", "team-a"], &none);
    assert_eq!(usage.code, 1);
    assert!(usage.stderr.contains("'--prune' cannot be used with '--target <NAMESPACE>'"), "{}", usage.stderr);
    assert_eq!(kfp_with(&["plan", "--no-such-flag"], &none).code, 1);
    // Terraform's single-dash spelling gets a hint.
    let tf = kfp_with(&["plan", "-f", example, "-out=tenants.plan"], &none);
    assert_eq!(tf.code, 1);
    assert!(
        tf.stderr.contains("-out=tenants.plan: kfp-tenant's long options take two dashes") && tf.stderr.contains("--out tenants.plan"),
        "{}",
        tf.stderr
    );
    // --replace names a tenant's Profile of the input, nothing else.
    let role = kfp_with(&["plan", "-f", example, "--replace", r#"tenant["team-a"].iam_role"#], &none);
    assert_eq!(role.code, 1);
    assert!(role.stderr.contains("cannot be replaced on request: only a tenant's Profile can"), "{}", role.stderr);
    let unknown = kfp_with(&["plan", "-f", example, "--replace", r#"tenant["team-z"].profile"#], &none);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains(r#"--replace tenant["team-z"].profile: no such tenant in the input"#), "{}", unknown.stderr);
    assert_eq!(kfp_with(&["--version"], &none).code, 0);
    // A resync of nothing would spin: refused by the flag's parser.
    let spin = kfp_with(&["controller", "-f", example, "--resync", "0s"], &none);
    assert_eq!(spin.code, 1, "{}", spin.stderr);
    assert!(spin.stderr.contains("--resync") && spin.stderr.contains("at least 1s"), "{}", spin.stderr);
    let completions = kfp_with(&["completions", "bash"], &none);
    assert!(completions.stdout.contains("kfp-tenant"), "{}", completions.stderr);
    // The page's variables stand in for a tenants file.
    let page = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(["validate"])
        .envs([
            ("CLUSTER_NAME", "kf"),
            ("CLUSTER_REGION", "us-west-2"),
            ("S3_BUCKET", "bkt"),
            ("PROFILE_NAMESPACE", "team-a"),
            ("PROFILE_USER", "a@example.com"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout).trim(), "The tenants file is valid: 1 tenant on cluster kf.");
    // One tenant from the page's variables is a partial view: --prune with it
    // would destroy every other tenant of the cluster. Refused before any call.
    for verb in ["plan", "apply"] {
        let pruned = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
            .args([verb, "--prune", "--auto-approve"].into_iter().take(if verb == "plan" { 2 } else { 3 }))
            .envs([
                ("CLUSTER_NAME", "kf"),
                ("CLUSTER_REGION", "us-west-2"),
                ("S3_BUCKET", "bkt"),
                ("PROFILE_NAMESPACE", "solo"),
                ("PROFILE_USER", "a@example.com"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
                ("KUBECONFIG", none.to_str().unwrap()),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&pruned.stderr);
        assert_eq!(pruned.status.code(), Some(1), "{verb}: {stderr}");
        assert!(stderr.contains("--prune needs a tenants file (-f FILE)") && stderr.contains("partial view"), "{verb}: {stderr}");
        assert!(!stderr.contains("127.0.0.1:9") && !stderr.contains("onnect"), "{verb} made a call: {stderr}");
    }
}
