//! Adapters that let one service use another through the narrow traits the services define,
//! so that no service crate depends on another.

use std::sync::Arc;

use serde_json::Value;

use crate::lazy::Lazy;
use crate::sqs_home::SqsHome;

/// S3 bucket notifications: a function target becomes a durable asynchronous invocation, a
/// queue target an SQS message — both stored before `deliver` returns, so an acknowledged
/// object never loses its event.
pub struct S3Notifications {
    pub lambda: Arc<crate::lambda_regions::Functions>,
    pub sqs: Arc<SqsHome>,
    pub sns: Arc<crate::regional::Regional<nimbus_sns::Sns>>,
    pub events: Arc<crate::regional::Regional<nimbus_eventbridge::EventBridge>>,
    /// nimbus's account (`--account`), whose buckets these are.
    pub account: String,
}

impl nimbus_s3::NotificationSink for S3Notifications {
    fn deliver(&self, target: &nimbus_s3::NotificationTarget, event: Value) {
        let body = event.to_string();
        // Blocking on purpose (see above); block_in_place keeps the other tasks of this worker
        // running meanwhile.
        let outcome = tokio::task::block_in_place(|| match target {
            nimbus_s3::NotificationTarget::Lambda { function_arn } => {
                self.lambda.enqueue_event_blocking(function_arn, body.into_bytes())
            }
            nimbus_s3::NotificationTarget::Queue { queue_arn } => {
                tokio::runtime::Handle::current().block_on(self.sqs.send(queue_arn, body))
            }
            nimbus_s3::NotificationTarget::Topic { topic_arn } => {
                let sns = self.sns.for_arn(topic_arn)?.get_blocking()?;
                let no_attributes = std::collections::BTreeMap::new();
                let subject = Some("Amazon S3 Notification");
                sns.publish(topic_arn, &body, subject, &no_attributes, None, None)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            nimbus_s3::NotificationTarget::EventBridge { region } => {
                // The default bus of the bucket's region (and nimbus's account, S3's).
                let events = self.events.at(region, &self.account)?.get_blocking()?;
                let detail_type = event["detail-type"].as_str().unwrap_or_default();
                let bucket = event["detail"]["bucket"]["name"].as_str().unwrap_or_default();
                let resources = vec![format!("arn:aws:s3:::{bucket}")];
                events.put_event("default", "aws.s3", detail_type, event["detail"].clone(), resources)
            }
        });
        if let Err(why) = outcome {
            eprintln!("nimbus: an S3 notification could not be delivered: {why}");
        }
    }

    fn exists(&self, target: &nimbus_s3::NotificationTarget) -> bool {
        match target {
            nimbus_s3::NotificationTarget::Lambda { function_arn } => {
                self.lambda.function_exists(function_arn)
            }
            nimbus_s3::NotificationTarget::Queue { queue_arn } => self.sqs.exists(queue_arn),
            nimbus_s3::NotificationTarget::Topic { topic_arn } => tokio::task::block_in_place(|| {
                let sns = self.sns.for_arn(topic_arn).and_then(|sns| sns.get_blocking());
                sns.is_ok_and(|sns| sns.topic_exists(topic_arn))
            }),
            nimbus_s3::NotificationTarget::EventBridge { .. } => true,
        }
    }
}

/// SNS deliveries: to SQS queues (stored before `to_queue` returns) and Lambda functions
/// (durable asynchronous invocations), as S3's notifications are made.
pub struct SnsDeliveries {
    pub lambda: Arc<crate::lambda_regions::Functions>,
    pub sqs: Arc<SqsHome>,
}

impl nimbus_sns::Deliver for SnsDeliveries {
    fn to_queue(
        &self,
        queue_arn: &str,
        message: nimbus_sns::QueueMessage,
    ) -> Result<(), nimbus_sns::Failure> {
        let attributes = message
            .attributes
            .into_iter()
            .map(|(name, a)| {
                (
                    name,
                    nimbus_sqs::AttributeValue { data_type: a.data_type, string: a.string, binary: a.binary },
                )
            })
            .collect();
        let request = nimbus_sqs::SendRequest {
            body: message.body,
            attributes,
            delay: None,
            group_id: message.group_id,
            deduplication_id: message.dedup_id,
        };
        let sent = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.sqs.send_request(queue_arn, request))
        });
        sent.map_err(|why| {
            // SQS between nodes, or failing for the moment: worth retrying. Anything else (a
            // deleted queue, a refused message) is the subscriber's to fix.
            let transient = ["ServiceUnavailable", "InternalError", "no node serves", "http://"]
                .iter()
                .any(|sign| why.contains(sign));
            nimbus_sns::Failure { message: why, transient }
        })
    }

    fn to_function(&self, function_arn: &str, event: Vec<u8>) -> Result<(), nimbus_sns::Failure> {
        tokio::task::block_in_place(|| {
            if !self.lambda.function_exists(function_arn) {
                return Err(nimbus_sns::Failure::permanent(format!("Function not found: {function_arn}")));
            }
            // Full queue or database trouble: retried.
            self.lambda.enqueue_event_blocking(function_arn, event).map_err(nimbus_sns::Failure::transient)
        })
    }
}

