//! The fake's HTTP side: routing a request to its kind, discovery, and each
//! verb (get, list, watch, create, replace, patch, apply, delete) answered
//! with what kube-apiserver answers, `Status` bodies included.

use super::*;

type Body = BoxBody<Bytes, Infallible>;

fn reply(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

fn status(code: StatusCode, reason: &str, message: String, kind: &str, name: &str) -> Response<Body> {
    reply(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": {"name": name, "kind": kind}, "code": code.as_u16(),
        }),
    )
}

fn not_found(kind: &Kind, name: &str) -> Response<Body> {
    status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", qualified(kind)), kind.plural, name)
}

fn qualified(kind: &Kind) -> String {
    if kind.group.is_empty() { kind.plural.to_owned() } else { format!("{}.{}", kind.plural, kind.group) }
}

fn discovery(path: &str) -> Option<Value> {
    let resources = |group: &str| -> Value {
        let mut list: Vec<Value> = Vec::new();
        for k in KINDS.iter().filter(|k| k.group == group) {
            list.push(json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced, "kind": k.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": k.short}));
            if k.status {
                list.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced,
                    "kind": k.kind, "verbs": ["get", "patch", "update"]}));
            }
        }
        let gv = if group.is_empty() { "v1".to_owned() } else { format!("{group}/v1") };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
    };
    match path {
        "/version" => Some(json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-kfp-tenant-fake", "platform": "linux/amd64"})),
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

/// A resource path, taken apart.
#[derive(Debug, PartialEq)]
struct Route {
    kind: &'static Kind,
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => (ns.to_string(), *plural, tail),
        [plural, tail @ ..] => (String::new(), *plural, tail),
        _ => return None,
    };
    let kind = KINDS.iter().find(|k| k.group == group && k.version == version && k.plural == plural)?;
    Some(Route { kind, namespace, name: tail.first().map(|n| n.to_string()), subresource: tail.get(1).map(|s| s.to_string()) })
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// `a=b,c!=d,e,!f` against an object's labels.
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

/// Who made a write: `fieldManager`, else the client's name, as the real
/// server derives it from the user agent.
fn manager(params: &BTreeMap<String, String>, user_agent: &str) -> String {
    params.get("fieldManager").cloned().unwrap_or_else(|| user_agent.split('/').next().unwrap_or_default().to_owned())
}

pub(super) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if let Some(eks) = &shared.options.eks_auth {
        let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if let Err(why) = auth::authenticate(eks, &shared.verified, authorization).await {
            lock(&shared.store).requests.entry("UNAUTHORIZED".to_owned()).and_modify(|n| *n += 1).or_insert(1);
            return status(StatusCode::UNAUTHORIZED, "Unauthorized", format!("Unauthorized: {why}"), "", "");
        }
    }
    if req.method() == Method::GET
        && let Some(body) = discovery(&path)
    {
        return reply(StatusCode::OK, &body);
    }
    let Some(route) = route(&path) else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("the server could not find the requested resource ({path})"), "", "");
    };
    let method = req.method().clone();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (content_type, user_agent) = (header("content-type"), header("user-agent"));
    let params = query(&req);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string(), route.kind.plural, ""),
    };
    let parsed: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    lock(&shared.store).requests.entry(format!("{method} {}", route.kind.plural)).and_modify(|n| *n += 1).or_insert(1);

    let watching = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    if method == Method::GET && route.name.is_none() && watching {
        return watch_response(shared, &route, &params);
    }
    let response = serve(shared, &route, &method, &params, &content_type, &user_agent, parsed);
    if method != Method::GET && response.status().is_success() {
        shared.after_write();
    }
    response
}

