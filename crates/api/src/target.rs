//! Which AWS service a request is for, told from what every AWS client sends before any handler
//! sees it: the `X-Amz-Target` prefix (JSON protocols), the SigV4 credential scope (header or
//! presigned query), the Query `Version` (unsigned forms), and REST path prefixes (unsigned
//! Lambda and Batch calls). The router picks a service by this name, so one service's request
//! never falls into another's, and answers a service nimbus does not serve in that service's own
//! protocol.

use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};

use crate::Protocol;

/// An AWS service a user would plausibly point at nimbus, with what its requests carry
/// (from botocore's model metadata).
#[derive(Debug, PartialEq, Eq)]
pub struct Known {
    /// botocore's client name, which is also the name of the nimbus service that serves it.
    pub name: &'static str,
    /// The service in the SigV4 credential scope (`signingName`).
    signing: &'static str,
    /// `X-Amz-Target` prefix of JSON-protocol services (`targetPrefix`).
    target: &'static str,
    /// API version of Query-protocol services, sent as `Version=` in the form.
    version: &'static str,
    /// `serviceFullName`: what the "not served" message names.
    pub full_name: &'static str,
}

const fn known(
    name: &'static str,
    signing: &'static str,
    target: &'static str,
    version: &'static str,
    full_name: &'static str,
) -> Known {
    Known { name, signing, target, version, full_name }
}

/// Looked up in order: DynamoDB comes before DynamoDB Streams, which signs as `dynamodb` too.
const KNOWN: &[Known] = &[
    known("lambda", "lambda", "", "", "AWS Lambda"),
    known("s3", "s3", "", "", "Amazon Simple Storage Service"),
    known("sqs", "sqs", "AmazonSQS", "2012-11-05", "Amazon Simple Queue Service"),
    known("logs", "logs", "Logs_20140328", "", "Amazon CloudWatch Logs"),
    known("cloudwatch", "monitoring", "GraniteServiceVersion20100801", "2010-08-01", "Amazon CloudWatch"),
    known("kinesis", "kinesis", "Kinesis_20131202", "", "Amazon Kinesis"),
    known("dynamodb", "dynamodb", "DynamoDB_20120810", "", "Amazon DynamoDB"),
    known("dynamodbstreams", "dynamodb", "DynamoDBStreams_20120810", "", "Amazon DynamoDB Streams"),
    known("events", "events", "AWSEvents", "", "Amazon EventBridge"),
    known("scheduler", "scheduler", "", "", "Amazon EventBridge Scheduler"),
    known("stepfunctions", "states", "AWSStepFunctions", "", "AWS Step Functions"),
    known("sns", "sns", "", "2010-03-31", "Amazon Simple Notification Service"),
    known("apigateway", "apigateway", "", "", "Amazon API Gateway"),
    known("apigatewayv2", "apigateway", "", "", "AmazonApiGatewayV2"),
    known("cloudformation", "cloudformation", "", "2010-05-15", "AWS CloudFormation"),
    known("codedeploy", "codedeploy", "CodeDeploy_20141006", "", "AWS CodeDeploy"),
    known("cloudcontrol", "cloudcontrolapi", "CloudApiService", "", "AWS Cloud Control API"),
    known("ec2", "ec2", "", "2016-11-15", "Amazon Elastic Compute Cloud"),
    known("autoscaling", "autoscaling", "", "2011-01-01", "Auto Scaling"),
    known("batch", "batch", "", "", "AWS Batch"),
    known("ecr", "ecr", "AmazonEC2ContainerRegistry_V20150921", "", "Amazon Elastic Container Registry"),
    known("ecs", "ecs", "AmazonEC2ContainerServiceV20141113", "", "Amazon EC2 Container Service"),
    known("iam", "iam", "", "2010-05-08", "AWS Identity and Access Management"),
    known("sts", "sts", "", "2011-06-15", "AWS Security Token Service"),
    known("kms", "kms", "TrentService", "", "AWS Key Management Service"),
    known("secretsmanager", "secretsmanager", "secretsmanager", "", "AWS Secrets Manager"),
    known("ssm", "ssm", "AmazonSSM", "", "Amazon Simple Systems Manager (SSM)"),
    known("firehose", "firehose", "Firehose_20150804", "", "Amazon Kinesis Firehose"),
    known("glue", "glue", "AWSGlue", "", "AWS Glue"),
    known("athena", "athena", "AmazonAthena", "", "Amazon Athena"),
    known("rds", "rds", "", "2014-10-31", "Amazon Relational Database Service"),
    known("ses", "ses", "", "2010-12-01", "Amazon Simple Email Service"),
];