/// Function code and layers from nimbus's S3 (`S3Bucket`/`S3Key`).
pub struct S3Objects(pub Arc<nimbus_s3::S3>);

impl nimbus_lambda::Objects for S3Objects {
    fn read(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, String> {
        self.0.read_object(bucket, key, version).map_err(|e| e.message)
    }
}

/// CloudFormation's `TemplateURL`s, read from nimbus's S3.
pub struct S3Templates(pub Arc<nimbus_s3::S3>);

impl nimbus_cloudformation::Templates for S3Templates {
    fn read(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, String> {
        self.0.read_object(bucket, key, version).map_err(|e| e.message)
    }
}

/// Custom resources' requests, sent to their functions as asynchronous invocations.
/// Lambda of every region: a function named by ARN is found in its region (see `lambda_regions`).
pub struct CfnFunctions(pub Arc<dyn nimbus_api::Service>);

impl nimbus_cloudformation::Functions for CfnFunctions {
    fn invoke_async(&self, function: &str, payload: Vec<u8>) -> nimbus_cloudformation::InvokeFuture<'_> {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        Box::pin(async move {
            let headers = [("x-amz-invocation-type", "Event"), ("content-type", "application/json")];
            nimbus_api::provider::call(self.0.as_ref(), hyper::Method::POST, &path, &headers, payload)
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        })
    }
}

/// Life among several nodes on one database: heartbeats (with what this node holds, for
/// `nimbus status`), taking over the asynchronous invocations of nodes that stopped, the SQS
/// lease, and refreshing Lambda's functions when another node changed them. Nothing to do on
/// SQLite, where this node is alone.
/// `seen` receives every node as the last heartbeat found them, for the health document.
pub fn run_cluster(
    cluster: Option<Arc<nimbus_store::Cluster>>,
    lambda: Arc<nimbus_lambda::Lambda>,
    store: Arc<nimbus_store::LambdaStore>,
    held: [Arc<dyn Balanced>; 3],
    seen: Arc<std::sync::Mutex<Vec<nimbus_store::cluster::NodeInfo>>>,
    events: Arc<Lazy<nimbus_eventbridge::EventBridge>>,
) -> ClusterWork {
    use nimbus_store::Store;
    let Some(cluster) = cluster else {
        return ClusterWork(Vec::new());
    };
    lambda.share_store();
    cluster.report(
        "lambda",
        move || serde_json::json!({ "async_events": store.count_events().unwrap_or_default() }),
    );
    for service in &held {
        let serving = service.clone();
        cluster.report(service.lease(), move || serde_json::json!({ "serves": serving.serves() }));
    }
    let mut changes = cluster.subscribe();
    let own_topic = format!("lambda:{}", cluster.node());
    let reloading = lambda.clone();
    let reloads = tokio::spawn(async move {
        loop {
            match changes.recv().await {
                // "*": notifications were lost for a while (the database was out of reach).
                Ok(topic) if topic == "*" || (topic.starts_with("lambda:") && topic != own_topic) => {}
                // Missed some: reload to be sure.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            let lambda = reloading.clone();
            if let Ok(Err(error)) = tokio::task::spawn_blocking(move || lambda.reload()).await {
                eprintln!("nimbus: cannot refresh functions changed by another node: {error}");
            }
        }
    });
    // Each held service takes its lease steps on its own: closing one while the database is gone
    // may wait on its writes, which must hold up neither the heartbeat nor the others.
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = held
        .into_iter()
        .map(|service| {
            let every = cluster.expiry() / 4;
            tokio::spawn(async move {
                let mut step = tokio::time::interval(every);
                step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    step.tick().await;
                    service.balance().await;
                }
            })
        })
        .collect();
    tasks.push(reloads);
    tasks.push(tokio::spawn(async move {
        let cut_off = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut beat = tokio::time::interval(cluster.expiry() / 4);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            beat.tick().await;
            let (cluster, lambda, seen, cut_off, events) =
                (cluster.clone(), lambda.clone(), seen.clone(), cut_off.clone(), events.clone());
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = cluster.heartbeat() {
                    // Said once per outage; health shows it meanwhile.
                    if !cut_off.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        eprintln!("nimbus: cannot reach the database ({error}); this node claims no work until it can");
                    }
                    return;
                }
                if cut_off.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    eprintln!("nimbus: the database is reachable again");
                }
                if let Ok(nodes) = cluster.nodes() {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
                }
                let gone: Vec<String> = match cluster.dead_nodes() {
                    Ok(nodes) => nodes.into_iter().filter(|node| node != cluster.node()).collect(),
                    Err(_) => return,
                };
                if !gone.is_empty() && cluster.healthy() {
                    let adopted = lambda.adopt_events(&gone);
                    if adopted > 0 {
                        eprintln!(
                            "nimbus: took over {adopted} asynchronous invocation(s) of {}",
                            gone.join(", ")
                        );
                    }
                    // EventBridge deliveries the gone nodes had accepted and not yet handed over.
                    if let Some(events) = events.opened() {
                        let adopted = events.adopt(&gone);
                        if adopted > 0 {
                            eprintln!("nimbus: took over {adopted} EventBridge deliveries of {}", gone.join(", "));
                        }
                    }
                }
            })
            .await;
        }
    }));
    ClusterWork(tasks)
}

