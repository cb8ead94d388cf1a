//! EKS Pod Identity over HTTP, for one gap of moto: it has no Pod Identity
//! API (every call is a 404). This fake serves the five operations with
//! EKS's REST paths, JSON shapes and errors, and passes every other request
//! through to moto, so one endpoint serves the whole EKS client:
//!
//! - `POST /clusters/{name}/pod-identity-associations` (create): the
//!   cluster must exist in moto; the role is read from moto's IAM and must
//!   exist and trust `pods.eks.amazonaws.com` with `sts:AssumeRole` and
//!   `sts:TagSession`, else `InvalidParameterException` with EKS's words; a
//!   second association for one (namespace, service account) is
//!   `ResourceInUseException`. With a consistency window, a role younger
//!   than the window is reported missing, as EKS does right after CreateRole.
//! - `GET …/pod-identity-associations` (list, summaries without the role,
//!   `namespace`/`serviceAccount` filters, `maxResults`/`nextToken` paging),
//!   `GET …/{id}` (describe), `POST …/{id}` (update the role), `DELETE …/{id}`;
//!   an unknown id is `ResourceNotFoundException`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kfp_tenant_core::policy::{PolicyDocument, admits_pod_identity};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http1::{Request, exchange, read_request};
use crate::{ACCOUNT_ID, lock};

/// How the fake behaves.
#[derive(Clone, Debug, Default)]
pub struct PodIdentityOptions {
    /// A role created less than this long ago is "not found", as IAM's
    /// eventual consistency makes EKS answer right after CreateRole.
    pub consistency_window: Duration,
    /// Where the roles handed to it are read (`http://host:port`), when not
    /// the moto it forwards to (the enforcing moto, through a signing proxy).
    pub iam_endpoint: Option<String>,
}

impl PodIdentityOptions {
    fn iam<'a>(&'a self, moto: &'a str) -> &'a str {
        self.iam_endpoint.as_deref().map_or(moto, |e| e.trim_start_matches("http://").trim_end_matches('/'))
    }
}

#[derive(Clone, Debug)]
struct Association {
    cluster: String,
    id: String,
    namespace: String,
    service_account: String,
    role_arn: String,
    tags: BTreeMap<String, String>,
    created_at: f64,
    modified_at: f64,
}

#[derive(Debug, Default)]
struct State {
    associations: BTreeMap<String, Association>,
    next_id: u64,
}

/// A running fake; stops when dropped.
#[derive(Debug)]
pub struct PodIdentityServer {
    url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for PodIdentityServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodIdentityServer {
    /// Serves Pod Identity and forwards the rest to moto at `moto`
    /// (`http://host:port`).
    pub async fn start(moto: &str, options: PodIdentityOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let moto = moto.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (moto, state, options) = (moto.clone(), state.clone(), options.clone());
                    tokio::spawn(async move {
                        let _ = serve(client, &moto, &state, &options).await;
                    });
                }
            })
        };
        Ok(PodIdentityServer { url, state, task })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every association, as (namespace, service account, role ARN).
    pub fn associations(&self) -> Vec<(String, String, String)> {
        lock(&self.state).associations.values().map(|a| (a.namespace.clone(), a.service_account.clone(), a.role_arn.clone())).collect()
    }
}

