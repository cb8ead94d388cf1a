//! The bad-input catalogue: each case runs the built binary and must exit 1
//! with one error naming the field or resource and the fix, having made no
//! write call. Writes are counted by `--stats` where the run got as far as
//! connecting; the offline cases point AWS and Kubernetes at a closed port, so
//! any call would show as a connection error instead of the expected message.
//! (The apply lock's Lease is coordination, not a resource: it is not counted.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kfp_tenant_core::ports::{ClusterApi, IamApi};
use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer};
use kfp_tenant_testkit::unmanaged_role;
use serde_json::json;

const CLUSTER: &str = "catalogue";

/// Operations that change a resource, as `--stats` names them.
const WRITES: &[&str] = &[
    "CreateRole",
    "DeleteRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "TagRole",
    "UntagRole",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "PATCH profiles",
    "DELETE profiles",
    "PATCH serviceaccounts",
    "AdminCreateUser",
    "AdminDeleteUser",
    "CreatePodIdentityAssociation",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Where {
    /// AWS and Kubernetes on a closed port: nothing may be called.
    Offline,
    /// moto and the Kubernetes fake.
    Emulators,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    Nothing,
    UnmanagedRole,
    StalePlan,
    LockHeld,
    /// A lock held under another ID than the one given to force-unlock.
    LockHeldElsewhere,
    /// A Kubernetes API with no identity record whose address is not EKS's.
    UnboundKubernetes,
    NoOidcProvider,
    UnreachableKubernetes,
    NoCredentials,
}

struct Case {
    name: &'static str,
    /// The tenants file; `{cluster}` is replaced.
    file: &'static str,
    args: &'static [&'static str],
    place: Where,
    setup: Setup,
    /// Each must appear in the error: what is wrong, where, and the fix.
    expect: &'static [&'static str],
}

const OK_TENANT: &str = "tenants:\n  - namespace: team-a\n    owner: alice@example.com\n";

