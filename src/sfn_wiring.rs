//! Step Functions' reach into the other services: Lambda invokes and JSON-protocol calls go
//! through the services' own request handlers in process (the same code a client reaches over
//! HTTP), SNS publishes through its Rust API (it speaks only the Query protocol).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method};
use nimbus_api::{ApiRequest, Service};
use nimbus_stepfunctions::{BoxFuture, CallError, Invoked};
use serde_json::{json, Value};

use crate::lazy::Lazy;
use crate::regional::Regional;

/// Target prefix and JSON version of the JSON-protocol services a state machine may call.
fn json_protocol(service: &str) -> Option<(&'static str, &'static str)> {
    Some(match service {
        "dynamodb" => ("DynamoDB_20120810", "1.0"),
        "sqs" => ("AmazonSQS", "1.0"),
        "events" => ("AWSEvents", "1.1"),
        "logs" => ("Logs_20140328", "1.1"),
        "kinesis" => ("Kinesis_20131202", "1.1"),
        "stepfunctions" => ("AWSStepFunctions", "1.0"),
        "dynamodbstreams" => ("DynamoDBStreams_20120810", "1.0"),
        "cloudwatch" => ("GraniteServiceVersion20100801", "1.0"),
        _ => return None,
    })
}

/// What Step Functions is opened with.
pub struct Opening<'a> {
    pub database: &'a nimbus_store::Database,
    pub identity: nimbus_api::Identity,
    pub clock: Arc<dyn nimbus_api::clock::Clock>,
    pub cluster: Option<Arc<nimbus_store::Cluster>>,
    pub node: &'a str,
    pub sns: Arc<Regional<nimbus_sns::Sns>>,
}

/// Step Functions (each region's), opened by its first request; the services it reaches are set
/// once the port's list is built (`SfnServices::services`).
pub fn service(
    opening: Opening<'_>,
) -> (Arc<Regional<nimbus_stepfunctions::StepFunctions>>, Arc<SfnServices>) {
    let Opening { database, identity, clock, cluster, node, sns } = opening;
    let services = Arc::new(SfnServices { services: OnceLock::new(), sns });
    let (node, all, home_account) = (node.to_owned(), services.clone(), identity.account.clone());
    let open = move |database: &nimbus_store::Database, identity: &nimbus_api::Identity| {
        // Calls are signed as the instance's (so its executions') account: an access key id of
        // twelve digits selects it; nimbus's own account needs none.
        let key = match identity.account == home_account {
            true => "nimbus".to_owned(),
            false => identity.account.clone(),
        };
        let reach = Arc::new(Reach { all: all.clone(), key });
        let options = nimbus_stepfunctions::Options {
            identity: identity.clone(),
            clock: clock.clone(),
            services: reach.clone(),
            batch: Some(Arc::new(SfnBatch(reach)) as Arc<dyn nimbus_stepfunctions::BatchJobs>),
            cluster: cluster.clone(),
            node: node.clone(),
        };
        nimbus_stepfunctions::StepFunctions::open(database, options).map_err(|e| e.to_string())
    };
    let (home_open, home_database, home_identity) = (open.clone(), database.clone(), identity.clone());
    let home = Lazy::new("stepfunctions", nimbus_api::Protocol::Json, move || {
        home_open(&home_database, &home_identity)
    });
    (Regional::new(home, database, &identity, open), services)
}

pub struct SfnServices {
    /// Every service on the port, set once the list is built.
    pub services: OnceLock<Vec<Arc<dyn Service>>>,
    pub sns: Arc<Regional<nimbus_sns::Sns>>,
}

impl SfnServices {
    fn service(&self, name: &str) -> Result<Arc<dyn Service>, CallError> {
        self.services
            .get()
            .and_then(|all| all.iter().find(|s| s.name() == name).cloned())
            .ok_or_else(|| CallError::new("ServiceUnavailable", format!("nimbus does not serve {name}")))
    }
}

/// AWS's error code and message from an error response (JSON body or `x-amzn-errortype`).
fn error_of(headers: &HeaderMap, body: &[u8]) -> CallError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed["__type"]
        .as_str()
        .or_else(|| headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()))
        .unwrap_or("ServiceException");
    let code = code.rsplit('#').next().unwrap_or(code).split(':').next().unwrap_or(code);
    let message = parsed["message"].as_str().or(parsed["Message"].as_str()).unwrap_or_default();
    CallError::new(code, message)
}

