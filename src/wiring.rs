//! Adapters that let one service use another through the narrow traits the services define,
//! so that no service crate depends on another.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nimbus_lambda::Queues;
use serde_json::Value;

type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// Lambda's destinations, dead-letter queues and event source mappings, on nimbus's SQS.
pub struct SqsQueues(pub Arc<nimbus_sqs::Sqs>);

impl Queues for SqsQueues {
    fn send<'a>(&'a self, queue_arn: &'a str, body: String) -> Pending<'a, ()> {
        Box::pin(async move {
            self.0.send(queue_arn, body, BTreeMap::new()).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }

    fn receive<'a>(&'a self, queue_arn: &'a str, max: usize, wait: Duration) -> Pending<'a, Vec<Value>> {
        Box::pin(async move {
            let messages = self.0.receive(queue_arn, max, wait, None).await.map_err(|e| e.to_string())?;
            Ok(messages.iter().map(nimbus_sqs::ReceivedMessage::to_lambda_record).collect())
        })
    }

    fn delete<'a>(&'a self, queue_arn: &'a str, receipt_handles: Vec<String>) -> Pending<'a, ()> {
        Box::pin(async move {
            for handle in receipt_handles {
                self.0.delete(queue_arn, &handle).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}

/// S3 bucket notifications: a function target becomes a durable asynchronous invocation, a
/// queue target an SQS message — both stored before `deliver` returns, so an acknowledged
/// object never loses its event.
pub struct S3Notifications {
    pub lambda: Arc<nimbus_lambda::Lambda>,
    pub sqs: Arc<nimbus_sqs::Sqs>,
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
            nimbus_s3::NotificationTarget::Queue { queue_arn } => tokio::runtime::Handle::current()
                .block_on(self.sqs.send(queue_arn, body, BTreeMap::new()))
                .map(|_| ())
                .map_err(|e| e.to_string()),
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
            nimbus_s3::NotificationTarget::Queue { queue_arn } => {
                self.sqs.queue_attributes(queue_arn).is_ok()
            }
        }
    }
}

/// Function code and layers from nimbus's S3 (`S3Bucket`/`S3Key`).
pub struct S3Objects(pub Arc<nimbus_s3::S3>);

impl nimbus_lambda::Objects for S3Objects {
    fn read(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, String> {
        self.0.read_object(bucket, key, version).map_err(|e| e.message)
    }
}