/// The background tasks of [`run_cluster`].
pub struct ClusterWork(Vec<tokio::task::JoinHandle<()>>);

impl ClusterWork {
    /// Stops them and waits until they are gone: a task still ticking while the runtime shuts
    /// down would find its timer gone.
    pub async fn stop(self) {
        for task in &self.0 {
            task.abort();
        }
        for task in self.0 {
            let _ = task.await;
        }
    }
}

/// A service held by one node of several (see `home`), as the heartbeat loop drives it.
pub trait Balanced: Send + Sync {
    fn lease(&self) -> &'static str;
    fn serves(&self) -> bool;
    fn balance(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

impl<S: crate::home::Held> Balanced for crate::home::Home<S> {
    fn lease(&self) -> &'static str {
        nimbus_api::Service::name(self)
    }
    fn serves(&self) -> bool {
        crate::home::Home::serves(self)
    }
    fn balance(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(crate::home::Home::balance(self))
    }
}

/// EventBridge rules' and schedules' targets: a function becomes a durable asynchronous
/// invocation, a queue an SQS message (with its FIFO group and attributes) — both stored before
/// `deliver` returns, which is when the outbox lets the delivery go.
pub struct EventTargets {
    pub lambda: Arc<crate::lambda_regions::Functions>,
    pub sqs: Arc<SqsHome>,
    pub sns: Arc<crate::regional::Regional<nimbus_sns::Sns>>,
    pub kinesis: Arc<crate::regional::Regional<nimbus_kinesis::Kinesis>>,
    /// Set once Batch is made (it is made after EventBridge).
    pub batch: std::sync::OnceLock<Arc<Lazy<nimbus_batch::Batch>>>,
    pub stepfunctions: Arc<crate::regional::Regional<nimbus_stepfunctions::StepFunctions>>,
}

impl nimbus_eventbridge::Targets for EventTargets {
    fn deliver(
        &self,
        arn: &str,
        payload: &str,
        options: &nimbus_eventbridge::DeliveryOptions,
    ) -> Result<(), String> {
        let service = arn.split(':').nth(2).unwrap_or_default();
        match service {
            "lambda" if !self.lambda.function_exists(arn) => {
                Err(format!("ResourceNotFoundException: Function not found: {arn}"))
            }
            "lambda" => self.lambda.enqueue_event_blocking(arn, payload.as_bytes().to_vec()),
            "sqs" => {
                let send = self.sqs.send_message(
                    arn,
                    payload.to_owned(),
                    options.message_group_id.clone(),
                    &options.attributes,
                );
                tokio::runtime::Handle::current().block_on(send)
            }
            "sns" => publish(&self.sns, arn, payload, options.message_group_id.as_deref()),
            "kinesis" => {
                let kinesis = self.kinesis.for_arn(arn)?.get_blocking()?;
                let key = options.partition_key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                kinesis.put_record(arn, &key, payload.as_bytes()).map(drop).map_err(|e| e.message)
            }
            "batch" => {
                let batch = self.batch.get().ok_or("Batch is not wired")?.get_blocking()?;
                batch.submit_from_target(arn, &batch_request(payload)).map(drop)
            }
            "states" => {
                self.stepfunctions.for_arn(arn)?.get_blocking()?.start_execution(arn, payload).map(drop)
            }
            _ => Err(format!("nimbus does not deliver EventBridge events to {arn} yet")),
        }
    }
}

/// SubmitJob's input from a Batch target's delivery: a Scheduler `aws-sdk:batch:submitJob`
/// call as given, or a rule target's `BatchParameters` with the `Parameters` and
/// `ContainerOverrides` of its input.
fn batch_request(payload: &str) -> Value {
    let delivered: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    if let Some(call) = delivered.get("submitJob") {
        return call.clone();
    }
    let parameters = &delivered["batchParameters"];
    let input = &delivered["input"];
    let mut request = serde_json::json!({
        "JobDefinition": parameters["JobDefinition"],
        "JobName": parameters["JobName"],
    });
    for (key, value) in [
        ("ArrayProperties", &parameters["ArrayProperties"]),
        ("RetryStrategy", &parameters["RetryStrategy"]),
        ("Parameters", &input["Parameters"]),
        ("ContainerOverrides", &input["ContainerOverrides"]),
    ] {
        if !value.is_null() {
            request[key] = value.clone();
        }
    }
    request
}

/// Lambda's destinations beyond functions and queues: an EventBridge event bus receives the
/// invocation record as the detail of a "Lambda Function Invocation Result" event, as AWS sends it.
pub struct LambdaDestinations {
    pub events: Arc<crate::regional::Regional<nimbus_eventbridge::EventBridge>>,
    pub sns: Arc<crate::regional::Regional<nimbus_sns::Sns>>,
}

/// Publishes to an SNS topic for another service (EventBridge targets, Lambda destinations); a
/// FIFO topic gets a group and a fresh deduplication id.
fn publish(
    sns: &crate::regional::Regional<nimbus_sns::Sns>,
    topic: &str,
    message: &str,
    group: Option<&str>,
) -> Result<(), String> {
    let sns = sns.for_arn(topic)?.get_blocking()?;
    let fifo = topic.ends_with(".fifo");
    let group = group.or(fifo.then_some("default"));
    let dedup = fifo.then(|| uuid::Uuid::new_v4().simple().to_string());
    sns.publish(topic, message, None, &Default::default(), group, dedup.as_deref())
        .map(drop)
        .map_err(|e| e.message)
}

impl nimbus_lambda::Destinations for LambdaDestinations {
    fn deliver(&self, arn: &str, body: &str) -> Result<(), String> {
        if arn.contains(":event-bus/") {
            let events = tokio::runtime::Handle::current().block_on(self.events.for_arn(arn)?.get())?;
            let record: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let outcome =
                if record["requestContext"]["condition"] == "Success" { "Success" } else { "Failure" };
            let function = record["requestContext"]["functionArn"].as_str().unwrap_or_default().to_owned();
            let detail_type = format!("Lambda Function Invocation Result - {outcome}");
            return events.put_event(arn, "lambda", &detail_type, record, vec![function, arn.to_owned()]);
        }
        if arn.starts_with("arn:aws:sns:") {
            return publish(&self.sns, arn, body, None);
        }
        Err(format!("nimbus does not deliver Lambda destinations to {arn} yet"))
    }
}

/// The cluster topic a node announces its Kinesis writes on.
pub const KINESIS_TOPIC: &str = "kinesis";

/// Wakes this node's Kinesis readers (pollers, subscriptions) when another node commits
/// records; nothing to wake while Kinesis is not open here.
pub fn wake_kinesis_readers(
    cluster: &Arc<nimbus_store::Cluster>,
    kinesis: Arc<crate::regional::Regional<nimbus_kinesis::Kinesis>>,
) {
    let mut changes = cluster.subscribe();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                // "*": notifications were lost for a while; Lagged: some were missed.
                Ok(topic) if topic == KINESIS_TOPIC || topic == "*" => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            // Every region's instance opened here (the others have no readers to wake).
            for kinesis in kinesis.opened() {
                kinesis.records_written_elsewhere();
            }
        }
    });
}

