//! SQS event source mappings: Create/Get/Update/Delete/ListEventSourceMappings, and the pollers
//! that read a queue in batches, drop what the `FilterCriteria` reject (as AWS does), invoke the
//! function synchronously with AWS's SQS event, and delete what succeeded — everything on
//! success, all but the reported `batchItemFailures` with `ReportBatchItemFailures`, nothing on
//! an error (the messages come back after their visibility timeout and reach the queue's
//! dead-letter queue after `maxReceiveCount`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use nimbus_api::AwsError;
use nimbus_events::Pattern;
use nimbus_functions::{EngineError, Invocation};
use nimbus_store::ResourceRow;
use serde_json::{json, Value};

use crate::{validate, Lambda};

/// The pseudo-function mappings are stored under in the resource table.
const STORE_KEY: &str = "event-source-mappings";
/// Pollers per mapping unless `ScalingConfig.MaximumConcurrency` says otherwise (AWS starts
/// with five and scales out; a laptop needs no more).
const DEFAULT_POLLERS: u64 = 5;

/// Running pollers per mapping, stopped by dropping their handles.
#[derive(Default)]
pub(crate) struct Pollers {
    running: Mutex<BTreeMap<String, Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for Pollers {
    fn drop(&mut self) {
        for handles in self.running.get_mut().unwrap_or_else(|p| p.into_inner()).values() {
            handles.iter().for_each(|h| h.abort());
        }
    }
}

impl Lambda {
    pub(crate) async fn create_mapping(&self, body: &[u8]) -> Result<Value, AwsError> {
        let input: Value = crate::functions::parse(body)?;
        let source = input["EventSourceArn"].as_str().unwrap_or_default().to_owned();
        let stream = crate::streams::is_stream(&source);
        if !source.starts_with("arn:aws:sqs:") && !stream {
            return Err(AwsError::invalid_parameter(
                "nimbus supports SQS, Kinesis and DynamoDB Streams event sources; this source is not available yet",
            ));
        }
        let function = self.find(input["FunctionName"].as_str().unwrap_or_default(), None)?;
        let qualifier = crate::split_reference(input["FunctionName"].as_str().unwrap_or_default()).1;
        let mut function_arn = self.function_arn(function.function.name());
        if let Some(q) = qualifier {
            function_arn = format!("{function_arn}:{q}");
        }
        let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
        let mut mapping = json!({
            "UUID": uuid,
            "EventSourceArn": source,
            "FunctionArn": function_arn,
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 0,
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "FunctionResponseTypes": [],
            "EventSourceMappingArn": format!("arn:aws:lambda:{}:{}:event-source-mapping:{uuid}", self.identity.region, self.identity.account),
        });
        if stream {
            stream_defaults(&mut mapping, &input)?;
        }
        apply(&mut mapping, &input)?;
        self.save_mapping(mapping.clone()).await?;
        let mut shown = mapping;
        if shown["State"] == "Enabled" {
            shown["State"] = json!("Creating");
        }
        Ok(shown)
    }

    pub(crate) fn get_mapping(&self, uuid: &str) -> Result<Value, AwsError> {
        let mut mapping = self
            .mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .cloned()
            .ok_or_else(|| mapping_not_found(uuid))?;
        self.stream_progress.show(&mut mapping);
        Ok(mapping)
    }

    pub(crate) fn list_mappings(
        &self,
        source: Option<&str>,
        function: Option<&str>,
    ) -> Result<Value, AwsError> {
        let function_name = function.map(|f| crate::split_reference(f).0.to_owned());
        let mappings: Vec<Value> = self
            .mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|m| source.is_none_or(|s| m["EventSourceArn"] == s))
            .filter(|m| {
                function_name.as_deref().is_none_or(|f| {
                    m["FunctionArn"].as_str().is_some_and(|arn| crate::split_reference(arn).0 == f)
                })
            })
            .cloned()
            .map(|mut mapping| {
                self.stream_progress.show(&mut mapping);
                mapping
            })
            .collect();
        Ok(json!({ "EventSourceMappings": mappings }))
    }

