//! A proxy that signs every request it forwards, for one gap of moto: once
//! it enforces IAM policies it refuses unsigned requests, and
//! AssumeRoleWithWebIdentity is unsigned by design (a pod has no
//! credentials, only its token; the SDK sends it without a signature, as
//! AWS wants). Put in front of moto's STS (`AWS_ENDPOINT_URL_STS`), it signs
//! each request with an administrator's keys, which moto then accepts; the
//! token inside is what STS answers for, as before.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http1::{Request, exchange, read_request};

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct SigningProxy {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for SigningProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SigningProxy {
    /// Forwards to `target` (`http://host:port`), signing for `service` in
    /// `region` with this access key.
    pub async fn start(target: &str, service: &'static str, region: &'static str, key: &str, secret: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let credentials = Credentials::new(key, secret, None, None, "signing-proxy");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, credentials) = (target.clone(), credentials.clone());
                tokio::spawn(async move {
                    let _ = forward(client, &target, service, region, credentials).await;
                });
            }
        });
        Ok(SigningProxy { url, task })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// One request: read it, sign it, send it on, pass the answer back.
async fn forward(mut client: TcpStream, target: &str, service: &str, region: &str, credentials: Credentials) -> std::io::Result<()> {
    let Some(Request { method, path, headers, body }) = read_request(&mut client).await? else {
        return Ok(());
    };
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(k, _)| {
            !["authorization", "x-amz-date", "x-amz-security-token", "host", "connection", "x-amz-content-sha256"].contains(&k.as_str())
        })
        .collect();
    headers.push(("host".to_owned(), target.to_owned()));

    let url = format!("http://{target}{path}");
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(std::io::Error::other)?
        .into();
    let signable =
        SignableRequest::new(&method, url.clone(), headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), SignableBody::Bytes(&body))
            .map_err(std::io::Error::other)?;
    let (instructions, _) = sign(signable, &params).map_err(std::io::Error::other)?.into_parts();
    let mut request = http::Request::builder().method(method.as_str()).uri(&url);
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    let mut request = request.body(()).map_err(std::io::Error::other)?;
    instructions.apply_to_request_http1x(&mut request);

    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in request.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
    }
    let answer = exchange(target, &head, &body).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}
