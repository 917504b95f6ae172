//! Deliveries to HTTP/S endpoints: rows of the outbox (notifications and subscription
//! confirmations) POSTed in the background with SNS's headers, retried per the delivery policy
//! (`healthyRetryPolicy`), and sent to the dead-letter queue once the retries are spent. A row
//! is claimed for 30 seconds before it is tried, so that several nodes never make the same
//! delivery at once; a row whose node died is tried again when its claim runs out.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::store::{Outgoing, Subscription};
use crate::{deliver, now_ms, Failure, QueueMessage, Sns};

/// Longer than one attempt takes (an HTTP POST waits 15 s at most).
const CLAIM_MS: i64 = 30_000;
const BATCH: usize = 32;
/// AWS gives an endpoint 15 seconds to answer.
const TIMEOUT: Duration = Duration::from_secs(15);
const TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Outbox {
    wake: Arc<tokio::sync::Notify>,
}

impl Outbox {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

pub fn start(sns: &Arc<Sns>) {
    let (weak, wake) = (Arc::downgrade(sns), sns.outbox.wake.clone());
    tokio::spawn(async move { run(weak, wake).await });
}

async fn run(weak: Weak<Sns>, wake: Arc<tokio::sync::Notify>) {
    let limit = Arc::new(tokio::sync::Semaphore::new(BATCH));
    loop {
        let _ = tokio::time::timeout(TICK, wake.notified()).await;
        let Some(sns) = weak.upgrade() else { return };
        let free = limit.available_permits();
        if free == 0 {
            continue;
        }
        let claiming = sns.clone();
        let claimed =
            tokio::task::spawn_blocking(move || claiming.store.claim_due(now_ms(), CLAIM_MS, free)).await;
        let rows = match claimed {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                eprintln!("nimbus: SNS cannot read its HTTP deliveries: {error}");
                continue;
            }
            Err(_) => continue,
        };
        for row in rows {
            let Ok(permit) = limit.clone().acquire_owned().await else { return };
            let sns = sns.clone();
            tokio::spawn(async move {
                attempt(&sns, row).await;
                drop(permit);
            });
        }
    }
}

async fn attempt(sns: &Arc<Sns>, row: Outgoing) {
    let looked_up = {
        let sns = sns.clone();
        let arn = row.subscription_arn.clone();
        tokio::task::spawn_blocking(move || sns.store.subscription(&arn)).await
    };
    let body: Value = serde_json::from_str(&row.body).unwrap_or_default();
    let subscription = match looked_up {
        Ok(Ok(Some(subscription))) => subscription,
        // Sent after the subscription is gone, to the endpoint it had.
        Ok(Ok(None)) if row.kind == "UnsubscribeConfirmation" => Subscription {
            arn: row.subscription_arn.clone(),
            topic_arn: body["TopicArn"].as_str().unwrap_or_default().to_owned(),
            protocol: body["Protocol"].as_str().unwrap_or_default().to_owned(),
            endpoint: body["Endpoint"].as_str().unwrap_or_default().to_owned(),
            attributes: Default::default(),
            confirmed: false,
            token: None,
        },
        Ok(Ok(None)) => return finish(sns, row.id.clone()).await,
        _ => return,
    };
    let managed = matches!(row.kind.as_str(), "Queue" | "Function");
    let outcome = match managed {
        true => {
            let (sns, kind, endpoint, body) =
                (sns.clone(), row.kind.clone(), subscription.endpoint.clone(), body.clone());
            let retried = tokio::task::spawn_blocking(move || match kind.as_str() {
                "Queue" => sns.deliver.to_queue(&endpoint, deliver::queue_message_of(&body["Message"])),
                _ => sns
                    .deliver
                    .to_function(&endpoint, body["Event"].as_str().unwrap_or_default().as_bytes().to_vec()),
            });
            retried.await.unwrap_or_else(|e| Err(Failure::transient(e.to_string())))
        }
        false => post(&subscription, &row.kind, &body).await.map_err(Failure::transient),
    };
    let Err(failure) = outcome else {
        return finish(sns, row.id.clone()).await;
    };
    let attempts = row.attempts + 1;
    let policy = match managed {
        true => RetryPolicy::managed(),
        false => retry_policy(sns, &subscription).await,
    };
    let sns = sns.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if failure.transient && attempts <= policy.num_retries {
            let delay = policy.delay_s(attempts);
            let _ = sns.store.retry_at(&row.id, attempts, now_ms() + (delay * 1000.0) as i64);
            return;
        }
        let request_id = body["RequestId"].as_str().unwrap_or_default();
        let dead = match row.kind.as_str() {
            "Notification" => Some(QueueMessage {
                body: body["Payload"].as_str().unwrap_or_default().to_owned(),
                ..QueueMessage::default()
            }),
            "Queue" => Some(deliver::queue_message_of(&body["Message"])),
            "Function" => Some(QueueMessage {
                body: body["Envelope"].as_str().unwrap_or_default().to_owned(),
                ..QueueMessage::default()
            }),
            _ => None,
        };
        match dead {
            Some(message) => deliver::redrive(&sns, &subscription, message, &failure.message, request_id),
            None => eprintln!(
                "nimbus: SNS could not send the {} to {} ({})",
                row.kind, subscription.endpoint, failure.message
            ),
        }
        let _ = sns.store.delivered(&row.id);
    })
    .await;
}

