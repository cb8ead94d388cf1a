//! `kfp-tenant permissions --kubernetes` proven on a real kube-apiserver
//! (RBAC enforced): a service account bound to exactly the printed rules
//! runs the life cycle through the binary (apply --wait, plan, verify,
//! audit, destroy), and with each rule removed in turn something that needs
//! it fails (no rule is spare); bound to `--controller`'s rules, the
//! controller makes a KubeflowTenant Ready and deletes it. Under either, and
//! under the admission policy beside broader rules, writing
//! kube-system/aws-auth or an unrelated ConfigMap and minting another
//! service account's token are refused. The IAM policy is
//! proven on the enforcing moto (below).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kfp_tenant_core::permissions::kubernetes::ADMISSION_HEADER;
use kfp_tenant_testkit::backend::{Backend, TestKube, TestKubeOptions};

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let (ok, text) = support::kubectl(kubeconfig, args, stdin);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

/// What `as_user` may not do, each refused by the API server (by RBAC or,
/// with `by_admission`, by the admission policy alone): write
/// kube-system/aws-auth (an entry in `system:masters` would make anyone an
/// administrator), write a ConfigMap kfp-tenant has no business with, and
/// mint a token of another service account (`admin`, a cluster-admin).
fn refused_the_escalations(as_user: &Path, lock: &str, admin: &str, suffix: &str, by_admission: bool) {
    let masters = "{\"data\": {\"mapRoles\": \"- {rolearn: arn:aws:iam::123456789012:role/x, username: x, groups: [system:masters]}\"}}";
    let attempts: [(&str, Vec<String>, String); 4] = [
        ("patch kube-system/aws-auth", ["-n", "kube-system", "patch", "configmap", "aws-auth", "--type", "merge", "-p", masters].map(String::from).to_vec(), String::new()),
        (
            "apply kube-system/aws-auth",
            ["apply", "--server-side", "--force-conflicts", "-f", "-"].map(String::from).to_vec(),
            "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"aws-auth\", \"namespace\": \"kube-system\"}, \"data\": {\"mapUsers\": \"x\"}}".to_owned(),
        ),
        ("create an unrelated ConfigMap", vec!["-n".into(), lock.into(), "create".into(), "configmap".into(), format!("unrelated{suffix}"), "--from-literal=a=b".into()], String::new()),
        ("mint another service account's token", vec!["-n".into(), lock.into(), "create".into(), "token".into(), admin.into(), "--audience".into(), "sts.amazonaws.com".into()], String::new()),
    ];
    for (what, args, stdin) in attempts {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, said) = support::kubectl(as_user, &args, &stdin);
        assert!(!ok, "{what} was allowed: {said}");
        assert!(said.contains("forbidden") || said.contains("Forbidden"), "{what}: {said}");
        if by_admission {
            assert!(said.contains("ValidatingAdmissionPolicy"), "{what} refused by the admission policy: {said}");
        }
    }
}

/// The binary with `KUBECONFIG` and `env`; `Err` names the step that
/// failed and why (`audit`'s exit 2, findings, is no failure).
fn kfp_env(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => Ok(text),
        Some(2) if args[0] == "audit" => Ok(text),
        _ => Err(format!("{} failed: {text}", args[0])),
    }
}

