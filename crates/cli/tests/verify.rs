//! `verify` and `audit` through the binary. AWS is two motos: the suite's
//! (EKS, whose issuer the tokens carry) and one whose IAM policy enforcement
//! is switched on for the checks, so that S3 answers with the tenants' real
//! inline policies. The service-account tokens come from the Kubernetes API:
//! the fake's TokenRequest (ES256, issuer = moto's) and a real kube-apiserver's.
//! Each link is broken on purpose and must fail there and only there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kfp_tenant_core::ports::{ClusterApi, IamApi};
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
use kfp_tenant_testkit::on_both_backends;
use serde_json::{Value, json};

/// One test at a time may switch the enforcing moto.
fn enforcing_moto() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

struct Env {
    kubeconfig: std::path::PathBuf,
    /// Access key and secret of an administrator of the enforcing moto.
    admin: (String, String),
    /// STS through a proxy that signs AssumeRoleWithWebIdentity, which an
    /// enforcing moto refuses unsigned (real STS takes it unsigned).
    sts: kfp_tenant_testkit::signing_proxy::SigningProxy,
}

impl Env {
    /// Runs kfp-tenant against the enforcing moto (EKS on the suite's moto),
    /// as the administrator or with the suite's dummy credentials.
    fn kfp(&self, as_admin: bool, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"));
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("NO_COLOR", "1")
            .env("AWS_ENDPOINT_URL", support::enforcing_endpoint())
            .env("AWS_ENDPOINT_URL_EKS", support::moto_endpoint())
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        if as_admin {
            cmd.env("AWS_ACCESS_KEY_ID", &self.admin.0)
                .env("AWS_SECRET_ACCESS_KEY", &self.admin.1)
                .env("AWS_ENDPOINT_URL_STS", self.sts.url());
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `verify` with enforcement on.
    fn enforced(&self, args: &[&str]) -> (i32, String, String) {
        support::enforce(true);
        let answer = self.kfp(true, args);
        support::enforce(false);
        answer
    }

    /// `verify --json` with enforcement on: the report.
    fn verify(&self, file: &str) -> (i32, Value) {
        let (code, stdout, stderr) = self.enforced(&["verify", "-f", file, "--json"]);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
        (code, report)
    }
}

/// `namespace/service_account` -> link -> result, of a verify report.
fn results(report: &Value) -> Vec<(String, Vec<(String, String)>)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let who = format!("{}/{}", c["namespace"].as_str().unwrap(), c["service_account"].as_str().unwrap());
            let links = c["links"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l[0].as_str().unwrap().to_owned(), l[1]["result"].as_str().unwrap().to_owned()))
                .collect();
            (who, links)
        })
        .collect()
}

/// The one check of `who` failing at `link`, every other one passing.
fn fails_only_at(report: &Value, who: &str, link: &str) {
    for (account, links) in results(report) {
        let first_failure = links.iter().position(|(_, r)| r != "pass");
        if account == who {
            let at = first_failure.map(|i| links[i].0.clone());
            assert_eq!(at.as_deref(), Some(link), "{who}: {links:?}\n{report:#}");
            assert!(links[first_failure.unwrap() + 1..].iter().all(|(_, r)| r == "skipped"), "{links:?}");
        } else {
            assert_eq!(first_failure, None, "{account} should pass: {links:?}\n{report:#}");
        }
    }
}

fn problem<'a>(report: &'a Value, who: &str, link: &str) -> &'a str {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| format!("{}/{}", c["namespace"].as_str().unwrap(), c["service_account"].as_str().unwrap()) == who)
        .unwrap();
    let found = check["links"].as_array().unwrap().iter().find(|l| l[0] == link).unwrap();
    found[1]["problem"].as_str().unwrap_or_default()
}

on_both_backends!(moto: verify_proves_each_link_and_breaks_where_broken);

