//! Subscriptions: SQS queues and Lambda functions (confirmed at once, same account), HTTP/S
//! endpoints (pending until the endpoint confirms with the token it was sent), attributes,
//! listing.

use serde_json::Value;

use crate::error::{self, invalid, invalid_parameter, Result};
use crate::store::{Attributes, Outgoing, Subscription};
use crate::topics::{required_topic, string_map, DEFAULT_DELIVERY_POLICY};
use crate::xml::{elem, entries, members};
use crate::{filter, now_ms, Sns};

const PAGE: usize = 100;

const SETTABLE: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

/// Protocols AWS offers that nimbus does not deliver to.
const UNSERVED: &[&str] = &["email", "email-json", "sms", "application", "firehose"];

fn check_endpoint(protocol: &str, endpoint: &str) -> Result<()> {
    let arn_of = |service: &str| {
        let parts: Vec<&str> = endpoint.split(':').collect();
        parts.len() >= 6 && parts[0] == "arn" && parts[2] == service && !parts[5].is_empty()
    };
    let ok = match protocol {
        "sqs" => arn_of("sqs"),
        "lambda" => arn_of("lambda") && endpoint.split(':').nth(5) == Some("function"),
        "http" => endpoint.starts_with("http://") && endpoint.len() > 7,
        "https" => endpoint.starts_with("https://") && endpoint.len() > 8,
        _ => {
            return Err(invalid(format!(
                "Invalid parameter: Amazon SNS does not support this protocol string: {protocol}"
            )))
        }
    };
    match (ok, protocol) {
        (true, _) => Ok(()),
        (false, "sqs") => Err(invalid_parameter("SQS endpoint ARN")),
        (false, "lambda") => Err(invalid_parameter("Lambda endpoint ARN")),
        (false, _) => Err(invalid_parameter("Endpoint must match the specified protocol")),
    }
}

fn check_attribute(name: &str, value: &str, attributes: &Attributes) -> Result<()> {
    let reason = |why: String| invalid(format!("Invalid parameter: {name}: {why}"));
    match name {
        "RawMessageDelivery" if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") => {
            Err(invalid(format!("Invalid parameter: Attributes Reason: RawMessageDelivery: Invalid value [{value}]. Must be true or false.")))
        }
        "FilterPolicy" if !value.is_empty() => {
            let scope = attributes.get("FilterPolicyScope").map_or("MessageAttributes", String::as_str);
            filter::check(value, scope).map_err(reason)
        }
        "FilterPolicyScope" if !matches!(value, "MessageAttributes" | "MessageBody") => {
            Err(invalid("Invalid parameter: FilterPolicyScope: Invalid filter policy scope, it must be MessageAttributes or MessageBody"))
        }
        "RedrivePolicy" if !value.is_empty() => {
            let policy: Value = serde_json::from_str(value)
                .map_err(|_| invalid("Invalid parameter: RedrivePolicy: failed to parse JSON."))?;
            let target = policy["deadLetterTargetArn"].as_str().unwrap_or_default();
            let parts: Vec<&str> = target.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sqs" {
                return Err(invalid(format!("Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn: {target}")));
            }
            Ok(())
        }
        "DeliveryPolicy" if !value.is_empty() && serde_json::from_str::<serde_json::Map<String, Value>>(value).is_err() => {
            Err(invalid("Invalid parameter: DeliveryPolicy: failed to parse JSON."))
        }
        _ if SETTABLE.contains(&name) => Ok(()),
        _ => Err(invalid("Invalid parameter: AttributeName")),
    }
}

/// Validates a set of attributes together (a filter policy is checked in its scope).
fn check_attributes(attributes: &Attributes) -> Result<Attributes> {
    let mut normal = Attributes::new();
    for (name, value) in attributes {
        check_attribute(name, value, attributes)?;
        let value = if name == "RawMessageDelivery" { value.to_ascii_lowercase() } else { value.clone() };
        if !value.is_empty() {
            normal.insert(name.clone(), value);
        }
    }
    if normal.contains_key("FilterPolicy") {
        normal.entry("FilterPolicyScope".into()).or_insert_with(|| "MessageAttributes".into());
    }
    Ok(normal)
}

