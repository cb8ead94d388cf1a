//! A fake Kubernetes API server over HTTP, good enough for the real
//! `kube::Client` and for kubectl, that also plays the Kubeflow profile
//! controller.
//!
//! It serves discovery for the groups kfp-tenant uses, and Profiles
//! (kubeflow.org/v1, cluster-scoped), Namespaces, ServiceAccounts and Leases:
//! get, list (label selectors), create, replace (409 on a stale
//! resourceVersion), merge patch, server-side apply (creating a missing
//! object), delete with finalizers. Errors are Kubernetes `Status` bodies with
//! the standard reasons, so kube's error helpers recognise them.
//!
//! As the profile controller, after a configurable delay it creates a
//! Profile's namespace (owner annotation), the `default-editor` and
//! `default-viewer` service accounts, annotates `default-editor` with the
//! `AwsIamForServiceAccount` plugin's role ARN, and adds its finalizer; on
//! deletion it removes the namespace, then the finalizer. Like the real one it
//! refuses a namespace that exists with another owner.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::lock;

pub const PROFILE_FINALIZER: &str = "profile-finalizer";
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeApiOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Whether to play the Kubeflow profile controller.
    pub controller: bool,
    /// How long the controller takes to react to a Profile change.
    pub reconcile_delay: Duration,
}

impl Default for FakeApiOptions {
    fn default() -> Self {
        FakeApiOptions { port: 0, controller: true, reconcile_delay: Duration::from_millis(50) }
    }
}

struct Kind {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
}

const KINDS: &[Kind] = &[
    Kind { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, short: &["ns"] },
    Kind { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true, short: &["sa"] },
    Kind { group: "kubeflow.org", version: "v1", plural: "profiles", kind: "Profile", namespaced: false, short: &[] },
    Kind { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true, short: &[] },
];

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }
}

type Key = (&'static str, String, String);

#[derive(Debug, Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    uid: u64,
    requests: BTreeMap<String, u64>,
}

impl Store {
    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// Stores `object`, stamping kind, namespace, resourceVersion and, when
    /// new, uid and creationTimestamp.
    fn put(&mut self, kind: &Kind, ns: &str, mut object: Value) -> Value {
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let key = (kind.plural, ns.to_owned(), name);
        let previous = self.objects.get(&key).cloned();
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        let rv = self.next_revision();
        let meta = metadata(&mut object);
        if kind.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("resourceVersion".into(), json!(rv));
        match previous {
            Some(p) => {
                for field in ["uid", "creationTimestamp"] {
                    meta.insert(field.into(), p["metadata"][field].clone());
                }
            }
            None => {
                self.uid += 1;
                meta.insert("uid".into(), json!(format!("00000000-0000-0000-0000-{:012}", self.uid)));
                meta.insert("creationTimestamp".into(), json!(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
            }
        }
        // An object being deleted goes once its finalizers are gone.
        let finalizing =
            object["metadata"]["deletionTimestamp"].is_string() && object["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        if finalizing {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key, object.clone());
        }
        object
    }

    fn get(&self, plural: &'static str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(plural, ns.to_owned(), name.to_owned()))
    }

    /// Deletes now, or marks for deletion while finalizers remain. Deleting a
    /// namespace takes the objects in it along.
    fn delete(&mut self, kind: &Kind, ns: &str, name: &str) -> Option<Value> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let mut object = self.objects.get(&key)?.clone();
        if object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
            if !object["metadata"]["deletionTimestamp"].is_string() {
                metadata(&mut object)
                    .insert("deletionTimestamp".into(), json!(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
                return Some(self.put(kind, ns, object));
            }
            return Some(object);
        }
        self.objects.remove(&key);
        if kind.plural == "namespaces" {
            self.objects.retain(|(_, n, _), _| n != name);
        }
        Some(object)
    }
}

fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("invariant: metadata was just made an object")
}

/// A running fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    store: Arc<Mutex<Store>>,
    options: FakeApiOptions,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    pub async fn start(options: FakeApiOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Shared { store: Arc::default(), options };
        {
            // What a cluster with Kubeflow installed starts with.
            let mut store = lock(&shared.store);
            for ns in ["default", "kube-system", "kubeflow"] {
                store.put(kind_of("namespaces"), "", json!({"metadata": {"name": ns}}));
            }
        }
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(FakeApiServer { addr, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context (`fake`) points at this server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url())
    }

    /// An object as stored, e.g. `("serviceaccounts", "team-a", "default-editor")`.
    pub fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let kind = KINDS.iter().find(|k| k.plural == plural)?;
        lock(&self.shared.store).get(kind.plural, ns, name).cloned()
    }

