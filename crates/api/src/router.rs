//! Routing: every request goes to the service it names (see [`Target`]); requests that name none
//! go to the service that claims them (nimbus's own paths, then S3). Whatever goes wrong before
//! or inside a handler is answered in the target service's own error shape.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::Request;

use crate::server::{json_response, Health, Service};
use crate::target::Target;
use crate::{ApiRequest, ApiResponse, AwsError, Protocol};

/// Larger than any AWS request body we accept (a 50 MB zip is ~67 MB as base64 JSON); services
/// apply their own, smaller, limits with their own error messages.
const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;
/// A container registry's blob upload carries a whole layer in one body (docker and skopeo send
/// each layer in one `PATCH`), an image import a whole image; bodies are read whole, so this
/// bounds one upload's memory.
const MAX_REGISTRY_BODY_BYTES: usize = 1024 * 1024 * 1024;

pub(crate) struct Router {
    pub(crate) services: Vec<Arc<dyn Service>>,
    pub(crate) health: Health,
}

impl Router {
    pub(crate) async fn route(&self, request: Request<Incoming>) -> ApiResponse {
        let request_id = crate::new_request_id();
        let mut response = self.dispatch(request, &request_id).await;
        // S3 names its request in `x-amz-request-id` (and its error bodies) alone: a second id in
        // `x-amzn-requestid` would be the one SDKs report, unlike the body's.
        let own_id = response.headers().contains_key("x-amz-request-id");
        if let (false, Ok(value)) = (own_id, HeaderValue::from_str(&request_id)) {
            response.headers_mut().insert(HeaderName::from_static("x-amzn-requestid"), value);
        }
        response
    }

    async fn dispatch(&self, request: Request<Incoming>, request_id: &str) -> ApiResponse {
        let (head, body) = request.into_parts();
        if head.uri.path() == "/_nimbus/health" {
            return json_response((self.health)());
        }
        if let Some(refused) = cross_site(&head) {
            return refused.into_response(Protocol::RestJson);
        }
        let named = Target::of_head(&head.method, &head.uri, &head.headers);
        // A request that names no service goes to the one that claims it (nimbus's own paths,
        // anonymous S3); a body that cannot be read is answered in that service's shape.
        let claimed = match named {
            None => self.services.iter().find(|s| s.claims(&head.method, &head.uri, &head.headers)),
            Some(_) => None,
        };
        let early =
            named.clone().or_else(|| claimed.map(|s| Target::of_service(s.name(), &head.uri, &head.headers)));
        let protocol = early.as_ref().map_or(Protocol::RestJson, |t| t.protocol);
        let uploading = early.as_ref().is_some_and(|t| t.service.name() == "ecr")
            && (head.uri.path().contains("/blobs/uploads") || head.uri.path() == "/_nimbus/images/import");
        let limit = if uploading { MAX_REGISTRY_BODY_BYTES } else { MAX_BODY_BYTES };
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => return unreadable_body(&*error, protocol, limit).into_response(protocol),
        };
        let named = named.or_else(|| Target::of_form(&head.uri, &head.headers, &body));
        let service = match &named {
            Some(target) => self.services.iter().find(|s| s.name() == target.service.name()),
            None => claimed.or_else(|| {
                self.services.iter().find(|s| s.claims_body(&head.method, &head.uri, &head.headers, &body))
            }),
        };
        let Some(service) = service else {
            let protocol = named.as_ref().map_or(protocol, |t| t.protocol);
            return not_served(named.as_ref()).into_response(protocol);
        };
        let target =
            named.or(early).unwrap_or_else(|| Target::of_service(service.name(), &head.uri, &head.headers));
        let request = ApiRequest {
            method: head.method,
            uri: head.uri,
            headers: head.headers,
            body,
            request_id: request_id.to_owned(),
        };
        match CatchUnwind(service.call(request)).await {
            Ok(response) => response,
            // The panic itself was printed by the panic hook; the caller gets AWS's answer.
            Err(()) => internal_error(&target).into_response(target.protocol),
        }
    }
}

/// nimbus's own paths that change state (`POST /_nimbus/ec2/interrupt`, the clock …) refuse a
/// browser's request from another site: browsers name the page's origin on every such request,
/// SDKs and the CLI send none. (The AWS APIs themselves are left open to browsers, as AWS's are:
/// API Gateway and function URLs serve pages elsewhere.)
fn cross_site(head: &hyper::http::request::Parts) -> Option<AwsError> {
    if !head.uri.path().starts_with("/_nimbus/")
        || matches!(head.method, hyper::Method::GET | hyper::Method::HEAD)
    {
        return None;
    }
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    let foreign = match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) != Some(host),
        (Some(_), None) => true,
        (None, _) => header("sec-fetch-site") == Some("cross-site"),
    };
    foreign.then(|| {
        AwsError::new(
            403,
            "CrossSiteRequestRefused",
            "nimbus's own paths do not take state-changing requests from other sites",
        )
    })
}

fn not_served(target: Option<&Target>) -> AwsError {
    let message = match target {
        Some(target) => format!("nimbus does not serve the {} API", target.service.full_name()),
        None => "nimbus cannot tell which AWS service this request is for: it names none by SigV4 \
                 credential scope, X-Amz-Target or Query Version"
            .to_owned(),
    };
    AwsError::new(400, "UnknownServiceException", message)
}

/// A body too large is the caller's to shrink (413); one that cannot be read (malformed chunked
/// encoding, a connection cut mid-body) is a bad request (400).
fn unreadable_body(error: &(dyn std::error::Error + 'static), protocol: Protocol, limit: usize) -> AwsError {
    let s3 = protocol == Protocol::RestXml;
    if error.downcast_ref::<LengthLimitError>().is_some() {
        let message = format!("Request must be smaller than {limit} bytes");
        let code = if s3 { "EntityTooLarge" } else { "RequestEntityTooLargeException" };
        return AwsError::new(413, code, message);
    }
    let mut message = format!("The request body could not be read: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    AwsError::new(400, if s3 { "IncompleteBody" } else { "SerializationException" }, message)
}

/// What each service answers for its own failures: S3's `InternalError`, Lambda's
/// `ServiceException`, and the `InternalFailure` common to AWS's other APIs.
fn internal_error(target: &Target) -> AwsError {
    let (code, message) = match target.service.name() {
        "s3" => ("InternalError", "We encountered an internal error. Please try again."),
        "lambda" => ("ServiceException", "The Lambda service encountered an internal error."),
        _ => (
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
    };
    AwsError::new(500, code, message)
}

/// Resolves to `Err` if polling the future panics: one bad request must not take its connection,
/// let alone nimbus, down with it.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
