//! `kfp-tenant controller` through the binary, on a real kube-apiserver
//! (CRDs, status subresources, Leases) and moto: two replicas, one leading;
//! a KubeflowTenant made Ready; drift repaired within a resync; a CLI apply
//! refused while a controller leads; the leader killed with SIGKILL in the
//! middle of reconciling 50 tenants and the standby finishing them;
//! deletion and `Retain`; a bad spec refused by the API server's schema and
//! a reserved namespace Ready=False with nothing written; a leader cut off
//! from the API server stopping before its Lease ends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kfp_tenant_core::ports::IamApi;
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
use kfp_tenant_testkit::partition::Partition;
use serde_json::{Value, json};

use support::kubectl;

fn kfp(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Replica {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Replica {
    fn start(kubeconfig: &Path, settings: &Path, lock_namespace: &str, dir: &Path, n: usize, extra: &[&str]) -> Self {
        Self::start_with(kubeconfig, settings, lock_namespace, dir, n, extra, &[])
    }

    /// A replica with more environment (an AWS endpoint of its own, say).
    fn start_with(
        kubeconfig: &Path,
        settings: &Path,
        lock_namespace: &str,
        dir: &Path,
        n: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = dir.join(format!("controller-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
            .args(["controller", "-f", settings.to_str().unwrap(), "--resync", "3s", "--lease-duration", "6s"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--lock-namespace", lock_namespace])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env("HOSTNAME", format!("replica-{n}"))
            .envs(env.iter().copied())
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica { child, port, log }
    }

    /// A metric's value, once the replica serves.
    fn metric(&self, line_start: &str) -> Option<f64> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines().find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
    }

    fn leads(&self) -> bool {
        self.metric("kfp_tenant_leader ") == Some(1.0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms for at most `limit`.
async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within {limit:?}");
}

fn ready(resource: Option<&Value>) -> Option<String> {
    let conditions = resource?["status"]["conditions"].as_array()?;
    conditions.iter().find(|c| c["type"] == "Ready").map(|c| c["status"].as_str().unwrap_or_default().to_owned())
}

fn tenant(name: &str, extra: Value) -> String {
    let mut spec = json!({"owner": format!("{name}@example.com")});
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::to_string(
        &json!({"apiVersion": "kfp-tenant.io/v1alpha1", "kind": "KubeflowTenant", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

/// KubeflowTenants are cluster-scoped: a controller of one test would
/// reconcile another's on the shared API server (and the CRD is shared), so
/// these tests run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Moto, the real control plane with the KubeflowTenant CRD established,
/// a bound cluster, a lock namespace and a settings file for the replicas;
/// no other test's controller runs meanwhile.
struct Setup {
    _alone: tokio::sync::MutexGuard<'static, ()>,
    aws: kfp_tenant_aws::Aws,
    kube: TestKube,
    cluster: String,
    kubeconfig: PathBuf,
    dir: PathBuf,
    lock_namespace: String,
    settings: PathBuf,
}

async fn setup(tag: &str) -> Setup {
    setup_with(tag, TestKubeOptions::default()).await
}

async fn setup_with(tag: &str, options: TestKubeOptions) -> Setup {
    let alone = ONE_AT_A_TIME.lock().await;
    let aws = support::aws().await;
    let kube = TestKube::start(Backend::Real, options).await;
    let cluster = kube.cluster(tag);
    support::cluster_with_provider(&aws, &cluster).await;
    support::ensure_bucket(&support::moto_endpoint(), "kfp-artifacts").await;
    kube.bind(&cluster).await;
    let kubeconfig = kube.kubeconfig().to_owned();
    let dir = std::env::temp_dir().join(format!("kfp-tenant-controller-{}", kube.name("x")));
    std::fs::create_dir_all(&dir).unwrap();
    let lock_namespace = kube.name("ctl-lock");
    kube.ensure_namespace(&lock_namespace).await;
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, format!("cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants: []\n")).unwrap();

    // The CRD, as `kfp-tenant crd` prints it; the API server refuses bad specs.
    let crd = String::from_utf8(kfp(&kubeconfig, &["crd"]).stdout).unwrap();
    let (ok, said) = kubectl(&kubeconfig, &["apply", "--server-side", "--force-conflicts", "-f", "-"], &crd);
    assert!(ok, "{said}");
    let (ok, said) =
        kubectl(&kubeconfig, &["wait", "--for=condition=Established", "crd/kubeflowtenants.kfp-tenant.io", "--timeout=30s"], "");
    assert!(ok, "{said}");
    Setup { _alone: alone, aws, kube, cluster, kubeconfig, dir, lock_namespace, settings }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn two_replicas_reconcile_kubeflow_tenants_and_fail_over() {
    let Setup { _alone, aws, kube, cluster, kubeconfig, dir, lock_namespace, settings } = setup("ctl").await;
    let bad = kube.name("kt-bad");
    for (spec, says) in [
        (json!({"ownr": "x"}), "unknown field \"spec.ownr\""),
        (json!({"s3Access": "everything"}), "Unsupported value: \"everything\""),
        (json!({"pipelineRoot": "minio://mlpipeline/x"}), "spec.pipelineRoot"),
    ] {
        let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&bad, spec));
        assert!(!ok && said.contains(says), "{says:?} in {said}");
    }

    let first = Replica::start(&kubeconfig, &settings, &lock_namespace, &dir, 1, &[]);
    let second = Replica::start(&kubeconfig, &settings, &lock_namespace, &dir, 2, &[]);
    eventually("one replica leads", Duration::from_secs(30), async || {
        let leaders = [&first, &second].iter().filter(|r| r.leads()).count();
        let standby = [&first, &second].iter().any(|r| r.metric("kfp_tenant_leader ") == Some(0.0));
        leaders == 1 && standby
    })
    .await;
    let (leader, standby) = if first.leads() { (first, second) } else { (second, first) };

    // A KubeflowTenant becomes role, policy, Profile, Ready.
    let a = kube.name("kt-a");
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&a, json!({})));
    assert!(ok, "{said}");
    eventually("kt-a Ready", Duration::from_secs(60), async || {
        ready(kube.object("kubeflowtenants", "", &a).await.as_ref()).as_deref() == Some("True")
    })
    .await;
    let role = format!("{a}-{cluster}-role");
    let found = aws.get_role(&role).await.unwrap().expect("the tenant's role");
    let resource = kube.object("kubeflowtenants", "", &a).await.unwrap();
    assert_eq!(resource["status"]["roleArn"], found.arn, "{resource:#}");
    assert_eq!(resource["status"]["observedGeneration"], resource["metadata"]["generation"]);
    assert!(resource["metadata"]["finalizers"].as_array().unwrap().iter().any(|f| f == "kfp-tenant.io/cleanup"), "{resource:#}");
    assert!(kube.object("profiles", "", &a).await.is_some());
    // In sync, the next cycles write nothing to it (no status rewritten).
    let cycles = || leader.metric("kfp_tenant_reconciles_total{result=\"success\"} ").unwrap_or(0.0);
    let before = cycles();
    eventually("two more cycles", Duration::from_secs(30), async || cycles() >= before + 2.0).await;
    let later = kube.object("kubeflowtenants", "", &a).await.unwrap();
    let version = |r: &Value| r["metadata"]["resourceVersion"].clone();
    assert_eq!(version(&later), version(&resource), "{:#}\n{:#}", resource["status"], later["status"]);

    // A reserved namespace: Ready=False, nothing written.
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant("kube-public", json!({})));
    assert!(ok, "{said}");
    eventually("kube-public refused", Duration::from_secs(30), async || {
        ready(kube.object("kubeflowtenants", "", "kube-public").await.as_ref()).as_deref() == Some("False")
    })
    .await;
    let refused = kube.object("kubeflowtenants", "", "kube-public").await.unwrap();
    assert!(refused["status"]["conditions"][0]["message"].as_str().unwrap().contains("kube-public"), "{refused:#}");
    assert_eq!(aws.get_role(&format!("kube-public-{cluster}-role")).await.unwrap(), None);
    let (ok, said) = kubectl(&kubeconfig, &["delete", "kubeflowtenant", "kube-public", "--timeout=30s"], "");
    assert!(ok, "an invalid resource's finalizer goes with nothing to delete: {said}");

    // A CLI apply while a controller leads: refused, naming the holder.
    let cli = kfp(&kubeconfig, &["apply", "-f", settings.to_str().unwrap(), "--auto-approve", "--lock-namespace", &lock_namespace]);
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another run holds the apply lock") && stderr.contains("kfp-tenant controller on replica-"), "{stderr}");
    let plan = kfp(&kubeconfig, &["plan", "-f", settings.to_str().unwrap()]);
    assert!(plan.status.success(), "plan still works: {}", String::from_utf8_lossy(&plan.stderr));

    // Drift by hand (the inline policy deleted) is repaired within a resync.
    aws.iam_client().delete_role_policy().role_name(&role).policy_name(format!("kf-{a}-pipeline-s3")).send().await.unwrap();
    eventually("the inline policy put back", Duration::from_secs(30), async || {
        aws.iam_client().get_role_policy().role_name(&role).policy_name(format!("kf-{a}-pipeline-s3")).send().await.is_ok()
    })
    .await;

    // Many tenants at once; the leader killed (SIGKILL) in the middle.
    let many: Vec<String> = (0..50).map(|i| kube.name(&format!("kt-m{i:02}"))).collect();
    let all: String = many.iter().map(|n| format!("---\n{}\n", tenant(n, json!({})))).collect();
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &all);
    assert!(ok, "{said}");
    eventually("the leader at work on them", Duration::from_secs(30), async || {
        let mut some = false;
        for n in &many {
            some |= kube.object("kubeflowtenants", "", n).await.is_some_and(|r| r["metadata"]["finalizers"].is_array());
        }
        some
    })
    .await;
    let mut leader = leader;
    leader.child.kill().unwrap();
    let _ = leader.child.wait();
    let killed_at = Instant::now();
    eventually("the standby takes over", Duration::from_secs(30), async || standby.leads()).await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(15), "taken over after {took:?}: the Lease lasts 6 s");
    eventually("all 51 Ready", Duration::from_secs(180), async || {
        let mut all = true;
        for n in many.iter().chain([&a]) {
            all &= ready(kube.object("kubeflowtenants", "", n).await.as_ref()).as_deref() == Some("True");
        }
        all
    })
    .await;
    for n in &many {
        assert!(aws.get_role(&format!("{n}-{cluster}-role")).await.unwrap().is_some(), "{n}");
    }

    // Retain keeps the tenant; Delete deletes it as destroy does.
    let kept = kube.name("kt-r");
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&kept, json!({"deletionPolicy": "Retain"})));
    assert!(ok, "{said}");
    eventually("kt-r Ready", Duration::from_secs(60), async || {
        ready(kube.object("kubeflowtenants", "", &kept).await.as_ref()).as_deref() == Some("True")
    })
    .await;
    let names: Vec<&str> = many.iter().map(String::as_str).chain([a.as_str(), kept.as_str()]).collect();
    let mut delete = vec!["delete", "kubeflowtenant", "--timeout=300s"];
    delete.extend(names.iter().copied());
    let (ok, said) = kubectl(&kubeconfig, &delete, "");
    // (A real namespace controller takes its time over 52 namespaces.)
    assert!(ok, "{said}\n{}", standby.log());
    assert_eq!(aws.get_role(&role).await.unwrap(), None, "Delete: the role is gone");
    eventually("kt-a's Profile gone", Duration::from_secs(60), async || kube.object("profiles", "", &a).await.is_none()).await;
    assert!(aws.get_role(&format!("{kept}-{cluster}-role")).await.unwrap().is_some(), "Retain: the role stays");
    assert!(kube.object("profiles", "", &kept).await.is_some(), "Retain: the Profile stays");
    let reconciles = standby.metric("kfp_tenant_reconciles_total{result=\"success\"} ").unwrap_or(0.0);
    assert!(reconciles >= 1.0, "{}", standby.log());
    // Only a leader writes: each replica logs every change with its Lease,
    // and none before it led; the killed leader's and the new one's Leases differ.
    let lease_of = |log: &str| -> Option<String> {
        let leading = log.lines().position(|l| l.starts_with("Leading:"))?;
        assert!(log.lines().take(leading).all(|l| !l.contains("(lease ")), "a change before leading:\n{log}");
        log.lines().nth(leading)?.split("(ID ").nth(1).map(|id| id.trim_end_matches(')').to_owned())
    };
    let (killed_log, standby_log) = (leader.log(), standby.log());
    let (killed_lease, standby_lease) = (lease_of(&killed_log).unwrap(), lease_of(&standby_log).unwrap());
    assert_ne!(killed_lease, standby_lease);
    for (log, lease) in [(&killed_log, &killed_lease), (&standby_log, &standby_lease)] {
        assert!(log.lines().filter(|l| l.contains("(lease ")).all(|l| l.ends_with(&format!("(lease {lease})"))), "{log}");
    }
    assert!(standby_log.contains(&format!("(lease {standby_lease})")), "the standby made the rest: {standby_log}");
    drop(standby);

    // The retained tenant, removed with the CLI now that no controller leads.
    std::fs::write(
        dir.join("kept.yaml"),
        format!(
            "cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: {kept}\n    owner: {kept}@example.com\n"
        ),
    )
    .unwrap();
    eventually("the Lease released or expired", Duration::from_secs(20), async || {
        let out = kfp(
            &kubeconfig,
            &["destroy", "-f", dir.join("kept.yaml").to_str().unwrap(), "--auto-approve", "--lock-namespace", &lock_namespace],
        );
        out.status.success()
    })
    .await;
}

/// Tenants stay apart under one controller, beside a settings file's
/// tenant and a role made by hand: a KubeflowTenant naming another's role,
/// one named like the file's tenant and one naming the foreign role are
/// Ready=False (Conflict, Conflict, Refused) in the controller's words,
/// with nothing of the others touched; deleting them all at once, with
/// three that did become Ready, removes only those three tenants; Ready
/// comes only once `default-editor` carries the role; and a CLI plan of the
/// settings file names none of the KubeflowTenants' tenants, nor prunes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn tenants_stay_apart_under_one_controller() {
    let Setup { _alone, aws, kube, cluster, kubeconfig, dir, lock_namespace, settings } = setup("apart").await;
    let filed = kube.name("kt-file");
    std::fs::write(
        &settings,
        format!("cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: {filed}\n    owner: {filed}@example.com\n"),
    )
    .unwrap();
    let foreign = kube.name("hand-made");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws.iam_client().create_role().role_name(&foreign).assume_role_policy_document(trust).send().await.unwrap();
    let replica = Replica::start(&kubeconfig, &settings, &lock_namespace, &dir, 1, &[]);
    let file_role = format!("{filed}-{cluster}-role");
    eventually("the settings' tenant applied", Duration::from_secs(60), async || {
        aws.get_role(&file_role).await.unwrap().is_some() && kube.object("profiles", "", &filed).await.is_some()
    })
    .await;

    // b is Ready only once default-editor carries its role.
    let b = kube.name("kt-b");
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&b, json!({})));
    assert!(ok, "{said}");
    eventually("kt-b Ready", Duration::from_secs(60), async || {
        ready(kube.object("kubeflowtenants", "", &b).await.as_ref()).as_deref() == Some("True")
    })
    .await;
    let b_role = format!("{b}-{cluster}-role");
    let editor = kube.object("serviceaccounts", &b, "default-editor").await.expect("default-editor, once Ready");
    let role = aws.get_role(&b_role).await.unwrap().unwrap();
    assert_eq!(editor["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], role.arn, "{editor:#}");
    assert_eq!(role.tags.get("kfp-tenant/kubeflowtenant"), Some(&b), "{:?}", role.tags);
    let b_policy = format!("kf-{b}-pipeline-s3");

    // Three that cannot be: x names b's role, the file's namesake, y names the hand-made role.
    let x = kube.name("kt-x");
    let y = kube.name("kt-y");
    let doomed: Vec<String> = (0..3).map(|i| kube.name(&format!("kt-d{i}"))).collect();
    let all: String = [tenant(&x, json!({"roleName": b_role})), tenant(&filed, json!({})), tenant(&y, json!({"roleName": foreign}))]
        .into_iter()
        .chain(doomed.iter().map(|d| tenant(d, json!({}))))
        .map(|t| format!("---\n{t}\n"))
        .collect();
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &all);
    assert!(ok, "{said}");
    let condition = async |name: &str| kube.object("kubeflowtenants", "", name).await.map(|r| r["status"]["conditions"][0].clone());
    for (name, reason, says) in
        [(&x, "Conflict", b.clone()), (&filed, "Conflict", "settings file".to_owned()), (&y, "Refused", foreign.clone())]
    {
        eventually(&format!("{name} {reason}"), Duration::from_secs(60), async || {
            condition(name).await.is_some_and(|c| c["reason"] == reason)
        })
        .await;
        let c = condition(name).await.unwrap();
        let message = c["message"].as_str().unwrap();
        assert_eq!(c["status"], "False");
        assert!(message.contains(&says), "{name}: {message}");
        for file_words in ["tenants[", "--adopt", "spec.namespace"] {
            assert!(!message.contains(file_words), "{name} speaks the file's words ({file_words}): {message}");
        }
    }
    for d in &doomed {
        eventually(&format!("{d} Ready"), Duration::from_secs(60), async || {
            ready(kube.object("kubeflowtenants", "", d).await.as_ref()).as_deref() == Some("True")
        })
        .await;
    }
    let role_after = aws.get_role(&b_role).await.unwrap().unwrap();
    assert_eq!(role_after, role, "b's role untouched by x");
    assert!(aws.iam_client().get_role_policy().role_name(&b_role).policy_name(&b_policy).send().await.is_ok(), "b's policy stays");

    // A CLI plan of the settings file names no KubeflowTenant's tenant, nor prunes one.
    let plan = kfp(&kubeconfig, &["plan", "-f", settings.to_str().unwrap(), "--prune"]);
    let (out, err) = (String::from_utf8_lossy(&plan.stdout), String::from_utf8_lossy(&plan.stderr));
    assert!(plan.status.success(), "{err}");
    for name in [&b, &doomed[0]] {
        assert!(!out.contains(name.as_str()) && !err.contains(name.as_str()), "the file's plan names {name}:\n{out}\n{err}");
    }

    // Deleted together: only the three that owned anything lose it.
    let mut delete = vec!["delete", "kubeflowtenant", "--timeout=120s", x.as_str(), filed.as_str(), y.as_str()];
    delete.extend(doomed.iter().map(String::as_str));
    let (ok, said) = kubectl(&kubeconfig, &delete, "");
    assert!(ok, "{said}\n{}", replica.log());
    for d in &doomed {
        assert_eq!(aws.get_role(&format!("{d}-{cluster}-role")).await.unwrap(), None, "{d}'s role goes");
    }
    assert_eq!(aws.get_role(&b_role).await.unwrap().unwrap(), role, "b's role stays");
    assert!(aws.get_role(&file_role).await.unwrap().is_some(), "the file's tenant's role stays");
    assert!(aws.get_role(&foreign).await.unwrap().is_some(), "the hand-made role stays");
    let profile = kube.object("profiles", "", &filed).await.expect("the file's tenant's Profile stays");
    assert!(profile["metadata"]["deletionTimestamp"].is_null(), "{profile:#}");
    let (ok, said) = kubectl(&kubeconfig, &["delete", "kubeflowtenant", "--timeout=120s", b.as_str()], "");
    assert!(ok, "{said}");
}

/// No profile controller runs: the test plays it for one tenant only. The
/// other's namespace never appears: it is Waiting, never Ready, and Failed
/// once it waited `--timeout`; meanwhile the first becomes Ready and an edit
/// of it is applied, so one tenant's wait holds no other's changes back.
/// Then the CLI: a failed apply's rerun still plans the pipeline ConfigMaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn a_tenant_waiting_for_its_namespace_holds_no_other_back() {
    let options = TestKubeOptions { controller: false, ..Default::default() };
    let Setup { _alone, aws, kube, cluster, kubeconfig, dir, lock_namespace, settings } = setup_with("wait", options).await;
    let replica = Replica::start(&kubeconfig, &settings, &lock_namespace, &dir, 1, &["--timeout", "45s"]);
    let (w, e) = (kube.name("kt-w"), kube.name("kt-e"));
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&w, json!({})));
    assert!(ok, "{said}");
    let condition = async |name: &str| kube.object("kubeflowtenants", "", name).await.map(|r| r["status"]["conditions"][0].clone());
    eventually("kt-w Waiting", Duration::from_secs(30), async || condition(&w).await.is_some_and(|c| c["reason"] == "Waiting")).await;
    let waiting = condition(&w).await.unwrap();
    assert_eq!(waiting["status"], "False");
    assert!(waiting["message"].as_str().unwrap().contains(&format!("namespace {w}")), "{waiting:#}");

    // The test makes e's namespace and service accounts, as the profile controller would.
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&e, json!({})));
    assert!(ok, "{said}");
    eventually("kt-e's Profile", Duration::from_secs(30), async || kube.object("profiles", "", &e).await.is_some()).await;
    let arn = aws.get_role(&format!("{e}-{cluster}-role")).await.unwrap().expect("e's role").arn;
    let made = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": e, "annotations": {"owner": format!("{e}@example.com")}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default-editor", "namespace": e, "annotations": {"eks.amazonaws.com/role-arn": arn}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default-viewer", "namespace": e}},
    ]});
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &made.to_string());
    assert!(ok, "{said}");
    eventually("kt-e Ready beside the waiting kt-w", Duration::from_secs(30), async || {
        ready(kube.object("kubeflowtenants", "", &e).await.as_ref()).as_deref() == Some("True")
    })
    .await;
    let (ok, said) =
        kubectl(&kubeconfig, &["patch", "kubeflowtenant", &e, "--type", "merge", "-p", r#"{"spec":{"tags":{"team":"edited"}}}"#], "");
    assert!(ok, "{said}");
    eventually("kt-e's edit applied", Duration::from_secs(30), async || {
        aws.get_role(&format!("{e}-{cluster}-role"))
            .await
            .unwrap()
            .is_some_and(|r| r.tags.get("team").map(String::as_str) == Some("edited"))
    })
    .await;
    assert_eq!(ready(kube.object("kubeflowtenants", "", &w).await.as_ref()).as_deref(), Some("False"), "never Ready without its namespace");

    // Waited longer than --timeout: Failed, saying so.
    eventually("kt-w Failed", Duration::from_secs(90), async || condition(&w).await.is_some_and(|c| c["reason"] == "Failed")).await;
    let failed = condition(&w).await.unwrap();
    assert!(failed["message"].as_str().unwrap().contains("--timeout"), "{failed:#}\n{}", replica.log());
    // ... and stays so in the next cycles (one run by another edit of e,
    // and one after it: two more ended since the edit).
    let cycles = || replica.metric("kfp_tenant_reconciles_total{result=\"success\"} ").unwrap_or(0.0);
    let before = cycles();
    let (ok, said) =
        kubectl(&kubeconfig, &["patch", "kubeflowtenant", &e, "--type", "merge", "-p", r#"{"spec":{"tags":{"team":"again"}}}"#], "");
    assert!(ok, "{said}");
    eventually("kt-e's second edit applied, two cycles ended", Duration::from_secs(90), async || {
        let role = aws.get_role(&format!("{e}-{cluster}-role")).await.unwrap();
        role.is_some_and(|r| r.tags.get("team").map(String::as_str) == Some("again")) && cycles() >= before + 2.0
    })
    .await;
    assert_eq!(condition(&w).await.unwrap()["reason"], "Failed", "{}", replica.log());
    let (ok, said) = kubectl(&kubeconfig, &["delete", "kubeflowtenant", "--timeout=120s", &w, &e], "");
    assert!(ok, "{said}\n{}", replica.log());
    drop(replica);

    // The CLI: an apply whose namespace never appears fails; the rerun's
    // plan still has the pipeline ConfigMaps to write (not "No changes").
    let late = kube.name("kt-late");
    let file = dir.join("late.yaml");
    std::fs::write(
        &file,
        format!(
            "cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: {late}\n    owner: {late}@example.com\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let mut applied = None;
    eventually("the Lease released or expired", Duration::from_secs(30), async || {
        let out = kfp(&kubeconfig, &["apply", "-f", file, "--auto-approve", "--timeout", "3s", "--lock-namespace", &lock_namespace]);
        let held = String::from_utf8_lossy(&out.stderr).contains("another run holds the apply lock");
        applied = Some(out);
        !held
    })
    .await;
    let applied = applied.unwrap();
    assert_eq!(applied.status.code(), Some(1), "{}", String::from_utf8_lossy(&applied.stderr));
    let plan = kfp(&kubeconfig, &["plan", "-f", file, "--detailed-exitcode"]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{out}\n{}", String::from_utf8_lossy(&plan.stderr));
    assert!(out.contains(&format!(r#"tenant["{late}"].pipeline_config["kfp-launcher"]"#)), "{out}");
    let destroyed = kfp(&kubeconfig, &["destroy", "-f", file, "--auto-approve", "--lock-namespace", &lock_namespace]);
    assert!(destroyed.status.success(), "{}", String::from_utf8_lossy(&destroyed.stderr));
}

/// A TCP proxy to moto that a test takes down: from then on every
/// connection, open or new, is closed at once, as a service that is down.
struct Outage {
    endpoint: String,
    down: tokio::sync::watch::Sender<bool>,
}

impl Outage {
    async fn start(upstream: String) -> Outage {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (down, seen) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (mut seen, upstream) = (seen.clone(), upstream.clone());
                tokio::spawn(async move {
                    if *seen.borrow() {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = seen.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Outage { endpoint, down }
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// AWS down while the controller runs: the tenants' statuses say so in the
/// service's words, the log says so at WARN, the error count moves, and the
/// tenants are Ready again once AWS is back, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn aws_down_shows_on_the_statuses_and_at_warn() {
    let Setup { _alone, aws: _aws, kube, cluster: _, kubeconfig, dir, lock_namespace, settings } = setup("down").await;
    let outage = Outage::start(support::moto_endpoint().trim_start_matches("http://").to_owned()).await;
    let env = [("AWS_ENDPOINT_URL", outage.endpoint.as_str())];
    let replica = Replica::start_with(&kubeconfig, &settings, &lock_namespace, &dir, 1, &[], &env);
    let a = kube.name("kt-down");
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &tenant(&a, json!({})));
    assert!(ok, "{said}");
    let condition = async || kube.object("kubeflowtenants", "", &a).await.map(|r| r["status"]["conditions"][0].clone());
    eventually("kt-down Ready", Duration::from_secs(60), async || condition().await.is_some_and(|c| c["status"] == "True")).await;

    outage.set_down(true);
    let (ok, said) =
        kubectl(&kubeconfig, &["patch", "kubeflowtenant", &a, "--type", "merge", "-p", r#"{"spec":{"tags":{"team":"x"}}}"#], "");
    assert!(ok, "{said}");
    eventually("kt-down Failed", Duration::from_secs(60), async || condition().await.is_some_and(|c| c["reason"] == "Failed")).await;
    let failed = condition().await.unwrap();
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("dispatch failure") || message.contains("onnection"), "the service's words: {message}");
    // The statuses are written before the cycle ends, and with it its log line and count.
    eventually("a WARN line and the error count", Duration::from_secs(30), async || {
        let warned = replica.log().lines().any(|l| l.contains(" WARN ") && l.contains("reconcile failed"));
        warned && replica.metric("kfp_tenant_reconciles_total{result=\"error\"} ").unwrap_or(0.0) >= 1.0
    })
    .await;

    outage.set_down(false);
    eventually("kt-down Ready again", Duration::from_secs(90), async || condition().await.is_some_and(|c| c["status"] == "True")).await;
    let (ok, said) = kubectl(&kubeconfig, &["delete", "kubeflowtenant", "--timeout=120s", &a], "");
    assert!(ok, "{said}\n{}", replica.log());
}

/// The leader cut off from the API server (its AWS calls still going
/// through) while it reconciles: it cannot renew, so it stops writing and
/// exits before its Lease can end, and the standby, which takes the Lease
/// only once it has ended, finishes the tenants. No moment has two writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn a_leader_cut_off_from_the_api_server_stops_writing_before_its_lease_ends() {
    let Setup { _alone, aws, kube, cluster, kubeconfig, dir, lock_namespace, settings } = setup("cut").await;
    let partition = Partition::start(&kubeconfig, &dir.join("partitioned.kubeconfig")).await;
    // One change at a time, so that the cut always finds work left.
    let mut cut_off = Replica::start(&partition.kubeconfig, &settings, &lock_namespace, &dir, 1, &["--parallelism", "1"]);
    eventually("the first replica leads", Duration::from_secs(30), async || cut_off.leads()).await;
    let standby = Replica::start(&kubeconfig, &settings, &lock_namespace, &dir, 2, &[]);
    eventually("the second stands by", Duration::from_secs(30), async || standby.metric("kfp_tenant_leader ") == Some(0.0)).await;

    let many: Vec<String> = (0..30).map(|i| kube.name(&format!("kt-c{i:02}"))).collect();
    let all: String = many.iter().map(|n| format!("---\n{}\n", tenant(n, json!({})))).collect();
    let (ok, said) = kubectl(&kubeconfig, &["apply", "-f", "-"], &all);
    assert!(ok, "{said}");
    eventually("the leader at work on them", Duration::from_secs(30), async || cut_off.log().contains("(lease ")).await;
    partition.cut();
    let cut_at = Instant::now();

    // The standby leads only after the Lease ended; by then the cut-off
    // leader has stopped (its process has ended) and says why.
    let mut exited_first = None;
    eventually("the standby takes over", Duration::from_secs(30), async || {
        let leads = standby.leads();
        if leads {
            exited_first = Some(cut_off.child.try_wait().unwrap().is_some());
        }
        leads
    })
    .await;
    let took = cut_at.elapsed();
    assert_eq!(exited_first, Some(true), "the cut-off leader still ran when the standby led ({took:?} after the cut):\n{}", cut_off.log());
    assert!(cut_off.log().contains("Lost the Lease"), "{}", cut_off.log());
    assert!(took >= Duration::from_secs(2), "the standby led {took:?} after the cut: before the Lease (6 s, renewed every 2 s) could end");
    let writes_before = cut_off.log().lines().filter(|l| l.contains("(lease ")).count();

    eventually("all 30 Ready", Duration::from_secs(180), async || {
        let mut all = true;
        for n in &many {
            all &= ready(kube.object("kubeflowtenants", "", n).await.as_ref()).as_deref() == Some("True");
        }
        all
    })
    .await;
    for n in &many {
        assert!(aws.get_role(&format!("{n}-{cluster}-role")).await.unwrap().is_some(), "{n}");
    }
    assert_eq!(cut_off.log().lines().filter(|l| l.contains("(lease ")).count(), writes_before, "{}", cut_off.log());
    assert!(standby.log().contains("(lease "), "the standby made the rest: {}", standby.log());

    let mut delete = vec!["delete", "kubeflowtenant", "--timeout=300s"];
    delete.extend(many.iter().map(String::as_str));
    let (ok, said) = kubectl(&kubeconfig, &delete, "");
    assert!(ok, "{said}\n{}", standby.log());
}

/// `deploy/` as CI checks it: the real API server takes every object of
/// the kustomization (a server-side dry run: CRD, RBAC, Deployment, ...).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn the_deploy_kustomization_passes_a_server_side_dry_run() {
    // Its CRD is the one the controller tests apply meanwhile.
    let _alone = ONE_AT_A_TIME.lock().await;
    let kube = TestKube::start(Backend::Real, TestKubeOptions { controller: false, ..Default::default() }).await;
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let (ok, said) = kubectl(kube.kubeconfig(), &["apply", "--dry-run=server", "-k", deploy.to_str().unwrap()], "");
    assert!(ok, "{said}");
    for kind in ["customresourcedefinition.apiextensions.k8s.io/kubeflowtenants.kfp-tenant.io", "deployment.apps/kfp-tenant-controller"] {
        assert!(said.contains(kind), "{kind} in {said}");
    }
}

/// `deploy/crd.yaml` is what `kfp-tenant crd` prints.
#[test]
fn the_committed_crd_is_the_binarys() {
    let printed = kfp(Path::new("/nonexistent"), &["crd"]);
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crd.yaml")).unwrap();
    assert_eq!(String::from_utf8(printed.stdout).unwrap(), committed, "run: kfp-tenant crd > deploy/crd.yaml");
}

/// `deploy/rbac.yaml` holds the RBAC `kfp-tenant permissions --kubernetes
/// --controller` prints, `deploy/admission.yaml` its admission policy (for
/// deploy/'s service account, the default user).
#[test]
fn the_committed_rbac_and_admission_policy_are_the_generators() {
    let printed = kfp(Path::new("/nonexistent"), &["permissions", "--kubernetes", "--controller", "--lock-namespace", "kubeflow"]);
    let printed = String::from_utf8(printed.stdout).unwrap();
    let (rbac, admission) = printed.split_once(kfp_tenant_core::permissions::kubernetes::ADMISSION_HEADER).unwrap();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let committed = std::fs::read_to_string(deploy.join("rbac.yaml")).unwrap();
    let rbac = rbac.strip_suffix("---\n").unwrap();
    assert!(committed.contains(rbac), "run: kfp-tenant permissions --kubernetes --controller, into deploy/rbac.yaml");
    let committed = std::fs::read_to_string(deploy.join("admission.yaml")).unwrap();
    let expected = format!("{}{admission}", kfp_tenant_core::permissions::kubernetes::ADMISSION_HEADER);
    assert!(
        committed.ends_with(&expected),
        "run: kfp-tenant permissions --kubernetes --controller, its admission policy into deploy/admission.yaml"
    );
    assert!(committed.contains("username == \"system:serviceaccount:kubeflow:kfp-tenant\""), "deploy/'s service account");
}
