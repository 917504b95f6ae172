//! SNS's CloudFormation resource types, provisioned through SNS's own operations (the same
//! checks and errors as the API): `AWS::SNS::Topic` (with inline `Subscription`s),
//! `AWS::SNS::Subscription` and `AWS::SNS::TopicPolicy`.

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::{dispatch, Sns};

const TOPIC: &str = "AWS::SNS::Topic";
const SUBSCRIPTION: &str = "AWS::SNS::Subscription";
const TOPIC_POLICY: &str = "AWS::SNS::TopicPolicy";

/// Topic properties that are topic attributes, and how CloudFormation spells them there.
const TOPIC_ATTRIBUTES: &[(&str, &str)] = &[
    ("DisplayName", "DisplayName"),
    ("KmsMasterKeyId", "KmsMasterKeyId"),
    ("ContentBasedDeduplication", "ContentBasedDeduplication"),
    ("SignatureVersion", "SignatureVersion"),
    ("TracingConfig", "TracingConfig"),
    ("ArchivePolicy", "ArchivePolicy"),
    ("DeliveryPolicy", "DeliveryPolicy"),
    ("FifoThroughputScope", "FifoThroughputScope"),
];

/// Subscription properties that are subscription attributes.
const SUBSCRIPTION_ATTRIBUTES: &[&str] = &[
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "DeliveryPolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

fn fail(error: AwsError) -> ProviderError {
    ProviderError::new(format!("{} ({})", error.message, error.code))
}

/// A property as the string an SNS attribute holds (JSON documents serialized, booleans as
/// `true`/`false`).
fn attribute_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The text of `<name>…</name>` in an XML fragment.
fn element(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
}

impl Sns {
    fn call_blocking(&self, action: &str, input: Value) -> Result<Option<String>, ProviderError> {
        let request_id = nimbus_api::new_request_id();
        tokio::task::block_in_place(|| dispatch(self, action, &input, &request_id)).map_err(fail)
    }

    fn topic_attributes(request: &ResourceRequest) -> Map<String, Value> {
        let mut attributes = Map::new();
        for (property, attribute) in TOPIC_ATTRIBUTES {
            if let Some(v) = request.property(property) {
                attributes.insert(attribute.to_string(), json!(attribute_text(v)));
            }
        }
        if request.property("FifoTopic").is_some_and(|v| attribute_text(v) == "true") {
            attributes.insert("FifoTopic".into(), json!("true"));
        }
        attributes
    }

    fn tags(request: &ResourceRequest) -> Vec<Value> {
        let mut tags: Vec<Value> = request.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
        for tag in request.property("Tags").and_then(Value::as_array).into_iter().flatten() {
            tags.push(json!({"Key": tag["Key"], "Value": attribute_text(&tag["Value"])}));
        }
        tags
    }

    fn create_topic(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let fifo = request.property("FifoTopic").is_some_and(|v| attribute_text(v) == "true");
        let name = match request.string("TopicName") {
            Some(name) => name.to_string(),
            None if fifo => format!("{}.fifo", request.generated_name(251, false)),
            None => request.generated_name(256, false),
        };
        let input = json!({
            "Name": name,
            "Attributes": Sns::topic_attributes(request),
            "Tags": Sns::tags(request),
        });
        self.call_blocking("CreateTopic", input)?;
        let arn = self.topic_arn(&name);
        for subscription in request.property("Subscription").and_then(Value::as_array).into_iter().flatten() {
            let input = json!({
                "TopicArn": arn,
                "Protocol": subscription["Protocol"],
                "Endpoint": subscription["Endpoint"],
                "ReturnSubscriptionArn": "true",
            });
            self.call_blocking("Subscribe", input)?;
        }
        Ok(topic_provisioned(&arn, &name))
    }

    fn update_topic(
        &self,
        request: &ResourceRequest,
        arn: &str,
        previous: &Map<String, Value>,
    ) -> Result<Provisioned, ProviderError> {
        for (property, attribute) in TOPIC_ATTRIBUTES {
            let new = request.property(property);
            if new == previous.get(*property).filter(|v| !v.is_null()) {
                continue;
            }
            let value = new.map(attribute_text).unwrap_or_default();
            let input = json!({"TopicArn": arn, "AttributeName": attribute, "AttributeValue": value});
            self.call_blocking("SetTopicAttributes", input)?;
        }
        // Inline subscriptions: the new ones added, the ones gone removed.
        let listed = |props: Option<&Value>| -> Vec<(String, String)> {
            props
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|s| {
                    (attribute_text(&s["Protocol"]).to_ascii_lowercase(), attribute_text(&s["Endpoint"]))
                })
                .collect()
        };
        let new = listed(request.property("Subscription"));
        let old = listed(previous.get("Subscription"));
        for (protocol, endpoint) in new.iter().filter(|s| !old.contains(s)) {
            let input = json!({"TopicArn": arn, "Protocol": protocol, "Endpoint": endpoint, "ReturnSubscriptionArn": "true"});
            self.call_blocking("Subscribe", input)?;
        }
        for (protocol, endpoint) in old.iter().filter(|s| !new.contains(s)) {
            if let Some(sub) = self
                .store
                .subscriptions_of(arn)
                .ok()
                .into_iter()
                .flatten()
                .find(|s| &s.protocol == protocol && &s.endpoint == endpoint)
            {
                self.call_blocking("Unsubscribe", json!({"SubscriptionArn": sub.arn}))?;
            }
        }
        let tags = Sns::tags(request);
        if !tags.is_empty() {
            self.call_blocking("TagResource", json!({"ResourceArn": arn, "Tags": tags}))?;
        }
        let name = arn.rsplit(':').next().unwrap_or_default().to_string();
        Ok(topic_provisioned(arn, &name))
    }

    fn subscription_attributes(request: &ResourceRequest) -> Map<String, Value> {
        let mut attributes = Map::new();
        for name in SUBSCRIPTION_ATTRIBUTES {
            if let Some(v) = request.property(name) {
                attributes.insert(name.to_string(), json!(attribute_text(v)));
            }
        }
        attributes
    }

    fn create_subscription(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let input = json!({
            "TopicArn": request.string("TopicArn").unwrap_or_default(),
            "Protocol": request.string("Protocol").unwrap_or_default(),
            "Endpoint": request.property("Endpoint").map(attribute_text).unwrap_or_default(),
            "Attributes": Sns::subscription_attributes(request),
            "ReturnSubscriptionArn": "true",
        });
        let answer = self.call_blocking("Subscribe", input)?.unwrap_or_default();
        let arn = element(&answer, "SubscriptionArn")
            .ok_or_else(|| ProviderError::new("Subscribe answered no SubscriptionArn"))?;
        Ok(Provisioned { physical_id: arn.clone(), attributes: attributes_of(&[("Arn", &arn)]) })
    }

    fn update_subscription(
        &self,
        request: &ResourceRequest,
        arn: &str,
        previous: &Map<String, Value>,
    ) -> Result<Provisioned, ProviderError> {
        for name in SUBSCRIPTION_ATTRIBUTES {
            let new = request.property(name);
            if new == previous.get(*name).filter(|v| !v.is_null()) {
                continue;
            }
            let value = new.map(attribute_text).unwrap_or_default();
            let input = json!({"SubscriptionArn": arn, "AttributeName": name, "AttributeValue": value});
            self.call_blocking("SetSubscriptionAttributes", input)?;
        }
        Ok(Provisioned { physical_id: arn.to_string(), attributes: attributes_of(&[("Arn", arn)]) })
    }

    /// A topic policy: the document set as the `Policy` of each topic it lists.
    fn put_topic_policy(
        &self,
        request: &ResourceRequest,
        physical_id: String,
    ) -> Result<Provisioned, ProviderError> {
        let document = request
            .property("PolicyDocument")
            .map(|d| if d.is_string() { attribute_text(d) } else { d.to_string() })
            .ok_or_else(|| ProviderError::new("Property PolicyDocument cannot be empty."))?;
        for topic in request.property("Topics").and_then(Value::as_array).into_iter().flatten() {
            let input = json!({"TopicArn": attribute_text(topic), "AttributeName": "Policy", "AttributeValue": document});
            self.call_blocking("SetTopicAttributes", input)?;
        }
        Ok(Provisioned { physical_id, attributes: Map::new() })
    }

    /// Removing a topic policy puts each topic's default policy back.
    fn delete_topic_policy(&self, request: &ResourceRequest) -> Result<(), ProviderError> {
        for topic in request.property("Topics").and_then(Value::as_array).into_iter().flatten() {
            let arn = attribute_text(topic);
            if !self.topic_exists(&arn) {
                continue;
            }
            let default = crate::topics::default_policy(self, &arn);
            let input = json!({"TopicArn": arn, "AttributeName": "Policy", "AttributeValue": default});
            self.call_blocking("SetTopicAttributes", input)?;
        }
        Ok(())
    }
}

