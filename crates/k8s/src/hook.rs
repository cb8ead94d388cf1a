//! One tower service for the layers under the kube client that only look at
//! or touch each request before it goes: counting ([`crate::counter`]) and
//! the EKS bearer token ([`crate::eks_auth`]).

/// What a layer does to each request.
pub trait OnRequest: Clone {
    fn on_request<B>(&self, request: &mut http::Request<B>);
}

/// `inner`, with `hook` run on every request first.
#[derive(Clone, Debug)]
pub struct Hooked<S, H> {
    pub(crate) inner: S,
    pub(crate) hook: H,
}

impl<S, B, H> tower::Service<http::Request<B>> for Hooked<S, H>
where
    S: tower::Service<http::Request<B>>,
    H: OnRequest,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        self.hook.on_request(&mut request);
        self.inner.call(request)
    }
}
