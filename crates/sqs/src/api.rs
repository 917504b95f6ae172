//! The Rust API other parts of nimbus use: S3 notifications and Lambda destinations send to
//! queues; the Lambda SQS event source mapping receives, deletes and changes visibility.
//! Queues are named by ARN; errors are the same [`SqsError`]s the wire API answers with.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::engine::message::{receipt_handle, AttributeValue};
use crate::engine::queue::Redrive;
use crate::error::{Result, SqsError};
use crate::ops::receive::system_attributes;
use crate::ops::send::NewMessage;
use crate::Sqs;

/// A message to send, with what FIFO queues need.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    pub body: String,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub delay: Option<Duration>,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
}

/// One received message with everything a Lambda SQS event record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`, `SentTimestamp`, `SenderId`, `ApproximateFirstReceiveTimestamp`,
    /// and for FIFO `SequenceNumber`, `MessageGroupId`, `MessageDeduplicationId`.
    pub attributes: BTreeMap<String, String>,
    pub message_attributes: BTreeMap<String, AttributeValue>,
    pub md5_of_body: String,
    pub md5_of_message_attributes: Option<String>,
    pub event_source_arn: String,
    pub aws_region: String,
}

impl ReceivedMessage {
    /// The record as Lambda's SQS event has it (`Records[i]`).
    pub fn to_lambda_record(&self) -> Value {
        let message_attributes: Map<String, Value> =
            self.message_attributes.iter().map(|(n, v)| (n.clone(), v.to_lambda())).collect();
        json!({
            "messageId": self.message_id,
            "receiptHandle": self.receipt_handle,
            "body": self.body,
            "attributes": self.attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": self.md5_of_body,
            "md5OfMessageAttributes": self.md5_of_message_attributes,
            "eventSource": "aws:sqs",
            "eventSourceARN": self.event_source_arn,
            "awsRegion": self.aws_region,
        })
    }
}

/// What an event source mapping needs to know about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAttributes {
    pub arn: String,
    pub fifo: bool,
    pub visibility_timeout: Duration,
    pub redrive: Option<Redrive>,
    /// `ApproximateNumberOfMessages` now.
    pub visible_messages: usize,
}

impl Sqs {
    fn name_of(&self, queue_arn: &str) -> Result<String> {
        self.check_open()?;
        let state = self.lock();
        state.by_arn(queue_arn).map(|q| q.meta.name.clone()).ok_or_else(SqsError::queue_missing)
    }

    /// Sends `body` with message `attributes` to a standard queue; returns the message id.
    pub async fn send(
        &self,
        queue_arn: &str,
        body: String,
        attributes: BTreeMap<String, AttributeValue>,
    ) -> Result<String> {
        self.send_with(queue_arn, SendRequest { body, attributes, ..SendRequest::default() }).await
    }

    /// Sends one message (FIFO queues need `group_id`, and a deduplication id unless the queue
    /// deduplicates by content); returns the message id (the original one for a duplicate).
    pub async fn send_with(&self, queue_arn: &str, request: SendRequest) -> Result<String> {
        let name = self.name_of(queue_arn)?;
        if request.body.is_empty() {
            return Err(SqsError::missing("MessageBody"));
        }
        let message = NewMessage {
            body: request.body,
            attributes: request.attributes,
            delay_s: request.delay.map(|d| d.as_secs().min(900) as i64),
            group: request.group_id,
            dedup: request.deduplication_id,
            trace: None,
        };
        let sender = self.account.clone();
        let mut outcomes = self.send_many(&name, vec![Ok(message)], &sender).await?;
        Ok(outcomes.remove(0)?.id)
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first; `visibility` overrides
    /// the queue's visibility timeout.
    pub async fn receive(
        &self,
        queue_arn: &str,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>> {
        let name = self.name_of(queue_arn)?;
        let visibility_ms = visibility.map(|v| v.as_millis() as i64);
        let messages = self.receive_many(&name, max.max(1), wait, visibility_ms).await?;
        Ok(messages
            .into_iter()
            .map(|message| ReceivedMessage {
                message_id: message.sent.id.clone(),
                receipt_handle: receipt_handle(&name, message.seq, message.token),
                attributes: system_attributes(&message)
                    .into_iter()
                    .filter(|(n, _)| *n != "DeadLetterQueueSourceArn" && *n != "AWSTraceHeader")
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect(),
                body: message.sent.body,
                md5_of_message_attributes: message.sent.md5_attributes,
                message_attributes: message.sent.attributes,
                md5_of_body: message.sent.md5_body,
                event_source_arn: queue_arn.to_owned(),
                aws_region: self.region.clone(),
            })
            .collect())
    }

    /// Deletes a received message (a stale handle succeeds without deleting, as on AWS).
    pub async fn delete(&self, queue_arn: &str, receipt_handle: &str) -> Result<()> {
        let name = self.name_of(queue_arn)?;
        self.settle(&name, vec![Ok((receipt_handle.to_owned(), None))]).await?.remove(0)
    }

    /// Makes a received message visible again after `timeout` (zero: now).
    pub async fn change_visibility(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<()> {
        let name = self.name_of(queue_arn)?;
        let entry = Ok((receipt_handle.to_owned(), Some(timeout.as_secs() as i64)));
        self.settle(&name, vec![entry]).await?.remove(0)
    }

    pub fn queue_attributes(&self, queue_arn: &str) -> Result<QueueAttributes> {
        let state = self.lock();
        let queue = state.by_arn(queue_arn).ok_or_else(SqsError::queue_missing)?;
        Ok(QueueAttributes {
            arn: queue.arn.clone(),
            fifo: queue.meta.fifo,
            visibility_timeout: Duration::from_millis(queue.config.visibility_ms as u64),
            redrive: queue.config.redrive.clone(),
            visible_messages: queue.counts(self.now()).0,
        })
    }

    /// The ARN of the queue a queue URL names, if it exists.
    pub fn queue_arn(&self, queue_url: &str) -> Option<String> {
        let name = crate::protocol::input::queue_name(queue_url);
        self.lock().queues.get(name).map(|q| q.arn.clone())
    }
}
