//! Counting requests per `METHOD resource`, as a tower layer under the kube
//! client: what `--stats` prints and the tests assert.

use std::collections::BTreeMap;

/// Requests sent, per `METHOD resource` (e.g. `PATCH profiles`).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(std::sync::Arc<std::sync::Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// `GET profiles` for `/apis/kubeflow.org/v1/profiles/x`, `GET serviceaccounts`
/// for `/api/v1/namespaces/x/serviceaccounts/y`.
fn operation(method: &http::Method, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &segments[..],
    };
    let resource = match rest {
        ["namespaces", _, resource, ..] => resource,
        [resource, ..] => resource,
        [] => &"discovery",
    };
    format!("{method} {resource}")
}

impl<S> tower::Layer<S> for RequestCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted { inner, counter: self.clone() }
    }
}

/// A service that counts the requests passing through it.
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Ok(mut m) = self.counter.0.lock() {
            *m.entry(operation(request.method(), request.uri().path())).or_default() += 1;
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_method_and_resource() {
        assert_eq!(operation(&http::Method::GET, "/apis/kubeflow.org/v1/profiles/x"), "GET profiles");
        assert_eq!(operation(&http::Method::PATCH, "/api/v1/namespaces/x/serviceaccounts/y"), "PATCH serviceaccounts");
        assert_eq!(operation(&http::Method::GET, "/api/v1/namespaces/x"), "GET namespaces");
    }
}