async fn finish(sns: &Arc<Sns>, id: String) {
    let sns = sns.clone();
    let _ = tokio::task::spawn_blocking(move || sns.store.delivered(&id)).await;
}

/// One POST; Ok for a 2xx answer.
async fn post(subscription: &Subscription, kind: &str, body: &Value) -> Result<(), String> {
    if subscription.endpoint.starts_with("https://") {
        return Err("nimbus has no TLS client: HTTPS endpoints cannot be reached".into());
    }
    let uri: hyper::Uri = subscription.endpoint.parse().map_err(|e| format!("{e}"))?;
    let host = uri.host().ok_or("no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let payload = body["Payload"].as_str().unwrap_or_default().to_owned();
    let message_id = body["MessageId"].as_str().unwrap_or_default();
    let mut request = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=UTF-8")
        .header(hyper::header::USER_AGENT, "Amazon Simple Notification Service Agent")
        .header("x-amz-sns-message-type", kind)
        .header("x-amz-sns-message-id", message_id)
        .header("x-amz-sns-topic-arn", subscription.topic_arn.as_str());
    if kind == "Notification" {
        request = request.header("x-amz-sns-subscription-arn", subscription.arn.as_str());
        if body["Raw"].as_bool() == Some(true) {
            request = request.header("x-amz-sns-rawdelivery", "true");
        }
    }
    let request = request.body(Full::new(Bytes::from(payload))).map_err(|e| e.to_string())?;
    let exchange = async {
        let stream =
            tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        match status.is_success() {
            true => Ok(()),
            false => Err(format!("the endpoint answered {status}")),
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| "the endpoint did not answer within 15 s".to_owned())?
}

/// `healthyRetryPolicy` of the subscription's or the topic's delivery policy, or AWS's default.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub min_delay: f64,
    pub max_delay: f64,
    pub num_retries: i64,
    pub no_delay: i64,
    pub min_delay_retries: i64,
    pub max_delay_retries: i64,
    pub backoff: String,
}

impl RetryPolicy {
    pub fn of(value: &Value) -> RetryPolicy {
        let int = |name: &str, default: i64| value[name].as_i64().unwrap_or(default);
        let min_delay = int("minDelayTarget", 20).max(0) as f64;
        RetryPolicy {
            min_delay,
            max_delay: (int("maxDelayTarget", 20) as f64).max(min_delay),
            num_retries: int("numRetries", 3).clamp(0, 100),
            no_delay: int("numNoDelayRetries", 0).max(0),
            min_delay_retries: int("numMinDelayRetries", 0).max(0),
            max_delay_retries: int("numMaxDelayRetries", 0).max(0),
            backoff: value["backoffFunction"].as_str().unwrap_or("linear").to_owned(),
        }
    }

    /// AWS's policy for its own endpoints (SQS, Lambda): three immediate retries, two after a
    /// second, ten backing off to 20 seconds, then every 20 seconds — 100,015 in all (23 days).
    pub fn managed() -> RetryPolicy {
        RetryPolicy {
            min_delay: 1.0,
            max_delay: 20.0,
            num_retries: 100_015,
            no_delay: 3,
            min_delay_retries: 2,
            max_delay_retries: 100_000,
            backoff: "exponential".into(),
        }
    }

    /// Seconds before retry `attempt` (1 = the first retry): immediate retries, retries at the
    /// minimum delay, the backoff phase from minimum to maximum, then the maximum.
    pub fn delay_s(&self, attempt: i64) -> f64 {
        if attempt <= self.no_delay {
            return 0.0;
        }
        if attempt <= self.no_delay + self.min_delay_retries {
            return self.min_delay;
        }
        let phase = self.num_retries - self.no_delay - self.min_delay_retries - self.max_delay_retries;
        let step = attempt - self.no_delay - self.min_delay_retries;
        if phase <= 0 || step > phase {
            return self.max_delay;
        }
        let fraction = step as f64 / phase as f64;
        let (min, max) = (self.min_delay, self.max_delay);
        let delay = match self.backoff.as_str() {
            "geometric" | "exponential" if min > 0.0 => min * (max / min).powf(fraction),
            "arithmetic" => min + (max - min) * fraction * fraction,
            _ => min + (max - min) * fraction,
        };
        delay.clamp(min, max)
    }
}

async fn retry_policy(sns: &Arc<Sns>, subscription: &Subscription) -> RetryPolicy {
    let own =
        subscription.attributes.get("DeliveryPolicy").and_then(|p| serde_json::from_str::<Value>(p).ok());
    if let Some(policy) = own.as_ref().map(|p| &p["healthyRetryPolicy"]).filter(|p| p.is_object()) {
        return RetryPolicy::of(policy);
    }
    let topic = {
        let sns = sns.clone();
        let arn = subscription.topic_arn.clone();
        tokio::task::spawn_blocking(move || sns.store.topic(&arn)).await
    };
    let topic_policy = match topic {
        Ok(Ok(Some(topic))) => {
            topic.attributes.get("DeliveryPolicy").and_then(|p| serde_json::from_str::<Value>(p).ok())
        }
        _ => None,
    };
    let default = serde_json::from_str::<Value>(crate::topics::DEFAULT_DELIVERY_POLICY).unwrap_or_default();
    let policy = topic_policy.unwrap_or(default);
    RetryPolicy::of(&policy["http"]["defaultHealthyRetryPolicy"])
}