    /// Creates or replaces an object behind the tool's back.
    pub fn put_object(&self, plural: &str, ns: &str, object: Value) {
        let kind = KINDS.iter().find(|k| k.plural == plural).expect("a kind the fake serves");
        lock(&self.shared.store).put(kind, ns, object);
    }

    /// Changes an object behind the tool's back.
    pub fn edit_object(&self, plural: &str, ns: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let kind = KINDS.iter().find(|k| k.plural == plural).expect("a kind the fake serves");
        let mut store = lock(&self.shared.store);
        if let Some(mut object) = store.get(kind.plural, ns, name).cloned() {
            edit(&mut object);
            store.put(kind, ns, object);
        }
    }

    /// Requests served, by `VERB plural` (e.g. `PATCH profiles`).
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.store).requests.clone()
    }
}

/// Now, as a Kubernetes MicroTime (for Leases).
pub fn now_micro() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n"
    )
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

fn status(code: StatusCode, reason: &str, message: String, kind: &str, name: &str) -> Response<Full<Bytes>> {
    reply(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": {"name": name, "kind": kind}, "code": code.as_u16(),
        }),
    )
}

fn not_found(kind: &Kind, name: &str) -> Response<Full<Bytes>> {
    let what = if kind.group.is_empty() { kind.plural.to_owned() } else { format!("{}.{}", kind.plural, kind.group) };
    status(StatusCode::NOT_FOUND, "NotFound", format!("{what} \"{name}\" not found"), kind.plural, name)
}

