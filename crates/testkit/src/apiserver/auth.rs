//! Authentication the way EKS does it, for `--eks-auth`: a bearer token
//! `k8s-aws-v1.<base64url of a presigned STS GetCallerIdentity URL>` is
//! decoded, checked (the action, the signed `x-k8s-aws-id` header, the
//! expiry, the STS host), and sent to STS, whose answer names the caller;
//! an identity of the cluster's account is an administrator (as an EKS
//! access entry for the cluster's creator would make it).
//!
//! moto plays STS. It does not check signatures, so a token made for
//! another cluster (the `x-k8s-aws-id` value is in the signature only) would
//! pass here and fail on EKS; and a presigned URL sent as a plain GET is
//! taken for S3 by moto, so the request goes as a POST whose Authorization
//! header carries the URL's credential scope, which moto reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::lock;

/// Which tokens the fake accepts.
#[derive(Clone, Debug)]
pub struct EksAuth {
    /// STS's URL (moto's): tokens must be presigned for it, and are checked against it.
    pub sts: String,
    /// The cluster's account: its identities are administrators.
    pub account: String,
}

/// The fake's own administrator token, for its kubeconfig (the tests' clients, the controller).
pub const ADMIN_TOKEN: &str = "kfp-tenant-fake-admin";

#[derive(Clone, Debug, Default)]
pub struct Verified(Arc<Mutex<HashMap<String, Result<String, String>>>>);

/// The caller's ARN when `authorization` is acceptable, else why not.
pub async fn authenticate(auth: &EksAuth, cache: &Verified, authorization: Option<&str>) -> Result<String, String> {
    let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return Err("no bearer token".to_owned());
    };
    if token == ADMIN_TOKEN {
        return Ok("admin".to_owned());
    }
    if let Some(known) = lock(&cache.0).get(token) {
        return known.clone();
    }
    let verdict = verify(auth, token).await;
    lock(&cache.0).insert(token.to_owned(), verdict.clone());
    verdict
}

async fn verify(auth: &EksAuth, token: &str) -> Result<String, String> {
    let encoded = token.strip_prefix("k8s-aws-v1.").ok_or("the token is not an EKS token (k8s-aws-v1.)")?;
    let standard = encoded.replace('-', "+").replace('_', "/");
    let url = kfp_tenant_core::identity::base64_decode(&standard)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("the token does not decode to a URL")?;
    let (base, query) = url.split_once('?').ok_or("the token's URL has no query")?;
    let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    if param("Action") != "GetCallerIdentity" {
        return Err(format!("the token's action is {:?}, not GetCallerIdentity", param("Action")));
    }
    if !param("X-Amz-SignedHeaders").split(';').any(|h| h == "x-k8s-aws-id") {
        return Err("the token does not sign x-k8s-aws-id (the cluster's name)".to_owned());
    }
    let expires: i64 = param("X-Amz-Expires").parse().map_err(|_| "the token has no X-Amz-Expires")?;
    if !(1..=900).contains(&expires) {
        return Err(format!("X-Amz-Expires {expires} is outside 1-900"));
    }
    let signed = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", param("X-Amz-Date"))
        .map_err(|e| format!("bad X-Amz-Date: {e}"))?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?
        .timestamp();
    let age = jiff::Timestamp::now().as_second() - signed.as_second();
    if age > 15 * 60 {
        return Err(format!("the token is {age} s old; EKS accepts 15 minutes"));
    }
    if base.trim_end_matches('/') != auth.sts.trim_end_matches('/') {
        return Err(format!("the token is for {base}, not this cluster's STS {}", auth.sts));
    }
    let arn = get_caller_identity(auth, param("X-Amz-Credential"), param("X-Amz-Date"), param("X-Amz-Signature")).await?;
    let account = arn.split(':').nth(4).unwrap_or_default();
    if account != auth.account {
        return Err(format!("{arn} is not mapped to a user of this cluster (no access entry)"));
    }
    Ok(arn)
}

/// STS's answer to the token's request, sent as moto reads it.
async fn get_caller_identity(auth: &EksAuth, credential: &str, date: &str, signature: &str) -> Result<String, String> {
    let address = auth.sts.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Amz-Date: {date}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, Signature={signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&address).await.map_err(|e| format!("cannot reach STS at {address}: {e}"))?;
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.map_err(|e| e.to_string())?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!("STS refused the token: {}", answer.lines().next().unwrap_or_default()));
    }
    let arn = answer.split("<Arn>").nth(1).and_then(|rest| rest.split("</Arn>").next()).ok_or("STS's answer names no ARN")?;
    Ok(arn.to_owned())
}