pub fn subscribe(sns: &Sns, input: &Value) -> Result<String> {
    let topic = required_topic(sns, input, "TopicArn")?;
    let protocol = input["Protocol"].as_str().unwrap_or_default().to_ascii_lowercase();
    let endpoint = input["Endpoint"].as_str().unwrap_or_default();
    if protocol.is_empty() {
        return Err(invalid_parameter("Protocol"));
    }
    if UNSERVED.contains(&protocol.as_str()) {
        return Err(invalid(format!(
            "Invalid parameter: nimbus does not deliver to the {protocol} protocol"
        )));
    }
    check_endpoint(&protocol, endpoint)?;
    if topic.fifo() && protocol != "sqs" {
        return Err(invalid(format!("Invalid parameter: Invalid protocol type: {protocol}")));
    }
    if !topic.fifo() && protocol == "sqs" && endpoint.ends_with(".fifo") {
        return Err(invalid(
            "Invalid parameter: Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics",
        ));
    }
    let attributes = check_attributes(&string_map(&input["Attributes"]))?;
    let existing = sns.store.subscriptions_of(&topic.arn).map_err(error::db)?;
    let return_arn = input["ReturnSubscriptionArn"].as_str().is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let answer = |subscription: &Subscription| {
        let arn = match subscription.confirmed || return_arn {
            true => subscription.arn.as_str(),
            false => "pending confirmation",
        };
        elem("SubscriptionArn", arn)
    };
    if let Some(same) = existing.iter().find(|s| s.protocol == protocol && s.endpoint == endpoint) {
        if !attributes.is_empty() && attributes != same.attributes {
            return Err(invalid(
                "Invalid parameter: Attributes Reason: Subscription already exists with different attributes",
            ));
        }
        // Still pending: the endpoint is asked again, as AWS does.
        if let (false, Some(token)) = (same.confirmed, &same.token) {
            let again = Outgoing {
                id: uuid::Uuid::new_v4().to_string(),
                subscription_arn: same.arn.clone(),
                kind: "SubscriptionConfirmation".into(),
                body: crate::deliver::confirmation(sns, &topic.arn, token, now_ms()),
                attempts: 0,
            };
            sns.store.enqueue(&[again], now_ms()).map_err(error::db)?;
            sns.outbox.wake();
        }
        return Ok(answer(same));
    }
    let web = matches!(protocol.as_str(), "http" | "https");
    let token = web.then(|| {
        let mut token = String::new();
        for _ in 0..4 {
            token.push_str(&uuid::Uuid::new_v4().simple().to_string());
        }
        token
    });
    let subscription = Subscription {
        arn: format!("{}:{}", topic.arn, uuid::Uuid::new_v4().hyphenated()),
        topic_arn: topic.arn.clone(),
        protocol: protocol.clone(),
        endpoint: endpoint.to_owned(),
        attributes,
        confirmed: !web,
        token: token.clone(),
    };
    let confirmation = token.map(|token| Outgoing {
        id: uuid::Uuid::new_v4().to_string(),
        subscription_arn: subscription.arn.clone(),
        kind: "SubscriptionConfirmation".into(),
        body: crate::deliver::confirmation(sns, &topic.arn, &token, now_ms()),
        attempts: 0,
    });
    sns.store.add_subscription(&subscription, confirmation.as_ref(), now_ms()).map_err(error::db)?;
    if confirmation.is_some() {
        sns.outbox.wake();
    }
    Ok(answer(&subscription))
}

pub fn confirm(sns: &Sns, input: &Value) -> Result<String> {
    let topic = required_topic(sns, input, "TopicArn")?;
    let token = input["Token"].as_str().unwrap_or_default();
    let subscriptions = sns.store.subscriptions_of(&topic.arn).map_err(error::db)?;
    let Some(found) =
        subscriptions.into_iter().find(|s| !token.is_empty() && s.token.as_deref() == Some(token))
    else {
        return Err(invalid_parameter("Token"));
    };
    if !found.confirmed {
        let confirmed = Subscription { confirmed: true, ..found.clone() };
        sns.store.set_subscription(&confirmed).map_err(error::db)?;
    }
    Ok(elem("SubscriptionArn", &found.arn))
}

fn required(sns: &Sns, input: &Value) -> Result<Subscription> {
    let arn = input["SubscriptionArn"].as_str().unwrap_or_default();
    if arn.is_empty() {
        return Err(invalid_parameter("SubscriptionArn"));
    }
    if arn.split(':').count() < 6 {
        return Err(error::arn_parts("SubscriptionArn", arn));
    }
    if !arn.starts_with("arn:aws:sns:") || arn.split(':').count() != 7 {
        return Err(invalid_parameter("SubscriptionArn"));
    }
    sns.store.subscription(arn).map_err(error::db)?.ok_or_else(error::subscription_missing)
}