/// Kinesis (and, once wired, DynamoDB Streams) as Lambda's stream event sources: shards,
/// records shaped as Lambda's Kinesis event record, and one wake-up for both.
pub struct LambdaStreams {
    pub kinesis: Arc<crate::regional::Regional<nimbus_kinesis::Kinesis>>,
    pub dynamodb: Arc<crate::regional::Regional<nimbus_dynamodb::DynamoDb>>,
    pub sqs: Arc<SqsHome>,
    pub clock: Arc<dyn nimbus_api::clock::Clock>,
    pub identity: nimbus_api::Identity,
    /// Bumped whenever a source says records were written.
    pub woken: tokio::sync::watch::Sender<u64>,
    /// The instances (`kinesis:<region>:<account>`) whose wake-ups already feed `woken`.
    pub forwarding: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Passes a source's own wake-ups on to the pollers' one.
fn forward(mut written: tokio::sync::watch::Receiver<u64>, woken: tokio::sync::watch::Sender<u64>) {
    tokio::spawn(async move {
        while written.changed().await.is_ok() {
            woken.send_modify(|n| *n = n.wrapping_add(1));
        }
    });
}

fn is_dynamodb(source_arn: &str) -> bool {
    source_arn.starts_with("arn:aws:dynamodb:")
}

impl LambdaStreams {
    /// The Kinesis instance of the stream's region and account.
    fn kinesis(&self, stream_arn: &str) -> Result<Arc<nimbus_kinesis::Kinesis>, String> {
        let kinesis = tokio::task::block_in_place(|| self.kinesis.for_arn(stream_arn)?.get_blocking())?;
        // The first time: the stream's own wake-ups feed the pollers' one.
        if self.first_use("kinesis", stream_arn) {
            forward(kinesis.written(), self.woken.clone());
        }
        Ok(kinesis)
    }

