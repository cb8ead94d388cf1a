//! `audit` through the binary, on moto and both Kubernetes backends: an
//! account with kfp-tenant's roles and hand-made ones that trust the
//! cluster's OIDC provider, each kind of finding once, snapshotted as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use kfp_tenant_core::ports::ClusterApi;
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};
use kfp_tenant_testkit::on_both_backends;
use serde_json::{Value, json};

fn kfp(kube: &TestKube, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(args)
        .env("KUBECONFIG", kube.kubeconfig())
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

on_both_backends!(moto: audit_names_every_kind_of_finding);

async fn audit_names_every_kind_of_finding(backend: Backend) {
    let aws = support::aws().await;
    let kube = TestKube::start(backend, TestKubeOptions::default()).await;
    let cluster = kube.cluster("audited");
    let issuer = support::cluster_with_provider(&aws, &cluster).await;
    kube.bind(&cluster).await;
    let provider = aws.describe_cluster(&cluster).await.unwrap().oidc.provider_arn.unwrap();
    let host = issuer.trim_start_matches("https://");

    let (a, b, gone) = (kube.name("audit-a"), kube.name("audit-b"), kube.name("audit-gone"));
    let dir = std::env::temp_dir().join(format!("kfp-tenant-audit-{}-{a}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tenants = |names: &[&str]| {
        let list: String = names.iter().map(|n| format!("  - namespace: {n}\n    owner: {n}@example.com\n")).collect();
        format!("cluster: {cluster}\nregion: us-west-2\nbucket: audit-artifacts\ntenants:\n{list}")
    };
    let (both, only_a) = (dir.join("both.yaml"), dir.join("only-a.yaml"));
    std::fs::write(&both, tenants(&[&a, &b])).unwrap();
    std::fs::write(&only_a, tenants(&[&a])).unwrap();
    let (code, out, err) = kfp(&kube, &["apply", "-f", both.to_str().unwrap(), "--auto-approve", "--wait", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");

    // Roles made by hand, as people make them from the seed page.
    let sub = |ns: &str, sa: &str| format!("system:serviceaccount:{ns}:{sa}");
    let aud = json!("sts.amazonaws.com");
    let hand_made = [
        (
            kube.name("audit-wildcard"),
            json!({"StringLike": {format!("{host}:sub"): sub(&a, "*")}, "StringEquals": {format!("{host}:aud"): aud}}),
        ),
        (kube.name("audit-no-aud"), json!({"StringEquals": {format!("{host}:sub"): sub(&b, "default-editor")}})),
        (
            kube.name("audit-dangling"),
            json!({"StringEquals": {format!("{host}:sub"): sub(&gone, "default-editor"), format!("{host}:aud"): aud}}),
        ),
        (
            kube.name("audit-duplicate"),
            json!({"StringEquals": {format!("{host}:sub"): sub(&a, "default-editor"), format!("{host}:aud"): aud}}),
        ),
    ];
    for (name, condition) in &hand_made {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition}]});
        let _ = aws.iam_client().delete_role().role_name(name).send().await;
        aws.iam_client().create_role().role_name(name).assume_role_policy_document(trust.to_string()).send().await.unwrap();
    }
    // A role for another provider, which audit leaves out.
    let elsewhere = kube.name("audit-elsewhere");
    let ec2 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let _ = aws.iam_client().create_role().role_name(&elsewhere).assume_role_policy_document(ec2.to_string()).send().await;

    // Tenant b has left the file: its role is reported, not touched.
    let (code, stdout, stderr) = kfp(&kube, &["audit", "-f", only_a.to_str().unwrap(), "--json"]);
    assert_eq!(code, 2, "findings exit 2: {stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    // The account and the provider are shared with the other tests: keep ours.
    let ours: Vec<String> =
        hand_made.iter().map(|(n, _)| n.clone()).chain([format!("{a}-{cluster}-role"), format!("{b}-{cluster}-role"), elsewhere]).collect();
    let mut kept = report.clone();
    kept["roles"] = Value::Array(
        report["roles"].as_array().unwrap().iter().filter(|r| ours.contains(&r["role"].as_str().unwrap().to_owned())).cloned().collect(),
    );
    kept["roles_read"] = json!("[every role of the account]");
    let mut text = serde_json::to_string_pretty(&kept).unwrap();
    let cluster_places =
        [(format!("-{cluster}-role"), "-[cluster]-role".to_owned()), (format!("\"{cluster}\""), "\"[cluster]\"".to_owned())];
    for (actual, shown) in [(host.to_owned(), "[issuer]".to_owned())]
        .into_iter()
        .chain(cluster_places)
        .chain([&a, &b, &gone].into_iter().zip(["audit-a", "audit-b", "audit-gone"]).map(|(n, s)| (n.clone(), s.to_owned())))
        .chain(
            hand_made
                .iter()
                .map(|(n, _)| n.clone())
                .zip(["audit-wildcard", "audit-no-aud", "audit-dangling", "audit-duplicate"])
                .map(|(n, s)| (n, s.to_owned())),
        )
    {
        text = text.replace(&actual, &shown);
    }
    insta::assert_snapshot!("audit_findings.json", text);

    // The text report says the same, role by role.
    let (code, stdout, _) = kfp(&kube, &["audit", "-f", only_a.to_str().unwrap()]);
    assert_eq!(code, 2);
    for expected in [
        format!("{} (not kfp-tenant's): findings\n  - statement 0 matches sub with the wildcard", hand_made[0].0),
        format!("{} (not kfp-tenant's): findings\n  - statement 0 has no aud condition", hand_made[1].0),
        format!("admits {}, but namespace {gone} does not exist: whoever creates it gets the role", sub(&gone, "default-editor")),
        format!(
            "{b}-{cluster}-role (kfp-tenant's, tenant {b}): findings\n  - kfp-tenant manages it for tenant {b}, which is not in the tenants file"
        ),
        format!("{a}-{cluster}-role (kfp-tenant's, tenant {a}): ok"),
    ] {
        assert!(stdout.contains(&expected), "{expected}\n---\n{stdout}");
    }
    assert!(!stdout.contains(&kube.name("audit-elsewhere")), "{stdout}");

    // Audit wrote nothing: the hand-made roles are as they were made.
    for (name, _) in &hand_made {
        assert!(aws.iam_client().get_role().role_name(name).send().await.is_ok());
        aws.iam_client().delete_role().role_name(name).send().await.unwrap();
    }
    let (code, out, err) = kfp(&kube, &["destroy", "-f", both.to_str().unwrap(), "--auto-approve", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, stdout, _) = kfp(&kube, &["audit", "-f", both.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let left: Vec<&Value> =
        report["roles"].as_array().unwrap().iter().filter(|r| ours.contains(&r["role"].as_str().unwrap().to_owned())).collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(code == 0 || code == 2, "{stdout}");
}