/// Unsubscribing from a subscription that is gone succeeds, as on AWS (whose documentation
/// lists `NotFound` but which does not answer it).
pub fn unsubscribe(sns: &Sns, input: &Value) -> Result<()> {
    match required(sns, input) {
        Ok(subscription) => {
            let web = matches!(subscription.protocol.as_str(), "http" | "https");
            let farewell = (web && subscription.confirmed).then(|| Outgoing {
                id: uuid::Uuid::new_v4().to_string(),
                subscription_arn: subscription.arn.clone(),
                kind: "UnsubscribeConfirmation".into(),
                body: crate::deliver::unsubscribe_confirmation(sns, &subscription, now_ms()),
                attempts: 0,
            });
            sns.store
                .delete_subscription(&subscription.arn, farewell.as_ref(), now_ms())
                .map_err(error::db)?;
            if farewell.is_some() {
                sns.outbox.wake();
            }
            Ok(())
        }
        Err(error) if error.code == "NotFound" => Ok(()),
        Err(error) => Err(error),
    }
}

pub fn list(sns: &Sns, input: &Value, topic: Option<&str>) -> Result<String> {
    if topic.is_some() {
        required_topic(sns, input, "TopicArn")?;
    }
    let after = input["NextToken"].as_str().unwrap_or_default();
    let mut found = sns.store.subscriptions(topic, after, PAGE + 1).map_err(error::db)?;
    let next = (found.len() > PAGE).then(|| {
        found.truncate(PAGE);
        found[PAGE - 1].arn.clone()
    });
    let items = found.iter().map(|s| {
        let arn = if s.confirmed { s.arn.as_str() } else { "PendingConfirmation" };
        [
            elem("SubscriptionArn", arn),
            elem("Owner", &sns.account),
            elem("Protocol", &s.protocol),
            elem("Endpoint", &s.endpoint),
            elem("TopicArn", &s.topic_arn),
        ]
        .concat()
    });
    let mut out = members("Subscriptions", items);
    if let Some(next) = next {
        out.push_str(&elem("NextToken", &next));
    }
    Ok(out)
}

pub fn get_attributes(sns: &Sns, input: &Value) -> Result<String> {
    let subscription = required(sns, input)?;
    let mut attributes = subscription.attributes.clone();
    attributes.insert("SubscriptionArn".into(), subscription.arn.clone());
    attributes.insert("TopicArn".into(), subscription.topic_arn.clone());
    attributes.insert("Owner".into(), sns.account.clone());
    attributes.insert("Protocol".into(), subscription.protocol.clone());
    attributes.insert("Endpoint".into(), subscription.endpoint.clone());
    attributes.insert("PendingConfirmation".into(), (!subscription.confirmed).to_string());
    attributes.insert("ConfirmationWasAuthenticated".into(), "true".into());
    attributes.entry("RawMessageDelivery".into()).or_insert_with(|| "false".into());
    if matches!(subscription.protocol.as_str(), "http" | "https") {
        let topic = sns.store.topic(&subscription.topic_arn).map_err(error::db)?;
        let policy = topic.and_then(|t| t.attributes.get("DeliveryPolicy").cloned());
        attributes.insert(
            "EffectiveDeliveryPolicy".into(),
            policy.unwrap_or_else(|| DEFAULT_DELIVERY_POLICY.into()),
        );
    }
    Ok(entries("Attributes", &attributes))
}

pub fn set_attributes(sns: &Sns, input: &Value) -> Result<()> {
    let mut subscription = required(sns, input)?;
    let name = input["AttributeName"].as_str().unwrap_or_default();
    let value = input["AttributeValue"].as_str().unwrap_or_default();
    let mut attributes = subscription.attributes.clone();
    if name == "RawMessageDelivery" && !matches!(subscription.protocol.as_str(), "sqs" | "http" | "https") {
        return Err(invalid("Invalid parameter: Attributes Reason: Delivery protocol [lambda] does not support raw message delivery."));
    }
    attributes.insert(name.to_owned(), value.to_owned());
    subscription.attributes = check_attributes(&attributes)?;
    if name == "FilterPolicy" && value.is_empty() {
        subscription.attributes.remove("FilterPolicyScope");
    }
    sns.store.set_subscription(&subscription).map_err(error::db)?;
    Ok(())
}
