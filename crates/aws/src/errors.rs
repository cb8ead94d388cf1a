//! AWS answers in core's terms: SDK errors sorted into [`ErrorKind`]s with
//! the service's message, and IAM's URL-encoded policy documents decoded.

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ErrorKind, ProviderError, ProviderResult, error_chain};

/// Sorts an SDK error into core's kinds, keeping the service's message.
pub fn provider_error<E>(operation: &str, target: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, message) = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().map(str::to_owned).unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            (kind_of(code, status), format!("{message} ({code})"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let text = error_chain(&err);
            if text.contains("credentials") {
                (
                    ErrorKind::AccessDenied,
                    format!("{text}; set AWS credentials (AWS_PROFILE and aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"),
                )
            } else {
                (ErrorKind::Transient, format!("{text}; is AWS reachable? check the network, the region and AWS_ENDPOINT_URL"))
            }
        }
        _ => (ErrorKind::Other, DisplayErrorContext(&err).to_string()),
    };
    ProviderError::new(kind, operation, target, message)
}

/// The kind of an AWS error code (IAM, EKS, STS and Cognito codes share one space here).
pub fn kind_of(code: &str, status: u16) -> ErrorKind {
    match code {
        "NoSuchEntity" | "ResourceNotFoundException" | "UserNotFoundException" => ErrorKind::NotFound,
        "EntityAlreadyExists" | "ResourceInUseException" | "UsernameExistsException" => ErrorKind::AlreadyExists,
        "DeleteConflict" | "ConcurrentModification" => ErrorKind::Conflict,
        "MalformedPolicyDocument" | "InvalidInput" | "ValidationError" | "InvalidParameterException" | "UnmodifiableEntity" => {
            ErrorKind::InvalidInput
        }
        "LimitExceeded" | "PolicyNotAttachable" => ErrorKind::LimitExceeded,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "NotAuthorizedException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "SignatureDoesNotMatch" => ErrorKind::AccessDenied,
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => ErrorKind::Throttled,
        "ServiceFailure" | "ServiceUnavailable" | "InternalFailure" | "ServerException" | "InternalErrorException" => ErrorKind::Transient,
        _ if status >= 500 => ErrorKind::Transient,
        _ if status == 429 => ErrorKind::Throttled,
        _ => ErrorKind::Other,
    }
}

pub(crate) fn missing(operation: &str, target: &str, field: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, operation, target, format!("the response has no {field}"))
}

/// IAM hands documents back percent-encoded (moto's listings do not: JSON
/// as it is is taken as it is; an encoded document never starts with `{`).
pub fn decode_document(operation: &str, target: &str, encoded: &str) -> ProviderResult<PolicyDocument> {
    let text = match encoded.trim_start().starts_with('{') {
        true => std::borrow::Cow::Borrowed(encoded),
        false => percent_encoding::percent_decode_str(encoded).decode_utf8().map_err(|e| {
            ProviderError::new(ErrorKind::Other, operation, target, format!("the policy document is not UTF-8 after URL-decoding: {e}"))
        })?,
    };
    PolicyDocument::parse(&text)
        .map_err(|e| ProviderError::new(ErrorKind::Other, operation, target, format!("the policy document is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            ("NoSuchEntity", 404, ErrorKind::NotFound),
            ("EntityAlreadyExists", 409, ErrorKind::AlreadyExists),
            ("DeleteConflict", 409, ErrorKind::Conflict),
            ("MalformedPolicyDocument", 400, ErrorKind::InvalidInput),
            ("LimitExceeded", 409, ErrorKind::LimitExceeded),
            ("AccessDenied", 403, ErrorKind::AccessDenied),
            ("Throttling", 400, ErrorKind::Throttled),
            ("Whatever", 503, ErrorKind::Transient),
            ("ResourceNotFoundException", 404, ErrorKind::NotFound),
        ];
        for (code, status, kind) in cases {
            assert_eq!(kind_of(code, status), kind, "{code}");
        }
    }

    #[test]
    fn documents_are_url_decoded() {
        let doc = decode_document("GetRole", "role r", "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D").unwrap();
        assert_eq!(doc.as_json()["Version"], "2012-10-17");
        assert!(decode_document("GetRole", "role r", "%7Bnot json").is_err());
    }
}