fn kfp(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    kfp_env(kubeconfig, args, &[])
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
    let sa = format!("runner{suffix}");
    let user = format!("system:serviceaccount:{lock}:{sa}");
    let printed = kfp(&admin, &["permissions", "--kubernetes", "--lock-namespace", &lock, "--user", &user]).unwrap();
    let named = |yaml: &str| {
        yaml.replace("name: kfp-tenant", &format!("name: kfp-tenant{suffix}"))
            .replace("policyName: kfp-tenant", &format!("policyName: kfp-tenant{suffix}"))
    };
    let (printed, admission) = printed.split_once(ADMISSION_HEADER).unwrap();
    let (printed, admission) = (named(printed.strip_suffix("---\n").unwrap()), named(&format!("{ADMISSION_HEADER}{admission}")));
    let rules = printed.split("---\n").map(|d| d.matches("  # ").count()).collect::<Vec<_>>();

    // A service account of its own, and a kubeconfig with its token; another, a cluster-admin.
    let admin_text = std::fs::read_to_string(&admin).unwrap();
    let admin_token = admin_text.split("token: ").nth(1).unwrap().split(['}', '\n']).next().unwrap().trim().to_owned();
    let kubeconfig_of = |account: &str| -> PathBuf {
        kubectl(&admin, &["-n", &lock, "create", "serviceaccount", account], "");
        let token = kubectl(&admin, &["-n", &lock, "create", "token", account, "--duration", "2h"], "").trim().to_owned();
        let path = dir.join(format!("kubeconfig-{account}"));
        std::fs::write(&path, admin_text.replace(&admin_token, &token)).unwrap();
        path
    };
    let as_sa = kubeconfig_of(&sa);
    let cluster_admin = format!("admin{suffix}");
    kubectl(&admin, &["-n", &lock, "create", "serviceaccount", &cluster_admin], "");
    kubectl(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            &cluster_admin,
            "--clusterrole",
            "cluster-admin",
            &format!("--serviceaccount={lock}:{cluster_admin}"),
        ],
        "",
    );
    kubectl(
        &admin,
        &["apply", "-f", "-"],
        "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"aws-auth\", \"namespace\": \"kube-system\"}, \"data\": {\"mapRoles\": \"[]\"}}",
    );
    // The rules kfp-tenant's used to print, bound beside the printed ones: the admission policy alone refuses.
    let broad = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: broad{suffix}}}\nrules:\n- {{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, create, patch]}}\n- {{apiGroups: [\"\"], resources: [serviceaccounts/token], verbs: [create]}}\n"
    );
    kubectl(&admin, &["apply", "-f", "-"], &broad);
    let broadly = |account: &str, on: bool| {
        let verb = if on { "create" } else { "delete" };
        let mut args = vec!["clusterrolebinding".to_owned(), format!("broad{suffix}")];
        if on {
            args.extend([format!("--clusterrole=broad{suffix}"), format!("--serviceaccount={lock}:{account}")]);
        }
        let args: Vec<&str> = [verb].into_iter().chain(args.iter().map(String::as_str)).collect();
        kubectl(&admin, &args, "");
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let bind = |variant: &str, sa: &str, admission: &str| {
        let subject = format!("[{{kind: ServiceAccount, name: {sa}, namespace: {lock}}}]");
        let bindings = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: kfp-tenant{suffix}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kfp-tenant{suffix}}}\nsubjects: {subject}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: kfp-tenant{suffix}-identity-record, namespace: kube-system}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kfp-tenant{suffix}-identity-record}}\nsubjects: {subject}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: kfp-tenant{suffix}-lock, namespace: {lock}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: kfp-tenant{suffix}-lock}}\nsubjects: {subject}\n"
        );
        kubectl(&admin, &["apply", "-f", "-"], &format!("{variant}---\n{bindings}---\n{admission}"));
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
            kfp(&as_sa, &["audit", "-f", &file])?;
            kfp(&as_sa, &[&["destroy", "-f", &file, "--auto-approve", "--timeout", "90s"][..], &lock_args].concat())
        })();
        (ns, file, result)
    };

    bind(&printed, &sa, &admission);
    let (_, _, all) = life_cycle();
    assert!(all.is_ok(), "the printed rules are enough: {all:?}");
    // Neither the printed rules nor, beside broader ones, the admission policy let it escalate.
    refused_the_escalations(&as_sa, &lock, &cluster_admin, &suffix, false);
    broadly(&sa, true);
    refused_the_escalations(&as_sa, &lock, &cluster_admin, &suffix, true);
    broadly(&sa, false);

    // Each rule removed in turn: something that needs it fails.
    let spare_here: [&str; 0] = [];
    for (doc, count) in rules.iter().enumerate() {
        for rule in 0..*count {
            let variant = without(&printed, Some((doc, rule)));
            let missing = printed.split("---\n").nth(doc).unwrap().split("  # ").nth(rule + 1).unwrap().lines().next().unwrap().to_owned();
            if spare_here.iter().any(|s| missing.starts_with(s)) {
                continue;
            }
            bind(&variant, &sa, &admission);
            let (ns, file, result) = life_cycle();
            let Err(failure) = result else { panic!("the rule \"{missing}\" was not needed by any step") };
            assert!(failure.contains("forbidden") || failure.contains("Forbidden"), "{missing}: {failure}");
            assert!(failure.contains("kfp-tenant permissions --kubernetes") || failure.contains("forbidden"), "{failure}");
            // What the cut-short run made goes, as the administrator.
            let _ = kfp(&admin, &["destroy", "-f", &file, "--auto-approve", "--timeout", "90s", "--lock-namespace", &lock]);
            let _ = ns;
        }
    }

    // --controller: the controller, as deploy/'s service account (kfp-tenant
    // in the lock's namespace, the policy's default user) bound to what
    // `permissions --kubernetes --controller` prints, cannot escalate and
    // makes a KubeflowTenant Ready and deletes its tenant with it.
    let crd = kfp(&admin, &["crd"]).unwrap();
    kubectl(&admin, &["apply", "--server-side", "--force-conflicts", "-f", "-"], &crd);
    kubectl(&admin, &["wait", "--for=condition=Established", "crd/kubeflowtenants.kfp-tenant.io", "--timeout=30s"], "");
    let controller_rules = kfp(&admin, &["permissions", "--kubernetes", "--controller", "--lock-namespace", &lock])
        .unwrap()
        .replace("kfp-tenant-controller", "kfp-tenant");
    assert!(controller_rules.contains(&format!("username == \"system:serviceaccount:{lock}:kfp-tenant\"")), "{controller_rules}");
    let (controller_rules, controller_admission) = controller_rules.split_once(ADMISSION_HEADER).unwrap();
    let controller_admission = named(&format!("{ADMISSION_HEADER}{controller_admission}"));
    let deployed = kubeconfig_of("kfp-tenant");
    bind(&named(controller_rules.strip_suffix("---\n").unwrap()), "kfp-tenant", &controller_admission);
    refused_the_escalations(&deployed, &lock, &cluster_admin, &suffix, false);
    broadly("kfp-tenant", true);
    refused_the_escalations(&deployed, &lock, &cluster_admin, &suffix, true);
    broadly("kfp-tenant", false);
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, format!("cluster: {cluster}\nregion: us-west-2\nbucket: kfp-artifacts\ntenants: []\n")).unwrap();
    let log = dir.join("controller.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut controller = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"))
        .args(["controller", "-f", settings.to_str().unwrap(), "--resync", "3s", "--lock-namespace", &lock])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &deployed)
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let name = kube.name("perm-kt");
    let resource = format!(
        "{{\"apiVersion\": \"kfp-tenant.io/v1alpha1\", \"kind\": \"KubeflowTenant\", \"metadata\": {{\"name\": \"{name}\"}}, \"spec\": {{\"owner\": \"{name}@example.com\"}}}}"
    );
    kubectl(&admin, &["apply", "-f", "-"], &resource);
    let mut ready = false;
    for _ in 0..300 {
        let object = kube.object("kubeflowtenants", "", &name).await;
        let conditions = object.and_then(|o| o["status"]["conditions"].as_array().cloned()).unwrap_or_default();
        ready = conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ready, "Ready under the printed controller RBAC: {said}");
    kubectl(&admin, &["delete", "kubeflowtenant", &name, "--timeout=90s"], "");
    let _ = controller.kill();
    let _ = controller.wait();
    assert!(!said.contains("forbidden") && !said.contains("Forbidden"), "{said}");
}