/// The API dates that open every Lambda path (`/2015-03-31/functions` …), from botocore's model.
const LAMBDA_DATES: &[&str] = &[
    "2014-11-13",
    "2015-03-31",
    "2016-08-19",
    "2017-03-31",
    "2017-10-31",
    "2018-10-31",
    "2019-09-25",
    "2019-09-30",
    "2020-04-22",
    "2020-06-30",
    "2021-07-20",
    "2021-10-31",
    "2021-11-15",
    "2024-08-31",
    "2025-11-30",
    "2025-12-01",
];

/// Batch's paths are `/v1/<operation in lower case>` (`/v1/describejobqueues`).
const BATCH_VERBS: &[&str] = &[
    "cancel",
    "create",
    "delete",
    "deregister",
    "describe",
    "get",
    "list",
    "register",
    "submit",
    "tags",
    "terminate",
    "update",
];

/// The service a request is for, and the protocol its errors must be answered in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: Named,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Known(&'static Known),
    /// A signing name, target prefix or Query version that is in no table here.
    Other(String),
}

impl Named {
    /// The nimbus service name to route to.
    pub fn name(&self) -> &str {
        match self {
            Named::Known(known) => known.name,
            Named::Other(name) => name,
        }
    }

    pub fn full_name(&self) -> &str {
        match self {
            Named::Known(known) => known.full_name,
            Named::Other(name) => name,
        }
    }
}

