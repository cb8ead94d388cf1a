//! Counting requests per `METHOD resource`, as a tower layer under the kube
//! client: what `--stats` prints and the tests assert.

use std::collections::BTreeMap;

use crate::hook::{Hooked, OnRequest};

/// Requests sent, per `METHOD resource` (e.g. `PATCH profiles`).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// `GET profiles` for `/apis/kubeflow.org/v1/profiles/x`, `GET serviceaccounts`
/// for `/api/v1/namespaces/x/serviceaccounts/y`; a GET of a collection is
/// `LIST`, and `WATCH` with `watch=true`.
fn operation(method: &http::Method, uri: &http::Uri) -> String {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &segments[..],
    };
    let (resource, collection) = match rest {
        ["namespaces", _, resource, more @ ..] => (resource, more.is_empty()),
        [resource, more @ ..] => (resource, more.is_empty()),
        [] => (&"discovery", false),
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (method, collection, watch) {
        (&http::Method::GET, true, true) => "WATCH",
        (&http::Method::GET, true, false) => "LIST",
        (method, _, _) => method.as_str(),
    };
    format!("{verb} {resource}")
}

impl<S> tower::Layer<S> for RequestCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hooked { inner, hook: self.clone() }
    }
}

/// A service that counts the requests passing through it.
pub type Counted<S> = Hooked<S, RequestCounter>;

impl OnRequest for RequestCounter {
    fn on_request<B>(&self, request: &mut http::Request<B>) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(operation(request.method(), request.uri())).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_method_and_resource() {
        let op = |method, uri: &str| operation(&method, &uri.parse().unwrap());
        assert_eq!(op(http::Method::GET, "/apis/kubeflow.org/v1/profiles/x"), "GET profiles");
        assert_eq!(op(http::Method::PATCH, "/api/v1/namespaces/x/serviceaccounts/y"), "PATCH serviceaccounts");
        assert_eq!(op(http::Method::GET, "/api/v1/namespaces/x"), "GET namespaces");
        assert_eq!(op(http::Method::GET, "/api/v1/namespaces"), "LIST namespaces");
        assert_eq!(op(http::Method::GET, "/api/v1/namespaces/x/serviceaccounts?limit=500"), "LIST serviceaccounts");
        assert_eq!(op(http::Method::GET, "/api/v1/serviceaccounts?fieldSelector=x&watch=true"), "WATCH serviceaccounts");
        assert_eq!(op(http::Method::POST, "/api/v1/namespaces/x/serviceaccounts"), "POST serviceaccounts");
    }
}