fn discovery(path: &str) -> Option<Value> {
    let resources = |group: &str| -> Value {
        let list: Vec<Value> = KINDS
            .iter()
            .filter(|k| k.group == group)
            .map(|k| {
                json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update"], "shortNames": k.short})
            })
            .collect();
        let gv = if group.is_empty() { "v1".to_owned() } else { format!("{group}/v1") };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
    };
    match path {
        "/version" => Some(json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-kfp-tenant-fake", "platform": "linux/amd64"})),
        "/api" => Some(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        "/apis" => {
            let groups: Vec<Value> = ["kubeflow.org", "coordination.k8s.io"]
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        "/api/v1" => Some(resources("")),
        "/apis/kubeflow.org/v1" => Some(resources("kubeflow.org")),
        "/apis/coordination.k8s.io/v1" => Some(resources("coordination.k8s.io")),
        _ => None,
    }
}

/// (kind, namespace, name) of a resource path.
fn route(path: &str) -> Option<(&'static Kind, String, Option<String>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (ns, plural, name) = match rest {
        ["namespaces", ns, plural, name @ ..] if *plural != "status" => (ns.to_string(), *plural, name.first()),
        [plural, name @ ..] => (String::new(), *plural, name.first()),
        _ => return None,
    };
    let kind = KINDS.iter().find(|k| k.group == group && k.version == version && k.plural == plural)?;
    Some((kind, ns, name.map(|n| n.to_string())))
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// `a=b,c!=d,e` against an object's labels.
pub fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector.split(',').map(str::trim).filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k.trim()].as_str() == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            labels[k.trim()].is_null()
        } else {
            !labels[term].is_null()
        }
    })
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().expect("invariant: made an object above");
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(k);
                } else {
                    merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET
        && let Some(body) = discovery(&path)
    {
        return reply(StatusCode::OK, &body);
    }
    let Some((kind, ns, name)) = route(&path) else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("the server could not find the requested resource ({path})"), "", "");
    };
    let method = req.method().clone();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let params = query(&req);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string(), kind.plural, ""),
    };
    let parsed: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    lock(&shared.store).requests.entry(format!("{method} {}", kind.plural)).and_modify(|n| *n += 1).or_insert(1);

    let response = {
        let mut store = lock(&shared.store);
        let writes = method == Method::POST || method == Method::PATCH || method == Method::PUT;
        if kind.namespaced && writes && !ns.is_empty() && store.get("namespaces", "", &ns).is_none() {
            return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{ns}\" not found"), "namespaces", &ns);
        }
        match (&method, name.as_deref()) {
            (&Method::GET, None) => {
                let selector = params.get("labelSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = store
                    .objects
                    .iter()
                    .filter(|((p, n, _), o)| {
                        *p == kind.plural && (ns.is_empty() || *n == ns) && selector_matches(&selector, &o["metadata"]["labels"])
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                reply(
                    StatusCode::OK,
                    &json!({"kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": store.revision.to_string()}, "items": items}),
                )
            }
            (&Method::GET, Some(name)) => match store.get(kind.plural, &ns, name) {
                Some(o) => reply(StatusCode::OK, o),
                None => not_found(kind, name),
            },
            (&Method::POST, None) => match parsed {
                Some(object) => {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    if name.is_empty() {
                        status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name: Required value".into(), kind.kind, "")
                    } else if store.get(kind.plural, &ns, &name).is_some() {
                        status(
                            StatusCode::CONFLICT,
                            "AlreadyExists",
                            format!("{} \"{name}\" already exists", kind.plural),
                            kind.plural,
                            &name,
                        )
                    } else {
                        reply(StatusCode::CREATED, &store.put(kind, &ns, object))
                    }
                }
                None => status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), kind.plural, ""),
            },
            (&Method::PUT, Some(name)) => match (store.get(kind.plural, &ns, name).cloned(), parsed) {
                (None, _) => not_found(kind, name),
                (Some(_), None) => status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), kind.plural, name),
                (Some(current), Some(object)) => {
                    let sent = object["metadata"]["resourceVersion"].as_str();
                    if sent.is_some_and(|rv| Some(rv) != current["metadata"]["resourceVersion"].as_str()) {
                        status(
                            StatusCode::CONFLICT,
                            "Conflict",
                            format!(
                                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                                kind.plural
                            ),
                            kind.plural,
                            name,
                        )
                    } else {
                        reply(StatusCode::OK, &store.put(kind, &ns, object))
                    }
                }
            },
            (&Method::PATCH, Some(name)) => {
                let Some(patch) = parsed else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), kind.plural, name);
                };
                let current = store.get(kind.plural, &ns, name).cloned();
                if content_type.starts_with("application/apply-patch") {
                    // Server-side apply, as far as kfp-tenant relies on it: the
                    // manager owns the whole spec, labels and annotations merge.
                    let mut object = current.unwrap_or_else(|| json!({"metadata": {"name": name}}));
                    for (k, v) in patch.as_object().into_iter().flatten() {
                        if k == "metadata" {
                            for field in ["labels", "annotations"] {
                                if let Some(m) = v.get(field) {
                                    merge_patch(&mut object["metadata"][field], m);
                                }
                            }
                        } else {
                            object[k] = v.clone();
                        }
                    }
                    reply(StatusCode::OK, &store.put(kind, &ns, object))
                } else {
                    match current {
                        None => not_found(kind, name),
                        Some(mut object) => {
                            merge_patch(&mut object, &patch);
                            reply(StatusCode::OK, &store.put(kind, &ns, object))
                        }
                    }
                }
            }
            (&Method::DELETE, Some(name)) => match store.delete(kind, &ns, name) {
                Some(o) => reply(StatusCode::OK, &o),
                None => not_found(kind, name),
            },
            _ => {
                status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported on {path}"), kind.plural, "")
            }
        }
    };

    if kind.plural == "profiles" && shared.options.controller && method != Method::GET && response.status().is_success() {
        let (shared, name) =
            (shared.clone(), name.or_else(|| serde_json::from_slice::<Value>(&body).ok()?["metadata"]["name"].as_str().map(str::to_owned)));
        if let Some(name) = name {
            tokio::spawn(async move {
                tokio::time::sleep(shared.options.reconcile_delay).await;
                reconcile(&shared, &name);
            });
        }
    }
    response
}