    pub(crate) async fn update_mapping(&self, uuid: &str, body: &[u8]) -> Result<Value, AwsError> {
        let mut mapping = self.get_mapping(uuid)?;
        let input: Value = crate::functions::parse(body)?;
        if let Some(function) = input["FunctionName"].as_str() {
            let target = self.find(function, None)?;
            mapping["FunctionArn"] = json!(self.function_arn(target.function.name()));
        }
        apply(&mut mapping, &input)?;
        self.save_mapping(mapping.clone()).await?;
        Ok(mapping)
    }

    pub(crate) async fn delete_mapping(&self, uuid: &str) -> Result<Value, AwsError> {
        let mut mapping = self.get_mapping(uuid)?;
        let (store, id) = (self.store.clone(), uuid.to_owned());
        tokio::task::spawn_blocking(move || store.delete_resource(STORE_KEY, "esm", &id))
            .await
            .map_err(|e| AwsError::service(e.to_string()))?
            .map_err(|e| AwsError::service(e.to_string()))?;
        self.mappings.write().unwrap_or_else(|p| p.into_inner()).remove(uuid);
        self.stop_pollers(uuid);
        let lambda = self.this.upgrade();
        let id = uuid.to_owned();
        tokio::task::spawn_blocking(move || {
            lambda.iter().for_each(|lambda| crate::streams::forget(lambda, &id))
        });
        mapping["State"] = json!("Deleting");
        Ok(mapping)
    }

    async fn save_mapping(&self, mut mapping: Value) -> Result<(), AwsError> {
        mapping["LastModified"] = json!(epoch_seconds());
        let uuid = mapping["UUID"].as_str().unwrap_or_default().to_owned();
        let row = ResourceRow {
            function: STORE_KEY.into(),
            kind: "esm".into(),
            name: uuid.clone(),
            config: mapping.to_string(),
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.put_resource(&row))
            .await
            .map_err(|e| AwsError::service(e.to_string()))?
            .map_err(|e| AwsError::service(e.to_string()))?;
        self.mappings.write().unwrap_or_else(|p| p.into_inner()).insert(uuid.clone(), mapping.clone());
        self.stop_pollers(&uuid);
        if mapping["State"] == "Enabled" {
            self.start_pollers(&mapping);
        }
        Ok(())
    }

    /// Mappings stored by a previous run.
    pub(crate) fn load_mappings(store: &dyn nimbus_store::Store) -> BTreeMap<String, Value> {
        store
            .load_resources()
            .unwrap_or_default()
            .into_iter()
            .filter(|row| row.function == STORE_KEY)
            .filter_map(|row| Some((row.name, serde_json::from_str(&row.config).ok()?)))
            .collect()
    }

    /// Takes the stored mappings as they now are (another node changed some): pollers of
    /// mappings that changed or went away stop, those of enabled ones (re)start.
    pub(crate) fn reload_mappings(&self) {
        let fresh = Lambda::load_mappings(&*self.store);
        let old =
            std::mem::replace(&mut *self.mappings.write().unwrap_or_else(|p| p.into_inner()), fresh.clone());
        for (uuid, mapping) in &old {
            if fresh.get(uuid) != Some(mapping) {
                self.stop_pollers(uuid);
            }
        }
        for (uuid, mapping) in &fresh {
            if old.get(uuid) != Some(mapping) && mapping["State"] == "Enabled" {
                self.start_pollers(mapping);
            }
        }
    }

    pub(crate) fn start_all_pollers(&self) {
        let mappings: Vec<Value> =
            self.mappings.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for mapping in mappings.iter().filter(|m| m["State"] == "Enabled") {
            self.start_pollers(mapping);
        }
    }

