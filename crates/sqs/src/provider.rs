//! `AWS::SQS::Queue`, `AWS::SQS::QueuePolicy` and `AWS::SQS::QueueInlinePolicy` for CloudFormation: each step is a call to
//! SQS's own API (its validation and messages), made in-process.

use std::sync::Arc;

use hyper::Method;
use nimbus_api::provider::{
    call, document, tag_map, text, ProviderError, ProviderFuture, Provisioned, ResourceProvider,
    ResourceRequest,
};
use nimbus_api::Service;
use serde_json::{json, Map, Value};

pub struct QueueProvider {
    sqs: Arc<dyn Service>,
    /// `host:port` queue URLs name (nimbus's address).
    host: String,
}

impl QueueProvider {
    /// `sqs`: the SQS service as the port serves it (opened on first use); `host`: the
    /// `host:port` its queue URLs name.
    pub fn new(sqs: Arc<dyn Service>, host: &str) -> QueueProvider {
        QueueProvider { sqs, host: host.to_owned() }
    }

    async fn action(&self, action: &str, body: Value) -> Result<Value, ProviderError> {
        let target = format!("AmazonSQS.{action}");
        let headers = [
            ("x-amz-target", target.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
            ("host", self.host.as_str()),
        ];
        let bytes =
            call(self.sqs.as_ref(), Method::POST, "/", &headers, body.to_string().into_bytes()).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn provisioned(&self, url: String) -> Result<Provisioned, ProviderError> {
        let answer = self
            .action("GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}))
            .await?;
        let arn = answer["Attributes"]["QueueArn"].as_str().unwrap_or_default().to_owned();
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), arn.into());
        attributes.insert("QueueName".into(), name.into());
        attributes.insert("QueueUrl".into(), url.clone().into());
        Ok(Provisioned { physical_id: url, attributes })
    }
}

const QUEUE_ATTRIBUTES: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
];

/// The queue's attributes as SQS takes them: every value a string, policies as JSON text.
fn attributes(request: &ResourceRequest, updating: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for name in QUEUE_ATTRIBUTES {
        if updating && (*name == "FifoQueue") {
            continue;
        }
        if let Some(value) = request.property(name) {
            let value = if value.is_object() { document(value) } else { text(value) };
            out.insert((*name).to_owned(), Value::String(value));
        }
    }
    out
}

fn queue_name(request: &ResourceRequest) -> String {
    if let Some(name) = request.string("QueueName") {
        return name.to_owned();
    }
    let fifo = request.property("FifoQueue").is_some_and(|v| text(v) == "true");
    if fifo {
        format!("{}.fifo", request.generated_name(75, false))
    } else {
        request.generated_name(80, false)
    }
}

impl ResourceProvider for QueueProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        &["AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::SQS::QueueInlinePolicy"]
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        resource_type == "AWS::SQS::Queue" && matches!(property, "QueueName" | "FifoQueue")
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type != "AWS::SQS::Queue" {
                self.set_policies(&request, false).await?;
                let physical = request.generated_name(128, false);
                return Ok(Provisioned { physical_id: physical, attributes: Map::new() });
            }
            let mut tags = tag_map(request.property("Tags"));
            for (key, value) in &request.tags {
                tags.entry(key.clone()).or_insert(Value::String(value.clone()));
            }
            let body = json!({"QueueName": queue_name(&request), "Attributes": attributes(&request, false), "tags": tags});
            let answer = self.action("CreateQueue", body).await?;
            let url = answer["QueueUrl"].as_str().unwrap_or_default().to_owned();
            self.provisioned(url).await
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type != "AWS::SQS::Queue" {
                let old: Vec<String> = queues(&previous);
                let new: Vec<String> = queues(&request.properties);
                for gone in old.iter().filter(|q| !new.contains(q)) {
                    let body = json!({"QueueUrl": gone, "Attributes": {"Policy": ""}});
                    let _ = self.action("SetQueueAttributes", body).await;
                }
                self.set_policies(&request, false).await?;
                return Ok(Provisioned { physical_id, attributes: Map::new() });
            }
            let mut attrs = attributes(&request, true);
            // Attributes no longer given return to SQS's defaults.
            let defaults = [
                ("DelaySeconds", "0"),
                ("MaximumMessageSize", "262144"),
                ("MessageRetentionPeriod", "345600"),
                ("ReceiveMessageWaitTimeSeconds", "0"),
                ("VisibilityTimeout", "30"),
                ("RedrivePolicy", ""),
            ];
            for (name, default) in defaults {
                if previous.contains_key(name) && request.property(name).is_none() {
                    attrs.insert(name.into(), default.into());
                }
            }
            if !attrs.is_empty() {
                self.action("SetQueueAttributes", json!({"QueueUrl": physical_id, "Attributes": attrs}))
                    .await?;
            }
            let (old, new) = (tag_map(previous.get("Tags")), tag_map(request.property("Tags")));
            let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
            if !removed.is_empty() {
                self.action("UntagQueue", json!({"QueueUrl": physical_id, "TagKeys": removed})).await?;
            }
            if !new.is_empty() {
                self.action("TagQueue", json!({"QueueUrl": physical_id, "Tags": new})).await?;
            }
            self.provisioned(physical_id).await
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            if request.resource_type != "AWS::SQS::Queue" {
                return self.set_policies(&request, true).await;
            }
            match self.action("DeleteQueue", json!({"QueueUrl": physical_id})).await {
                Err(error) if error.message.contains("does not exist") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

/// The queues a policy applies to: `Queues` (QueuePolicy) or `Queue` (QueueInlinePolicy).
fn queues(properties: &Map<String, Value>) -> Vec<String> {
    match (properties.get("Queues"), properties.get("Queue")) {
        (Some(Value::Array(items)), _) => items.iter().map(text).collect(),
        (_, Some(queue)) => vec![text(queue)],
        _ => Vec::new(),
    }
}

impl QueueProvider {
    async fn set_policies(&self, request: &ResourceRequest, clear: bool) -> Result<(), ProviderError> {
        let policy = if clear {
            String::new()
        } else {
            request.property("PolicyDocument").map(document).unwrap_or_default()
        };
        for queue in queues(&request.properties) {
            let result = self
                .action("SetQueueAttributes", json!({"QueueUrl": queue, "Attributes": {"Policy": policy}}))
                .await;
            match result {
                Err(error) if clear && error.message.contains("does not exist") => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}
