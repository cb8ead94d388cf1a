//! AWS answers in core's terms: SDK errors sorted into [`ErrorKind`]s with
//! the service's message, and IAM's URL-encoded policy documents decoded.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ErrorKind, ProviderError, ProviderResult, error_chain};

/// Sorts an SDK error into core's kinds, keeping the service's words: its
/// code and message, or, for an answer the SDK could not parse (a proxy's
/// page, an emulator's other wrapper), the HTTP status and what the body
/// says. Never the SDK's `Debug` output.
pub fn provider_error<E>(operation: &str, target: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, message) = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let body = service.raw().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            let (code, message) = service_words(service.err().code(), service.err().message(), status, &body);
            let text = if code.is_empty() { message } else { format!("{message} ({code})") };
            let kind = kind_of(&code, status);
            (kind, if kind == ErrorKind::AccessDenied { with_permission_hint(operation, text) } else { text })
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
        _ => (ErrorKind::Other, error_chain(&err)),
    };
    ProviderError::new(kind, operation, target, message)
}

/// The IAM action an operation needs, as a policy names it.
pub fn action_of(operation: &str) -> Option<String> {
    let service = match operation {
        "DescribeCluster"
        | "ListPodIdentityAssociations"
        | "DescribePodIdentityAssociation"
        | "CreatePodIdentityAssociation"
        | "UpdatePodIdentityAssociation"
        | "DeletePodIdentityAssociation" => "eks",
        "ListUsers" | "AdminCreateUser" | "AdminDeleteUser" => "cognito-idp",
        "AssumeRoleWithWebIdentity" | "GetCallerIdentity" => "sts",
        // HeadBucket is authorized as ListBucket.
        "HeadBucket" => return Some("s3:ListBucket".to_owned()),
        "PutObject" | "GetObject" | "DeleteObject" => "s3",
        op if op.chars().next().is_some_and(char::is_uppercase) => "iam",
        _ => return None,
    };
    Some(format!("{service}:{operation}"))
}

/// A refusal says which action was missing (the service's words do, or the
/// operation's) and where the whole list is.
fn with_permission_hint(operation: &str, text: String) -> String {
    let named = action_of(operation).filter(|action| !text.contains(action.as_str()));
    match named {
        Some(action) => format!("{text}; the caller needs {action}: see `kfp-tenant permissions -f FILE`"),
        None => format!("{text}; see `kfp-tenant permissions -f FILE`"),
    }
}

/// The code and message of a refusal: the SDK's when it parsed them, else
/// from the body (XML `<Code>`/`<Message>` in any wrapper, JSON `message`
/// and `__type`/`code`), else `HTTP <status>: <the body's first line>`.
fn service_words(code: Option<&str>, message: Option<&str>, status: u16, body: &str) -> (String, String) {
    let xml = |tag: &str| {
        let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = body[start..].find(&format!("</{tag}>"))?;
        Some(body[start..start + end].trim().to_owned()).filter(|s| !s.is_empty())
    };
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let json_field = |keys: &[&str]| {
        let object = json.as_ref()?.as_object()?;
        keys.iter().find_map(|k| object.get(*k)?.as_str().map(str::to_owned))
    };
    let code = code
        .map(str::to_owned)
        .or_else(|| xml("Code"))
        .or_else(|| json_field(&["__type", "code", "Code"]).map(|t| t.rsplit('#').next().unwrap_or_default().to_owned()))
        .unwrap_or_default();
    let message =
        message.map(str::to_owned).or_else(|| xml("Message")).or_else(|| json_field(&["message", "Message"])).unwrap_or_else(|| {
            // An HTML page says what it is in its title.
            let first =
                xml("title").unwrap_or_else(|| body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no body)").to_owned());
            format!("HTTP {status}: {first}")
        });
    (code, message)
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

    /// A refusal is one line in the service's words, whatever wrapper it
    /// came in; never the SDK's Debug output.
    #[test]
    fn refusals_the_sdk_cannot_parse_are_one_line_in_the_services_words() {
        use aws_sdk_iam::operation::create_role::CreateRoleError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let refuse = |status: u16, body: &'static str| {
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
            let err: SdkError<CreateRoleError, HttpResponse> =
                SdkError::service_error(CreateRoleError::generic(ErrorMetadata::builder().build()), raw);
            provider_error("CreateRole", "role team-a", err)
        };
        // moto's denial under enforcement: an <Errors> wrapper.
        let denied = refuse(
            403,
            "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/x is not authorized to perform: iam:CreateRole</Message></Error></Errors></ErrorResponse>",
        );
        assert_eq!(denied.kind, ErrorKind::AccessDenied);
        assert_eq!(
            denied.to_string(),
            "CreateRole role team-a: User: arn:aws:iam::123456789012:user/x is not authorized to perform: iam:CreateRole (AccessDenied); see `kfp-tenant permissions -f FILE`"
        );
        // A denial whose words do not name the action: the operation's is named.
        let bare = refuse(403, "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error></ErrorResponse>");
        assert_eq!(bare.message, "Access Denied (AccessDenied); the caller needs iam:CreateRole: see `kfp-tenant permissions -f FILE`");
        // A JSON service (EKS) without the SDK's shape.
        let eks = refuse(404, r#"{"__type":"com.amazon.coral#ResourceNotFoundException","message":"No cluster found"}"#);
        assert_eq!((eks.kind, eks.message.as_str()), (ErrorKind::NotFound, "No cluster found (ResourceNotFoundException)"));
        // A proxy's page.
        let page = refuse(502, "\n<html>\n<head><title>502 Bad Gateway</title></head>\n</html>");
        assert_eq!((page.kind, page.message.as_str()), (ErrorKind::Transient, "HTTP 502: 502 Bad Gateway"));
        let text = refuse(404, "\n  no such route\nat all");
        assert_eq!((text.kind, text.message.as_str()), (ErrorKind::Other, "HTTP 404: no such route"));
        assert_eq!(action_of("HeadBucket").as_deref(), Some("s3:ListBucket"));
        assert_eq!(action_of("DescribePodIdentityAssociation").as_deref(), Some("eks:DescribePodIdentityAssociation"));
        for e in [denied, bare, eks, page] {
            let text = e.to_string();
            assert!(!text.contains('\n') && !text.contains("SdkBody") && !text.contains("Error {"), "{text}");
        }
    }

    #[test]
    fn documents_are_url_decoded() {
        let doc = decode_document("GetRole", "role r", "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D").unwrap();
        assert_eq!(doc.as_json()["Version"], "2012-10-17");
        assert!(decode_document("GetRole", "role r", "%7Bnot json").is_err());
    }
}
