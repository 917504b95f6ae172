//! Topics: create (idempotent for the same attributes and tags), delete, list, attributes, tags.

use serde_json::Value;

use crate::error::{self, invalid, invalid_parameter, Result};
use crate::store::{Attributes, Topic};
use crate::xml::{elem, entries, members};
use crate::{now_ms, Sns};

const PAGE: usize = 100;

/// Attributes a caller may set on a topic.
const SETTABLE: &[&str] = &[
    "DeliveryPolicy",
    "DisplayName",
    "Policy",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
    "ContentBasedDeduplication",
    "FifoThroughputScope",
    "ArchivePolicy",
    "DataProtectionPolicy",
    "HTTPSuccessFeedbackRoleArn",
    "HTTPFailureFeedbackRoleArn",
    "HTTPSuccessFeedbackSampleRate",
    "LambdaSuccessFeedbackRoleArn",
    "LambdaFailureFeedbackRoleArn",
    "LambdaSuccessFeedbackSampleRate",
    "SQSSuccessFeedbackRoleArn",
    "SQSFailureFeedbackRoleArn",
    "SQSSuccessFeedbackSampleRate",
    "ApplicationSuccessFeedbackRoleArn",
    "ApplicationFailureFeedbackRoleArn",
    "ApplicationSuccessFeedbackSampleRate",
    "FirehoseSuccessFeedbackRoleArn",
    "FirehoseFailureFeedbackRoleArn",
    "FirehoseSuccessFeedbackSampleRate",
];

pub fn string_map(value: &Value) -> Attributes {
    value
        .as_object()
        .map(|map| map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

fn tags_of(value: &Value) -> Result<Attributes> {
    let mut tags = Attributes::new();
    for tag in value.as_array().into_iter().flatten() {
        let key = tag["Key"].as_str().unwrap_or_default();
        let value = tag["Value"].as_str().unwrap_or_default();
        if key.is_empty() || key.len() > 128 || value.len() > 256 {
            return Err(invalid_parameter("Tags"));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    if tags.len() > 50 {
        return Err(error::tag_limit());
    }
    Ok(tags)
}

/// A topic ARN the caller named, required.
pub fn required_topic(sns: &Sns, input: &Value, field: &str) -> Result<Topic> {
    let arn = input[field].as_str().unwrap_or_default();
    if arn.is_empty() {
        return Err(invalid_parameter(field));
    }
    if arn.split(':').count() < 6 {
        return Err(error::arn_parts(field, arn));
    }
    if !arn.starts_with("arn:aws:sns:") || arn.split(':').count() != 6 {
        return Err(invalid_parameter(field));
    }
    sns.store.topic(arn).map_err(error::db)?.ok_or_else(error::topic_missing)
}

fn valid_name(name: &str) -> bool {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    !base.is_empty()
        && name.len() <= 256
        && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_attribute(name: &str, value: &str, fifo: bool) -> Result<()> {
    let bool_value = || {
        if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
            Ok(())
        } else {
            Err(invalid(format!("Invalid parameter: Attributes Reason: {name}: Invalid value [{value}]. Must be true or false.")))
        }
    };
    match name {
        "DisplayName" if value.len() > 100 => Err(invalid_parameter("DisplayName")),
        "Policy" | "DeliveryPolicy" | "DataProtectionPolicy" | "ArchivePolicy"
            if !value.is_empty() && serde_json::from_str::<serde_json::Map<String, Value>>(value).is_err() =>
        {
            Err(invalid(format!("Invalid parameter: Attributes Reason: {name}: failed to parse JSON.")))
        }
        "ContentBasedDeduplication" if !fifo => Err(invalid(
            "Invalid parameter: Attributes Reason: Content based deduplication can only be set for FIFO topics",
        )),
        "ContentBasedDeduplication" | "FifoTopic" => bool_value(),
        "SignatureVersion" if !matches!(value, "1" | "2") => Err(invalid(format!(
            "Invalid parameter: Attributes Reason: SignatureVersion: Invalid value [{value}]. Must be 1 or 2."
        ))),
        _ if SETTABLE.contains(&name) => Ok(()),
        _ => Err(invalid("Invalid parameter: AttributeName")),
    }
}

pub fn create(sns: &Sns, input: &Value) -> Result<String> {
    let name = input["Name"].as_str().unwrap_or_default();
    let mut attributes = string_map(&input["Attributes"]);
    let fifo = match attributes.get("FifoTopic").map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        None => false,
        Some(_) => {
            return Err(invalid(
                "Invalid parameter: Attributes Reason: FifoTopic: Invalid value. Must be true or false.",
            ))
        }
    };
    if !valid_name(name) || (name.ends_with(".fifo") && !fifo) {
        return Err(invalid_parameter("Topic Name"));
    }
    if fifo && !name.ends_with(".fifo") {
        return Err(invalid(
            "Invalid parameter: Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.",
        ));
    }
    for (key, value) in &attributes {
        check_attribute(key, value, fifo)?;
    }
    attributes.remove("FifoTopic");
    if fifo {
        attributes.insert("FifoTopic".into(), "true".into());
        let dedup =
            attributes.get("ContentBasedDeduplication").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        attributes.insert("ContentBasedDeduplication".into(), dedup.to_string());
    }
    let tags = tags_of(&input["Tags"])?;
    let topic = Topic { arn: sns.topic_arn(name), name: name.to_owned(), attributes, tags };
    let stored = sns.store.create_topic(&topic, now_ms()).map_err(error::db)?;
    if stored.attributes != topic.attributes {
        return Err(invalid(
            "Invalid parameter: Attributes Reason: Topic already exists with different attributes",
        ));
    }
    if !topic.tags.is_empty() && stored.tags != topic.tags {
        return Err(invalid("Invalid parameter: Tags Reason: Topic already exists with different tags"));
    }
    Ok(elem("TopicArn", &stored.arn))
}

pub fn delete(sns: &Sns, input: &Value) -> Result<()> {
    let arn = input["TopicArn"].as_str().unwrap_or_default();
    if arn.is_empty() {
        return Err(invalid_parameter("TopicArn"));
    }
    // Deleting a topic that does not exist succeeds, as on AWS.
    sns.store.delete_topic(arn).map_err(error::db)
}

pub fn list(sns: &Sns, input: &Value) -> Result<String> {
    let after = input["NextToken"].as_str().unwrap_or_default();
    let mut arns = sns.store.topics(after, PAGE + 1).map_err(error::db)?;
    let next = (arns.len() > PAGE).then(|| {
        arns.truncate(PAGE);
        arns[PAGE - 1].clone()
    });
    let mut out = members("Topics", arns.iter().map(|arn| elem("TopicArn", arn)));
    if let Some(next) = next {
        out.push_str(&elem("NextToken", &next));
    }
    Ok(out)
}

pub fn default_policy(sns: &Sns, arn: &str) -> String {
    serde_json::json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
                       "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe",
                       "SNS:ListSubscriptionsByTopic", "SNS:Publish"],
            "Resource": arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": sns.account}},
        }],
    })
    .to_string()
}

