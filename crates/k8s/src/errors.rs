//! kube's errors in core's terms: each sorted into an [`ErrorKind`], with the
//! API server's message or the cause chain and a hint where to look.

use kfp_tenant_core::ports::{ErrorKind, ProviderError, error_chain};

/// Sorts a kube error into core's kinds.
pub fn provider_error(operation: &str, target: &str, err: kube::Error) -> ProviderError {
    let kind = match &err {
        kube::Error::Api(s) if s.is_not_found() => ErrorKind::NotFound,
        kube::Error::Api(s) if s.is_already_exists() => ErrorKind::AlreadyExists,
        kube::Error::Api(s) if s.is_conflict() => ErrorKind::Conflict,
        kube::Error::Api(s) if s.is_forbidden() || s.code == 401 => ErrorKind::AccessDenied,
        kube::Error::Api(s) if s.is_invalid() || s.code == 400 => ErrorKind::InvalidInput,
        kube::Error::Api(s) if s.code == 429 => ErrorKind::Throttled,
        kube::Error::Api(s) if s.code >= 500 => ErrorKind::Transient,
        kube::Error::HyperError(_) | kube::Error::Service(_) => ErrorKind::Transient,
        _ => ErrorKind::Other,
    };
    let message = match &err {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other if kind == ErrorKind::Transient => {
            format!("{}; is the Kubernetes API reachable? check --kubeconfig, --context or KUBECONFIG", error_chain(other))
        }
        other => error_chain(other),
    };
    ProviderError::new(kind, operation, target, message)
}