/// The services as one Step Functions instance reaches them: signed with its account's key.
struct Reach {
    all: Arc<SfnServices>,
    /// The access key id calls are signed with.
    key: String,
}

impl Reach {
    async fn send(
        &self,
        service: &str,
        region: &str,
        method: Method,
        uri: &str,
        headers: Vec<(&str, String)>,
        body: Vec<u8>,
    ) -> Result<(u16, HeaderMap, Bytes), CallError> {
        let target = self.all.service(service)?;
        let mut map = HeaderMap::new();
        let signing = if service == "stepfunctions" { "states" } else { service };
        let auth = nimbus_api::scope::authorization(&self.key, region, signing);
        map.insert(
            "authorization",
            auth.parse().map_err(|_| CallError::new("InvalidParameter", "bad region"))?,
        );
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (name.parse::<hyper::header::HeaderName>(), value.parse()) {
                map.insert(name, value);
            }
        }
        let request = ApiRequest {
            method,
            uri: uri.parse().map_err(|_| CallError::new("InvalidParameter", format!("bad name in {uri}")))?,
            headers: map,
            body: Bytes::from(body),
            request_id: nimbus_api::new_request_id(),
        };
        let response = target.call(request).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        Ok((status, headers, body))
    }
}

impl nimbus_stepfunctions::Services for Reach {
    fn invoke<'a>(
        &'a self,
        region: &'a str,
        function: &'a str,
        qualifier: Option<&'a str>,
        payload: Vec<u8>,
        asynchronous: bool,
    ) -> BoxFuture<'a, Result<Invoked, CallError>> {
        Box::pin(async move {
            let name = percent_encoding::utf8_percent_encode(function, percent_encoding::NON_ALPHANUMERIC);
            let mut uri = format!("/2015-03-31/functions/{name}/invocations");
            if let Some(q) = qualifier {
                uri.push_str(&format!("?Qualifier={q}"));
            }
            let kind = if asynchronous { "Event" } else { "RequestResponse" };
            let headers = vec![("x-amz-invocation-type", kind.to_owned())];
            let (status, headers, body) =
                self.send("lambda", region, Method::POST, &uri, headers, payload).await?;
            if status >= 300 {
                return Err(error_of(&headers, &body));
            }
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            Ok(Invoked {
                status,
                payload: body.to_vec(),
                function_error: header("x-amz-function-error"),
                executed_version: header("x-amz-executed-version").unwrap_or_else(|| "$LATEST".to_owned()),
            })
        })
    }

    fn call<'a>(
        &'a self,
        region: &'a str,
        service: &'a str,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            if service == "sns" {
                return self.publish(operation, &input).await;
            }
            let Some((prefix, version)) = json_protocol(service) else {
                return Err(CallError::new(
                    "ServiceUnavailable",
                    format!("nimbus reaches only JSON-protocol services from state machines, not {service}"),
                ));
            };
            let headers = vec![
                ("x-amz-target", format!("{prefix}.{operation}")),
                ("content-type", format!("application/x-amz-json-{version}")),
            ];
            let body = input.to_string().into_bytes();
            let (status, headers, body) =
                self.send(service, region, Method::POST, "/", headers, body).await?;
            if status >= 300 {
                return Err(error_of(&headers, &body));
            }
            Ok(serde_json::from_slice(&body).unwrap_or(json!({})))
        })
    }

    fn s3_get<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, CallError>> {
        Box::pin(self.s3_get_object(region, bucket, key))
    }

    fn s3_put<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        Box::pin(self.s3_put_object(region, bucket, key, body))
    }

    fn s3_list<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CallError>> {
        Box::pin(self.s3_list_objects(region, bucket, prefix))
    }
}

impl Reach {
    async fn publish(&self, operation: &str, input: &Value) -> Result<Value, CallError> {
        if operation != "Publish" {
            return Err(CallError::new(
                "ServiceUnavailable",
                format!("nimbus calls SNS's Publish only, not {operation}"),
            ));
        }
        let topic = input["TopicArn"].as_str().unwrap_or_default();
        let sns = self.all.sns.for_arn(topic).map_err(|e| CallError::new("InvalidParameter", e))?;
        let sns = sns.get().await.map_err(|e| CallError::new("ServiceException", e))?;
        let message = match &input["Message"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let group = input["MessageGroupId"].as_str();
        let dedup = input["MessageDeduplicationId"].as_str();
        let subject = input["Subject"].as_str();
        let published = tokio::task::block_in_place(|| {
            sns.publish(topic, &message, subject, &Default::default(), group, dedup)
        });
        published.map(|id| json!({"MessageId": id})).map_err(|e| CallError::new(e.code, e.message))
    }
}

/// The text of the first `<name>` element in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn s3_error(body: &[u8]) -> CallError {
    let xml = String::from_utf8_lossy(body);
    let code = element(&xml, "Code").unwrap_or("ServiceException");
    CallError::new(code, unescape(element(&xml, "Message").unwrap_or_default()))
}