    pub(crate) fn start_stream_pollers(&self) {
        let mappings: Vec<Value> =
            self.mappings.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for mapping in mappings.iter().filter(|m| m["State"] == "Enabled") {
            if crate::streams::is_stream(m_source(mapping)) {
                self.start_pollers(mapping);
            }
        }
    }

    fn start_pollers(&self, mapping: &Value) {
        let uuid = mapping["UUID"].as_str().unwrap_or_default().to_owned();
        if crate::streams::is_stream(m_source(mapping)) {
            let Some(streams) = self.streams.get().cloned() else { return };
            let poller =
                tokio::spawn(crate::streams::poll_mapping(self.this.clone(), streams, mapping.clone()));
            self.pollers.running.lock().unwrap_or_else(|p| p.into_inner()).insert(uuid, vec![poller]);
            return;
        }
        let Some(queues) = self.queues.clone() else { return };
        let count =
            mapping["ScalingConfig"]["MaximumConcurrency"].as_u64().unwrap_or(DEFAULT_POLLERS).clamp(1, 16);
        let handles = (0..count)
            .map(|_| tokio::spawn(poll(self.this.clone(), queues.clone(), mapping.clone())))
            .collect();
        let uuid = mapping["UUID"].as_str().unwrap_or_default().to_owned();
        self.pollers.running.lock().unwrap_or_else(|p| p.into_inner()).insert(uuid, handles);
    }

    fn stop_pollers(&self, uuid: &str) {
        if let Some(handles) = self.pollers.running.lock().unwrap_or_else(|p| p.into_inner()).remove(uuid) {
            handles.iter().for_each(|h| h.abort());
        }
    }
}

fn m_source(mapping: &Value) -> &str {
    mapping["EventSourceArn"].as_str().unwrap_or_default()
}

/// A stream mapping's members as AWS answers them before any are set, and its starting
/// position (given once, at creation).
fn stream_defaults(mapping: &mut Value, input: &Value) -> Result<(), AwsError> {
    let position = input["StartingPosition"].as_str().ok_or_else(|| {
        AwsError::invalid_parameter(
            "StartingPosition is required for Kinesis and DynamoDB Streams event sources.",
        )
    })?;
    let kinesis = m_source(mapping).starts_with("arn:aws:kinesis:");
    match position {
        "TRIM_HORIZON" | "LATEST" => {}
        "AT_TIMESTAMP" if kinesis => {
            let at = input["StartingPositionTimestamp"].as_f64().ok_or_else(|| {
                AwsError::invalid_parameter(
                    "StartingPositionTimestamp is required with StartingPosition AT_TIMESTAMP.",
                )
            })?;
            mapping["StartingPositionTimestamp"] = json!(at);
        }
        other => {
            return Err(AwsError::invalid_parameter(format!(
                "StartingPosition {other} is not valid for this source."
            )))
        }
    }
    mapping["StartingPosition"] = json!(position);
    mapping["BatchSize"] = json!(100);
    mapping["ParallelizationFactor"] = json!(1);
    mapping["BisectBatchOnFunctionError"] = json!(false);
    mapping["MaximumRetryAttempts"] = json!(-1);
    mapping["MaximumRecordAgeInSeconds"] = json!(-1);
    mapping["TumblingWindowInSeconds"] = json!(0);
    mapping["DestinationConfig"] = json!({ "OnFailure": {} });
    mapping["LastProcessingResult"] = json!("No records processed");
    Ok(())
}

/// A number member within AWS's range, or an error naming it.
fn bounded(
    input: &Value,
    member: &str,
    allowed: impl Fn(i64) -> bool,
    range: &str,
) -> Result<Option<i64>, AwsError> {
    match input.get(member).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(value) => match value.as_i64() {
            Some(n) if allowed(n) => Ok(Some(n)),
            _ => Err(AwsError::invalid_parameter(format!("{member} must be {range}."))),
        },
    }
}

