//! Shared by the emulator-backed tests: reaching moto, and setting up an EKS
//! cluster with its IAM OIDC provider in it.

#![allow(dead_code)]

use kfp_tenant_aws::{Aws, AwsOptions};
use kfp_tenant_core::ports::ClusterApi;

pub const REGION: &str = "us-west-2";

/// moto's endpoint, which `scripts/test` starts and exports.
pub fn moto_endpoint() -> String {
    std::env::var("KFP_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "KFP_TEST_AWS_ENDPOINT is not set: run the suite with scripts/test, which starts moto (or export it for a running moto_server)"
        )
    })
}

/// A client of moto. The environment (endpoint, dummy credentials) comes
/// from scripts/test; the endpoint is checked so a test never reaches real AWS.
pub async fn aws() -> Aws {
    let endpoint = moto_endpoint();
    assert_eq!(std::env::var("AWS_ENDPOINT_URL").ok().as_deref(), Some(endpoint.as_str()), "AWS_ENDPOINT_URL must point at moto");
    Aws::connect(&AwsOptions { region: Some(REGION.to_owned()), max_attempts: Some(2), ..Default::default() }).await.expect("clients")
}

/// Creates an EKS cluster in moto (if missing) and the IAM OIDC provider for
/// its issuer (moto gives every cluster the same issuer). Returns the issuer.
pub async fn cluster_with_provider(aws: &Aws, name: &str) -> String {
    ensure_cluster(aws, name).await;
    let oidc = aws.describe_cluster(name).await.expect("describe cluster").oidc;
    if oidc.provider_arn.is_none() {
        match aws.create_oidc_provider(&oidc.issuer_url).await {
            Ok(_) => {}
            Err(e) if e.kind == kfp_tenant_core::ports::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("create OIDC provider: {e}"),
        }
    }
    oidc.issuer_url
}

pub async fn ensure_cluster(aws: &Aws, name: &str) {
    use aws_sdk_eks::types::VpcConfigRequest;
    let result = aws
        .eks_client()
        .create_cluster()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-0123456789abcdef0").build())
        .send()
        .await;
    if let Err(e) = result {
        let text = format!("{}", aws_sdk_eks::error::DisplayErrorContext(&e));
        assert!(text.contains("ResourceInUse") || text.contains("already"), "create cluster {name}: {text}");
    }
}

/// Records in the Kubernetes fake that it is EKS cluster `cluster` of moto's
/// account, as a first `apply --bind-cluster` would: moto gives its clusters
/// made-up endpoints, so the kubeconfig cannot match them.
pub fn bind(server: &kfp_tenant_testkit::apiserver::FakeApiServer, cluster: &str) {
    server.put_object(
        "configmaps",
        kfp_tenant_k8s::RECORD_NAMESPACE,
        serde_json::json!({"metadata": {"name": kfp_tenant_k8s::RECORD_NAME},
            "data": {"clusterArn": format!("arn:aws:eks:{REGION}:123456789012:cluster/{cluster}")}}),
    );
}

/// The second moto, whose IAM policy enforcement a test switches on and off.
pub fn enforcing_endpoint() -> String {
    std::env::var("KFP_TEST_AWS_ENFORCING_ENDPOINT")
        .unwrap_or_else(|_| panic!("KFP_TEST_AWS_ENFORCING_ENDPOINT is not set: run the suite with scripts/test, which starts it"))
}

/// Switches the enforcing moto's IAM policy enforcement on or off
/// (POST /moto-api/reset-auth: after 0 more requests, or never).
pub fn enforce(on: bool) {
    use std::io::{Read, Write};
    let endpoint = enforcing_endpoint();
    let address = endpoint.trim_start_matches("http://");
    let body = if on { "0" } else { "inf" };
    let mut stream = std::net::TcpStream::connect(address).expect("the enforcing moto");
    write!(
        stream,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "reset-auth: {answer}");
}

/// A client of the enforcing moto (with the suite's dummy credentials, for
/// while enforcement is off).
pub async fn enforcing_aws() -> Aws {
    let options =
        AwsOptions { region: Some(REGION.to_owned()), max_attempts: Some(2), endpoint: Some(enforcing_endpoint()), ..Default::default() };
    Aws::connect(&options).await.expect("clients")
}

/// An S3 client of moto at `endpoint`, with the suite's dummy credentials.
pub fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
            .force_path_style(true)
            .build(),
    )
}

/// Creates `bucket` in the moto at `endpoint` unless it is there.
pub async fn ensure_bucket(endpoint: &str, bucket: &str) {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let location = CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(REGION)).build();
    let result = s3(endpoint).create_bucket().bucket(bucket).create_bucket_configuration(location).send().await;
    if let Err(e) = result {
        let text = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
        assert!(text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists"), "create bucket {bucket}: {text}");
    }
}

/// kubectl with `KUBECONFIG`, `stdin` fed to it: whether it succeeded, and what it said.
pub fn kubectl(kubeconfig: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child.stdin.take().expect("a pipe").write_all(stdin.as_bytes()).expect("kubectl reads its input");
    let out = child.wait_with_output().expect("kubectl ends");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
