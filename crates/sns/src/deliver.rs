//! What each subscriber receives: the SNS JSON envelope (SQS, HTTP/S), the raw message
//! (`RawMessageDelivery`), or Lambda's SNS event; filter policies decide who receives at all;
//! what cannot be delivered goes to the subscription's dead-letter queue.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{self, Result};
use crate::publish::{Accepted, MessageAttribute};
use crate::store::{Outgoing, Subscription, Topic};
use crate::{filter, iso8601, now_ms, Failure, QueueMessage, Sns};

/// `{"k":v,…}` with the keys in the order given (AWS's order).
pub fn ordered(fields: &[(&str, Value)]) -> String {
    let inner: Vec<String> =
        fields.iter().map(|(key, value)| format!("{}:{}", Value::from(*key), value)).collect();
    format!("{{{}}}", inner.join(","))
}

impl Sns {
    pub(crate) fn signing_cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-nimbus.pem", self.endpoint_url)
    }

    pub(crate) fn unsubscribe_url(&self, subscription_arn: &str) -> String {
        format!(
            "{}/?Action=Unsubscribe&Version=2010-03-31&SubscriptionArn={subscription_arn}",
            self.endpoint_url
        )
    }
}

/// Not an RSA signature (nimbus holds no AWS certificate): a digest of the message, in the
/// field where AWS puts one.
fn signature(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn envelope_attributes(attributes: &BTreeMap<String, MessageAttribute>) -> Value {
    let map: serde_json::Map<String, Value> = attributes
        .iter()
        .map(|(name, a)| {
            let kind = a.data_type.split('.').next().unwrap_or("String");
            let kind = if a.data_type.starts_with("String.Array") { "String.Array" } else { kind };
            (name.clone(), json!({"Type": kind, "Value": a.envelope_value()}))
        })
        .collect();
    Value::Object(map)
}

/// The JSON envelope SQS and HTTP/S subscribers receive.
pub fn envelope(sns: &Sns, topic: &Topic, subscription: &Subscription, accepted: &Accepted) -> String {
    let message = accepted.message_for(&subscription.protocol);
    let timestamp = iso8601(accepted.timestamp_ms);
    let mut fields: Vec<(&str, Value)> =
        vec![("Type", "Notification".into()), ("MessageId", accepted.message_id.clone().into())];
    if let Some(seq) = &accepted.sequence_number {
        fields.push(("SequenceNumber", seq.clone().into()));
    }
    fields.push(("TopicArn", topic.arn.clone().into()));
    if let Some(subject) = &accepted.subject {
        fields.push(("Subject", subject.clone().into()));
    }
    fields.push(("Message", message.into()));
    fields.push(("Timestamp", timestamp.clone().into()));
    fields.push((
        "SignatureVersion",
        topic.attributes.get("SignatureVersion").cloned().unwrap_or("1".into()).into(),
    ));
    fields.push(("Signature", signature(&format!("{}{message}{timestamp}", accepted.message_id)).into()));
    fields.push(("SigningCertURL", sns.signing_cert_url().into()));
    fields.push(("UnsubscribeURL", sns.unsubscribe_url(&subscription.arn).into()));
    if !accepted.attributes.is_empty() {
        fields.push(("MessageAttributes", envelope_attributes(&accepted.attributes)));
    }
    ordered(&fields)
}

/// Lambda's SNS event (`Records[0].Sns`).
pub fn lambda_event(sns: &Sns, topic: &Topic, subscription: &Subscription, accepted: &Accepted) -> String {
    let message = accepted.message_for("lambda");
    let timestamp = iso8601(accepted.timestamp_ms);
    let record = json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription.arn,
        "Sns": {
            "Type": "Notification",
            "MessageId": accepted.message_id,
            "TopicArn": topic.arn,
            "Subject": accepted.subject,
            "Message": message,
            "Timestamp": timestamp,
            "SignatureVersion": "1",
            "Signature": signature(&format!("{}{message}{timestamp}", accepted.message_id)),
            "SigningCertUrl": sns.signing_cert_url(),
            "UnsubscribeUrl": sns.unsubscribe_url(&subscription.arn),
            "MessageAttributes": envelope_attributes(&accepted.attributes),
        },
    });
    json!({ "Records": [record] }).to_string()
}