/// The stream-only knobs of Create/UpdateEventSourceMapping.
fn apply_stream(mapping: &mut Value, input: &Value) -> Result<(), AwsError> {
    if let Some(n) = bounded(input, "ParallelizationFactor", |n| (1..=10).contains(&n), "between 1 and 10")? {
        mapping["ParallelizationFactor"] = json!(n);
    }
    if let Some(n) =
        bounded(input, "MaximumRetryAttempts", |n| (-1..=10_000).contains(&n), "between -1 and 10000")?
    {
        mapping["MaximumRetryAttempts"] = json!(n);
    }
    let age = |n: i64| n == -1 || (60..=604_800).contains(&n);
    if let Some(n) = bounded(input, "MaximumRecordAgeInSeconds", age, "-1 or between 60 and 604800")? {
        mapping["MaximumRecordAgeInSeconds"] = json!(n);
    }
    if let Some(n) =
        bounded(input, "TumblingWindowInSeconds", |n| (0..=900).contains(&n), "between 0 and 900")?
    {
        mapping["TumblingWindowInSeconds"] = json!(n);
    }
    if let Some(bisect) = input["BisectBatchOnFunctionError"].as_bool() {
        mapping["BisectBatchOnFunctionError"] = json!(bisect);
    }
    if let Some(config) = input.get("DestinationConfig").filter(|v| v.is_object()) {
        if let Some(destination) = config["OnFailure"]["Destination"].as_str() {
            if !destination.starts_with("arn:aws:sqs:") && !destination.starts_with("arn:aws:sns:") {
                return Err(AwsError::invalid_parameter(
                    "The OnFailure destination of a stream event source must be an SQS queue or an SNS topic.",
                ));
            }
        }
        mapping["DestinationConfig"] =
            json!({ "OnFailure": config.get("OnFailure").cloned().unwrap_or(json!({})) });
    }
    Ok(())
}

/// Applies the members of Create/UpdateEventSourceMapping, with AWS's rules.
fn apply(mapping: &mut Value, input: &Value) -> Result<(), AwsError> {
    let stream = crate::streams::is_stream(m_source(mapping));
    if stream {
        apply_stream(mapping, input)?;
    }
    if let Some(size) = input["BatchSize"].as_i64() {
        mapping["BatchSize"] = json!(validate::range(size, "batchSize", 1, 10_000)?);
    }
    if let Some(window) = input["MaximumBatchingWindowInSeconds"].as_i64() {
        mapping["MaximumBatchingWindowInSeconds"] =
            json!(validate::range(window, "maximumBatchingWindowInSeconds", 0, 300)?);
    }
    let fifo = mapping["EventSourceArn"].as_str().is_some_and(|arn| arn.ends_with(".fifo"));
    let size = mapping["BatchSize"].as_u64().unwrap_or(10);
    if fifo && size > 10 {
        return Err(AwsError::invalid_parameter("Batch size must be between 1 and 10 for FIFO queues"));
    }
    if !stream && size > 10 && mapping["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0) == 0 {
        return Err(AwsError::invalid_parameter(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10",
        ));
    }
    if let Some(enabled) = input["Enabled"].as_bool() {
        mapping["State"] = json!(if enabled { "Enabled" } else { "Disabled" });
    }
    if let Some(types) = input.get("FunctionResponseTypes").filter(|v| v.is_array()) {
        if types.as_array().into_iter().flatten().any(|t| t != "ReportBatchItemFailures") {
            return Err(AwsError::invalid_parameter(
                "FunctionResponseTypes may only contain ReportBatchItemFailures",
            ));
        }
        mapping["FunctionResponseTypes"] = types.clone();
    }
    if let Some(scaling) = input.get("ScalingConfig").filter(|v| v.is_object()) {
        if let Some(max) = scaling["MaximumConcurrency"].as_i64() {
            validate::range(max, "scalingConfig.maximumConcurrency", 2, 1000)?;
        }
        mapping["ScalingConfig"] = scaling.clone();
    }
    if let Some(criteria) = input.get("FilterCriteria").filter(|v| v.is_object()) {
        for filter in criteria["Filters"].as_array().into_iter().flatten() {
            let pattern = filter["Pattern"].as_str().unwrap_or_default();
            Pattern::parse(pattern).map_err(|e| AwsError::invalid_parameter(e.to_string()))?;
        }
        mapping["FilterCriteria"] = criteria.clone();
    }
    Ok(())
}