fn watch_response(shared: &Shared, route: &Route, params: &BTreeMap<String, String>) -> Response<Body> {
    let filter = watch::Filter {
        kind: route.kind,
        namespace: route.namespace.clone(),
        labels: params.get("labelSelector").cloned().unwrap_or_default(),
        fields: params.get("fieldSelector").cloned().unwrap_or_default(),
    };
    let start = match params.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => watch::Start::Current,
        Some(rv) => match rv.parse() {
            Ok(n) => watch::Start::After(n),
            Err(_) => {
                return status(StatusCode::BAD_REQUEST, "BadRequest", format!("invalid resourceVersion {rv:?}"), route.kind.plural, "");
            }
        },
    };
    let timeout = Duration::from_secs(params.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800));
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let events = watch::stream(shared.store.clone(), shared.changes.clone(), filter, start, timeout, bookmarks);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(events)));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

#[allow(clippy::too_many_arguments)]
fn serve(
    shared: &Shared,
    route: &Route,
    method: &Method,
    params: &BTreeMap<String, String>,
    content_type: &str,
    user_agent: &str,
    parsed: Option<Value>,
) -> Response<Body> {
    let kind = route.kind;
    let ns = route.namespace.as_str();
    let mut store = lock(&shared.store);
    let writes = *method == Method::POST || *method == Method::PATCH || *method == Method::PUT;
    if kind.namespaced && writes && !ns.is_empty() {
        match store.get("namespaces", "", ns) {
            None => return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{ns}\" not found"), "namespaces", ns),
            Some(n)
                if n["metadata"]["deletionTimestamp"].is_string()
                    && route.name.as_ref().is_none_or(|m| store.get(kind.plural, ns, m).is_none()) =>
            {
                return status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        qualified(kind)
                    ),
                    kind.plural,
                    "",
                );
            }
            Some(_) => {}
        }
    }
    let on_status = route.subresource.as_deref() == Some("status");
    if kind.plural == "serviceaccounts" && route.subresource.as_deref() == Some("token") {
        let name = route.name.as_deref().unwrap_or_default();
        if *method != Method::POST {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported on tokens"),
                "serviceaccounts",
                name,
            );
        }
        let Some(account) = store.get("serviceaccounts", ns, name) else {
            return not_found(kind, name);
        };
        let uid = account["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        let request = parsed.unwrap_or_else(|| json!({}));
        return reply(StatusCode::CREATED, &tokens::answer(&shared.signer, &shared.options.sa_issuer, ns, name, &uid, &request));
    }
    match (method, route.name.as_deref()) {
        (&Method::GET, None) => {
            let filter = watch::Filter {
                kind,
                namespace: ns.to_owned(),
                labels: params.get("labelSelector").cloned().unwrap_or_default(),
                fields: params.get("fieldSelector").cloned().unwrap_or_default(),
            };
            let items: Vec<Value> = store.objects.iter().filter(|((p, n, _), o)| filter.matches(p, n, o)).map(|(_, o)| o.clone()).collect();
            reply(
                StatusCode::OK,
                &json!({"kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": store.revision.to_string()}, "items": items}),
            )
        }
        (&Method::GET, Some(name)) => match store.get(kind.plural, ns, name) {
            Some(o) => reply(StatusCode::OK, o),
            None => not_found(kind, name),
        },
        (&Method::POST, None) => {
            let Some(mut object) = parsed else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), kind.plural, "");
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if name.is_empty() {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", kind.kind),
                    kind.kind,
                    "",
                );
            }
            if store.get(kind.plural, ns, &name).is_some() {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", qualified(kind)),
                    kind.plural,
                    &name,
                );
            }
            if kind.status
                && let Some(meta) = object.as_object_mut()
            {
                meta.remove("status");
            }
            reply(StatusCode::CREATED, &store.update(kind, ns, None, object, &manager(params, user_agent)))
        }
        (&Method::PUT, Some(name)) => {
            let Some(current) = store.get(kind.plural, ns, name).cloned() else { return not_found(kind, name) };
            let Some(object) = parsed else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), kind.plural, name);
            };
            let sent = object["metadata"]["resourceVersion"].as_str();
            if sent.is_some_and(|rv| Some(rv) != current["metadata"]["resourceVersion"].as_str()) {
                return conflict(kind, name);
            }
            let object = with_status_rule(kind, on_status, &current, object);
            reply(StatusCode::OK, &store.update(kind, ns, Some(&current), object, &manager(params, user_agent)))
        }
        (&Method::PATCH, Some(name)) => {
            let Some(patch) = parsed else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), kind.plural, name);
            };
            let current = store.get(kind.plural, ns, name).cloned();
            if content_type.starts_with("application/apply-patch") {
                let Some(field_manager) = params.get("fieldManager") else {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "fieldManager: Required value: is required for apply patch".into(),
                        kind.kind,
                        name,
                    );
                };
                let mut config = patch;
                if kind.status
                    && !on_status
                    && let Some(map) = config.as_object_mut()
                {
                    map.remove("status");
                }
                let force = params.get("force").is_some_and(|f| f == "true");
                return match store.apply(kind, ns, name, &config, field_manager, force) {
                    Ok(object) => reply(if current.is_some() { StatusCode::OK } else { StatusCode::CREATED }, &object),
                    Err(message) => status(StatusCode::CONFLICT, "Conflict", message, kind.plural, name),
                };
            }
            let Some(current) = current else { return not_found(kind, name) };
            let mut object = current.clone();
            if content_type.starts_with("application/json-patch") {
                if let Err(message) = patch::json_patch(&mut object, &patch) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message, kind.kind, name);
                }
            } else {
                patch::merge_patch(&mut object, &patch);
            }
            let sent = patch["metadata"]["resourceVersion"].as_str();
            if sent.is_some_and(|rv| Some(rv) != current["metadata"]["resourceVersion"].as_str()) {
                return conflict(kind, name);
            }
            let object = with_status_rule(kind, on_status, &current, object);
            reply(StatusCode::OK, &store.update(kind, ns, Some(&current), object, &manager(params, user_agent)))
        }
        (&Method::DELETE, Some(name)) => {
            let policy = parsed
                .as_ref()
                .and_then(|b| b["propagationPolicy"].as_str().map(str::to_owned))
                .or_else(|| params.get("propagationPolicy").cloned());
            match store.delete(kind, ns, name, policy.as_deref() == Some("Foreground")) {
                Some(o) => reply(StatusCode::OK, &o),
                None => not_found(kind, name),
            }
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here"), kind.plural, ""),
    }
}