/// The `SubscriptionConfirmation` POSTed to an HTTP/S endpoint.
pub fn confirmation(sns: &Sns, topic_arn: &str, token: &str, now: i64) -> String {
    let message = format!(
        "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
    );
    confirmation_body(sns, "SubscriptionConfirmation", topic_arn, token, &message, now).to_string()
}

/// The `UnsubscribeConfirmation` POSTed to an HTTP/S endpoint whose subscription was deleted;
/// it names the endpoint, for the subscription is gone when it is sent.
pub fn unsubscribe_confirmation(sns: &Sns, subscription: &Subscription, now: i64) -> String {
    let message = format!(
        "You have chosen to deactivate subscription {}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.",
        subscription.arn
    );
    let token = subscription.token.as_deref().unwrap_or_default();
    let mut body =
        confirmation_body(sns, "UnsubscribeConfirmation", &subscription.topic_arn, token, &message, now);
    body["Endpoint"] = subscription.endpoint.clone().into();
    body["Protocol"] = subscription.protocol.clone().into();
    body["TopicArn"] = subscription.topic_arn.clone().into();
    body.to_string()
}

fn confirmation_body(sns: &Sns, kind: &str, topic_arn: &str, token: &str, message: &str, now: i64) -> Value {
    let message_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let subscribe_url = format!(
        "{}/?Action=ConfirmSubscription&Version=2010-03-31&TopicArn={topic_arn}&Token={token}",
        sns.endpoint_url
    );
    let timestamp = iso8601(now);
    let payload = ordered(&[
        ("Type", kind.into()),
        ("MessageId", message_id.clone().into()),
        ("Token", token.into()),
        ("TopicArn", topic_arn.into()),
        ("Message", message.into()),
        ("SubscribeURL", subscribe_url.into()),
        ("Timestamp", timestamp.clone().into()),
        ("SignatureVersion", "1".into()),
        ("Signature", signature(&format!("{message_id}{message}{timestamp}")).into()),
        ("SigningCertURL", sns.signing_cert_url().into()),
    ]);
    json!({"MessageId": message_id, "Raw": false, "Payload": payload})
}

fn passes(subscription: &Subscription, accepted: &Accepted) -> bool {
    let Some(policy) = subscription.attributes.get("FilterPolicy") else { return true };
    let scope = subscription.attributes.get("FilterPolicyScope").map_or("MessageAttributes", String::as_str);
    filter::matches(policy, scope, &accepted.attributes, accepted.message_for(&subscription.protocol))
}

/// Delivers an accepted message to every confirmed subscription it passes the filter of:
/// queues and functions before this returns, HTTP/S endpoints through the outbox (stored
/// before this returns).
pub fn fan_out(sns: &Sns, topic: &Topic, accepted: &Accepted) -> Result<()> {
    let subscriptions = sns.store.subscriptions_of(&topic.arn).map_err(error::db)?;
    let mut outgoing = Vec::new();
    for subscription in subscriptions.iter().filter(|s| s.confirmed && passes(s, accepted)) {
        match subscription.protocol.as_str() {
            "sqs" => {
                let fifo = subscription.endpoint.ends_with(".fifo");
                let message = QueueMessage {
                    body: match subscription.raw() {
                        true => accepted.message_for("sqs").to_owned(),
                        false => envelope(sns, topic, subscription, accepted),
                    },
                    attributes: if subscription.raw() {
                        accepted.attributes.clone()
                    } else {
                        BTreeMap::new()
                    },
                    group_id: accepted.group_id.clone().filter(|_| fifo),
                    dedup_id: accepted
                        .dedup_id
                        .clone()
                        .filter(|_| fifo)
                        .or_else(|| fifo.then(|| accepted.message_id.clone())),
                };
                match sns.deliver.to_queue(&subscription.endpoint, message.clone()) {
                    Ok(()) => {}
                    Err(failure) if failure.transient => {
                        let body = json!({"Message": queue_message_json(&message), "RequestId": accepted.request_id});
                        outgoing.push(retry(subscription, "Queue", body));
                    }
                    Err(failure) => {
                        redrive(sns, subscription, message, &failure.message, &accepted.request_id)
                    }
                }
            }
            "lambda" => {
                let event = lambda_event(sns, topic, subscription, accepted);
                match sns.deliver.to_function(&subscription.endpoint, event.clone().into_bytes()) {
                    Ok(()) => {}
                    Err(failure) if failure.transient => {
                        let envelope = envelope(sns, topic, subscription, accepted);
                        let body =
                            json!({"Event": event, "Envelope": envelope, "RequestId": accepted.request_id});
                        outgoing.push(retry(subscription, "Function", body));
                    }
                    Err(failure) => {
                        let body = envelope(sns, topic, subscription, accepted);
                        let message = QueueMessage { body, ..QueueMessage::default() };
                        redrive(sns, subscription, message, &failure.message, &accepted.request_id);
                    }
                }
            }
            _ => {
                let raw = subscription.raw();
                let payload = match raw {
                    true => accepted.message_for(&subscription.protocol).to_owned(),
                    false => envelope(sns, topic, subscription, accepted),
                };
                let body = json!({"MessageId": accepted.message_id, "Raw": raw, "Payload": payload,
                                  "RequestId": accepted.request_id});
                outgoing.push(Outgoing {
                    id: uuid::Uuid::new_v4().to_string(),
                    subscription_arn: subscription.arn.clone(),
                    kind: "Notification".into(),
                    body: body.to_string(),
                    attempts: 0,
                });
            }
        }
    }
    if !outgoing.is_empty() {
        sns.store.enqueue(&outgoing, now_ms()).map_err(error::db)?;
        sns.outbox.wake();
    }
    Ok(())
}