/// The IAM proof's file: an IRSA tenant `ns` (whose role the test drifts by
/// hand) and a Pod Identity tenant `ns-pi`.
fn tenants_file(cluster: &str, ns: &str) -> String {
    format!(
        "cluster: {cluster}\nregion: us-west-2\nbucket: perm-artifacts\ntenants:\n  - namespace: {ns}\n    owner: {ns}@example.com\n  - namespace: {ns}-pi\n    owner: {ns}@example.com\n    identity: podIdentity\n"
    )
}

/// One test at a time may switch the enforcing moto (the verify tests are
/// another binary, which cargo runs before or after this one).
fn enforcing_moto() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// `policy` as moto can check it: every Resource `*` (moto matches actions
/// against `*` only) and no conditions; the scoping is proven apart, below.
fn for_moto(policy: &serde_json::Value, without: Option<&str>) -> serde_json::Value {
    let mut policy = policy.clone();
    for s in policy["Statement"].as_array_mut().unwrap() {
        s["Resource"] = serde_json::json!("*");
        s.as_object_mut().unwrap().remove("Condition");
        let actions: Vec<serde_json::Value> =
            s["Action"].as_array().unwrap().iter().filter(|a| Some(a.as_str().unwrap()) != without).cloned().collect();
        s["Action"] = serde_json::json!(actions);
    }
    policy["Statement"] = serde_json::json!(
        policy["Statement"].as_array().unwrap().iter().filter(|s| !s["Action"].as_array().unwrap().is_empty()).cloned().collect::<Vec<_>>()
    );
    policy
}