impl Target {
    /// Told by the request head alone; `None` for requests that name no service (unsigned S3,
    /// nimbus's own paths) and for unsigned Query forms, whose `Version` is in the body.
    pub fn of_head(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Target> {
        // Calls to APIs and function URLs name no service (or sign as `execute-api`/`lambda`):
        // API Gateway's data plane serves them.
        if FrontDoor::of(uri, headers).is_some() {
            return by(|k| k.name == "apigateway")
                .map(|service| Target { service, protocol: Protocol::RestJson });
        }
        if is_registry(uri, headers) {
            return by(|k| k.name == "ecr").map(|service| Target { service, protocol: Protocol::RestJson });
        }
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let json_target = header("x-amz-target").map(|t| t.split_once('.').map_or(t, |(prefix, _)| prefix));
        let scope = crate::scope::scope_of(headers, uri).map(|s| s.service).filter(|s| !s.is_empty());
        let service = json_target
            .and_then(|t| by(|k| !k.target.is_empty() && k.target == t))
            .or_else(|| scope.as_deref().map(|s| by(|k| k.signing == s).unwrap_or_else(|| other(s))))
            .or_else(|| json_target.map(other))
            .or_else(|| {
                cbor_target(uri)
                    .map(|t| by(|k| !k.target.is_empty() && k.target == t).unwrap_or_else(|| other(t)))
            })
            .or_else(|| {
                query_param(uri, "Version").filter(|_| query_param(uri, "Action").is_some()).map(by_version)
            })
            .or_else(|| by_path(method, uri.path()))?;
        // HTTP APIs (`apigatewayv2`) sign as `apigateway` too; their paths open with `/v2/`.
        let service = match service {
            Named::Known(known) if known.name == "apigateway" && uri.path().starts_with("/v2/") => {
                by(|k| k.name == "apigatewayv2").unwrap_or(service)
            }
            other => other,
        };
        Some(Target::new(service, uri, headers))
    }

    /// For a request [`Target::of_head`] could not place: a Query form's `Action` and `Version`.
    pub fn of_form(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Option<Target> {
        let body = std::str::from_utf8(body).ok()?;
        let field = |name: &str| {
            body.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
        };
        field("Action")?;
        let version = crate::percent_decode(field("Version")?);
        Some(Target::new(by_version(&version), uri, headers))
    }

    /// The target of a request that named no service but that service `name` claimed.
    pub fn of_service(name: &str, uri: &Uri, headers: &HeaderMap) -> Target {
        Target::new(by(|k| k.name == name).unwrap_or_else(|| other(name)), uri, headers)
    }

    fn new(service: Named, uri: &Uri, headers: &HeaderMap) -> Target {
        let protocol = match service.name() {
            "s3" => Protocol::RestXml,
            _ if headers.contains_key("x-amz-target") => Protocol::Json,
            "ec2" => Protocol::Ec2,
            _ if is_form(headers) || query_param(uri, "Action").is_some() => Protocol::Query,
            _ => Protocol::RestJson,
        };
        Target { service, protocol }
    }
}

/// A call to an API Gateway API or a Lambda function URL on nimbus's port: by host
/// (`{id}.execute-api.…`, `{id}.lambda-url.…`) or by path (`/_aws/execute-api/{id}/…`,
/// `/_aws/lambda-url/{id}/…`), with the path that follows the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontDoor {
    Api { id: String, path: String, domain: String },
    Url { id: String, path: String, domain: String },
}

impl FrontDoor {
    pub fn of(uri: &Uri, headers: &HeaderMap) -> Option<FrontDoor> {
        let path = uri.path();
        if let Some(rest) = path.strip_prefix("/_aws/execute-api/") {
            let (id, path) =
                rest.split_once('/').map_or((rest, "/".to_owned()), |(id, p)| (id, format!("/{p}")));
            let domain = format!("{id}.execute-api.localhost");
            return (!id.is_empty()).then(|| FrontDoor::Api { id: id.to_owned(), path, domain });
        }
        // LocalStack's path form: `/restapis/{id}/{stage}/_user_request_/{path}`.
        if let Some(rest) = path.strip_prefix("/restapis/") {
            let mut parts = rest.splitn(4, '/');
            if let (Some(id), Some(stage), Some("_user_request_")) =
                (parts.next(), parts.next(), parts.next())
            {
                let path = format!("/{stage}/{}", parts.next().unwrap_or_default());
                let domain = format!("{id}.execute-api.localhost");
                return (!id.is_empty()).then(|| FrontDoor::Api { id: id.to_owned(), path, domain });
            }
        }
        if let Some(rest) = path.strip_prefix("/_aws/lambda-url/") {
            let (id, path) =
                rest.split_once('/').map_or((rest, "/".to_owned()), |(id, p)| (id, format!("/{p}")));
            let domain = format!("{id}.lambda-url.localhost");
            return (!id.is_empty()).then(|| FrontDoor::Url { id: id.to_owned(), path, domain });
        }
        let host = headers.get(hyper::header::HOST).and_then(|v| v.to_str().ok()).or_else(|| uri.host())?;
        let host = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let (id, rest) = host.split_once('.')?;
        let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
        let (path, domain) = (path.to_owned(), host.to_owned());
        match rest.split('.').next() {
            Some("execute-api") if valid => Some(FrontDoor::Api { id: id.to_owned(), path, domain }),
            Some("lambda-url") if valid => Some(FrontDoor::Url { id: id.to_owned(), path, domain }),
            _ => None,
        }
    }
}

/// A call of the OCI distribution API (what `docker push`, `skopeo` and `podman` send to a
/// registry): unsigned, under `/v2/` with a registry resource in the path, or to an ECR
/// registry host (`<account>.dkr.ecr.<region>.localhost`). API Gateway v2's own `/v2/apis`
/// calls are signed and never match.
fn is_registry(uri: &Uri, headers: &HeaderMap) -> bool {
    let signed = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|auth| auth.starts_with("AWS4-"))
        || headers.contains_key("x-amz-target")
        || query_param(uri, "X-Amz-Credential").is_some();
    let path = uri.path();
    if signed || !(path == "/v2" || path.starts_with("/v2/")) {
        return false;
    }
    let host = headers.get(hyper::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    path == "/v2/"
        || path == "/v2"
        || host.split(['.', ':']).nth(1) == Some("dkr") && host.contains(".ecr.")
        || path.contains("/blobs/")
        || path.contains("/manifests/")
        || path.ends_with("/tags/list")
}

fn by(matches: impl Fn(&Known) -> bool) -> Option<Named> {
    KNOWN.iter().find(|k| matches(k)).map(Named::Known)
}

fn other(name: &str) -> Named {
    Named::Other(name.to_owned())
}

fn by_version(version: &str) -> Named {
    by(|k| !k.version.is_empty() && k.version == version)
        .unwrap_or_else(|| Named::Other(format!("API version {version}")))
}

/// Smithy RPC v2 CBOR: `/service/<ServiceShape>/operation/<Operation>`.
fn cbor_target(uri: &Uri) -> Option<&str> {
    let rest = uri.path().strip_prefix("/service/")?;
    rest.split_once("/operation/").map(|(service, _)| service)
}

fn by_path(method: &Method, path: &str) -> Option<Named> {
    let mut segments = path.trim_start_matches('/').split('/');
    let first = segments.next()?;
    if LAMBDA_DATES.contains(&first) {
        return by(|k| k.name == "lambda");
    }
    let second = segments.next().unwrap_or("");
    let batch = first == "v1"
        && *method == Method::POST
        && second.bytes().all(|b| b.is_ascii_lowercase())
        && BATCH_VERBS.iter().any(|verb| second.starts_with(verb));
    batch.then(|| by(|k| k.name == "batch")).flatten()
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: Method, uri: &str, pairs: &[(&'static str, &str)]) -> Option<Target> {
        let headers: HeaderMap = pairs
            .iter()
            .map(|(k, v)| (hyper::header::HeaderName::from_static(k), v.parse().unwrap()))
            .collect();
        Target::of_head(&method, &uri.parse().unwrap(), &headers)
    }

    fn signed(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
        )
    }

    fn name(target: Option<Target>) -> Option<(String, Protocol)> {
        target.map(|t| (t.service.name().to_owned(), t.protocol))
    }

    #[test]
    fn json_target_prefix_names_the_service() {
        let kinesis = head(Method::POST, "/", &[("x-amz-target", "Kinesis_20131202.ListStreams")]).unwrap();
        assert_eq!(kinesis.service.full_name(), "Amazon Kinesis");
        assert_eq!(kinesis.protocol, Protocol::Json);
        let streams = head(
            Method::POST,
            "/",
            &[
                ("x-amz-target", "DynamoDBStreams_20120810.ListStreams"),
                ("authorization", &signed("dynamodb")),
            ],
        );
        assert_eq!(name(streams), Some(("dynamodbstreams".into(), Protocol::Json)));
        let sqs = head(Method::POST, "/", &[("x-amz-target", "AmazonSQS.ListQueues")]);
        assert_eq!(name(sqs), Some(("sqs".into(), Protocol::Json)));
    }

    #[test]
    fn credential_scope_names_the_service_and_wins_over_paths() {
        let batch = head(Method::POST, "/v1/describejobqueues", &[("authorization", &signed("batch"))]);
        assert_eq!(name(batch), Some(("batch".into(), Protocol::RestJson)));
        let bucket = head(Method::GET, "/2015-03-31/key", &[("authorization", &signed("s3"))]);
        assert_eq!(name(bucket), Some(("s3".into(), Protocol::RestXml)));
        let states = head(
            Method::POST,
            "/",
            &[("x-amz-target", "AWSStepFunctions.ListStateMachines"), ("authorization", &signed("states"))],
        );
        assert_eq!(states.unwrap().service.full_name(), "AWS Step Functions");
        let sigv4a = "AWS4-ECDSA-P256-SHA256 Credential=test/20250101/sqs/aws4_request, Signature=x";
        assert_eq!(name(head(Method::POST, "/", &[("authorization", sigv4a)])).unwrap().0, "sqs");
        let unknown = head(Method::POST, "/", &[("authorization", &signed("quicksight"))]).unwrap();
        assert_eq!(unknown.service, Named::Other("quicksight".into()));
    }

    #[test]
    fn query_services_answer_in_xml() {
        let form = ("content-type", "application/x-www-form-urlencoded; charset=utf-8");
        let sts = head(Method::POST, "/", &[form, ("authorization", &signed("sts"))]);
        assert_eq!(name(sts), Some(("sts".into(), Protocol::Query)));
        let ec2 = head(Method::POST, "/", &[form, ("authorization", &signed("ec2"))]);
        assert_eq!(name(ec2), Some(("ec2".into(), Protocol::Ec2)));
        assert_eq!(head(Method::POST, "/", &[form]), None, "an unsigned form is told by its body");
        let uri: Uri = "/".parse().unwrap();
        let headers: HeaderMap = [(CONTENT_TYPE, form.1.parse().unwrap())].into_iter().collect();
        let sqs = Target::of_form(&uri, &headers, b"Action=Bogus&Version=2012-11-05").unwrap();
        assert_eq!((sqs.service.name(), sqs.protocol), ("sqs", Protocol::Query));
        let cfn = Target::of_form(&uri, &headers, b"Version=2010-05-15&Action=DescribeStacks").unwrap();
        assert_eq!(cfn.service.full_name(), "AWS CloudFormation");
        assert_eq!(Target::of_form(&uri, &headers, b"Version=2010-05-15"), None);
        let get = head(Method::GET, "/?Action=ListMetrics&Version=2010-08-01", &[]);
        assert_eq!(name(get), Some(("cloudwatch".into(), Protocol::Query)));
    }

    #[test]
    fn presigned_urls_carry_their_scope() {
        let uri = "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x";
        assert_eq!(name(head(Method::GET, uri, &[])), Some(("s3".into(), Protocol::RestXml)));
    }

    #[test]
    fn api_gateway_v2_paths_and_front_doors() {
        let v1 = head(Method::POST, "/restapis", &[("authorization", &signed("apigateway"))]);
        assert_eq!(name(v1), Some(("apigateway".into(), Protocol::RestJson)));
        let v2 = head(Method::POST, "/v2/apis", &[("authorization", &signed("apigateway"))]);
        assert_eq!(name(v2), Some(("apigatewayv2".into(), Protocol::RestJson)));
        // Calls to APIs go to API Gateway whatever they carry, even a Lambda signature.
        let host = head(Method::GET, "/prod/x", &[("host", "abc123.execute-api.localhost:4566")]);
        assert_eq!(name(host).unwrap().0, "apigateway");
        let url = head(
            Method::POST,
            "/2015-03-31/x",
            &[("host", "u1.lambda-url.us-east-1.localhost"), ("authorization", &signed("lambda"))],
        );
        assert_eq!(name(url).unwrap().0, "apigateway");
        let uri: Uri = "/_aws/execute-api/abc/prod/a/b?x=1".parse().unwrap();
        let door = FrontDoor::of(&uri, &HeaderMap::new()).unwrap();
        assert_eq!(
            door,
            FrontDoor::Api {
                id: "abc".into(),
                path: "/prod/a/b".into(),
                domain: "abc.execute-api.localhost".into()
            }
        );
        let uri: Uri = "/restapis/abc/prod/_user_request_/a/b?x=1".parse().unwrap();
        assert!(
            matches!(FrontDoor::of(&uri, &HeaderMap::new()), Some(FrontDoor::Api { id, path, .. }) if id == "abc" && path == "/prod/a/b")
        );
        let control =
            head(Method::GET, "/restapis/abc/stages/prod", &[("authorization", &signed("apigateway"))]);
        assert_eq!(name(control), Some(("apigateway".into(), Protocol::RestJson)));
        assert_eq!(FrontDoor::of(&"/restapis/abc/stages/prod".parse().unwrap(), &HeaderMap::new()), None);
        let uri: Uri = "/_aws/lambda-url/u1".parse().unwrap();
        assert!(
            matches!(FrontDoor::of(&uri, &HeaderMap::new()), Some(FrontDoor::Url { path, .. }) if path == "/")
        );
        assert_eq!(head(Method::GET, "/bucket/key", &[("host", "bucket.s3.localhost")]), None);
    }

    #[test]
    fn registry_calls_go_to_ecr() {
        assert_eq!(name(head(Method::GET, "/v2/", &[])), Some(("ecr".into(), Protocol::RestJson)));
        let blob = head(Method::HEAD, "/v2/team/app/blobs/sha256:ab", &[("authorization", "Basic QVdTOng=")]);
        assert_eq!(name(blob).unwrap().0, "ecr");
        assert_eq!(name(head(Method::PUT, "/v2/app/manifests/v1", &[])).unwrap().0, "ecr");
        let host = head(
            Method::GET,
            "/v2/app/tags/list",
            &[("host", "000000000000.dkr.ecr.us-east-1.localhost:4566")],
        );
        assert_eq!(name(host).unwrap().0, "ecr");
        let v2 = head(Method::GET, "/v2/apis", &[("authorization", &signed("apigateway"))]);
        assert_eq!(name(v2).unwrap().0, "apigatewayv2");
        assert_eq!(head(Method::GET, "/v2/some-key", &[]), None, "a bucket named v2");
    }

    #[test]
    fn unsigned_rest_paths_name_lambda_and_batch_only() {
        assert_eq!(name(head(Method::GET, "/2015-03-31/bogus", &[])).unwrap().0, "lambda");
        assert_eq!(name(head(Method::PATCH, "/2015-03-31/functions/x", &[])).unwrap().0, "lambda");
        assert_eq!(name(head(Method::POST, "/v1/describejobqueues", &[])).unwrap().0, "batch");
        assert_eq!(head(Method::GET, "/v1/describejobqueues", &[]), None, "a bucket named v1");
        assert_eq!(head(Method::GET, "/bucket/key", &[]), None);
        assert_eq!(head(Method::GET, "/_nimbus/functions", &[]), None);
        let cbor = head(Method::POST, "/service/GraniteServiceVersion20100801/operation/ListMetrics", &[]);
        assert_eq!(name(cbor).unwrap().0, "cloudwatch");
    }
}
