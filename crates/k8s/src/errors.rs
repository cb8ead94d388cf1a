//! kube's errors in core's terms: each sorted into an [`ErrorKind`], with the
//! API server's message or the cause chain and a hint where to look.

use kfp_tenant_core::ports::{ErrorKind, ProviderError, error_chain};

/// The reason kube gives an answer that was not a Kubernetes `Status`.
const UNPARSED: &str = "Failed to parse error data";

/// Sorts a kube error into core's kinds, in one line: the API server's
/// message and reason, or the HTTP status and the first line of a body that
/// was not a `Status`.
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
        // Not a Status (a proxy's or a load balancer's page): the status and the body's first line.
        kube::Error::Api(s) if s.reason == UNPARSED => {
            let first = s.message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no body)");
            format!("HTTP {}: {first}", s.code)
        }
        // The API server's words name the verb and the resource; the fix is the RBAC.
        kube::Error::Api(s) if kind == ErrorKind::AccessDenied && s.code == 403 => {
            format!("{} ({}); see `kfp-tenant permissions --kubernetes`", s.message, s.reason)
        }
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other if kind == ErrorKind::Transient => {
            format!("{}; is the Kubernetes API reachable? check --kubeconfig, --context or KUBECONFIG", error_chain(other))
        }
        other => error_chain(other),
    };
    ProviderError::new(kind, operation, target, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_one_line() {
        let page = kube::core::Status::failure("<html>\n<head><title>502 Bad Gateway</title></head>\n</html>", UNPARSED).with_code(502);
        let e = provider_error("PATCH", "profiles team-a", kube::Error::Api(page.boxed()));
        assert_eq!((e.kind, e.to_string().as_str()), (ErrorKind::Transient, "PATCH profiles team-a: HTTP 502: <html>"));
        let denied = kube::core::Status::failure("profiles.kubeflow.org \"team-a\" is forbidden: User \"ci\" cannot patch", "Forbidden")
            .with_code(403);
        let e = provider_error("PATCH", "profiles team-a", kube::Error::Api(denied.boxed()));
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(
            e.message,
            "profiles.kubeflow.org \"team-a\" is forbidden: User \"ci\" cannot patch (Forbidden); see `kfp-tenant permissions --kubernetes`"
        );
    }
}