    /// The DynamoDB instance of the table's (its stream's) region and account.
    fn dynamodb(&self, stream_arn: &str) -> Result<Arc<nimbus_dynamodb::DynamoDb>, String> {
        let dynamodb = tokio::task::block_in_place(|| self.dynamodb.for_arn(stream_arn)?.get_blocking())?;
        if self.first_use("dynamodb", stream_arn) {
            forward(dynamodb.stream_changes(), self.woken.clone());
        }
        Ok(dynamodb)
    }

    /// Whether `service`'s instance for `arn` is used here for the first time.
    fn first_use(&self, service: &str, arn: &str) -> bool {
        let (region, account) = nimbus_api::scope::arn_scope(arn);
        let region = if region.is_empty() { &self.identity.region } else { region };
        let account = if account.is_empty() { &self.identity.account } else { account };
        let mut forwarding = self.forwarding.lock().unwrap_or_else(|p| p.into_inner());
        forwarding.insert(format!("{service}:{region}:{account}"))
    }

    /// Lambda's Kinesis event record, and what filters see (the data decoded as JSON).
    fn kinesis_record(
        &self,
        source: &str,
        shard: &str,
        record: nimbus_kinesis::StreamRecord,
    ) -> nimbus_lambda::StreamRecord {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(&record.data);
        let kinesis = serde_json::json!({
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": record.sequence,
            "data": data,
            "approximateArrivalTimestamp": record.arrival_ms as f64 / 1000.0,
        });
        let mut filter_view = kinesis.clone();
        filter_view["data"] = serde_json::from_slice(&record.data)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&record.data).into_owned()));
        let event = serde_json::json!({
            "kinesis": kinesis,
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{shard}:{}", record.sequence),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": format!("arn:aws:iam::{}:role/lambda", self.identity.account),
            "awsRegion": self.identity.region,
            "eventSourceARN": source,
        });
        nimbus_lambda::StreamRecord {
            sequence: record.sequence,
            arrival_ms: record.arrival_ms,
            partition_key: record.partition_key,
            record: event,
            filter_view,
        }
    }
}