/// The printed IAM policy on moto with IAM enforcement (its signature check
/// alone off, as toolchain.md says): a user holding only the printed actions
/// runs plan, apply, drift repair, verify, audit and destroy; each action
/// removed in turn makes a step fail; every call the runs made, recorded
/// with its resource by a proxy, is allowed by the printed policy under
/// core's evaluation (moto checks actions against `*` only); and every
/// printed action was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn the_printed_iam_policy_is_enough_and_every_action_is_needed() {
    use kfp_tenant_core::ports::{ClusterApi, IamApi, PodIdentityApi};
    use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer};
    use kfp_tenant_testkit::pod_identity::{PodIdentityOptions, PodIdentityServer};
    use kfp_tenant_testkit::recording_proxy::RecordingProxy;
    use serde_json::json;

    let main = support::aws().await;
    let cluster = "perm-iam";
    let issuer = support::cluster_with_provider(&main, cluster).await;
    let server = FakeApiServer::start(FakeApiOptions { sa_issuer: issuer.clone(), ..Default::default() }).await.unwrap();
    support::bind(&server, cluster);
    let dir = std::env::temp_dir().join(format!("kfp-tenant-permissions-iam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let _only_me = enforcing_moto().lock().await;
    support::enforce(false);
    let aws = support::enforcing_aws().await;
    let iam = aws.iam_client();
    let host = issuer.trim_start_matches("https://");
    let providers = iam.list_open_id_connect_providers().send().await.unwrap();
    if !providers.open_id_connect_provider_list().iter().any(|p| p.arn().is_some_and(|a| a.ends_with(host))) {
        aws.create_oidc_provider(&issuer).await.unwrap();
    }
    support::ensure_bucket(&support::enforcing_endpoint(), "perm-artifacts").await;
    let user = |name: &str| {
        let iam = iam.clone();
        let name = name.to_owned();
        async move {
            let _ = iam.create_user().user_name(&name).send().await;
            let key = iam.create_access_key().user_name(&name).send().await.unwrap().access_key.unwrap();
            (key.access_key_id, key.secret_access_key)
        }
    };
    let admin = user("perm-admin").await;
    let everything = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    iam.put_user_policy().user_name("perm-admin").policy_name("admin").policy_document(everything.to_string()).send().await.unwrap();
    let runner = user("perm-runner").await;
    let sts =
        kfp_tenant_testkit::signing_proxy::SigningProxy::start(&support::enforcing_endpoint(), "sts", "us-west-2", &admin.0, &admin.1)
            .await
            .unwrap();
    let recorder = RecordingProxy::start(&support::enforcing_endpoint()).await.unwrap();
    // EKS (moto's breaks under enforcement) on the suite's moto, with Pod
    // Identity in front of it (moto has none), reading the roles it is
    // handed from the enforcing moto as the administrator.
    let roles_reader =
        kfp_tenant_testkit::signing_proxy::SigningProxy::start(&support::enforcing_endpoint(), "iam", "us-east-1", &admin.0, &admin.1)
            .await
            .unwrap();
    let options = PodIdentityOptions { iam_endpoint: Some(roles_reader.url().to_owned()), ..Default::default() };
    let pods = PodIdentityServer::start(&support::moto_endpoint(), options).await.unwrap();
    let eks = RecordingProxy::start(pods.url()).await.unwrap();
    let pods_api = kfp_tenant_aws::Aws::connect(&kfp_tenant_aws::AwsOptions {
        region: Some("us-west-2".to_owned()),
        eks_endpoint: Some(pods.url().to_owned()),
        ..Default::default()
    })
    .await
    .unwrap();

    let policy_of = |file: &Path| -> serde_json::Value {
        let printed = kfp(&kubeconfig, &["permissions", "-f", file.to_str().unwrap(), "--account-id", "123456789012"]).unwrap();
        serde_json::from_str(&printed).unwrap()
    };
    let as_runner = |args: &[&str]| -> Result<String, String> {
        let env = [
            ("AWS_ACCESS_KEY_ID", runner.0.as_str()),
            ("AWS_SECRET_ACCESS_KEY", runner.1.as_str()),
            ("AWS_ENDPOINT_URL", recorder.url()),
            ("AWS_ENDPOINT_URL_EKS", eks.url()),
            ("AWS_ENDPOINT_URL_STS", sts.url()),
        ];
        kfp_env(&kubeconfig, args, &env)
    };
    // The life cycle under `policy`, drift made by hand in the middle; stops at the first failing step.
    let mut runs = 0;
    let mut life_cycle = async |policy: &serde_json::Value| -> Result<(), String> {
        runs += 1;
        let ns = format!("perm-{runs:02}");
        let role = format!("{ns}-{cluster}-role");
        let file = dir.join(format!("{ns}.yaml"));
        std::fs::write(&file, tenants_file(cluster, &ns)).unwrap();
        let f = file.to_str().unwrap();
        support::enforce(false);
        iam.put_user_policy().user_name("perm-runner").policy_name("kfp-tenant").policy_document(policy.to_string()).send().await.unwrap();
        support::enforce(true);
        let first =
            as_runner(&["plan", "-f", f]).and_then(|_| as_runner(&["apply", "-f", f, "--auto-approve", "--wait", "--timeout", "30s"]));
        support::enforce(false);
        first?;
        // Drift by hand: the description, a tag, the trust, an inline policy, a managed policy, a boundary.
        iam.update_role().role_name(&role).description("edited by hand").send().await.unwrap();
        iam.tag_role()
            .role_name(&role)
            .tags(aws_sdk_iam::types::Tag::builder().key("by-hand").value("x").build().unwrap())
            .send()
            .await
            .unwrap();
        iam.untag_role().role_name(&role).tag_keys("kfp-tenant/namespace").send().await.unwrap();
        let trust = aws.get_role(&role).await.unwrap().unwrap().trust_policy;
        let mut wide = trust.as_json().clone();
        wide["Statement"][0]["Condition"]["StringEquals"] = json!({format!("{host}:aud"): "sts.amazonaws.com"});
        iam.update_assume_role_policy().role_name(&role).policy_document(wide.to_string()).send().await.unwrap();
        iam.put_role_policy().role_name(&role).policy_name("by-hand").policy_document(everything.to_string()).send().await.unwrap();
        let managed =
            iam.create_policy().policy_name(format!("by-hand-{ns}")).policy_document(everything.to_string()).send().await.unwrap();
        let managed = managed.policy.unwrap().arn.unwrap();
        iam.attach_role_policy().role_name(&role).policy_arn(&managed).send().await.unwrap();
        // A permissions boundary the file does not set: removed by DeleteRolePermissionsBoundary.
        iam.put_role_permissions_boundary().role_name(&role).permissions_boundary(&managed).send().await.unwrap();
        // The Pod Identity tenant's association handed another role: updated back.
        let pods_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
        let elsewhere = iam
            .create_role()
            .role_name(format!("{ns}-elsewhere"))
            .assume_role_policy_document(pods_trust.to_string())
            .send()
            .await
            .unwrap();
        let elsewhere = elsewhere.role.unwrap().arn;
        let listed = pods_api.list_pod_identity_associations(cluster).await.unwrap();
        let association = listed.iter().find(|a| a.namespace == format!("{ns}-pi")).expect("the Pod Identity tenant's association");
        pods_api.update_pod_identity_association(cluster, &association.id, &elsewhere).await.unwrap();
        support::enforce(true);
        let rest = (|| {
            as_runner(&["apply", "-f", f, "--auto-approve", "--refresh-mode", "per-role"])?;
            as_runner(&["plan", "-f", f, "--detailed-exitcode", "--refresh-mode", "bulk"])?;
            as_runner(&["verify", "-f", f])?;
            as_runner(&["audit", "-f", f])?;
            as_runner(&["destroy", "-f", f, "--auto-approve", "--timeout", "30s"])
        })();
        support::enforce(false);
        rest.map(drop)
    };

    let file = dir.join("perm-01.yaml");
    std::fs::write(&file, tenants_file(cluster, "perm-01")).unwrap();
    let printed = policy_of(&file);
    life_cycle(&for_moto(&printed, None)).await.unwrap();
    // moto authorizes HeadBucket under another action than AWS's s3:ListBucket
    // (it answers 403 with s3:ListBucket allowed on `*`): the bucket check
    // warns here whatever the policy; its call is checked below, recorded.

    // Every call the runner made is allowed by the printed policy, resource by resource.
    let doc = kfp_tenant_core::policy::PolicyDocument::new(printed.clone());
    let mut used = std::collections::BTreeSet::new();
    let mine = |c: &kfp_tenant_testkit::recording_proxy::Recorded| c.access_key.as_deref() == Some(runner.0.as_str());
    for call in recorder.calls().iter().filter(|c| mine(c)) {
        let (action, resource, context) = match call.param("Action") {
            Some(op) => {
                let resource = match (call.param("RoleName"), call.param("OpenIDConnectProviderArn")) {
                    (Some(role), _) => format!("arn:aws:iam::123456789012:role/{role}"),
                    (None, Some(arn)) => arn.to_owned(),
                    _ => "*".to_owned(),
                };
                let context: Vec<(&str, &str)> = call.param("PolicyArn").map(|p| ("iam:PolicyARN", p)).into_iter().collect();
                (format!("iam:{op}"), resource, context.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>())
            }
            // S3's HeadBucket, authorized as ListBucket.
            None if call.method == "HEAD" => {
                ("s3:ListBucket".to_owned(), format!("arn:aws:s3:::{}", call.path.trim_matches('/')), Vec::new())
            }
            None => panic!("a call of the runner this test does not know: {call:?}"),
        };
        let context: Vec<(&str, &str)> = context.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(
            kfp_tenant_core::permissions::allows(&doc, &action, &resource, &context),
            "{action} on {resource} {context:?} is not allowed by {printed:#}"
        );
        used.insert(action);
    }
    let passed = [("iam:PassedToService", "pods.eks.amazonaws.com")];
    for call in eks.calls().iter().filter(|c| mine(c)) {
        let path = call.path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let arn = |what: &str| format!("arn:aws:eks:us-west-2:123456789012:{what}");
        let (action, resource) = match (call.method.as_str(), parts.as_slice()) {
            ("GET", ["clusters", name]) => ("eks:DescribeCluster", arn(&format!("cluster/{name}"))),
            ("GET", ["clusters", name, "pod-identity-associations"]) => {
                ("eks:ListPodIdentityAssociations", arn(&format!("cluster/{name}")))
            }
            ("POST", ["clusters", name, "pod-identity-associations"]) => {
                ("eks:CreatePodIdentityAssociation", arn(&format!("cluster/{name}")))
            }
            ("GET", ["clusters", name, "pod-identity-associations", id]) => {
                ("eks:DescribePodIdentityAssociation", arn(&format!("podidentityassociation/{name}/{id}")))
            }
            ("POST", ["clusters", name, "pod-identity-associations", id]) => {
                ("eks:UpdatePodIdentityAssociation", arn(&format!("podidentityassociation/{name}/{id}")))
            }
            ("DELETE", ["clusters", name, "pod-identity-associations", id]) => {
                ("eks:DeletePodIdentityAssociation", arn(&format!("podidentityassociation/{name}/{id}")))
            }
            _ => panic!("an EKS call of the runner this test does not know: {call:?}"),
        };
        assert!(kfp_tenant_core::permissions::allows(&doc, action, &resource, &[]), "{action} on {resource} is not allowed by {printed:#}");
        used.insert(action.to_owned());
        // Tags on create are authorized as eks:TagResource on the new
        // association (kfp-tenant tags every association it makes).
        if let ("eks:CreatePodIdentityAssociation", [_, name, _]) = (action, parts.as_slice()) {
            let new = arn(&format!("podidentityassociation/{name}/a-new-one"));
            assert!(kfp_tenant_core::permissions::allows(&doc, "eks:TagResource", &new, &[]), "eks:TagResource on {new}: {printed:#}");
            used.insert("eks:TagResource".to_owned());
        }
        // EKS asks the caller for iam:PassRole on the role it hands over.
        if let Some(role) = call.param("roleArn") {
            assert!(
                kfp_tenant_core::permissions::allows(&doc, "iam:PassRole", role, &passed),
                "iam:PassRole on {role} is not allowed by {printed:#}"
            );
            used.insert("iam:PassRole".to_owned());
        }
    }
    // ... and only on the Pod Identity tenant's role.
    let irsa_role = format!("arn:aws:iam::123456789012:role/perm-01-{cluster}-role");
    assert!(!kfp_tenant_core::permissions::allows(&doc, "iam:PassRole", &irsa_role, &passed), "{printed:#}");
    let printed_actions: std::collections::BTreeSet<String> = printed["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()))
        .collect();
    let unused: Vec<&String> = printed_actions.difference(&used).collect();
    assert!(unused.is_empty(), "printed but never used: {unused:?}");

    // Each printed action removed in turn: a step fails, refused. EKS's
    // actions are the exception: moto's EKS breaks under enforcement, so it
    // runs on the suite's moto, which checks nothing (their need is shown by
    // the recorded calls above).
    // So is iam:PassRole: EKS asks for it, and neither moto nor the Pod
    // Identity emulator checks it.
    for action in printed_actions.iter().filter(|a| !a.starts_with("eks:") && *a != "iam:PassRole") {
        if action == "s3:ListBucket" {
            // The bucket check only warns (naming s3:ListBucket): without it every step goes on.
            life_cycle(&for_moto(&printed, Some(action))).await.unwrap();
            support::enforce(true);
            let plan = as_runner(&["plan", "-f", dir.join("perm-01.yaml").to_str().unwrap()]);
            support::enforce(false);
            let plan = plan.unwrap();
            assert!(plan.contains("could not check that bucket perm-artifacts exists") && plan.contains("s3:ListBucket"), "{plan}");
            continue;
        }
        let failure = life_cycle(&for_moto(&printed, Some(action))).await.expect_err(&format!("{action} was not needed by any step"));
        assert!(failure.contains("AccessDenied") || failure.contains("not authorized") || failure.contains("403"), "{action}: {failure}");
        assert!(failure.contains("kfp-tenant permissions"), "the refusal points at the generator: {failure}");
    }
}