fn cases() -> Vec<Case> {
    use Setup::*;
    use Where::*;
    let c = |name, file, args, place, setup, expect| Case { name, file, args, place, setup, expect };
    vec![
        c(
            "uppercase namespace",
            "tenants:\n  - namespace: Team-A\n    owner: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].namespace", "lowercase letters"],
        ),
        c(
            "namespace of 64 characters",
            "tenants:\n  - namespace: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    owner: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].namespace", "1-63"],
        ),
        c(
            "owner without @",
            "tenants:\n  - namespace: team-a\n    owner: alice\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].owner", "e-mail"],
        ),
        c(
            "owner with spaces",
            "tenants:\n  - namespace: team-a\n    owner: alice smith@example.com\n",
            &["apply", "--auto-approve"],
            Offline,
            Nothing,
            &["tenants[0].owner", "PROFILE_USER"],
        ),
        c(
            "explicit role name over 64",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    roleName: rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].roleName", "66 characters", "at most 64"],
        ),
        c(
            "default role name over 64",
            "tenants:\n  - namespace: a-very-long-namespace-for-the-machine-learning-pipelines\n    owner: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].roleName", "<namespace>-<cluster>-role", "set roleName"],
        ),
        c(
            "role name with a slash",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    roleName: team/a\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].roleName", "+=,.@_-"],
        ),
        c(
            "role path without slashes",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    rolePath: kubeflow\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].rolePath", "/segment/"],
        ),
        c(
            "trust policy over its quota",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    serviceAccounts: [pipeline-runner-00, pipeline-runner-01, pipeline-runner-02, pipeline-runner-03, pipeline-runner-04, pipeline-runner-05, pipeline-runner-06, pipeline-runner-07, pipeline-runner-08, pipeline-runner-09, pipeline-runner-10, pipeline-runner-11, pipeline-runner-12, pipeline-runner-13, pipeline-runner-14, pipeline-runner-15, pipeline-runner-16, pipeline-runner-17, pipeline-runner-18, pipeline-runner-19, pipeline-runner-20, pipeline-runner-21, pipeline-runner-22, pipeline-runner-23, pipeline-runner-24, pipeline-runner-25, pipeline-runner-26, pipeline-runner-27, pipeline-runner-28, pipeline-runner-29, pipeline-runner-30, pipeline-runner-31, pipeline-runner-32, pipeline-runner-33, pipeline-runner-34, pipeline-runner-35, pipeline-runner-36, pipeline-runner-37, pipeline-runner-38, pipeline-runner-39]\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].serviceAccounts", "over the quota of 2048", "trustPolicyQuota"],
        ),
        c(
            "wildcard service account",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    serviceAccounts: [\"*\"]\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].serviceAccounts[0]", "no wildcards"],
        ),
        c(
            "service account listed twice",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    serviceAccounts: [default-editor, runner, default-editor]\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].serviceAccounts[2]", "listed again", "list each service account once"],
        ),
        c(
            "trust policy quota beyond IAM's largest",
            "trustPolicyQuota: 10000\ntenants:\n  - namespace: team-a\n    owner: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["trustPolicyQuota", "at most 4096"],
        ),
        c(
            "duplicate namespaces",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n  - namespace: team-a\n    owner: b@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[1].namespace", "tenants[0]", "its own namespace"],
        ),
        c(
            "duplicate role names",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    roleName: shared\n  - namespace: team-b\n    owner: b@example.com\n    roleName: Shared\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[1].roleName", "case-insensitive", "distinct roleName"],
        ),
        c(
            "prefix access without prefix",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].s3Prefix", "private-artifacts/team-a/"],
        ),
        c(
            "reserved tag key",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    tags: {\"aws:team\": ml}\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].tags.aws:team", "rename the tag"],
        ),
        c(
            "session too short",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    maxSessionDuration: 60\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].maxSessionDuration", "3600"],
        ),
        c(
            "unknown top-level field",
            "bukcet: x\ntenants: []\n",
            &["plan"],
            Offline,
            Nothing,
            &["unknown field `bukcet`", "expected one of"],
        ),
        c(
            "misspelt tenant field",
            "tenants:\n  - namespace: team-a\n    ownr: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0]: unknown field `ownr`", "`owner`"],
        ),
        c(
            "misspelt defaults field",
            "defaults: {s3Acess: full}\ntenants: []\n",
            &["plan"],
            Offline,
            Nothing,
            &["defaults: unknown field `s3Acess`", "`s3Access`"],
        ),
        c(
            "unknown access mode",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: everything\n",
            &["plan"],
            Offline,
            Nothing,
            &["unknown variant `everything`", "`scoped`, `full`, `prefix`"],
        ),
        c(
            "malformed YAML",
            "tenants:\n  - namespace: team-a\n   owner: [\n",
            &["plan"],
            Offline,
            Nothing,
            &["is not a valid tenants file", "line"],
        ),
        c("unknown target", OK_TENANT, &["plan", "--target", "team-z"], Offline, Nothing, &["--target team-z", "no such tenant"]),
        c(
            "flags and file together",
            OK_TENANT,
            &["plan", "--cluster", "other"],
            Offline,
            Nothing,
            &["--cluster cannot be combined with -f", "put the values in the tenants file"],
        ),
        c(
            "bad bucket name",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["bucket", "S3_BUCKET"],
        ),
        c(
            "unknown cluster",
            OK_TENANT,
            &["plan"],
            Emulators,
            Nothing,
            &["EKS cluster no-such-cluster", "no EKS cluster no-such-cluster in region us-west-2", "check cluster and region"],
        ),
        c(
            "wrong region",
            OK_TENANT,
            &["plan"],
            Emulators,
            Nothing,
            &["no EKS cluster catalogue in region eu-west-1", "check cluster and region"],
        ),
        c(
            "missing OIDC provider",
            OK_TENANT,
            &["plan"],
            Emulators,
            NoOidcProvider,
            &[
                "data.cluster_oidc",
                "no IAM OIDC provider",
                "eksctl utils associate-iam-oidc-provider --cluster catalogue --region us-west-2 --approve",
            ],
        ),
        c("no credentials", OK_TENANT, &["plan"], Emulators, NoCredentials, &["the caller identity", "credentials"]),
        c(
            "unreachable Kubernetes API",
            OK_TENANT,
            &["plan"],
            Emulators,
            UnreachableKubernetes,
            &["cannot read kfp-tenant's identity record", "is the Kubernetes API reachable? check --kubeconfig"],
        ),
        c(
            "same-named unmanaged role",
            OK_TENANT,
            &["plan"],
            Emulators,
            UnmanagedRole,
            &["tenant[\"team-a\"].iam_role", "IAM role team-a-catalogue-role exists but was not created by kfp-tenant", "--adopt"],
        ),
        c(
            "stale saved plan",
            OK_TENANT,
            &["apply", "{planfile}"],
            Emulators,
            StalePlan,
            &["the saved plan is stale", "tenant[\"team-a\"].iam_role", "run plan again"],
        ),
        c(
            "reserved namespace",
            "tenants:\n  - namespace: kube-system\n    owner: a@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].namespace", "belongs to the cluster itself", "choose another namespace"],
        ),
        c(
            "prefix of 5000 characters",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n    s3Prefix: {long}\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].s3Prefix", "5000 characters, over S3's 1,024-character limit", "use a shorter prefix"],
        ),
        c(
            "file for another cluster",
            OK_TENANT,
            &["apply", "--prune", "--auto-approve"],
            Emulators,
            Nothing,
            &["is not EKS cluster catalogue-other", "names arn:aws:eks:us-west-2:123456789012:cluster/catalogue", "--context"],
        ),
        c(
            "Kubernetes API not shown to be the cluster",
            OK_TENANT,
            &["plan"],
            Emulators,
            UnboundKubernetes,
            &["cannot tell that the Kubernetes API", "is EKS cluster catalogue", "--bind-cluster"],
        ),
        c(
            "lock namespace that does not exist, on a cluster not proven",
            OK_TENANT,
            &["apply", "--auto-approve", "--lock-namespace", "nosuchns"],
            Emulators,
            UnboundKubernetes,
            &["cannot tell that the Kubernetes API", "is EKS cluster catalogue", "--bind-cluster"],
        ),
        c(
            "stale lock id",
            OK_TENANT,
            &["force-unlock", "fedcba9876543210", "--force"],
            Emulators,
            LockHeldElsewhere,
            &["the apply lock now has ID 0123456789abcdef", "not fedcba9876543210", "nothing was removed"],
        ),
        c(
            "second concurrent apply",
            OK_TENANT,
            &["apply", "--auto-approve"],
            Emulators,
            LockHeld,
            &[
                "another run holds the apply lock (ID ",
                "): kfp-tenant apply by carol@ci",
                "wait for it to finish",
                "kfp-tenant force-unlock ",
            ],
        ),
        c(
            "malformed Cognito pool id",
            "identityProvider:\n  cognito: {userPoolId: aBcDeFgHi}\ntenants:\n  - namespace: team-a\n    owner: alice@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["identityProvider.cognito.userPoolId", "is not a Cognito user pool id", "list-user-pools"],
        ),
        c(
            "Cognito pool of another region",
            "identityProvider:\n  cognito: {userPoolId: eu-west-1_aBcDeFgHi}\ntenants:\n  - namespace: team-a\n    owner: alice@example.com\n",
            &["plan"],
            Offline,
            Nothing,
            &["identityProvider.cognito.userPoolId", "is in region eu-west-1", "set identityProvider.cognito.region: eu-west-1"],
        ),
        c(
            "Cognito pool that does not exist",
            "identityProvider:\n  cognito: {userPoolId: us-west-2_NoSuchPool1}\ntenants:\n  - namespace: team-a\n    owner: alice@example.com\n",
            &["plan"],
            Emulators,
            Nothing,
            &["identityProvider.cognito.userPoolId", "us-west-2_NoSuchPool1", "check the pool id and region"],
        ),
        c(
            "prefix reaching another tenant's through ..",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n    s3Prefix: private-artifacts/../t2/\n",
            &["apply", "--auto-approve"],
            Offline,
            Nothing,
            &["tenants[0].s3Prefix", "\"..\" segment", "another tenant's", "e.g. \"private-artifacts/team-a/\""],
        ),
        c(
            "prefix with an IAM policy variable",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n    s3Prefix: \"${aws:username}/\"\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].s3Prefix", "IAM policy variable"],
        ),
        c(
            "prefix with a newline",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n    s3Prefix: \"team-a/\\n\"\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].s3Prefix", "a newline", "printable ASCII"],
        ),
        c(
            "prefix with a zero-width space",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n    s3Prefix: \"team-a\\u200B/\"\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].s3Prefix", "U+200B"],
        ),
        c(
            "pipeline root outside the tenant's prefix",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    s3Access: prefix\n    s3Prefix: private-artifacts/team-a/\n    pipelineRoot: s3://kfp-artifacts/shared/v2/artifacts\n",
            &["apply", "--auto-approve"],
            Offline,
            Nothing,
            &[
                "tenants[0].pipelineRoot",
                "\"s3://kfp-artifacts/shared/v2/artifacts\" lies outside the tenant's grant",
                "s3://kfp-artifacts/private-artifacts/team-a/",
                "e.g. \"s3://kfp-artifacts/private-artifacts/team-a/v2/artifacts\"",
            ],
        ),
        c(
            "pipeline root in another bucket",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    pipelineRoot: s3://other-bucket/private-artifacts/team-a/v2/artifacts\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].pipelineRoot", "is in bucket \"other-bucket\"", "grant is on bucket \"kfp-artifacts\"", "AccessDenied"],
        ),
        c(
            "pipeline root that is not s3",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    pipelineRoot: minio://mlpipeline/private-artifacts/team-a/v2/artifacts\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].pipelineRoot", "is not an s3:// URI (minio)", "outside the tenant's S3 grant"],
        ),
        c(
            "nested pipeline roots",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    pipelineRoot: s3://kfp-artifacts/runs\n  - namespace: team-b\n    owner: b@example.com\n    pipelineRoot: s3://kfp-artifacts/runs/team-b\n",
            &["apply", "--auto-approve"],
            Offline,
            Nothing,
            &["tenants[1].pipelineRoot", "of tenants[0] (\"runs\")", "nest", "a root of its own"],
        ),
        c(
            "pipeline root with a .. segment",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    pipelineRoot: s3://kfp-artifacts/private-artifacts/team-a/../team-b\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].pipelineRoot", "\"..\" segment"],
        ),
        c(
            "quota that is not a quantity",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    resourceQuota: {hard: {cpu: lots}}\n",
            &["apply", "--auto-approve"],
            Offline,
            Nothing,
            &["tenants[0].resourceQuota.hard.cpu", "\"lots\" is not a Kubernetes quantity", "\"500m\""],
        ),
        c(
            "quota of a resource no quota limits",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    resourceQuota: {hard: {cpus: \"8\"}}\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].resourceQuota.hard.cpus", "not a resource a ResourceQuota can limit", "requests.cpu"],
        ),
        c(
            "managed policy by name instead of ARN",
            "tenants:\n  - namespace: team-a\n    owner: a@example.com\n    managedPolicies: [AdministratorAccess]\n",
            &["apply", "--auto-approve"],
            Offline,
            Nothing,
            &[
                "tenants[0].managedPolicies[0]",
                "\"AdministratorAccess\" is not an IAM managed policy ARN",
                "arn:aws:iam::aws:policy/<name>",
            ],
        ),
        c(
            "EKS without the Pod Identity API",
            "tenants:\n  - namespace: team-a\n    owner: alice@example.com\n    identity: podIdentity\n",
            &["plan"],
            Emulators,
            Nothing,
            &["the EKS Pod Identity associations of cluster catalogue", "ListPodIdentityAssociations", "HTTP 404"],
        ),
        c(
            "misspelt identity",
            "defaults: {identity: podIdentity}\ntenants:\n  - namespace: team-a\n    owner: alice@example.com\n    identity: pod-identity\n",
            &["plan"],
            Offline,
            Nothing,
            &["tenants[0].identity", "unknown variant `pod-identity`", "podIdentity"],
        ),
    ]
}