fn kind_of(plural: &str) -> &'static Kind {
    KINDS.iter().find(|k| k.plural == plural).expect("invariant: a served kind")
}

/// One pass of the Kubeflow profile controller over Profile `name`.
fn reconcile(shared: &Shared, name: &str) {
    let mut store = lock(&shared.store);
    let Some(mut profile) = store.get("profiles", "", name).cloned() else { return };
    let (profiles, namespaces, accounts) = (kind_of("profiles"), kind_of("namespaces"), kind_of("serviceaccounts"));
    if profile["metadata"]["deletionTimestamp"].is_string() {
        store.delete(namespaces, "", name);
        if let Some(f) = profile["metadata"]["finalizers"].as_array_mut() {
            f.retain(|f| f != PROFILE_FINALIZER);
        }
        store.put(profiles, "", profile);
        return;
    }
    let owner = profile["spec"]["owner"]["name"].as_str().unwrap_or_default().to_owned();
    let finalizers = metadata(&mut profile).entry("finalizers").or_insert(json!([]));
    if !finalizers.as_array().is_some_and(|f| f.iter().any(|x| x == PROFILE_FINALIZER)) {
        if let Some(f) = finalizers.as_array_mut() {
            f.push(json!(PROFILE_FINALIZER));
        }
        profile = store.put(profiles, "", profile);
    }
    match store.get("namespaces", "", name).cloned() {
        Some(ns) if ns["metadata"]["annotations"]["owner"].as_str() != Some(&owner) => {
            profile["status"] =
                json!({"conditions": [{"type": "Failed", "message": "namespace already exist, but not owned by profile creator"}]});
            store.put(profiles, "", profile);
            return;
        }
        Some(_) => {}
        None => {
            let ns = json!({"metadata": {"name": name, "annotations": {"owner": owner}, "labels": {"istio-injection": "enabled", "app.kubernetes.io/part-of": "kubeflow-profile"},
                "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Profile", "name": name, "uid": profile["metadata"]["uid"], "controller": true}]}});
            store.put(namespaces, "", ns);
        }
    }
    for sa in ["default-editor", "default-viewer"] {
        if store.get("serviceaccounts", name, sa).is_none() {
            store.put(accounts, name, json!({"metadata": {"name": sa}}));
        }
    }
    let role = profile["spec"]["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["kind"] == "AwsIamForServiceAccount")
        .and_then(|p| p["spec"]["awsIamRole"].as_str())
        .map(str::to_owned);
    if let (Some(role), Some(mut editor)) = (role, store.get("serviceaccounts", name, "default-editor").cloned())
        && editor["metadata"]["annotations"][ROLE_ARN_ANNOTATION].as_str() != Some(&role)
    {
        metadata(&mut editor).entry("annotations").or_insert(json!({}))[ROLE_ARN_ANNOTATION] = json!(role);
        store.put(accounts, name, editor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels = json!({"app.kubernetes.io/managed-by": "kfp-tenant", "tier": "a"});
        for (selector, expected) in [
            ("app.kubernetes.io/managed-by=kfp-tenant", true),
            ("app.kubernetes.io/managed-by==kfp-tenant,tier=a", true),
            ("tier!=a", false),
            ("tier", true),
            ("!tier", false),
            ("missing", false),
            ("", true),
        ] {
            assert_eq!(selector_matches(selector, &labels), expected, "{selector}");
        }
    }

    #[test]
    fn routes() {
        let r = |p: &str| route(p).map(|(k, ns, n)| (k.plural, ns, n));
        assert_eq!(r("/apis/kubeflow.org/v1/profiles/team-a"), Some(("profiles", String::new(), Some("team-a".into()))));
        assert_eq!(r("/api/v1/namespaces/team-a"), Some(("namespaces", String::new(), Some("team-a".into()))));
        assert_eq!(r("/api/v1/namespaces/team-a/serviceaccounts"), Some(("serviceaccounts", "team-a".into(), None)));
        assert_eq!(r("/api/v1/serviceaccounts"), Some(("serviceaccounts", String::new(), None)));
        assert_eq!(r("/apis/apps/v1/deployments"), None);
    }
}
