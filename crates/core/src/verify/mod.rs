//! Proving that a tenant works: the chain a pipeline pod's credentials go
//! through, link by link, for every service account a tenant grants.
//!
//! 1. **token**: a short-lived token of the service account for audience
//!    `sts.amazonaws.com` (TokenRequest), the one a projected volume gives the
//!    pod. Its claims are read, never its signature; it is never stored or shown.
//! 2. **issuer**: the token's `iss` is the cluster's OIDC issuer, and the
//!    account's IAM OIDC provider for it exists, lists `sts.amazonaws.com`
//!    and has a thumbprint.
//! 3. **trust**: the role's live trust policy admits the token's claims, as
//!    IAM evaluates it ([`crate::trust`]): moto's STS would accept any token.
//! 4. **sts**: AssumeRoleWithWebIdentity with the token answers with the
//!    tenant's role.
//! 5. **s3**: the tenant's live `kfp-launcher` sends its runs inside its
//!    grant (an `s3://` root in the bucket, inside the prefix), and with
//!    those credentials a probe object under that root can be put, got and
//!    deleted (always deleted); in `prefix` mode a key outside the prefix is
//!    refused. A tenant with `pipelineConfig: false` and no launcher config
//!    is probed under its grant.
//!
//! A failed link stops the chain: the links after it are skipped, so a
//! broken link shows where it is and only there.

use std::fmt;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use serde_json::Value;

use crate::graph::Stop;
use crate::identity::base64_decode;
use crate::kinds::live_root;
use crate::plan::ClusterContext;
use crate::plan::context::{ProviderNeed, context};
use crate::policy::{S3Access, string_list};
use crate::ports::{
    BearerToken, ClusterApi, ConfigMap, ErrorKind, IamApi, KubernetesApi, LAUNCHER_CONFIG, ObjectStoreApi, OidcProviderDetails, Role,
    TemporaryCredentials,
};
use crate::refresh::Observed;
use crate::spec::{DEFAULT_SERVICE_ACCOUNT, Desired, Road, Tenant};
use crate::trust::{self, Decision};

/// Version of `verify --json`.
pub const FORMAT_VERSION: &str = "1.0";
pub const AUDIENCE: &str = "sts.amazonaws.com";

mod report;
pub use report::{Check, Link, Report, Verdict};

/// The ports verify reads through (and S3, which it writes a probe to).
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub cluster: &'a dyn ClusterApi,
    pub iam: &'a dyn IamApi,
    pub kube: &'a dyn KubernetesApi,
    pub s3: &'a dyn ObjectStoreApi,
}

impl fmt::Debug for Ports<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ports")
    }
}

/// A token's claims that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
}

/// The claims of a JWT, read without checking its signature.
pub fn claims(token: &BearerToken) -> Option<Claims> {
    let payload = token.value.split('.').nth(1)?;
    let json: Value = serde_json::from_slice(&base64_decode(payload)?).ok()?;
    let aud = string_list(&json["aud"]);
    Some(Claims { iss: json["iss"].as_str()?.to_owned(), sub: json["sub"].as_str()?.to_owned(), aud })
}

/// Checks every service account of every tenant of `desired`, as
/// `observed` (a refresh) found the account and the cluster, `parallelism`
/// at a time.
///
/// Once `stop` is set no new service account is started; those under way
/// finish their chain (a probe object is deleted in the step that wrote it),
/// and the report says how many were never checked.
pub async fn verify(desired: &Desired, observed: &Observed, ports: Ports<'_>, parallelism: usize, stop: &Stop) -> Report {
    let c = &desired.cluster;
    let (cluster, _) = context(&c.name, &c.region, &c.bucket, observed, ProviderNeed::NotNeeded)
        .expect("invariant: a context that needs no provider cannot be refused");
    let (cluster, roles) = (&cluster, &observed.roles);
    // The provider is the cluster's, not a service account's: read once.
    let provider = match cluster.oidc_provider_arn.is_empty() {
        true => Ok(None),
        false => ports.iam.get_oidc_provider(&cluster.oidc_provider_arn).await.map_err(|e| e.to_string()),
    };
    let provider = &provider;
    let (irsa, pods): (Vec<&Tenant>, Vec<&Tenant>) = desired.tenants.iter().partition(|t| t.road == Road::Irsa);
    let accounts: Vec<(&Tenant, &str)> = irsa.into_iter().flat_map(|t| t.service_accounts.iter().map(move |sa| (t, sa.as_str()))).collect();
    let total = accounts.len();
    let mut checks: Vec<Check> = stream::iter(accounts.into_iter().take_while(|_| !stop.is_stopped()).map(|(tenant, sa)| {
        let launcher = observed.config_maps.get(&(tenant.namespace.clone(), LAUNCHER_CONFIG.to_owned()));
        let chain = Chain { desired, cluster, provider, tenant, service_account: sa, role: roles.get(&tenant.role_name), launcher, ports };
        async move { chain.run().await }
    }))
    .buffer_unordered(parallelism.max(1))
    .collect()
    .await;
    checks.sort_by(|a, b| (&a.namespace, &a.service_account).cmp(&(&b.namespace, &b.service_account)));
    let not_checked = total - checks.len();
    let pod_identity_not_verified = pods.iter().map(|t| t.namespace.clone()).collect();
    Report { format_version: FORMAT_VERSION, cluster: cluster.name.clone(), checks, not_checked, pod_identity_not_verified }
}