/// Sends what could not be delivered to the subscription's dead-letter queue, if it has one,
/// with AWS's `ErrorCode`, `ErrorMessage`, `RequestID` and `TopicArn` attributes (room
/// permitting: a queue message carries ten).
pub fn redrive(
    sns: &Sns,
    subscription: &Subscription,
    mut message: QueueMessage,
    why: &str,
    request_id: &str,
) {
    let dlq = subscription
        .attributes
        .get("RedrivePolicy")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned));
    let Some(dlq) = dlq else {
        eprintln!(
            "nimbus: SNS could not deliver to {} ({why}); the subscription has no dead-letter queue",
            subscription.endpoint
        );
        return;
    };
    let details = [
        ("ErrorCode", "400"),
        ("ErrorMessage", why),
        ("RequestID", request_id),
        ("TopicArn", subscription.topic_arn.as_str()),
    ];
    for (name, value) in details {
        if message.attributes.len() < 10 && !value.is_empty() {
            message.attributes.insert(name.to_owned(), MessageAttribute::string(value));
        }
    }
    let fifo = dlq.ends_with(".fifo");
    if !fifo {
        message.group_id = None;
        message.dedup_id = None;
    } else if message.group_id.is_none() {
        message.group_id = Some("sns-dead-letter".into());
        message.dedup_id = Some(uuid::Uuid::new_v4().simple().to_string());
    }
    if let Err(Failure { message: error, .. }) = sns.deliver.to_queue(&dlq, message) {
        eprintln!(
            "nimbus: SNS could not deliver to {} ({why}) nor to its dead-letter queue {dlq} ({error})",
            subscription.endpoint
        );
    }
}

/// An outbox row that retries a queue or function delivery that failed for the moment.
fn retry(subscription: &Subscription, kind: &str, body: Value) -> Outgoing {
    Outgoing {
        id: uuid::Uuid::new_v4().to_string(),
        subscription_arn: subscription.arn.clone(),
        kind: kind.into(),
        body: body.to_string(),
        attempts: 0,
    }
}

pub fn queue_message_json(message: &QueueMessage) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes
        .iter()
        .map(|(name, a)| {
            let binary = a.binary.as_ref().map(|b| B64.encode(b));
            (name.clone(), json!({"DataType": a.data_type, "StringValue": a.string, "BinaryValue": binary}))
        })
        .collect();
    json!({"Body": message.body, "Attributes": attributes, "GroupId": message.group_id, "DedupId": message.dedup_id})
}

pub fn queue_message_of(value: &Value) -> QueueMessage {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let attributes = value["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, a)| {
            let attribute = MessageAttribute {
                data_type: text(&a["DataType"]).unwrap_or_default(),
                string: text(&a["StringValue"]),
                binary: a["BinaryValue"].as_str().and_then(|b| B64.decode(b).ok()),
            };
            (name.clone(), attribute)
        })
        .collect();
    QueueMessage {
        body: text(&value["Body"]).unwrap_or_default(),
        attributes,
        group_id: text(&value["GroupId"]),
        dedup_id: text(&value["DedupId"]),
    }
}