fn conflict(kind: &Kind, name: &str) -> Response<Body> {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(kind)
        ),
        kind.plural,
        name,
    )
}

/// With a status subresource, a write to the object keeps its status and a
/// write to `/status` changes nothing else. No write moves what the server
/// owns (uid, creation and deletion time).
fn with_status_rule(kind: &Kind, on_status: bool, current: &Value, mut written: Value) -> Value {
    if kind.status && on_status {
        let mut object = current.clone();
        object["status"] = written["status"].take();
        return object;
    }
    if kind.status {
        match current.get("status") {
            Some(s) => written["status"] = s.clone(),
            None => {
                if let Some(map) = written.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    for field in ["deletionTimestamp", "uid", "creationTimestamp"] {
        match current["metadata"].get(field) {
            Some(v) => {
                metadata(&mut written).insert(field.into(), v.clone());
            }
            None => {
                metadata(&mut written).remove(field);
            }
        }
    }
    written
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
        let r = |p: &str| route(p).map(|r| (r.kind.plural, r.namespace, r.name, r.subresource));
        assert_eq!(r("/apis/kubeflow.org/v1/profiles/team-a"), Some(("profiles", String::new(), Some("team-a".into()), None)));
        assert_eq!(
            r("/apis/kubeflow.org/v1/profiles/team-a/status"),
            Some(("profiles", String::new(), Some("team-a".into()), Some("status".into())))
        );
        assert_eq!(r("/api/v1/namespaces/team-a"), Some(("namespaces", String::new(), Some("team-a".into()), None)));
        assert_eq!(r("/api/v1/namespaces/team-a/serviceaccounts"), Some(("serviceaccounts", "team-a".into(), None, None)));
        assert_eq!(r("/api/v1/serviceaccounts"), Some(("serviceaccounts", String::new(), None, None)));
        assert_eq!(r("/apis/apps/v1/deployments"), None);
    }
}