struct Chain<'a> {
    desired: &'a Desired,
    cluster: &'a ClusterContext,
    /// GetOpenIDConnectProvider's answer for the cluster's provider, or why it failed.
    provider: &'a Result<Option<OidcProviderDetails>, String>,
    tenant: &'a Tenant,
    service_account: &'a str,
    role: Option<&'a Role>,
    /// The tenant's live `kfp-launcher`, if any.
    launcher: Option<&'a ConfigMap>,
    ports: Ports<'a>,
}

type Step<T> = Result<(String, T), (String, String)>;

fn fail<T>(problem: impl Into<String>, fix: impl Into<String>) -> Step<T> {
    Err((problem.into(), fix.into()))
}

impl Chain<'_> {
    fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.tenant.namespace, self.service_account)
    }

    async fn run(&self) -> Check {
        let mut links = Vec::new();
        self.walk(&mut links).await;
        for link in Link::ALL.into_iter().skip(links.len()) {
            links.push((link, Verdict::Skipped));
        }
        Check {
            namespace: self.tenant.namespace.clone(),
            service_account: self.service_account.to_owned(),
            role: self.tenant.role_name.clone(),
            links,
        }
    }

    /// The links in order, each recorded; the first failure ends the walk.
    async fn walk(&self, links: &mut Vec<(Link, Verdict)>) {
        macro_rules! link {
            ($link:expr, $step:expr) => {
                match $step {
                    Ok((detail, value)) => {
                        links.push(($link, Verdict::Pass { detail }));
                        value
                    }
                    Err((problem, fix)) => {
                        links.push(($link, Verdict::Fail { problem, fix }));
                        return;
                    }
                }
            };
        }
        let (token, claims) = link!(Link::Token, self.token().await);
        link!(Link::Issuer, self.issuer(&claims));
        link!(Link::Trust, self.trust(&claims));
        let credentials = link!(Link::Sts, self.sts(&token).await);
        link!(Link::S3, self.s3(&credentials).await);
    }

    async fn token(&self) -> Step<(BearerToken, Claims)> {
        let (ns, sa) = (&self.tenant.namespace, self.service_account);
        let token = match self.ports.kube.request_token(ns, sa, AUDIENCE, Duration::from_secs(600)).await {
            Ok(Some(token)) => token,
            Ok(None) if sa == DEFAULT_SERVICE_ACCOUNT => {
                return fail(
                    format!("service account {ns}/{sa} does not exist"),
                    "the Kubeflow profile controller makes it: check that it runs (kubectl -n kubeflow get pods), then run kfp-tenant apply",
                );
            }
            Ok(None) => return fail(format!("service account {ns}/{sa} does not exist"), "run kfp-tenant apply"),
            Err(e) => {
                return fail(
                    format!("cannot get a token of {ns}/{sa}: {e}"),
                    format!(
                        "kfp-tenant needs to create serviceaccounts/token in {ns} (kubectl auth can-i create serviceaccounts/token -n {ns})"
                    ),
                );
            }
        };
        let Some(claims) = claims(&token) else {
            return fail(
                format!("the token of {ns}/{sa} is not a JWT with iss, sub and aud"),
                "check the cluster's service-account token issuer",
            );
        };
        if claims.sub != self.subject() || !claims.aud.iter().any(|a| a == AUDIENCE) {
            return fail(
                format!("the token is for {} with audience {:?}, not {} with {AUDIENCE}", claims.sub, claims.aud, self.subject()),
                "check the cluster's TokenRequest (service-account-issuer flags)",
            );
        }
        Ok((format!("a token for {} with audience {AUDIENCE}", claims.sub), (token, claims)))
    }

    fn issuer(&self, claims: &Claims) -> Step<()> {
        let issuer = &self.cluster.oidc_issuer;
        if claims.iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return fail(
                format!("the token's issuer is {}, but EKS gives the cluster's OIDC issuer as {issuer}", claims.iss),
                "the Kubernetes API is not this EKS cluster, or its service-account issuer was changed: check --context",
            );
        }
        let provider = &self.cluster.oidc_provider_arn;
        let eksctl =
            format!("eksctl utils associate-iam-oidc-provider --cluster {} --region {} --approve", self.cluster.name, self.cluster.region);
        if provider.is_empty() {
            return fail(
                format!("the account has no IAM OIDC provider for {issuer}"),
                format!("create it: {eksctl}, or kfp-tenant apply --create-oidc-provider"),
            );
        }
        let details = match self.provider {
            Ok(Some(details)) => details,
            Ok(None) => return fail(format!("the IAM OIDC provider {provider} does not exist"), format!("create it: {eksctl}")),
            Err(e) => return fail(format!("cannot read the IAM OIDC provider {provider}: {e}"), "check the credentials' IAM permissions"),
        };
        if !details.client_ids.iter().any(|c| c == AUDIENCE) {
            return fail(
                format!("the IAM OIDC provider {provider} lists the client ids {:?}, not {AUDIENCE}", details.client_ids),
                format!(
                    "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {provider} --client-id {AUDIENCE}"
                ),
            );
        }
        if details.thumbprints.is_empty() {
            return fail(
                format!("the IAM OIDC provider {provider} has no thumbprint"),
                format!("recreate it with {eksctl}, which sets the issuer's CA thumbprint"),
            );
        }
        Ok((format!("{issuer} is the cluster's issuer; its IAM OIDC provider lists {AUDIENCE} and has a thumbprint"), ()))
    }

    fn trust(&self, claims: &Claims) -> Step<()> {
        let Some(role) = self.role else {
            return fail(format!("IAM role {} does not exist", self.tenant.role_name), "run kfp-tenant apply");
        };
        let host = self.cluster.oidc_issuer.trim_start_matches("https://");
        let request = trust::Request::web_identity(&self.cluster.oidc_provider_arn, host, &claims.sub, &claims.aud);
        match trust::evaluate(&role.trust_policy, &request) {
            Decision::Allowed { index, sid } => {
                let which = sid.map_or_else(|| format!("statement {index}"), |s| format!("statement {index} ({s})"));
                Ok((format!("{which} of role {} admits {}", role.name, claims.sub), ()))
            }
            Decision::Denied { index, .. } => fail(
                format!("statement {index} of role {}'s trust policy denies {}", role.name, claims.sub),
                "remove that Deny, then run kfp-tenant apply",
            ),
            Decision::NotAdmitted { reasons } => {
                let admitted = admitted_subjects(role, host);
                // Name the subjects only when the subject is what keeps the token out.
                let problem = match admitted.is_empty() || admitted.contains(&claims.sub) {
                    true => format!("the trust policy of role {} does not admit {} ({})", role.name, claims.sub, reasons.join("; ")),
                    false => format!("the trust policy of role {} admits {} but not {}", role.name, admitted.join(", "), claims.sub),
                };
                fail(problem, "run kfp-tenant apply")
            }
        }
    }

    async fn sts(&self, token: &BearerToken) -> Step<TemporaryCredentials> {
        let Some(role) = self.role else {
            return fail(format!("IAM role {} does not exist", self.tenant.role_name), "run kfp-tenant apply");
        };
        let session = format!("kfp-tenant-verify-{}", self.tenant.namespace);
        match self.ports.cluster.assume_role_with_web_identity(&role.arn, &session, token).await {
            Ok(assumed) => {
                let expected = format!("arn:{}:sts::{}:assumed-role/{}/", self.cluster.partition, self.cluster.account_id, role.name);
                if !assumed.arn.starts_with(&expected) {
                    return fail(format!("STS answered with {}, not a session of role {}", assumed.arn, role.name), "check the role's ARN");
                }
                Ok((format!("STS answered with {}", assumed.arn), assumed.credentials))
            }
            Err(e) => fail(
                format!("AssumeRoleWithWebIdentity refused: {e}"),
                "the trust policy or the OIDC provider does not admit the token; run kfp-tenant apply",
            ),
        }
    }

    async fn s3(&self, credentials: &TemporaryCredentials) -> Step<()> {
        let (ns, sa) = (&self.tenant.namespace, self.service_account);
        let bucket = &self.cluster.bucket;
        let s3 = self.ports.s3;
        // Where the tenant's runs write: the root its live kfp-launcher names.
        let launcher = self.launcher;
        let root = match (self.tenant.pipeline_root.is_some(), launcher) {
            // Opted out and no launcher config: the grant itself is probed.
            (false, None) => None,
            _ => match live_root(launcher, bucket, &self.tenant.s3_access) {
                Ok(root) => Some(root),
                Err(problem) => return fail(format!("{ns}: {problem}"), "run kfp-tenant apply, which writes the tenant's pipeline config"),
            },
        };
        let (key, outside) = match (&root, &self.tenant.s3_access) {
            (Some(root), S3Access::Prefix { .. }) => (format!("{root}/kfp-tenant-verify/probe-{sa}"), Some(self.outside_key())),
            (Some(root), _) => (format!("{root}/kfp-tenant-verify/probe-{sa}"), None),
            (None, S3Access::Prefix { prefix }) => (format!("{prefix}kfp-tenant-verify-{sa}"), Some(self.outside_key())),
            (None, S3Access::Scoped | S3Access::Full) => (format!("kfp-tenant-verify/{ns}/probe-{sa}"), None),
        };
        let body = format!("kfp-tenant verify {ns}/{sa}").into_bytes();
        if let Err(e) = s3.put_object(credentials, bucket, &key, &body).await {
            if e.kind == crate::ports::ErrorKind::NotFound || e.message.contains("NoSuchBucket") {
                let region = &self.cluster.region;
                return fail(
                    format!("bucket {bucket} does not exist (PutObject s3://{bucket}/{key}: {})", e.message),
                    format!(
                        "create it (aws s3 mb s3://{bucket} --region {region}), or set the tenants file's bucket to the one Kubeflow Pipelines uses"
                    ),
                );
            }
            return fail(
                format!("cannot put s3://{bucket}/{key} with the role's credentials: {e}"),
                "check the role's inline S3 policy; run kfp-tenant apply",
            );
        }
        let read = s3.get_object(credentials, bucket, &key).await;
        // The probe object always goes.
        let deleted = s3.delete_object(credentials, bucket, &key).await;
        match read {
            Ok(got) if got == body => {}
            Ok(_) => return fail(format!("s3://{bucket}/{key} read back different bytes"), "check the bucket for another writer"),
            Err(e) => {
                return fail(
                    format!("cannot get s3://{bucket}/{key} back: {e}"),
                    "check the role's inline S3 policy; run kfp-tenant apply",
                );
            }
        }
        if let Err(e) = deleted {
            return fail(
                format!("cannot delete the probe s3://{bucket}/{key}: {e}"),
                format!("delete it by hand (aws s3 rm s3://{bucket}/{key}) and check the role's inline S3 policy"),
            );
        }
        let Some(outside) = outside else { return Ok((format!("put, get and delete s3://{bucket}/{key}"), ())) };
        match s3.put_object(credentials, bucket, &outside, &body).await {
            Err(e) if e.kind == ErrorKind::AccessDenied => {
                Ok((format!("put, get and delete under the prefix; s3://{bucket}/{outside} is refused"), ()))
            }
            Err(e) => fail(
                format!("putting s3://{bucket}/{outside}, outside the prefix, failed otherwise than refused: {e}"),
                "check the bucket and its policy",
            ),
            Ok(()) => {
                let _ = s3.delete_object(credentials, bucket, &outside).await;
                fail(
                    format!("the role can write s3://{bucket}/{outside}, outside its prefix"),
                    "remove the broader grant (an inline or attached policy, or the bucket policy), then run kfp-tenant apply",
                )
            }
        }
    }

    /// A key the tenant must not write: another prefix tenant's, or beside its own prefix.
    fn outside_key(&self) -> String {
        let other = self.desired.tenants.iter().find_map(|t| match &t.s3_access {
            S3Access::Prefix { prefix } if t.namespace != self.tenant.namespace => Some(prefix.clone()),
            _ => None,
        });
        match other {
            Some(prefix) => format!("{prefix}kfp-tenant-verify-from-{}", self.tenant.namespace),
            None => format!("kfp-tenant-verify/outside-prefix/{}", self.tenant.namespace),
        }
    }
}

/// The subjects a trust policy admits through `StringEquals` on `<host>:sub`.
fn admitted_subjects(role: &Role, host: &str) -> Vec<String> {
    let key = format!("{host}:sub");
    let statements = role.trust_policy.statements();
    let mut found: Vec<String> = statements
        .iter()
        .filter_map(|s| s["Condition"]["StringEquals"].as_object())
        .flat_map(|c| c.iter().filter(|(k, _)| k.eq_ignore_ascii_case(&key)).map(|(_, v)| v.clone()).collect::<Vec<_>>())
        .flat_map(|v| string_list(&v))
        .collect();
    found.sort();
    found.dedup();
    found
}