async fn verify_proves_each_link_and_breaks_where_broken(backend: Backend) {
    let main = support::aws().await;
    let probe_cluster = "verify-issuer";
    let issuer = support::cluster_with_provider(&main, probe_cluster).await;
    let kube = TestKube::start(backend, TestKubeOptions { sa_issuer: Some(issuer.clone()), ..Default::default() }).await;
    let cluster = kube.cluster("verify");
    support::ensure_cluster(&main, &cluster).await;
    kube.bind(&cluster).await;
    let _only_me = enforcing_moto().lock().await;
    support::enforce(false);

    // The enforcing moto: the cluster's OIDC provider, the bucket, an administrator.
    let aws = support::enforcing_aws().await;
    let providers = aws.iam_client().list_open_id_connect_providers().send().await.unwrap();
    let host = issuer.trim_start_matches("https://");
    if !providers.open_id_connect_provider_list().iter().any(|p| p.arn().is_some_and(|a| a.ends_with(host))) {
        aws.create_oidc_provider(&issuer).await.unwrap();
    }
    let s3 = support::s3(&support::enforcing_endpoint());
    support::ensure_bucket(&support::enforcing_endpoint(), "verify-artifacts").await;
    let user = kube.name("verify-admin");
    aws.iam_client().create_user().user_name(&user).send().await.unwrap();
    let everything = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    aws.iam_client().put_user_policy().user_name(&user).policy_name("admin").policy_document(everything.to_string()).send().await.unwrap();
    let key = aws.iam_client().create_access_key().user_name(&user).send().await.unwrap().access_key.unwrap();
    let dir = std::env::temp_dir().join(format!("kfp-tenant-verify-{}-{}", std::process::id(), kube.name("x")));
    std::fs::create_dir_all(&dir).unwrap();
    let sts = kfp_tenant_testkit::signing_proxy::SigningProxy::start(
        &support::enforcing_endpoint(),
        "sts",
        "us-west-2",
        &key.access_key_id,
        &key.secret_access_key,
    )
    .await
    .unwrap();
    let env = Env { kubeconfig: kube.kubeconfig().to_owned(), admin: (key.access_key_id, key.secret_access_key), sts };

    let (a, b, c) = (kube.name("team-a"), kube.name("team-b"), kube.name("team-c"));
    let text = format!(
        "cluster: {cluster}\nregion: us-west-2\nbucket: verify-artifacts\ntenants:\n\
         - namespace: {a}\n  owner: a@example.com\n  serviceAccounts: [default-editor, runner]\n\
         - namespace: {b}\n  owner: b@example.com\n  s3Access: prefix\n  s3Prefix: private-artifacts/{b}/\n\
         - namespace: {c}\n  owner: c@example.com\n  s3Access: prefix\n  s3Prefix: private-artifacts/{c}/\n"
    );
    let file = dir.join("tenants.yaml");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let (code, out, err) = env.kfp(false, &["apply", "-f", file, "--auto-approve", "--wait", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");

    // Everything holds.
    let (code, report) = env.verify(file);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(results(&report).len(), 4, "{report:#}");
    assert!(results(&report).iter().all(|(_, links)| links.iter().all(|(_, r)| r == "pass")), "{report:#}");
    let role_a = format!("{a}-{cluster}-role");
    let role_b = format!("{b}-{cluster}-role");
    let iam = aws.iam_client();
    // The probe goes where the runs go: under the root of the live kfp-launcher.
    let s3_detail = |report: &Value, who: &str| {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| format!("{}/{}", c["namespace"].as_str().unwrap(), c["service_account"].as_str().unwrap()) == who)
            .unwrap()
            .clone();
        check["links"].as_array().unwrap().iter().find(|l| l[0] == "s3").unwrap()[1]["detail"].as_str().unwrap_or_default().to_owned()
    };
    let root_a = format!("s3://verify-artifacts/private-artifacts/{a}/v2/artifacts/kfp-tenant-verify/probe-runner");
    assert!(s3_detail(&report, &format!("{a}/runner")).contains(&root_a), "{report:#}");

    // s3: the launcher of b sent back to KFP's MinIO, then to c's prefix, then gone.
    for (root, says) in [
        (Some(format!("minio://mlpipeline/private-artifacts/{b}/v2/artifacts")), "another store than".to_owned()),
        (Some(format!("s3://verify-artifacts/private-artifacts/{c}/v2/artifacts")), "outside".to_owned()),
        (None, "does not exist".to_owned()),
    ] {
        match &root {
            Some(root) => kube.edit_object("configmaps", &b, "kfp-launcher", |cm| cm["data"]["defaultPipelineRoot"] = json!(root)).await,
            None => kube.delete_object("configmaps", &b, "kfp-launcher").await,
        }
        let (code, report) = env.verify(file);
        assert_eq!(code, 1, "{report:#}");
        fails_only_at(&report, &format!("{b}/default-editor"), "s3");
        let said = problem(&report, &format!("{b}/default-editor"), "s3");
        assert!(said.contains(&says) && said.contains(&format!("s3://verify-artifacts/private-artifacts/{b}/")), "{said}");
    }
    let (code, out, err) = env.kfp(false, &["apply", "-f", file, "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("tenant[\"{b}\"].pipeline_config[\"kfp-launcher\"] will be created")), "{out}");
    let (code, report) = env.verify(file);
    assert_eq!(code, 0, "{report:#}");

    // trust: the subject of another service account.
    let trust = aws.get_role(&role_a).await.unwrap().unwrap().trust_policy;
    let mut only_runner = trust.as_json().clone();
    only_runner["Statement"][0]["Condition"]["StringEquals"][format!("{host}:sub")] = json!(format!("system:serviceaccount:{a}:runner"));
    iam.update_assume_role_policy().role_name(&role_a).policy_document(only_runner.to_string()).send().await.unwrap();
    let (code, report) = env.verify(file);
    assert_eq!(code, 1);
    fails_only_at(&report, &format!("{a}/default-editor"), "trust");
    let expected = format!("admits system:serviceaccount:{a}:runner but not system:serviceaccount:{a}:default-editor");
    assert!(problem(&report, &format!("{a}/default-editor"), "trust").contains(&expected), "{report:#}");
    // The same as text, for one tenant (--target).
    let (code, text, err) = env.enforced(&["verify", "-f", file, "--target", &a]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.starts_with(&format!("Verifying 2 service accounts of 1 tenant on cluster {cluster}\n")), "{text}");
    let block = format!(
        "{a}/default-editor (role {role_a})\n  PASS  token   a token for system:serviceaccount:{a}:default-editor with audience sts.amazonaws.com\n"
    );
    assert!(text.contains(&block), "{text}");
    assert!(
        text.contains(&format!(
            "  FAIL  trust   the trust policy of role {role_a} {expected}\n                fix: run kfp-tenant apply\n  SKIP  sts "
        )),
        "{text}"
    );
    assert!(text.ends_with("\n1 of 2 service accounts cannot reach their artifacts.\n"), "{text}");

    // trust: an aud condition that admits nothing (the seed page's capture shows "").
    let mut no_aud = trust.as_json().clone();
    no_aud["Statement"][0]["Condition"]["StringEquals"][format!("{host}:aud")] = json!("");
    iam.update_assume_role_policy().role_name(&role_a).policy_document(no_aud.to_string()).send().await.unwrap();
    let (_, report) = env.verify(file);
    for sa in ["default-editor", "runner"] {
        assert_eq!(results(&report).iter().find(|(w, _)| *w == format!("{a}/{sa}")).unwrap().1[2], ("trust".to_owned(), "fail".to_owned()));
    }
    assert!(problem(&report, &format!("{a}/runner"), "trust").contains(":aud wants [\"\"]"), "{report:#}");
    iam.update_assume_role_policy().role_name(&role_a).policy_document(trust.to_compact_json()).send().await.unwrap();

    // s3: the inline policy narrowed by hand to reading.
    let narrowed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::verify-artifacts/private-artifacts/{b}/*")}]});
    iam.put_role_policy()
        .role_name(&role_b)
        .policy_name(format!("kf-{b}-pipeline-s3"))
        .policy_document(narrowed.to_string())
        .send()
        .await
        .unwrap();
    let (_, report) = env.verify(file);
    fails_only_at(&report, &format!("{b}/default-editor"), "s3");
    assert!(problem(&report, &format!("{b}/default-editor"), "s3").contains("cannot put"), "{report:#}");

    // s3: the policy widened to another tenant's prefix.
    let widened = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::verify-artifacts/private-artifacts/*"}]});
    iam.put_role_policy()
        .role_name(&role_b)
        .policy_name(format!("kf-{b}-pipeline-s3"))
        .policy_document(widened.to_string())
        .send()
        .await
        .unwrap();
    let (_, report) = env.verify(file);
    fails_only_at(&report, &format!("{b}/default-editor"), "s3");
    assert!(problem(&report, &format!("{b}/default-editor"), "s3").contains("outside its prefix"), "{report:#}");

    // issuer: a provider without sts.amazonaws.com among its client ids (moto
    // has no RemoveClientIDFromOpenIDConnectProvider: made so), then none.
    let (code, out, err) = env.kfp(false, &["apply", "-f", file, "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let provider = aws.describe_cluster_oidc_provider(&issuer).await;
    iam.delete_open_id_connect_provider().open_id_connect_provider_arn(&provider).send().await.unwrap();
    iam.create_open_id_connect_provider()
        .url(&issuer)
        .client_id_list("another-audience")
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
        .send()
        .await
        .unwrap();
    let (_, report) = env.verify(file);
    assert!(results(&report).iter().all(|(_, links)| links[1] == ("issuer".to_owned(), "fail".to_owned())), "{report:#}");
    assert!(problem(&report, &format!("{a}/runner"), "issuer").contains("not sts.amazonaws.com"), "{report:#}");
    iam.delete_open_id_connect_provider().open_id_connect_provider_arn(&provider).send().await.unwrap();
    let (code, report) = env.verify(file);
    assert_eq!(code, 1);
    assert!(problem(&report, &format!("{a}/runner"), "issuer").contains("no IAM OIDC provider"), "{report:#}");
    aws.create_oidc_provider(&issuer).await.unwrap();
    let (code, report) = env.verify(file);
    assert_eq!(code, 0, "{report:#}");
    // apply --verify: nothing to change, then the same proof as text.
    let (code, out, err) = env.enforced(&["apply", "-f", file, "--auto-approve", "--verify", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes.") && out.ends_with("\nEvery link holds for all 4 service accounts.\n"), "{out}");

    // The probe objects are gone: the bucket holds nothing of verify's.
    let left = s3.list_objects_v2().bucket("verify-artifacts").send().await.unwrap();
    assert!(left.contents().iter().all(|o| !o.key().unwrap_or_default().contains("kfp-tenant-verify")), "{left:?}");
    let (code, out, err) = env.kfp(false, &["destroy", "-f", file, "--auto-approve", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// The ARN of the enforcing moto's provider for `issuer`.
trait ProviderArn {
    async fn describe_cluster_oidc_provider(&self, issuer: &str) -> String;
}

impl ProviderArn for kfp_tenant_aws::Aws {
    async fn describe_cluster_oidc_provider(&self, issuer: &str) -> String {
        let host = issuer.trim_start_matches("https://");
        let list = self.iam_client().list_open_id_connect_providers().send().await.unwrap();
        list.open_id_connect_provider_list().iter().filter_map(|p| p.arn()).find(|a| a.ends_with(host)).unwrap().to_owned()
    }
}