/// One poller: receive a batch, filter, invoke, delete what succeeded; repeat.
async fn poll(lambda: Weak<Lambda>, queues: Arc<dyn crate::Queues>, mapping: Value) {
    let queue = mapping["EventSourceArn"].as_str().unwrap_or_default().to_owned();
    let batch = mapping["BatchSize"].as_u64().unwrap_or(10) as usize;
    let window = Duration::from_secs(mapping["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0));
    let filters: Vec<Pattern> = mapping["FilterCriteria"]["Filters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Pattern::parse(f["Pattern"].as_str()?).ok())
        .collect();
    let partial = mapping["FunctionResponseTypes"].as_array().is_some_and(|t| !t.is_empty());
    let mut backoff = Duration::from_millis(100);
    loop {
        let records = match queues.receive(&queue, batch, window.max(Duration::from_secs(1))).await {
            Ok(records) => records,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        // Messages no filter accepts are deleted without invoking, as AWS does for SQS.
        let (kept, dropped): (Vec<Value>, Vec<Value>) = records
            .into_iter()
            .partition(|record| filters.is_empty() || filters.iter().any(|f| f.matches(&filterable(record))));
        delete(&*queues, &queue, &dropped).await;
        if kept.is_empty() {
            continue;
        }
        let Some(lambda) = lambda.upgrade() else { return };
        let function = mapping["FunctionArn"].as_str().unwrap_or_default();
        let Ok(target) = lambda.route_invocation(function, None) else { return };
        let invocation = Invocation {
            request_id: nimbus_functions::new_request_id(),
            payload: Bytes::from(json!({ "Records": kept }).to_string()),
            invoked_arn: function.to_owned(),
            client_context: None,
            tail_log: false,
        };
        match lambda.engine.invoke(&target.entry.spec, &invocation).await {
            Ok(result) if result.function_error.is_none() => {
                backoff = Duration::from_millis(100);
                let failed = if partial { failed_ids(&result.payload) } else { Vec::new() };
                let done: Vec<Value> =
                    kept.into_iter().filter(|r| !failed.iter().any(|id| r["messageId"] == *id)).collect();
                delete(&*queues, &queue, &done).await;
            }
            Ok(_) => {} // the batch returns to the queue after its visibility timeout
            Err(EngineError::Throttled { .. }) => {
                drop(lambda);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// The record as filters see it: a JSON body is matched as JSON, as on AWS.
fn filterable(record: &Value) -> Value {
    let mut view = record.clone();
    if let Some(body) = record["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok()) {
        view["body"] = body;
    }
    view
}

/// `{"batchItemFailures":[{"itemIdentifier":"<messageId>"}]}`; anything unreadable fails the
/// whole batch, as AWS treats it.
fn failed_ids(payload: &[u8]) -> Vec<String> {
    let Ok(response) = serde_json::from_slice::<Value>(payload) else { return vec!["*".into()] };
    response["batchItemFailures"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn delete(queues: &dyn crate::Queues, queue: &str, records: &[Value]) {
    let handles: Vec<String> =
        records.iter().filter_map(|r| r["receiptHandle"].as_str().map(str::to_owned)).collect();
    if !handles.is_empty() {
        let _ = queues.delete(queue, handles).await;
    }
}

fn mapping_not_found(uuid: &str) -> AwsError {
    AwsError::not_found(format!(
        "The resource you requested does not exist. (Service: Lambda, Status Code: 404, Request ID: {uuid})"
    ))
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
