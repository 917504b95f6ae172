//! SQS among several nodes (see `home`): one node serves the queues, so a message is in flight
//! once whichever node received it and receipt handles work everywhere. Event source mapping
//! pollers receive where SQS lives, so they move with it.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use nimbus_sqs::Sqs;
use serde_json::{json, Value};

use crate::home::{Closing, Held, Home, Shape};
use crate::regional::Regional;

const JSON: &str = "application/x-amz-json-1.0";

type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// Every region's queues, served together by one node.
pub type SqsHome = Home<Regional<Sqs>>;

pub fn shape() -> Shape {
    Shape {
        lease: "sqs",
        claims: nimbus_sqs::claims,
        claims_body: nimbus_sqs::claims_body,
        unavailable: nimbus_sqs::unavailable,
    }
}

impl Held for Sqs {
    fn close(&self) -> Closing<'_> {
        Box::pin(Sqs::close(self))
    }
}

/// Closes every region's instance.
impl Held for Regional<Sqs> {
    fn close(&self) -> Closing<'_> {
        Box::pin(async move {
            for sqs in self.opened() {
                sqs.close().await;
            }
        })
    }
}

impl Home<Regional<Sqs>> {
    /// The instance holding `queue_arn` (by its region and account) when this node serves SQS.
    async fn local_for(&self, queue_arn: &str) -> Option<Result<Arc<Sqs>, String>> {
        let regional = self.local()?;
        Some(match regional.for_arn(queue_arn) {
            Ok(instance) => instance.get().await,
            Err(why) => Err(why),
        })
    }

    /// The queue URL of `queue_arn` on the serving node.
    fn queue_url(&self, queue_arn: &str) -> Result<String, String> {
        let address = self.holder().ok_or("no node serves SQS right now")?;
        let mut parts = queue_arn.rsplitn(3, ':');
        let (Some(name), Some(account)) = (parts.next(), parts.next()) else {
            return Err(format!("not a queue ARN: {queue_arn}"));
        };
        Ok(format!("{address}/{account}/{name}"))
    }

    pub async fn send(&self, queue_arn: &str, body: String) -> Result<(), String> {
        if let Some(sqs) = self.local_for(queue_arn).await {
            return sqs?.send(queue_arn, body, BTreeMap::new()).await.map(drop).map_err(|e| e.to_string());
        }
        let input = json!({ "QueueUrl": self.queue_url(queue_arn)?, "MessageBody": body });
        self.call_holder_in("AmazonSQS.SendMessage", JSON, &input, Some(queue_arn)).await.map(drop)
    }

    /// A message with a FIFO group (and a fresh deduplication id) and string attributes, as
    /// EventBridge targets and dead-letter queues send them.
    pub async fn send_message(
        &self,
        queue_arn: &str,
        body: String,
        group_id: Option<String>,
        attributes: &[(String, String)],
    ) -> Result<(), String> {
        let deduplication_id = group_id.as_ref().map(|_| uuid::Uuid::new_v4().simple().to_string());
        let attributes = attributes
            .iter()
            .map(|(k, v)| {
                let value = nimbus_sqs::AttributeValue {
                    data_type: "String".into(),
                    string: Some(v.clone()),
                    binary: None,
                };
                (k.clone(), value)
            })
            .collect();
        let request = nimbus_sqs::SendRequest { body, attributes, group_id, deduplication_id, delay: None };
        self.send_request(queue_arn, request).await
    }

    /// Sends one message with attributes and FIFO ids (SNS deliveries).
    pub async fn send_request(
        &self,
        queue_arn: &str,
        request: nimbus_sqs::SendRequest,
    ) -> Result<(), String> {
        if let Some(sqs) = self.local_for(queue_arn).await {
            return sqs?.send_with(queue_arn, request).await.map(drop).map_err(|e| e.to_string());
        }
        let attributes: serde_json::Map<String, Value> =
            request.attributes.iter().map(|(name, value)| (name.clone(), value.to_wire())).collect();
        let mut input = json!({ "QueueUrl": self.queue_url(queue_arn)?, "MessageBody": request.body });
        if !attributes.is_empty() {
            input["MessageAttributes"] = Value::Object(attributes);
        }
        if let Some(group) = request.group_id {
            input["MessageGroupId"] = group.into();
        }
        if let Some(dedup) = request.deduplication_id {
            input["MessageDeduplicationId"] = dedup.into();
        }
        self.call_holder_in("AmazonSQS.SendMessage", JSON, &input, Some(queue_arn)).await.map(drop)
    }

    /// Whether the queue exists (S3 checks its notification targets). Blocking.
    pub fn exists(&self, queue_arn: &str) -> bool {
        if let Some(regional) = self.local() {
            let sqs = regional.for_arn(queue_arn).and_then(|instance| instance.get_blocking());
            return sqs.is_ok_and(|sqs| sqs.queue_attributes(queue_arn).is_ok());
        }
        let Ok(url) = self.queue_url(queue_arn) else { return false };
        let input = json!({ "QueueUrl": url, "AttributeNames": ["QueueArn"] });
        let asked = self.call_holder_in("AmazonSQS.GetQueueAttributes", JSON, &input, Some(queue_arn));
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(asked).is_ok())
    }
}

impl nimbus_lambda::Queues for Home<Regional<Sqs>> {
    fn send<'a>(&'a self, queue_arn: &'a str, body: String) -> Pending<'a, ()> {
        Box::pin(Home::send(self, queue_arn, body))
    }

    /// Receives only where SQS is served: pollers on the other nodes wait, and take over when
    /// SQS moves to their node.
    fn receive<'a>(&'a self, queue_arn: &'a str, max: usize, wait: Duration) -> Pending<'a, Vec<Value>> {
        Box::pin(async move {
            let Some(sqs) = self.local_for(queue_arn).await else {
                tokio::time::sleep(wait).await;
                return Ok(Vec::new());
            };
            let messages = sqs?.receive(queue_arn, max, wait, None).await.map_err(|e| e.to_string())?;
            Ok(messages.iter().map(nimbus_sqs::ReceivedMessage::to_lambda_record).collect())
        })
    }

    fn delete<'a>(&'a self, queue_arn: &'a str, receipt_handles: Vec<String>) -> Pending<'a, ()> {
        Box::pin(async move {
            for handle in receipt_handles {
                match self.local_for(queue_arn).await {
                    Some(sqs) => sqs?.delete(queue_arn, &handle).await.map_err(|e| e.to_string())?,
                    None => {
                        let input =
                            json!({ "QueueUrl": self.queue_url(queue_arn)?, "ReceiptHandle": handle });
                        self.call_holder_in("AmazonSQS.DeleteMessage", JSON, &input, Some(queue_arn)).await?;
                    }
                }
            }
            Ok(())
        })
    }
}