impl nimbus_lambda::Streams for LambdaStreams {
    fn shards(&self, source_arn: &str) -> Result<Vec<nimbus_lambda::Shard>, String> {
        if is_dynamodb(source_arn) {
            let shards = self.dynamodb(source_arn)?.stream_shards(source_arn)?;
            let shards = shards.into_iter().map(|s| nimbus_lambda::Shard {
                id: s.shard_id,
                parents: s.parent_shard_id.into_iter().collect(),
                closed: s.closed,
            });
            return Ok(shards.collect());
        }
        let shards = self.kinesis(source_arn)?.shards(source_arn)?;
        Ok(shards
            .into_iter()
            .map(|s| nimbus_lambda::Shard {
                id: s.shard_id,
                parents: s.parent_shard_id.into_iter().chain(s.adjacent_parent_shard_id).collect(),
                closed: s.closed,
            })
            .collect())
    }

    fn read(
        &self,
        source_arn: &str,
        shard_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<nimbus_lambda::StreamRecord>, String> {
        if is_dynamodb(source_arn) {
            let records = self.dynamodb(source_arn)?.stream_read(source_arn, shard_id, after, limit)?;
            return Ok(records
                .into_iter()
                .map(|r| nimbus_lambda::StreamRecord {
                    // Items in order per key: the item's keys make the partition key.
                    partition_key: r.record["dynamodb"]["Keys"].to_string(),
                    filter_view: r.record.clone(),
                    sequence: r.sequence,
                    arrival_ms: r.arrival_ms,
                    record: r.record,
                })
                .collect());
        }
        let records = self.kinesis(source_arn)?.read(source_arn, shard_id, after, limit)?;
        Ok(records.into_iter().map(|r| self.kinesis_record(source_arn, shard_id, r)).collect())
    }

    fn position(
        &self,
        source_arn: &str,
        shard_id: &str,
        at_ms: Option<i64>,
    ) -> Result<Option<String>, String> {
        let at = match at_ms {
            None => nimbus_kinesis::StartAt::Latest,
            Some(ms) => nimbus_kinesis::StartAt::Timestamp(ms),
        };
        self.kinesis(source_arn)?.position(source_arn, shard_id, at)
    }

    fn changes(&self, source_arn: &str) -> tokio::sync::watch::Receiver<u64> {
        // The source's own wake-ups are passed on (once per source), opening it if need be.
        let _ = if is_dynamodb(source_arn) {
            self.dynamodb(source_arn).map(drop)
        } else {
            self.kinesis(source_arn).map(drop)
        };
        self.woken.subscribe()
    }

    fn polls_here(&self) -> bool {
        self.sqs.serves()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// EC2's events (spot interruption warnings, state changes) on the default event bus of the
/// region of the instance or group they are about (their first resource's ARN), as AWS sends them
/// (source `aws.ec2`, `aws.autoscaling`).
pub struct Ec2Events {
    pub events: Arc<crate::regional::Regional<nimbus_eventbridge::EventBridge>>,
}

impl nimbus_ec2::Ec2Events for Ec2Events {
    fn put(&self, source: &str, detail_type: &str, resources: Vec<String>, detail: Value) {
        let put = self
            .events
            .for_arn(resources.first().map_or("", String::as_str))
            .and_then(|events| events.get_blocking())
            .and_then(|events| events.put_event("default", source, detail_type, detail, resources));
        if let Err(error) = put {
            eprintln!("nimbus: ec2: event {detail_type} not delivered to EventBridge: {error}");
        }
    }
}

/// Logs subscription filters whose destination is a Lambda function: the function gets AWS's
/// `{"awslogs": {"data": …}}` event, asynchronously.
pub struct LogSubscriptions {
    pub lambda: Arc<crate::lambda_regions::Functions>,
    pub s3: Arc<nimbus_s3::S3>,
    pub kinesis: Arc<crate::regional::Regional<nimbus_kinesis::Kinesis>>,
    pub metrics: Arc<crate::metrics_home::MetricsHome>,
}

impl nimbus_logs::Subscriber for LogSubscriptions {
    fn deliver(&self, destination_arn: &str, payload: Vec<u8>) -> Result<(), String> {
        if destination_arn.starts_with("arn:aws:kinesis:") {
            // The stream gets the gzipped message itself, as AWS puts it.
            let kinesis = self.kinesis.for_arn(destination_arn)?.get_blocking()?;
            let key = uuid::Uuid::new_v4().to_string();
            return kinesis.put_record(destination_arn, &key, &payload).map(drop).map_err(|e| e.message);
        }
        if !destination_arn.starts_with("arn:aws:lambda:") {
            return Err(
                "nimbus delivers log subscriptions to Lambda functions and Kinesis streams only".into()
            );
        }
        self.lambda.enqueue_event_blocking(destination_arn, nimbus_logs::lambda_event(&payload))
    }

    fn metric(
        &self,
        namespace: &str,
        name: &str,
        unit: Option<&str>,
        at_s: i64,
        sum: f64,
        count: f64,
    ) -> Result<(), String> {
        let served = self.metrics.local().ok_or("CloudWatch is served by another node")?;
        served.metrics().put_custom(namespace, name, unit, at_s, sum, count);
        Ok(())
    }

    fn put_object(&self, bucket: &str, key: &str, data: Vec<u8>) -> Result<(), String> {
        self.s3.write_object(bucket, key, &data, "application/x-gzip").map_err(|e| e.to_string())
    }
}

/// CloudWatch alarm actions: SNS topics get AWS's alarm notification, Lambda functions the
/// `aws.cloudwatch` alarm event (asynchronously), Auto Scaling policies run on their group, and
/// EC2 actions (`arn:aws:automate:<region>:ec2:stop|terminate|reboot`) act on the instance of
/// the alarm's `InstanceId` dimension.
pub struct AlarmActions {
    pub sns: Arc<crate::regional::Regional<nimbus_sns::Sns>>,
    pub lambda: Arc<crate::lambda_regions::Functions>,
    pub ec2: Arc<Lazy<nimbus_ec2::Ec2>>,
}

impl AlarmActions {
    fn ec2_action(&self, action_arn: &str, notification: &Value) -> Result<(), String> {
        let parts: Vec<&str> = action_arn.split(':').collect();
        let (region, action) =
            (parts.get(3).copied().unwrap_or_default(), parts.get(5).copied().unwrap_or_default());
        let dimensions = notification["Trigger"]["Dimensions"].as_array().cloned().unwrap_or_default();
        let instance = dimensions
            .iter()
            .find(|d| d["name"] == "InstanceId")
            .and_then(|d| d["value"].as_str())
            .ok_or("an EC2 alarm action needs the alarm's InstanceId dimension")?;
        let ec2 = self.ec2.get_blocking()?;
        ec2.alarm_instance_action(region, action, instance).map_err(|e| e.message)
    }
}

impl nimbus_metrics::AlarmSink for AlarmActions {
    fn scale(
        &self,
        policy_arn: &str,
        alarm: &str,
        metric: Option<f64>,
        threshold: Option<f64>,
    ) -> Result<(), String> {
        tokio::task::block_in_place(|| {
            let ec2 = self.ec2.get_blocking()?;
            ec2.alarm_triggered(policy_arn, alarm, metric, threshold)
        })
    }

    fn notify(&self, action_arn: &str, subject: &str, notification: &Value) -> Result<(), String> {
        tokio::task::block_in_place(|| {
            if action_arn.starts_with("arn:aws:sns:") {
                let sns = self.sns.for_arn(action_arn)?.get_blocking()?;
                let no_attributes = std::collections::BTreeMap::new();
                let message = notification.to_string();
                return sns
                    .publish(action_arn, &message, Some(subject), &no_attributes, None, None)
                    .map(drop)
                    .map_err(|e| e.to_string());
            }
            if action_arn.starts_with("arn:aws:lambda:") {
                let state = |value: &Value, reason: &Value| serde_json::json!({ "value": value, "reason": reason, "timestamp": notification["StateChangeTime"] });
                let event = serde_json::json!({
                    "source": "aws.cloudwatch",
                    "alarmArn": notification["AlarmArn"],
                    "accountId": notification["AWSAccountId"],
                    "time": notification["StateChangeTime"],
                    "region": notification["AlarmArn"].as_str().and_then(|a| a.split(':').nth(3)).unwrap_or("us-east-1"),
                    "alarmData": {
                        "alarmName": notification["AlarmName"],
                        "state": state(&notification["NewStateValue"], &notification["NewStateReason"]),
                        "previousState": state(&notification["OldStateValue"], &Value::Null),
                        "configuration": { "description": notification["AlarmDescription"], "metrics": [] },
                    },
                });
                return self.lambda.enqueue_event_blocking(action_arn, event.to_string().into_bytes());
            }
            if action_arn.starts_with("arn:aws:automate:") && action_arn.contains(":ec2:") {
                return self.ec2_action(action_arn, notification);
            }
            Err("nimbus takes alarm actions on SNS topics, Lambda functions, Auto Scaling policies and EC2 instances only".into())
        })
    }
}

/// Lambda's container image functions run from the image store under ECR (opened on first use),
/// the image URI's account's.
pub struct LambdaImages(pub Arc<crate::ecr_accounts::Registries>);

impl nimbus_lambda::images::ImageStore for LambdaImages {
    fn resolve(&self, uri: &str, architecture: &str) -> Result<nimbus_lambda::images::ResolvedImage, String> {
        let ecr = self.0.for_image(uri)?;
        let root = ecr.images().root_for(uri, architecture).map_err(|e| e.to_string())?;
        let config = root.config.clone();
        let user = nimbus_images::user::resolve(&root.rootfs, config.user.as_deref().unwrap_or_default())
            .map_err(|why| format!("CannotStartContainerError: {why}"))?;
        Ok(nimbus_lambda::images::ResolvedImage {
            rootfs: root.rootfs.clone(),
            resolved_uri: root.resolved.clone(),
            digest: root.digest.clone(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            working_dir: config.working_dir,
            architecture: root.architecture.clone(),
            user,
            hold: Box::new(root),
        })
    }
}

/// Auto Scaling's target tracking alarms, kept in the CloudWatch of the group's region (and of
/// nimbus's `--account`, EC2's).
pub struct ScalingAlarms(pub Arc<crate::metrics_home::MetricsHome>, pub String);

impl nimbus_ec2::ScalingAlarms for ScalingAlarms {
    fn put_alarm(&self, region: &str, alarm: &Value) -> Result<String, String> {
        let served = self.0.local().ok_or("CloudWatch is served by another node")?;
        served.metrics_in(region, &self.1)?.put_alarm(alarm)
    }

    fn delete_alarms(&self, region: &str, names: &[String]) {
        let local = self.0.local().map(|served| served.metrics_in(region, &self.1));
        if let Some(Ok(metrics)) = local {
            metrics.delete_alarms(names);
        }
    }
}

/// Functions' billed use for the meter's what-if comparison, from CloudWatch's figures.
pub struct FunctionUsage(pub Arc<crate::metrics_home::MetricsHome>);

impl nimbus_ec2::FunctionUsage for FunctionUsage {
    fn usage(&self, since_ms: i64, until_ms: i64) -> Result<Vec<nimbus_ec2::FunctionUse>, String> {
        let served = self.0.local().ok_or("CloudWatch's figures are kept by another node")?;
        let at = |ms: i64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
        // To the end of the minute `until_ms` falls in (figures are kept per minute); a minute's
        // boundary stays one, so the meter's buckets do not count a minute twice.
        let until = at(((until_ms.max(0) as u64).div_ceil(60_000) * 60_000) as i64);
        let mut by_arch: Vec<nimbus_ec2::FunctionUse> = Vec::new();
        for usage in served.metrics().usage(at(since_ms), until) {
            let architecture = usage.architecture.as_str();
            match by_arch.iter_mut().find(|u| u.architecture == architecture) {
                Some(found) => {
                    found.requests += usage.requests;
                    found.gb_seconds += usage.gb_seconds;
                }
                None => by_arch.push(nimbus_ec2::FunctionUse {
                    architecture: architecture.to_owned(),
                    requests: usage.requests,
                    gb_seconds: usage.gb_seconds,
                }),
            }
        }
        Ok(by_arch)
    }
}