pub const DEFAULT_DELIVERY_POLICY: &str = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;

pub fn get_attributes(sns: &Sns, input: &Value) -> Result<String> {
    let topic = required_topic(sns, input, "TopicArn")?;
    let subscriptions = sns.store.subscriptions_of(&topic.arn).map_err(error::db)?;
    let confirmed = subscriptions.iter().filter(|s| s.confirmed).count();
    let mut attributes = topic.attributes.clone();
    attributes.insert("TopicArn".into(), topic.arn.clone());
    attributes.insert("Owner".into(), sns.account.clone());
    attributes.entry("Policy".into()).or_insert_with(|| default_policy(sns, &topic.arn));
    attributes.entry("DisplayName".into()).or_default();
    attributes.insert("SubscriptionsConfirmed".into(), confirmed.to_string());
    attributes.insert("SubscriptionsPending".into(), (subscriptions.len() - confirmed).to_string());
    attributes.insert("SubscriptionsDeleted".into(), "0".into());
    let effective = attributes.get("DeliveryPolicy").filter(|p| !p.is_empty()).cloned();
    attributes.insert(
        "EffectiveDeliveryPolicy".into(),
        effective.unwrap_or_else(|| DEFAULT_DELIVERY_POLICY.into()),
    );
    Ok(entries("Attributes", &attributes))
}

pub fn set_attributes(sns: &Sns, input: &Value) -> Result<()> {
    let mut topic = required_topic(sns, input, "TopicArn")?;
    let name = input["AttributeName"].as_str().unwrap_or_default();
    let value = input["AttributeValue"].as_str().unwrap_or_default();
    if name == "FifoTopic" {
        return Err(invalid("Invalid parameter: AttributeName"));
    }
    check_attribute(name, value, topic.fifo())?;
    let value =
        if name == "ContentBasedDeduplication" { value.to_ascii_lowercase() } else { value.to_owned() };
    if value.is_empty() && name != "DisplayName" {
        topic.attributes.remove(name);
    } else {
        topic.attributes.insert(name.to_owned(), value);
    }
    sns.store.set_topic(&topic).map_err(error::db)?;
    Ok(())
}

/// The topic a tagging call names; AWS answers `ResourceNotFound` for these.
fn tagged(sns: &Sns, input: &Value) -> Result<Topic> {
    required_topic(sns, input, "ResourceArn").map_err(|e| match e.code {
        "NotFound" => error::resource_missing(),
        _ => e,
    })
}

pub fn tag(sns: &Sns, input: &Value) -> Result<()> {
    let mut topic = tagged(sns, input)?;
    let tags = tags_of(&input["Tags"])?;
    topic.tags.extend(tags);
    if topic.tags.len() > 50 {
        return Err(error::tag_limit());
    }
    sns.store.set_topic(&topic).map_err(error::db).map(drop)
}

pub fn untag(sns: &Sns, input: &Value) -> Result<()> {
    let mut topic = tagged(sns, input)?;
    for key in input["TagKeys"].as_array().into_iter().flatten() {
        topic.tags.remove(key.as_str().unwrap_or_default());
    }
    sns.store.set_topic(&topic).map_err(error::db).map(drop)
}

pub fn list_tags(sns: &Sns, input: &Value) -> Result<String> {
    let topic = tagged(sns, input)?;
    let items = topic.tags.iter().map(|(k, v)| format!("{}{}", elem("Key", k), elem("Value", v)));
    Ok(members("Tags", items))
}

/// AddPermission/RemovePermission: accepted for an existing topic (nimbus does not enforce
/// topic policies).
pub fn permission(sns: &Sns, input: &Value) -> Result<()> {
    required_topic(sns, input, "TopicArn").map(drop)
}