/// An answer: status, EKS error type (if any), JSON body.
type Answer = (u16, Option<&'static str>, Value);

fn error(status: u16, kind: &'static str, message: impl Into<String>) -> Answer {
    (status, Some(kind), json!({"message": message.into()}))
}

async fn serve(mut client: TcpStream, moto: &str, state: &Mutex<State>, options: &PodIdentityOptions) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else { return Ok(()) };
    let (path, query) = request.path.split_once('?').unwrap_or((request.path.as_str(), ""));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| form_urlencoded::parse(s.as_bytes()).map(|(k, _)| k.into_owned()).collect())
        .collect();
    let answer = match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["clusters", cluster, "pod-identity-associations", rest @ ..] => {
            let query: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            pod_identity(moto, state, options, &request.method, cluster, rest.first().copied(), &query, &body).await?
        }
        _ => {
            let answer = forward(moto, &request).await?;
            client.write_all(&answer).await?;
            return client.shutdown().await;
        }
    };
    let (status, kind, body) = answer;
    let body = body.to_string();
    let mut head = format!("HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\n", if status < 300 { "OK" } else { "Error" });
    if let Some(kind) = kind {
        head.push_str(&format!("x-amzn-errortype: {kind}\r\n"));
    }
    head.push_str(&format!("x-amzn-requestid: fake-pod-identity\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await
}

async fn forward(moto: &str, request: &Request) -> std::io::Result<Vec<u8>> {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (k, v) in request.headers.iter().filter(|(k, _)| k != "connection") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    exchange(moto, &head, &request.body).await
}

#[allow(clippy::too_many_arguments)] // one request's parts
async fn pod_identity(
    moto: &str,
    state: &Mutex<State>,
    options: &PodIdentityOptions,
    method: &str,
    cluster: &str,
    id: Option<&str>,
    query: &BTreeMap<String, String>,
    body: &Value,
) -> std::io::Result<Answer> {
    if !cluster_exists(moto, cluster).await? {
        return Ok(error(404, "ResourceNotFoundException", format!("No cluster found for name: {cluster}.")));
    }
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    Ok(match (method, id) {
        ("POST", None) => {
            let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            let (namespace, service_account, role_arn) = (field("namespace"), field("serviceAccount"), field("roleArn"));
            if namespace.is_empty() || service_account.is_empty() || role_arn.is_empty() {
                return Ok(error(400, "InvalidParameterException", "namespace, serviceAccount and roleArn are required"));
            }
            if let Some(refused) = check_role(options.iam(moto), &role_arn, options.consistency_window).await? {
                return Ok(refused);
            }
            let mut state = lock(state);
            let taken = state
                .associations
                .values()
                .any(|a| a.cluster == cluster && a.namespace == namespace && a.service_account == service_account);
            if taken {
                return Ok(error(409, "ResourceInUseException", "Association already exists"));
            }
            state.next_id += 1;
            let tags =
                body["tags"].as_object().map(|t| t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect());
            let association = Association {
                cluster: cluster.to_owned(),
                id: format!("a-{:017x}", state.next_id),
                namespace,
                service_account,
                role_arn,
                tags: tags.unwrap_or_default(),
                created_at: now,
                modified_at: now,
            };
            state.associations.insert(association.id.clone(), association.clone());
            (200, None, json!({"association": full(&association)}))
        }
        ("GET", None) => {
            let state = lock(state);
            let matching: Vec<&Association> = state
                .associations
                .values()
                .filter(|a| a.cluster == cluster)
                .filter(|a| query.get("namespace").is_none_or(|ns| *ns == a.namespace))
                .filter(|a| query.get("serviceAccount").is_none_or(|sa| *sa == a.service_account))
                .collect();
            let max: usize = query.get("maxResults").and_then(|m| m.parse().ok()).unwrap_or(100).clamp(1, 100);
            let offset: usize = query.get("nextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = matching.iter().skip(offset).take(max).map(|a| summary(a)).collect();
            let mut answer = json!({"associations": page});
            if offset + max < matching.len() {
                answer["nextToken"] = json!((offset + max).to_string());
            }
            (200, None, answer)
        }
        (method, Some(id)) => {
            let missing = || error(404, "ResourceNotFoundException", format!("Association {id} not found."));
            let exists = lock(state).associations.get(id).is_some_and(|a| a.cluster == cluster);
            if !exists {
                return Ok(missing());
            }
            match method {
                "GET" => lock(state).associations.get(id).map_or_else(missing, |a| (200, None, json!({"association": full(a)}))),
                "POST" => {
                    if let Some(role_arn) = body["roleArn"].as_str()
                        && let Some(refused) = check_role(options.iam(moto), role_arn, options.consistency_window).await?
                    {
                        return Ok(refused);
                    }
                    let mut state = lock(state);
                    let Some(association) = state.associations.get_mut(id) else { return Ok(missing()) };
                    if let Some(role_arn) = body["roleArn"].as_str() {
                        association.role_arn = role_arn.to_owned();
                        association.modified_at = now;
                    }
                    (200, None, json!({"association": full(association)}))
                }
                "DELETE" => lock(state).associations.remove(id).map_or_else(missing, |a| (200, None, json!({"association": full(&a)}))),
                _ => error(405, "InvalidRequestException", format!("{method} is not supported here")),
            }
        }
        (method, None) => error(405, "InvalidRequestException", format!("{method} is not supported here")),
    })
}

fn summary(a: &Association) -> Value {
    json!({
        "clusterName": a.cluster,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "associationArn": arn(a),
        "associationId": a.id,
    })
}

fn full(a: &Association) -> Value {
    let mut value = summary(a);
    value["roleArn"] = json!(a.role_arn);
    value["tags"] = json!(a.tags);
    value["createdAt"] = json!(a.created_at);
    value["modifiedAt"] = json!(a.modified_at);
    value["disableSessionTags"] = json!(false);
    value
}

fn arn(a: &Association) -> String {
    format!("arn:aws:eks:us-west-2:{ACCOUNT_ID}:podidentityassociation/{}/{}", a.cluster, a.id)
}

/// moto's own answer to DescribeCluster.
async fn cluster_exists(moto: &str, cluster: &str) -> std::io::Result<bool> {
    let head =
        format!("GET /clusters/{cluster} HTTP/1.1\r\nhost: {moto}\r\nauthorization: {}\r\ncontent-length: 0\r\n", authorization("eks"));
    let answer = exchange(moto, &head, b"").await?;
    Ok(answer.starts_with(b"HTTP/1.1 200"))
}

/// Why EKS would refuse `role_arn` for Pod Identity, asking moto's IAM.
async fn check_role(moto: &str, role_arn: &str, window: Duration) -> std::io::Result<Option<Answer>> {
    let does_not_exist = || Some(error(400, "InvalidParameterException", "Role provided in the request does not exist"));
    let Some(name) = role_arn.rsplit('/').next().filter(|_| role_arn.starts_with("arn:aws:iam::")) else {
        return Ok(Some(error(400, "InvalidParameterException", format!("Invalid role ARN {role_arn}"))));
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("Action", "GetRole"), ("Version", "2010-05-08"), ("RoleName", name)])
        .finish();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {moto}\r\ncontent-type: application/x-www-form-urlencoded\r\nauthorization: {}\r\ncontent-length: {}\r\n",
        authorization("iam"),
        body.len()
    );
    let answer = String::from_utf8_lossy(&exchange(moto, &head, body.as_bytes()).await?).into_owned();
    if !answer.starts_with("HTTP/1.1 200") {
        return Ok(does_not_exist());
    }
    let element = |tag: &str| {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let start = answer.find(&open)? + open.len();
        let end = answer[start..].find(&close)? + start;
        Some(answer[start..end].to_owned())
    };
    let young = element("CreateDate")
        .and_then(|d| d.parse::<jiff::Timestamp>().ok())
        .is_some_and(|created| jiff::Timestamp::now().duration_since(created).unsigned_abs() < window);
    if young {
        return Ok(does_not_exist());
    }
    let trust = element("AssumeRolePolicyDocument").unwrap_or_default();
    let trust: String = form_urlencoded::parse(format!("d={trust}").as_bytes()).map(|(_, v)| v.into_owned()).collect();
    let trust = PolicyDocument::parse(&xml_unescape(&trust)).unwrap_or_else(|_| PolicyDocument::new(Value::Null));
    if admits_pod_identity(&trust) {
        Ok(None)
    } else {
        Ok(Some(error(400, "InvalidParameterException", "Trust policy of the role provided is invalid")))
    }
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// moto routes by the service named in the credential scope; it does not
/// check the signature unless it enforces IAM.
fn authorization(service: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=testing/20260101/us-west-2/{service}/aws4_request, SignedHeaders=host, Signature=0")
}
