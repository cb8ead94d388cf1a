//! `kfp-tenant permissions --kubernetes` proven on a real kube-apiserver
//! (RBAC enforced): a service account bound to exactly the printed rules
//! runs the life cycle through the binary (apply --wait, plan, verify,
//! audit, destroy), and with each rule removed in turn something that needs
//! it fails (no rule is spare). AWS is moto, which here enforces nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubectl {args:?}: {text}");
    text
}

/// The binary as the bound service account; `Err` names the step that failed and why.
fn kfp(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => Ok(text),
        _ => Err(format!("{} failed: {text}", args[0])),
    }
}

/// The printed rules as (document index, rule index) pairs, and the YAML
/// without one of them.
fn without(yaml: &str, skip: Option<(usize, usize)>) -> String {
    yaml.split("---\n")
        .enumerate()
        .map(|(d, doc)| {
            let (head, rules) = doc.split_once("rules:\n").unwrap();
            let kept: Vec<&str> = rules
                .split("  # ")
                .filter(|r| !r.trim().is_empty())
                .enumerate()
                .filter(|(r, _)| skip != Some((d, *r)))
                .map(|(_, r)| r)
                .collect();
            let body: String = kept.iter().map(|r| format!("  # {r}")).collect();
            let body = if body.is_empty() { " []\n".to_owned() } else { format!("\n{body}") };
            format!("{head}rules:{body}")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_real_kube), ignore = "needs a real kube-apiserver: run scripts/test")]
async fn the_printed_rbac_is_enough_and_every_rule_is_needed() {
    let aws = support::aws().await;
    let kube = TestKube::start(Backend::Real, TestKubeOptions::default()).await;
    let cluster = kube.cluster("perm");
    support::cluster_with_provider(&aws, &cluster).await;
    support::ensure_bucket(&support::moto_endpoint(), "kfp-artifacts").await;
    kube.bind(&cluster).await;
    let admin = kube.kubeconfig().to_owned();
    let suffix = kube.name("");
    let lock = kube.name("perm-lock");
    kube.ensure_namespace(&lock).await;
    let dir = std::env::temp_dir().join(format!("kfp-tenant-permissions{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let printed = kfp(&admin, &["permissions", "--kubernetes", "--lock-namespace", &lock]).unwrap();
    let printed = printed.replace("name: kfp-tenant", &format!("name: kfp-tenant{suffix}"));
    let rules = printed.split("---\n").map(|d| d.matches("  # ").count()).collect::<Vec<_>>();

    // A service account of its own, and a kubeconfig with its token.
    let sa = format!("runner{suffix}");
    kubectl(&admin, &["-n", &lock, "create", "serviceaccount", &sa], "");
    let token = kubectl(&admin, &["-n", &lock, "create", "token", &sa, "--duration", "2h"], "").trim().to_owned();
    let admin_text = std::fs::read_to_string(&admin).unwrap();
    let admin_token = admin_text.split("token: ").nth(1).unwrap().split(['}', '\n']).next().unwrap().trim().to_owned();
    let as_sa: PathBuf = dir.join("kubeconfig");
    std::fs::write(&as_sa, admin_text.replace(&admin_token, &token)).unwrap();
    let bind = |variant: &str| {
        let subject = format!("[{{kind: ServiceAccount, name: {sa}, namespace: {lock}}}]");
        let bindings = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: kfp-tenant{suffix}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kfp-tenant{suffix}}}\nsubjects: {subject}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: kfp-tenant{suffix}-identity-record, namespace: kube-system}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kfp-tenant{suffix}-identity-record}}\nsubjects: {subject}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: kfp-tenant{suffix}-lock, namespace: {lock}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kfp-tenant{suffix}-lock}}\nsubjects: {subject}\n"
        );
        kubectl(&admin, &["apply", "-f", "-"], &format!("{variant}---\n{bindings}"));
        // The authorizer follows RBAC objects through its informers.
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    // The life cycle, stopping at the first step that fails.
    let mut run = 0;
    let mut life_cycle = || {
        run += 1;
        let ns = kube.name(&format!("perm-{run}"));
        let file = dir.join(format!("tenants-{run}.yaml"));
        std::fs::write(
            &file,
            format!(
                "cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: {ns}\n    owner: {ns}@example.com\n"
            ),
        )
        .unwrap();
        let file = file.to_str().unwrap().to_owned();
        let lock_args = ["--lock-namespace", lock.as_str()];
        let result = (|| {
            kfp(&as_sa, &["plan", "-f", &file])?;
            kfp(&as_sa, &[&["apply", "-f", &file, "--auto-approve", "--wait", "--timeout", "60s"][..], &lock_args].concat())?;
            kfp(&as_sa, &["plan", "-f", &file, "--detailed-exitcode"])?;
            kfp(&as_sa, &["verify", "-f", &file])?;
            kfp(&as_sa, &["audit", "-f", &file]).or_else(|e| if e.contains("findings") { Ok(e) } else { Err(e) })?;
            kfp(&as_sa, &[&["destroy", "-f", &file, "--auto-approve", "--timeout", "90s"][..], &lock_args].concat())
        })();
        (ns, file, result)
    };

    bind(&printed);
    let (_, _, all) = life_cycle();
    assert!(all.is_ok(), "the printed rules are enough: {all:?}");

    // Each rule removed in turn: something that needs it fails.
    let spare_here = [
        // The identity record is made by a cluster's first apply; the shared test server has it already.
        "the identity record: made by the first apply",
    ];
    for (doc, count) in rules.iter().enumerate() {
        for rule in 0..*count {
            let variant = without(&printed, Some((doc, rule)));
            let missing = printed.split("---\n").nth(doc).unwrap().split("  # ").nth(rule + 1).unwrap().lines().next().unwrap().to_owned();
            if spare_here.iter().any(|s| missing.starts_with(s)) {
                continue;
            }
            bind(&variant);
            let (ns, file, result) = life_cycle();
            let Err(failure) = result else { panic!("the rule \"{missing}\" was not needed by any step") };
            assert!(failure.contains("forbidden") || failure.contains("Forbidden"), "{missing}: {failure}");
            assert!(failure.contains("kfp-tenant permissions --kubernetes") || failure.contains("forbidden"), "{failure}");
            // What the cut-short run made goes, as the administrator.
            let _ = kfp(&admin, &["destroy", "-f", &file, "--auto-approve", "--timeout", "90s", "--lock-namespace", &lock]);
            let _ = ns;
        }
    }
}