fn s3_path(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    format!("/{bucket}/{}", percent_encoding::utf8_percent_encode(key, KEEP))
}

impl Reach {
    pub async fn s3_get_object(&self, region: &str, bucket: &str, key: &str) -> Result<Vec<u8>, CallError> {
        let (status, _, body) =
            self.send("s3", region, Method::GET, &s3_path(bucket, key), Vec::new(), Vec::new()).await?;
        if status >= 300 {
            return Err(s3_error(&body));
        }
        Ok(body.to_vec())
    }

    pub async fn s3_put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<String, CallError> {
        let (status, headers, reply) =
            self.send("s3", region, Method::PUT, &s3_path(bucket, key), Vec::new(), body).await?;
        if status >= 300 {
            return Err(s3_error(&reply));
        }
        Ok(headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
    }

    pub async fn s3_list_objects(
        &self,
        region: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<Value>, CallError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let encode = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
            };
            let mut uri = format!("/{bucket}?list-type=2&prefix={}", encode(prefix));
            if let Some(token) = &token {
                uri.push_str(&format!("&continuation-token={}", encode(token)));
            }
            let (status, _, body) =
                self.send("s3", region, Method::GET, &uri, Vec::new(), Vec::new()).await?;
            if status >= 300 {
                return Err(s3_error(&body));
            }
            let xml = String::from_utf8_lossy(&body).into_owned();
            for contents in xml.split("<Contents>").skip(1) {
                let field = |name| element(contents, name).map(unescape).unwrap_or_default();
                objects.push(json!({
                    "Key": field("Key"),
                    "Size": field("Size").parse::<u64>().unwrap_or(0),
                    "Etag": field("ETag"),
                    "LastModified": field("LastModified"),
                    "StorageClass": field("StorageClass"),
                }));
            }
            match element(&xml, "NextContinuationToken") {
                Some(next) if element(&xml, "IsTruncated") == Some("true") => token = Some(unescape(next)),
                _ => return Ok(objects),
            }
        }
    }
}

/// `batch:submitJob(.sync)`: SubmitJob through Batch's own handler, and the job followed through
/// DescribeJobs until it ends (Step Functions polls Batch the same way on AWS).
struct SfnBatch(Arc<Reach>);

impl SfnBatch {
    async fn batch_call(&self, region: &str, path: &str, input: &Value) -> Result<Value, CallError> {
        let headers = vec![("content-type", "application/json".to_owned())];
        let body = input.to_string().into_bytes();
        let (status, headers, body) = self.0.send("batch", region, Method::POST, path, headers, body).await?;
        if status >= 300 {
            return Err(error_of(&headers, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|_| CallError::new("Batch.ServiceException", "Batch answered no JSON"))
    }
}

impl nimbus_stepfunctions::BatchJobs for SfnBatch {
    fn submit<'a>(&'a self, region: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            let submitted = self.batch_call(region, "/v1/submitjob", &recase(&params, false)).await?;
            Ok(recase(&submitted, true))
        })
    }

    fn watch<'a>(&'a self, region: &'a str, job_id: &'a str) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move {
            let mut pause = std::time::Duration::from_millis(20);
            loop {
                let described =
                    self.batch_call(region, "/v1/describejobs", &json!({"jobs": [job_id]})).await?;
                let job = described["jobs"][0].clone();
                match job["status"].as_str() {
                    Some("SUCCEEDED" | "FAILED") => return Ok(recase(&job, true)),
                    Some(_) => {}
                    None => {
                        return Err(CallError::new(
                            "Batch.ClientException",
                            format!("Job {job_id} not found"),
                        ))
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(500));
            }
        })
    }
}

/// Step Functions' Batch integration speaks PascalCase (`JobName`, `ContainerOverrides`) where
/// Batch's API is camelCase; keys of user maps (`Parameters`, `Tags`) are kept as they are.
fn recase(value: &Value, to_pascal: bool) -> Value {
    nimbus_api::provider::recase_keys(value, &["Parameters", "parameters", "Tags", "tags"], to_pascal)
}
