//! A proxy in front of moto that records every request it forwards: who
//! signed it (the access key of its SigV4 `Authorization`), the method, the
//! path and the form parameters (IAM's and STS's Query API), so that a test
//! can check each call a run made against an IAM policy, resource by
//! resource, where moto checks actions only.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http1::{Request, exchange, read_request};

/// One request as it went by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The access key that signed it, when signed.
    pub access_key: Option<String>,
    pub method: String,
    pub path: String,
    /// Form parameters of a Query API call (`Action`, `RoleName`, ...), or
    /// the top-level string fields of a JSON one (`roleArn`, ...).
    pub params: Vec<(String, String)>,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct RecordingProxy {
    url: String,
    calls: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingProxy {
    /// Forwards to `target` (`http://host:port`) as it is, recording.
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, recorded) = (target.clone(), recorded.clone());
                tokio::spawn(async move {
                    let _ = forward(client, &target, &recorded).await;
                });
            }
        });
        Ok(RecordingProxy { url, calls, task })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Recorded> {
        crate::lock(&self.calls).clone()
    }
}

async fn forward(mut client: TcpStream, target: &str, recorded: &Mutex<Vec<Recorded>>) -> std::io::Result<()> {
    let Some(Request { method, path, headers, body }) = read_request(&mut client).await? else {
        return Ok(());
    };
    let access_key = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .map(str::to_owned);
    let form = headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("application/x-www-form-urlencoded"));
    let params = if form {
        form_urlencoded::parse(&body).into_owned().collect()
    } else {
        // A JSON API call (EKS): its top-level string fields.
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        json.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
    };
    crate::lock(recorded).push(Recorded { access_key, method: method.clone(), path: path.clone(), params });
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| k != "connection") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let answer = exchange(target, &head, &body).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}