fn attributes_of(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

fn topic_provisioned(arn: &str, name: &str) -> Provisioned {
    Provisioned {
        physical_id: arn.to_string(),
        attributes: attributes_of(&[("TopicArn", arn), ("TopicName", name)]),
    }
}

/// The CloudFormation types this service provisions (known before the service opens).
pub const RESOURCE_TYPES: &[&str] = &[TOPIC, SUBSCRIPTION, TOPIC_POLICY];

impl ResourceProvider for Sns {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            TOPIC => matches!(property, "TopicName" | "FifoTopic"),
            SUBSCRIPTION => matches!(property, "Endpoint" | "Protocol" | "TopicArn" | "Region"),
            _ => false,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                TOPIC => self.create_topic(&request),
                SUBSCRIPTION => self.create_subscription(&request),
                TOPIC_POLICY => {
                    let id = request.generated_name(128, false);
                    self.put_topic_policy(&request, id)
                }
                other => Err(ProviderError::new(format!("SNS does not provision {other}"))),
            }
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                TOPIC => self.update_topic(&request, &physical_id, &previous),
                SUBSCRIPTION => self.update_subscription(&request, &physical_id, &previous),
                TOPIC_POLICY => self.put_topic_policy(&request, physical_id),
                other => Err(ProviderError::new(format!("SNS does not provision {other}"))),
            }
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let gone = |e: ProviderError| if e.message.contains("NotFound") { Ok(()) } else { Err(e) };
            match request.resource_type.as_str() {
                TOPIC => self
                    .call_blocking("DeleteTopic", json!({"TopicArn": physical_id}))
                    .map(|_| ())
                    .or_else(gone),
                SUBSCRIPTION => self
                    .call_blocking("Unsubscribe", json!({"SubscriptionArn": physical_id}))
                    .map(|_| ())
                    .or_else(gone),
                TOPIC_POLICY => self.delete_topic_policy(&request),
                other => Err(ProviderError::new(format!("SNS does not provision {other}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nimbus_api::provider::{ResourceProvider, ResourceRequest};
    use nimbus_store::Database;
    use serde_json::{json, Map, Value};

    use crate::{Deliver, Failure, QueueMessage, Sns};

    struct Nowhere;
    impl Deliver for Nowhere {
        fn to_queue(&self, _: &str, _: QueueMessage) -> Result<(), Failure> {
            Ok(())
        }
        fn to_function(&self, _: &str, _: Vec<u8>) -> Result<(), Failure> {
            Ok(())
        }
    }

    fn request(ty: &str, props: Value) -> ResourceRequest {
        ResourceRequest::example("stack", "Res", ty, props)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn topics_subscriptions_and_policies_go_through_sns() {
        let dir = tempfile::tempdir().unwrap();
        let sns = Sns::open(
            &Database::sqlite(dir.path()),
            "us-east-1",
            "000000000000",
            "http://localhost:4566",
            Arc::new(Nowhere),
        )
        .unwrap();
        let topic = sns
            .create(request("AWS::SNS::Topic", json!({"DisplayName": "d", "Subscription": [{"Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q"}]})))
            .await
            .unwrap();
        assert!(
            topic.physical_id.starts_with("arn:aws:sns:us-east-1:000000000000:stack-Res-"),
            "{}",
            topic.physical_id
        );
        assert!(sns.topic_exists(&topic.physical_id));
        assert_eq!(sns.store.subscriptions_of(&topic.physical_id).unwrap().len(), 1);

        let sub = sns
            .create(request("AWS::SNS::Subscription", json!({"TopicArn": topic.physical_id, "Protocol": "lambda", "Endpoint": "arn:aws:lambda:us-east-1:000000000000:function:f", "FilterPolicy": {"k": ["v"]}})))
            .await
            .unwrap();
        assert!(sub.physical_id.starts_with(&topic.physical_id));
        let stored = sns.store.subscription(&sub.physical_id).unwrap().unwrap();
        assert_eq!(stored.attributes["FilterPolicy"], r#"{"k":["v"]}"#);

        let mut previous = Map::new();
        previous.insert("FilterPolicy".into(), json!({"k": ["v"]}));
        sns.update(
            request("AWS::SNS::Subscription", json!({"TopicArn": topic.physical_id, "Protocol": "lambda", "Endpoint": "arn:aws:lambda:us-east-1:000000000000:function:f"})),
            sub.physical_id.clone(),
            previous,
        )
        .await
        .unwrap();
        assert!(!sns
            .store
            .subscription(&sub.physical_id)
            .unwrap()
            .unwrap()
            .attributes
            .contains_key("FilterPolicy"));

        let policy = request(
            "AWS::SNS::TopicPolicy",
            json!({"Topics": [topic.physical_id], "PolicyDocument": {"Statement": []}}),
        );
        sns.create(policy.clone()).await.unwrap();
        assert_eq!(
            sns.store.topic(&topic.physical_id).unwrap().unwrap().attributes["Policy"],
            r#"{"Statement":[]}"#
        );
        sns.delete(policy, "p".into()).await.unwrap();

        sns.delete(request("AWS::SNS::Subscription", json!({})), sub.physical_id.clone()).await.unwrap();
        sns.delete(request("AWS::SNS::Topic", json!({})), topic.physical_id.clone()).await.unwrap();
        assert!(!sns.topic_exists(&topic.physical_id));
        // Deleting again is not an error.
        sns.delete(request("AWS::SNS::Topic", json!({})), topic.physical_id).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_properties_fail_with_sns_reason() {
        let dir = tempfile::tempdir().unwrap();
        let sns = Sns::open(
            &Database::sqlite(dir.path()),
            "us-east-1",
            "000000000000",
            "http://localhost:4566",
            Arc::new(Nowhere),
        )
        .unwrap();
        let err =
            sns.create(request("AWS::SNS::Topic", json!({"TopicName": "bad name!"}))).await.unwrap_err();
        assert!(err.message.contains("InvalidParameter"), "{}", err.message);
        assert!(sns.replaces("AWS::SNS::Topic", "TopicName"));
        assert!(!sns.replaces("AWS::SNS::Topic", "DisplayName"));
    }
}