fn header(case: &Case) -> String {
    let cluster = match case.name {
        "unknown cluster" => "no-such-cluster",
        "file for another cluster" => "catalogue-other",
        _ => CLUSTER,
    };
    let region = if case.name == "wrong region" { "eu-west-1" } else { "us-west-2" };
    let bucket = if case.name == "bad bucket name" { "Bad_Bucket" } else { "kfp-artifacts" };
    // The misspelt-bucket case brings its own (wrong) key.
    match case.file.contains("bukcet") {
        true => format!("cluster: {cluster}\nregion: {region}\n"),
        false => format!("cluster: {cluster}\nregion: {region}\nbucket: {bucket}\n"),
    }
}

fn run(args: &[String], kubeconfig: &Path, env: &[(&str, &str)], remove: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kfp-tenant"));
    cmd.args(args).env("KUBECONFIG", kubeconfig).env("NO_COLOR", "1").env_remove("AWS_PROFILE").stdin(Stdio::null());
    for k in remove {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kfp_emulators), ignore = "needs moto: run scripts/test")]
async fn every_bad_input_exits_1_naming_the_field_and_the_fix_without_writing() {
    let aws = support::aws().await;
    let issuer = support::cluster_with_provider(&aws, CLUSTER).await;
    let server = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    support::bind(&server, CLUSTER);
    let dir: PathBuf = std::env::temp_dir().join(format!("kfp-tenant-catalogue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    support::ensure_cluster(&aws, "catalogue-other").await;
    let unbound = FakeApiServer::start(FakeApiOptions::default()).await.unwrap();
    let unbound_config = dir.join("unbound.kubeconfig");
    std::fs::write(&unbound_config, unbound.kubeconfig()).unwrap();
    let closed = dir.join("closed.kubeconfig");
    std::fs::write(&closed, kfp_tenant_testkit::apiserver::kubeconfig("http://127.0.0.1:9")).unwrap();

    let cases = cases();
    assert!(cases.len() >= 25, "the catalogue has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let file = dir.join(format!("{}.yaml", case.name.replace(' ', "-")));
        std::fs::write(&file, format!("{}{}", header(case), case.file.replace("{long}", &"p".repeat(5000)))).unwrap();
        let planfile = dir.join("stale.plan");
        let mut env: Vec<(&str, &str)> = vec![];
        let mut remove: Vec<&str> = vec![];
        let mut config = &kubeconfig;
        match case.setup {
            Setup::Nothing | Setup::UnreachableKubernetes | Setup::UnboundKubernetes | Setup::NoCredentials => {}
            Setup::UnmanagedRole => {
                aws.create_role(&unmanaged_role("team-a-catalogue-role")).await.unwrap();
            }
            Setup::StalePlan => {
                let made = run(
                    &["plan".into(), "-f".into(), file.display().to_string(), "--out".into(), planfile.display().to_string()],
                    &kubeconfig,
                    &[],
                    &[],
                );
                assert_eq!(made.0, 0, "{}", made.1);
                // Someone creates the role the plan meant to create.
                aws.create_role(&unmanaged_role("team-a-catalogue-role")).await.unwrap();
            }
            Setup::LockHeldElsewhere => {
                let now = kfp_tenant_testkit::apiserver::now_micro();
                server.put_object("leases", "kubeflow", json!({"metadata": {"name": "kfp-tenant-lock", "annotations": {"kfp-tenant/lock-id": "0123456789abcdef"}},
                    "spec": {"holderIdentity": "kfp-tenant apply by carol@ci (pid 1)", "leaseDurationSeconds": 60, "renewTime": now, "acquireTime": now}}));
            }
            Setup::LockHeld => {
                let now = kfp_tenant_testkit::apiserver::now_micro();
                server.put_object("leases", "kubeflow", json!({"metadata": {"name": "kfp-tenant-lock"},
                    "spec": {"holderIdentity": "kfp-tenant apply by carol@ci (pid 1)", "leaseDurationSeconds": 60, "renewTime": now, "acquireTime": now}}));
            }
            Setup::NoOidcProvider => {
                let arn = aws.describe_cluster(CLUSTER).await.unwrap().oidc.provider_arn.unwrap();
                aws.iam_client().delete_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await.unwrap();
            }
        }
        if case.setup == Setup::UnreachableKubernetes || case.place == Where::Offline {
            config = &closed;
        }
        if case.setup == Setup::UnboundKubernetes {
            config = &unbound_config;
        }
        if case.place == Where::Offline {
            env.extend([("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")]);
        }
        if case.setup == Setup::NoCredentials {
            remove.extend(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]);
            env.extend([
                ("AWS_CONFIG_FILE", "/nonexistent"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ]);
        }
        let mut args: Vec<String> =
            case.args.iter().map(|a| if *a == "{planfile}" { planfile.display().to_string() } else { (*a).to_owned() }).collect();
        if case.setup != Setup::StalePlan && case.setup != Setup::LockHeldElsewhere {
            args.extend(["-f".to_owned(), file.display().to_string()]);
        }
        args.push("--stats".to_owned());
        let (code, stderr) = run(&args, config, &env, &remove);

        let mut problems = Vec::new();
        if code != 1 {
            problems.push(format!("exit {code}"));
        }
        if stderr.contains("SdkBody") || stderr.contains("Error {") || stderr.contains("raw: Response") {
            problems.push("a Debug dump in the error".to_owned());
        }
        if stderr.lines().filter(|l| l.starts_with("Error:")).count() != 1
            || stderr.lines().any(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        {
            problems.push("not exactly one error".to_owned());
        }
        for e in case.expect {
            if !stderr.contains(e) {
                problems.push(format!("missing {e:?}"));
            }
        }
        if let Some(stats) = stderr.lines().find(|l| l.starts_with("API calls:")) {
            let wrote: Vec<&&str> = WRITES.iter().filter(|w| stats.contains(&format!("{w}="))).collect();
            if !wrote.is_empty() {
                problems.push(format!("wrote: {wrote:?}"));
            }
            // A refusal takes no lock: the cluster is proven before the Lease.
            // (A stale plan is found by reading under the lock, which it releases.)
            let locking = matches!(case.setup, Setup::LockHeld | Setup::LockHeldElsewhere | Setup::StalePlan);
            if !locking && ["POST leases", "PUT leases", "DELETE leases"].iter().any(|w| stats.contains(w)) {
                problems.push(format!("wrote a Lease: {stats}"));
            }
        } else if case.place == Where::Emulators && case.setup != Setup::NoCredentials && !stderr.contains("cannot read") {
            problems.push("no --stats line".to_owned());
        }
        if case.place == Where::Offline && (stderr.contains("127.0.0.1:9") || stderr.contains("onnect")) {
            problems.push("an offline case made a call".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n{stderr}", case.name, problems.join("; ")));
        }

        // Undo the setup for the next case.
        match case.setup {
            Setup::UnmanagedRole | Setup::StalePlan => aws.delete_role("team-a-catalogue-role").await.unwrap(),
            Setup::NoOidcProvider => {
                aws.create_oidc_provider(&issuer).await.unwrap();
            }
            Setup::LockHeldElsewhere => {
                server.edit_object("leases", "kubeflow", "kfp-tenant-lock", |l| {
                    l["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z")
                });
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The cases a JSON Schema can say: a field's shape, range, enum or length,
/// an unknown field. The others need two fields (duplicates, a prefix mode
/// without a prefix unless `defaults.s3Prefix`), a derived value (the default
/// role name's length, the trust policy's size), the YAML parser, or the
/// account and the cluster.
const SCHEMA_EXPRESSIBLE: &[&str] = &[
    "uppercase namespace",
    "namespace of 64 characters",
    "owner without @",
    "owner with spaces",
    "explicit role name over 64",
    "role name with a slash",
    "role path without slashes",
    "wildcard service account",
    "trust policy quota beyond IAM's largest",
    "reserved tag key",
    "session too short",
    "unknown top-level field",
    "misspelt tenant field",
    "misspelt defaults field",
    "unknown access mode",
    "bad bucket name",
    "reserved namespace",
    "prefix of 5000 characters",
    "malformed Cognito pool id",
    "misspelt identity",
    "prefix reaching another tenant's through ..",
    "prefix with an IAM policy variable",
    "prefix with a newline",
    "prefix with a zero-width space",
    "quota that is not a quantity",
    "quota of a resource no quota limits",
    "managed policy by name instead of ARN",
    "pipeline root that is not s3",
    "pipeline root with a .. segment",
];

/// `kfp-tenant schema`, as editors load it.
fn schema() -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kfp-tenant")).arg("schema").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn as_json(yaml: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(yaml).unwrap()
}

#[test]
fn the_schema_rejects_every_case_it_can_express_and_accepts_the_good_examples() {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let cases = cases();
    for name in SCHEMA_EXPRESSIBLE {
        let case = cases.iter().find(|c| c.name == *name).unwrap_or_else(|| panic!("no catalogue case {name:?}"));
        let file = as_json(&format!("{}{}", header(case), case.file));
        assert!(!validator.is_valid(&file), "the schema accepts the catalogue case {name:?}:\n{}", case.file);
    }

    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tenants.yaml");
    let mut good = vec![std::fs::read_to_string(examples).unwrap()];
    // The README's annotated example.
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("```yaml\ncluster: my-cluster").expect("the README's tenants file") + "```yaml\n".len();
    good.push(readme[start..][..readme[start..].find("```").unwrap()].to_owned());
    good.push(format!("cluster: c\nregion: us-west-2\nbucket: kfp-artifacts\n{OK_TENANT}"));
    good.push("cluster: c\nregion: us-west-2\nbucket: kfp-artifacts\ntenants: []\n".to_owned());
    for text in &good {
        let file = as_json(text);
        let errors: Vec<String> = validator.iter_errors(&file).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "the schema refuses a good file: {errors:?}\n{text}");
        let parsed: kfp_tenant_core::spec::TenantsFile = serde_yaml_ng::from_str(text).unwrap();
        kfp_tenant_core::validate(&parsed).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

/// Every `pattern` of a schema, depth first.
fn patterns(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("pattern", serde_json::Value::String(p)) => found.push(p.clone()),
                    _ => patterns(v, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| patterns(v, found)),
        _ => {}
    }
}

/// Every string of a document, keys included.
fn strings(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                found.push(key.clone());
                strings(v, found);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, found)),
        serde_json::Value::String(s) => found.push(s.clone()),
        _ => {}
    }
}

/// Runs `program` with `script`, the cases on standard input; its output is
/// one line of 0/1 per pattern, a character per string.
fn matches_in(program: &str, args: &[&str], cases: &serde_json::Value) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is on machines of this kind: {e}"));
    child.stdin.take().unwrap().write_all(cases.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The schema is usable outside Rust: Python's jsonschema accepts it as a
/// draft 2020-12 schema (its `regex` formats included), and every pattern
/// means the same in ECMA-262 without flags (node), Python's `re` and the
/// Rust validator, on every string of the catalogue's cases and the good
/// examples.
#[test]
fn the_schemas_patterns_mean_the_same_in_three_engines() {
    let schema = schema();
    let mut found = Vec::new();
    patterns(&schema, &mut found);
    found.sort();
    found.dedup();
    assert!(found.len() >= 15, "{} patterns", found.len());
    let mut texts = Vec::new();
    for case in cases() {
        if let Ok(file) = serde_yaml_ng::from_str::<serde_json::Value>(&format!("{}{}", header(&case), case.file)) {
            strings(&file, &mut texts);
        }
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tenants.yaml");
    strings(&as_json(&std::fs::read_to_string(examples).unwrap()), &mut texts);
    texts.extend(["team-a\u{200b}/", "équipe", "tag:value", "a\nb", "private-artifacts/../t2/", "${aws:username}/"].map(str::to_owned));
    texts.sort();
    texts.dedup();

    // Python's `$` also matches before a final newline: pattern by pattern
    // that differs, so the schema guards the fields where it matters (a
    // control character is refused by a `not`), and whole files are
    // compared below.
    texts.retain(|t| !t.ends_with('\n'));
    let rust: Vec<String> = found
        .iter()
        .map(|p| {
            let validator = jsonschema::validator_for(&json!({"pattern": p})).unwrap();
            texts.iter().map(|t| if validator.is_valid(&json!(t)) { '1' } else { '0' }).collect()
        })
        .collect();
    let mut files: Vec<serde_json::Value> =
        cases().iter().filter_map(|case| serde_yaml_ng::from_str(&format!("{}{}", header(case), case.file)).ok()).collect();
    files.push(as_json(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tenants.yaml")).unwrap(),
    ));
    let whole = jsonschema::validator_for(&schema).unwrap();
    let rust_files: String = files.iter().map(|f| if whole.is_valid(f) { '1' } else { '0' }).collect();
    let cases = json!({"patterns": found, "strings": texts, "schema": schema, "files": files});
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python3");
    let python = if python.exists() { python.display().to_string() } else { "python3".to_owned() };
    let py = matches_in(
        &python,
        &[
            "-c",
            "import json, re, sys, jsonschema\nc = json.load(sys.stdin)\nV = jsonschema.Draft202012Validator\nV.check_schema(c['schema'])\nv = V(c['schema'])\nprint(''.join('1' if v.is_valid(f) else '0' for f in c['files']))\nfor p in c['patterns']:\n    r = re.compile(p)\n    print(''.join('1' if r.search(s) else '0' for s in c['strings']))",
        ],
        &cases,
    );
    let node = matches_in(
        "node",
        &[
            "-e",
            "let t='';process.stdin.on('data',d=>t+=d).on('end',()=>{const c=JSON.parse(t);for(const p of c.patterns){const r=new RegExp(p);console.log(c.strings.map(s=>r.test(s)?'1':'0').join(''))}})",
        ],
        &cases,
    );
    let mut differ = Vec::new();
    if py.first() != Some(&rust_files) {
        differ.push(format!("Python's jsonschema judges the catalogue's files otherwise: {:?} vs Rust's {rust_files}", py.first()));
    }
    let py = &py[1..];
    for (i, p) in found.iter().enumerate() {
        for (engine, answers) in [("python re", py), ("ECMA-262 (node)", &node[..])] {
            if answers.get(i) != Some(&rust[i]) {
                let at = rust[i].chars().zip(answers.get(i).map(String::as_str).unwrap_or_default().chars()).position(|(a, b)| a != b);
                differ.push(format!("{p:?}: {engine} differs from Rust on {:?}", at.map(|at| &texts[at])));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// Every property of the schema has a description and examples, and each
/// example is valid where it stands.
#[test]
fn every_field_of_the_schema_is_described_with_an_example_it_accepts() {
    let schema = schema();
    let defs = schema["$defs"].clone();
    let mut objects = vec![("file".to_owned(), schema.clone())];
    objects.extend(defs.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut seen = 0;
    for (owner, object) in objects {
        assert_eq!(object.get("additionalProperties").and_then(|a| a.as_bool()), object.get("properties").map(|_| false), "{owner}");
        for (name, property) in object.get("properties").and_then(|p| p.as_object()).into_iter().flatten() {
            seen += 1;
            let described = property.get("description").and_then(|d| d.as_str()).is_some_and(|d| d.len() > 10);
            assert!(described, "{owner}.{name} has no description");
            let examples = property.get("examples").and_then(|e| e.as_array()).unwrap_or_else(|| panic!("{owner}.{name} has no example"));
            let mut standalone = property.clone();
            standalone["$defs"] = defs.clone();
            let validator = jsonschema::validator_for(&standalone).unwrap();
            for example in examples {
                assert!(validator.is_valid(example), "{owner}.{name}'s example {example} is refused by its own schema");
            }
        }
    }
    assert!(seen >= 30, "{seen} properties");
}

/// The copy the example file's `yaml-language-server` line points at is the
/// binary's schema (regenerate with `kfp-tenant schema > examples/tenants.schema.json`).
#[test]
fn the_committed_schema_is_the_binarys() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tenants.schema.json");
    let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(committed == schema(), "examples/tenants.schema.json is stale: run kfp-tenant schema > examples/tenants.schema.json");
}
