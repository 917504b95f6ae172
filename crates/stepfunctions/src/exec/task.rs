//! Task states: the resource's integration (Lambda, SQS, SNS, DynamoDB, EventBridge, Step
//! Functions, Batch, `aws-sdk:*`), its `.sync` and `.waitForTaskToken` patterns, timeouts and
//! heartbeats, and the history events AWS records around them.

use std::sync::Arc;

use serde_json::{json, Value};

use super::states::{parameters, Entered};
use super::{Cursor, Run};
use crate::asl::{path, Failure};
use crate::CallError;

/// What a Task's `Resource` names.
struct Resource {
    /// `lambda`, `sqs` … (`aws-sdk:<service>` keeps the service); empty for a function ARN.
    service: String,
    action: String,
    /// `""`, `sync`, `sync:2` or `waitForTaskToken`.
    pattern: String,
    sdk: bool,
}

fn parse(resource: &str) -> Result<Resource, Failure> {
    if resource.starts_with("arn:aws:lambda:") {
        return Ok(Resource {
            service: String::new(),
            action: String::new(),
            pattern: String::new(),
            sdk: false,
        });
    }
    let Some(rest) = resource.strip_prefix("arn:aws:states:::") else {
        return Err(Failure::runtime(format!("nimbus does not run the Task resource '{resource}'")));
    };
    let (rest, sdk) = match rest.strip_prefix("aws-sdk:") {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    let (service, action) = rest.split_once(':').unwrap_or((rest, ""));
    let (action, pattern) = action.split_once('.').unwrap_or((action, ""));
    Ok(Resource { service: service.to_owned(), action: action.to_owned(), pattern: pattern.to_owned(), sdk })
}

/// Runs a Task state's work on its effective input (after `InputPath`).
pub async fn run(
    run: &Arc<Run>,
    at: &Entered<'_>,
    effective: Value,
    context: &Value,
    cursor: &mut Cursor,
    resume: Option<Value>,
    raw: &Value,
) -> Result<Value, Failure> {
    let state = at.state;
    let arn = state["Resource"].as_str().unwrap_or_default();
    if arn.split(':').nth(5) == Some("activity") {
        return super::activity::run(run, at, effective, context, cursor, resume, raw).await;
    }
    let resource = parse(arn)?;
    let timeout = seconds_field(state, "TimeoutSeconds", &effective, context)?.unwrap_or(99_999_999);
    let heartbeat = seconds_field(state, "HeartbeatSeconds", &effective, context)?;
    let waits = resource.pattern == "waitForTaskToken";
    let resumed_token = resume.as_ref().and_then(|c| c["token"].as_str()).map(str::to_owned);
    let token = waits.then(|| resumed_token.clone().unwrap_or_else(new_token));
    let mut context = context.clone();
    if let Some(token) = &token {
        context["Task"] = json!({"Token": token});
    }
    let params = if crate::asl::jsonata::is_jsonata(state) {
        super::query::arguments(state, &effective, &context)?
    } else {
        parameters(state, &effective, &context)?
    };
    let bare = resource.service.is_empty();
    let (kind, name) =
        if bare { (String::new(), arn.to_owned()) } else { (resource.service.clone(), resource_name(arn)) };
    if bare {
        let details = json!({"resource": arn, "input": params.to_string(), "inputDetails": {"truncated": false}, "timeoutInSeconds": timeout});
        run.record(cursor, "LambdaFunctionScheduled", Some(("lambdaFunctionScheduledEventDetails", details)));
        run.record(cursor, "LambdaFunctionStarted", None);
    } else {
        let mut details = json!({"resourceType": kind, "resource": name, "region": run.region, "parameters": params.to_string(), "timeoutInSeconds": timeout});
        if let Some(h) = heartbeat {
            details["heartbeatInSeconds"] = json!(h);
        }
        run.record(cursor, "TaskScheduled", Some(("taskScheduledEventDetails", details)));
        run.record(
            cursor,
            "TaskStarted",
            Some(("taskStartedEventDetails", json!({"resourceType": kind, "resource": name}))),
        );
    }
    let deadline = run.engine.now().saturating_add(timeout.saturating_mul(1000));
    let work = async {
        if let Some(token) = &token {
            super::tokens::register(run, token);
            if at.scope.top {
                run.checkpoint(&json!({"state": at.name, "input": raw, "token": token}));
            }
            if resumed_token.is_none() {
                let submitted = integrate(run, &resource, arn, params.clone()).await?;
                let details = json!({"resourceType": kind, "resource": name, "output": submitted.to_string(), "outputDetails": {"truncated": false}});
                run.record(
                    &mut cursor.clone(),
                    "TaskSubmitted",
                    Some(("taskSubmittedEventDetails", details)),
                );
            }
            return super::tokens::wait(run, token, heartbeat).await;
        }
        integrate(run, &resource, arn, params.clone()).await
    };
    let result = tokio::select! {
        result = work => result,
        _ = nimbus_api::clock::sleep_until(run.engine.clock.as_ref(), deadline) => {
            Err(Failure::new("States.Timeout", ""))
        }
    };
    if let Some(token) = &token {
        super::tokens::unregister(run, token);
    }
    match &result {
        Ok(output) if bare => {
            let details = json!({"output": output.to_string(), "outputDetails": {"truncated": false}});
            run.record(
                cursor,
                "LambdaFunctionSucceeded",
                Some(("lambdaFunctionSucceededEventDetails", details)),
            );
        }
        Ok(output) => {
            let details = json!({"resourceType": kind, "resource": name, "output": output.to_string(), "outputDetails": {"truncated": false}});
            run.record(cursor, "TaskSucceeded", Some(("taskSucceededEventDetails", details)));
        }
        Err(f) if f.error == "States.Timeout" || f.error == "States.HeartbeatTimeout" => {
            let (event, key) = if bare {
                ("LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails")
            } else {
                ("TaskTimedOut", "taskTimedOutEventDetails")
            };
            let details = json!({"resourceType": kind, "resource": name, "error": f.error, "cause": f.cause});
            run.record(cursor, event, Some((key, details)));
        }
        Err(f) if bare => {
            let details = json!({"error": f.error, "cause": f.cause});
            run.record(cursor, "LambdaFunctionFailed", Some(("lambdaFunctionFailedEventDetails", details)));
        }
        Err(f) => {
            let details = json!({"resourceType": kind, "resource": name, "error": f.error, "cause": f.cause});
            run.record(cursor, "TaskFailed", Some(("taskFailedEventDetails", details)));
        }
    }
    result
}

/// `lambda:invoke.waitForTaskToken` → `invoke.waitForTaskToken`, as history names it.
fn resource_name(arn: &str) -> String {
    let rest = arn.trim_start_matches("arn:aws:states:::").trim_start_matches("aws-sdk:");
    rest.split_once(':').map_or(rest, |(_, r)| r).to_owned()
}

pub(super) fn seconds_field(
    state: &Value,
    field: &str,
    input: &Value,
    context: &Value,
) -> Result<Option<i64>, Failure> {
    if let Some(s) = state.get(field).and_then(Value::as_i64) {
        return Ok(Some(s));
    }
    if let Some(value) = super::query::number(state, field, input, context)? {
        return value.as_i64().filter(|s| *s > 0).map(Some).ok_or_else(|| {
            Failure::new(
                crate::asl::jsonata::ERROR,
                format!("The {field} field must be a positive integer, not {value}"),
            )
        });
    }
    let Some(p) = state.get(format!("{field}Path")).and_then(Value::as_str) else { return Ok(None) };
    let value = path::select(input, p).map_err(|e| Failure::runtime(e.message()))?;
    value.as_i64().filter(|s| *s > 0).map(Some).ok_or_else(|| {
        Failure::runtime(format!(
            "The {field}Path parameter does not reference a valid positive integer: {value}"
        ))
    })
}

pub(super) fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The error prefix AWS gives a service's errors: optimized integrations and `aws-sdk:*`.
fn prefix(service: &str, sdk: bool) -> String {
    let known = match (service, sdk) {
        ("lambda", _) => "Lambda",
        ("dynamodb", false) => "DynamoDB",
        ("dynamodb", true) => "DynamoDb",
        ("sqs", false) => "SQS",
        ("sqs", true) => "Sqs",
        ("sns", false) => "SNS",
        ("sns", true) => "Sns",
        ("events" | "eventbridge", _) => "EventBridge",
        ("states" | "sfn", false) => "StepFunctions",
        ("sfn", true) => "Sfn",
        ("batch", _) => "Batch",
        ("s3", _) => "S3",
        ("kinesis", _) => "Kinesis",
        ("cloudwatchlogs" | "logs", _) => "CloudWatchLogs",
        _ => "",
    };
    if known.is_empty() {
        let mut chars = service.chars();
        chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
    } else {
        known.to_owned()
    }
}

fn pascal(action: &str) -> String {
    let mut chars = action.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// `SQS.QueueDoesNotExistException`: the service's prefix and the SDK's exception name.
fn failed(resource: &Resource, error: CallError) -> Failure {
    let code = error.code.rsplit('.').next().unwrap_or(&error.code);
    let suffix = if code.ends_with("Exception") { "" } else { "Exception" };
    Failure::new(format!("{}.{code}{suffix}", prefix(&resource.service, resource.sdk)), error.message)
}

/// The service call itself: its result (or, for `.waitForTaskToken`, what sending answered).
async fn integrate(run: &Arc<Run>, resource: &Resource, arn: &str, params: Value) -> Result<Value, Failure> {
    let services = &run.engine.services;
    let region = run.region.as_str();
    if resource.service.is_empty() {
        return invoke(run, arn, None, params, false).await.map(|(payload, _)| payload);
    }
    match (resource.service.as_str(), resource.action.as_str(), resource.sdk) {
        ("lambda", "invoke", sdk) => {
            let function = params["FunctionName"]
                .as_str()
                .ok_or_else(|| Failure::runtime("The field 'FunctionName' is required by lambda:invoke"))?;
            let payload = params.get("Payload").cloned().unwrap_or(json!({}));
            let asynchronous = params["InvocationType"].as_str() == Some("Event");
            let (payload, invoked) =
                invoke(run, function, params["Qualifier"].as_str(), payload, asynchronous).await?;
            // The SDK's form answers the payload as the function's text.
            let payload = if sdk { Value::String(payload.to_string()) } else { payload };
            Ok(json!({
                "ExecutedVersion": invoked.executed_version,
                "Payload": payload,
                "SdkHttpMetadata": {"HttpStatusCode": invoked.status},
                "SdkResponseMetadata": {"RequestId": uuid::Uuid::new_v4().to_string()},
                "StatusCode": invoked.status,
            }))
        }
        ("states", "startExecution", false) => super::start::nested(run, params, &resource.pattern).await,
        ("batch", "submitJob", false) => {
            let Some(batch) = run.engine.batch.clone() else {
                return Err(Failure::runtime(
                    "batch:submitJob needs AWS Batch, which this nimbus does not serve yet",
                ));
            };
            let submitted = batch.submit(region, params).await.map_err(|e| failed(resource, e))?;
            if !resource.pattern.starts_with("sync") {
                return Ok(submitted);
            }
            let job_id =
                submitted["JobId"].as_str().or(submitted["jobId"].as_str()).unwrap_or_default().to_owned();
            let job = batch.watch(region, &job_id).await.map_err(|e| failed(resource, e))?;
            if job["Status"] == "SUCCEEDED" || job["status"] == "SUCCEEDED" {
                Ok(job)
            } else {
                Err(Failure::new("States.TaskFailed", job.to_string()))
            }
        }
        ("s3", action @ ("getObject" | "putObject" | "listObjectsV2"), true) => {
            s3(run, action, &params).await.map_err(|e| failed(resource, e))
        }
        (service, action, sdk) => {
            let service_name = match service {
                "sfn" => "stepfunctions",
                "eventbridge" => "events",
                "cloudwatchlogs" => "logs",
                other => other,
            };
            if !sdk && !matches!(service, "sqs" | "sns" | "dynamodb" | "events") {
                return Err(Failure::runtime(format!(
                    "nimbus does not serve the optimized integration '{arn}'; the aws-sdk form may work"
                )));
            }
            let mut params = params;
            // The optimized SQS and SNS integrations take a JSON body and send it as text.
            for key in ["MessageBody", "Message"] {
                if !sdk && params.get(key).is_some_and(|v| !v.is_string()) {
                    params[key] = Value::String(params[key].to_string());
                }
            }
            let output = services
                .call(region, service_name, &pascal(action), params)
                .await
                .map_err(|e| failed(resource, e))?;
            if service == "events" && output["FailedEntryCount"].as_i64().unwrap_or(0) > 0 {
                return Err(Failure::new("EventBridge.FailedEntry", output.to_string()));
            }
            Ok(output)
        }
    }
}

/// Invokes a function; a function error fails the task with the function's `errorType`.
async fn invoke(
    run: &Arc<Run>,
    function: &str,
    qualifier: Option<&str>,
    payload: Value,
    asynchronous: bool,
) -> Result<(Value, crate::Invoked), Failure> {
    let bytes = match &payload {
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    let invoked = run
        .engine
        .services
        .invoke(&run.region, function, qualifier, bytes, asynchronous)
        .await
        .map_err(|e| Failure::new(format!("Lambda.{}", e.code), e.message))?;
    let text = String::from_utf8_lossy(&invoked.payload).into_owned();
    let parsed: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
    };
    if invoked.function_error.is_some() {
        let error = parsed["errorType"].as_str().unwrap_or("Lambda.Unknown").to_owned();
        return Err(Failure::new(error, text));
    }
    Ok((parsed, invoked))
}

/// `aws-sdk:s3:getObject`, `putObject` and `listObjectsV2` (S3 speaks XML: these three are
/// answered here in the SDK's JSON shapes).
async fn s3(run: &Arc<Run>, action: &str, params: &Value) -> Result<Value, CallError> {
    let services = &run.engine.services;
    let bucket = params["Bucket"].as_str().unwrap_or_default();
    match action {
        "getObject" => {
            let key = params["Key"].as_str().unwrap_or_default();
            let bytes = services.s3_get(&run.region, bucket, key).await?;
            Ok(json!({"Body": String::from_utf8_lossy(&bytes), "ContentLength": bytes.len()}))
        }
        "putObject" => {
            let key = params["Key"].as_str().unwrap_or_default();
            let body = match &params["Body"] {
                Value::String(s) => s.clone().into_bytes(),
                Value::Null => Vec::new(),
                other => other.to_string().into_bytes(),
            };
            let etag = services.s3_put(&run.region, bucket, key, body).await?;
            Ok(json!({"ETag": etag}))
        }
        _ => {
            let prefix = params["Prefix"].as_str().unwrap_or_default();
            let contents = services.s3_list(&run.region, bucket, prefix).await?;
            Ok(
                json!({"Name": bucket, "Prefix": prefix, "KeyCount": contents.len(), "IsTruncated": false, "Contents": contents}),
            )
        }
    }
}
