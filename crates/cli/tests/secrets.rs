//! No credential leaves kfp-tenant: with recognisable dummy secrets in the
//! environment and the kubeconfig, everything the tool writes (stdout, stderr
//! at the most verbose levels, the saved plan) is searched for them, and
//! for the shapes of the tokens `verify` handles (service-account JWTs, the
//! session credentials STS answers with).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer};

const SECRET_KEY: &str = "kfpTenantSecretKeyDoNotPrint0123456789abcd";
const SESSION_TOKEN: &str = "kfpTenantSessionTokenDoNotPrintXYZ";
const KUBE_TOKEN: &str = "kfpTenantKubeTokenDoNotPrint42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn no_secret_appears_in_any_output_log_or_plan_file() {
    let aws = support::aws().await;
    let issuer = support::cluster_with_provider(&aws, "secrets").await;
    // Tokens with the cluster's issuer, so that verify takes them to STS.
    let server = FakeApiServer::start(FakeApiOptions { sa_issuer: issuer, ..Default::default() }).await.unwrap();
    support::bind(&server, "secrets");
    support::ensure_bucket(&support::moto_endpoint(), "kfp-artifacts").await;
    let dir = std::env::temp_dir().join(format!("kfp-tenant-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig().replace("user: {}", &format!("user:\n    token: {KUBE_TOKEN}"))).unwrap();
    let file = dir.join("tenants.yaml");
    std::fs::write(&file, "cluster: secrets\nregion: us-west-2\nbucket: kfp-artifacts\ntenants:\n  - namespace: team-a\n    owner: a@example.com\n    serviceAccounts: [default-editor, runner]\n").unwrap();
    let planfile = dir.join("tenants.plan");
    let (f, p) = (file.to_str().unwrap(), planfile.to_str().unwrap());

    let runs: [(&[&str], Option<&str>); 8] = [
        (&["plan", "-f", f, "--out", p, "-vv", "--stats"], None),
        (&["show", p, "--json", "-vv"], None),
        (&["apply", p, "-vv", "--stats"], None),
        (&["plan", "-f", f, "--json", "-vv"], Some("trace")),
        (&["apply", "-f", f, "--auto-approve", "--wait", "-vv"], None),
        // Service-account tokens and the credentials STS trades them for.
        (&["verify", "-f", f, "-vv", "--stats"], Some("trace")),
        (&["verify", "-f", f, "--json", "-vv"], None),
        (&["destroy", "-f", f, "--auto-approve", "-vv"], Some("trace")),
    ];
    let mut written = String::new();
    for (args, rust_log) in runs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"));
        cmd.args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        if let Some(level) = rust_log {
            cmd.env("RUST_LOG", level);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        written.push_str(&stdout);
        written.push_str(&stderr);
    }
    written.push_str(&std::fs::read_to_string(&planfile).unwrap());
    assert!(written.len() > 10_000, "the runs logged verbosely ({} bytes)", written.len());
    assert!(written.contains("GetRole"), "the logs cover the AWS calls");
    assert!(written.contains("AssumeRoleWithWebIdentity") && written.contains("PutObject"), "verify went as far as STS and S3");
    // A JWT starts with `{"alg"`, an EKS token with its prefix; moto's session
    // tokens with this.
    for secret in [SECRET_KEY, SESSION_TOKEN, KUBE_TOKEN, "eyJhbGci", "k8s-aws-v1.", "FQoGZXIvYXdzE"] {
        let found = written.find(secret).map(|i| &written[i.saturating_sub(200)..(i + secret.len() + 50).min(written.len())]);
        assert_eq!(found, None, "a secret was written");
    }
}
