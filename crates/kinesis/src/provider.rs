//! Kinesis's CloudFormation resource types, provisioned through Kinesis's own operations:
//! `AWS::Kinesis::Stream` (shards or on-demand, retention, encryption, tags, updated in place)
//! and `AWS::Kinesis::StreamConsumer`.

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::Kinesis;

const STREAM: &str = "AWS::Kinesis::Stream";
const CONSUMER: &str = "AWS::Kinesis::StreamConsumer";
const DEFAULT_RETENTION: i64 = 24;

fn fail(error: AwsError) -> ProviderError {
    ProviderError::new(format!("{} ({})", error.message, error.code))
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// CloudFormation's tag list (and the stack's tags) as Kinesis's tag map.
fn tag_map(request: &ResourceRequest) -> Map<String, Value> {
    let mut tags: Map<String, Value> = request.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    for tag in request.property("Tags").and_then(Value::as_array).into_iter().flatten() {
        if let Some(key) = tag["Key"].as_str() {
            tags.insert(key.to_string(), tag["Value"].clone());
        }
    }
    tags
}

fn mode(props: Option<&Value>) -> String {
    props.and_then(|m| m.get("StreamMode")).and_then(Value::as_str).unwrap_or("PROVISIONED").to_string()
}

impl Kinesis {
    fn run(&self, work: impl FnOnce(&Kinesis) -> Result<Value, AwsError>) -> Result<Value, ProviderError> {
        tokio::task::block_in_place(|| work(self)).map_err(fail)
    }

    fn stream_provisioned(&self, name: &str) -> Provisioned {
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), json!(self.stream_arn(name)));
        Provisioned { physical_id: name.to_string(), attributes }
    }

    fn create_stream_resource(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let name = match request.string("Name") {
            Some(n) => n.to_string(),
            None => request.generated_name(128, false),
        };
        let mode = mode(request.property("StreamModeDetails"));
        let mut input =
            json!({"StreamName": name, "StreamModeDetails": {"StreamMode": mode}, "Tags": tag_map(request)});
        if mode == "PROVISIONED" {
            input["ShardCount"] = json!(integer(request.property("ShardCount")).unwrap_or(1));
        }
        self.run(|k| k.create_stream(&input))?;
        let rest = self.configure_stream(request, &name, None);
        if let Err(e) = rest {
            // Leave nothing half made behind.
            let _ =
                self.run(|k| k.delete_stream(&json!({"StreamName": name, "EnforceConsumerDeletion": true})));
            return Err(e);
        }
        Ok(self.stream_provisioned(&name))
    }

    /// Retention and encryption, from `previous` (None: a new stream) to the request's.
    fn configure_stream(
        &self,
        request: &ResourceRequest,
        name: &str,
        previous: Option<&Map<String, Value>>,
    ) -> Result<(), ProviderError> {
        let old_hours =
            previous.and_then(|p| integer(p.get("RetentionPeriodHours"))).unwrap_or(DEFAULT_RETENTION);
        let hours = integer(request.property("RetentionPeriodHours")).unwrap_or(DEFAULT_RETENTION);
        if hours != old_hours {
            let input = json!({"StreamName": name, "RetentionPeriodHours": hours});
            self.run(|k| k.change_retention(&input, hours > old_hours))?;
        }
        let old = previous.and_then(|p| p.get("StreamEncryption")).filter(|v| !v.is_null());
        let new = request.property("StreamEncryption");
        if old != new {
            if let Some(old) = old {
                let input = json!({"StreamName": name, "EncryptionType": old["EncryptionType"], "KeyId": old["KeyId"]});
                self.run(|k| k.stream_encryption(&input, false))?;
            }
            if let Some(new) = new {
                let input = json!({"StreamName": name, "EncryptionType": new["EncryptionType"], "KeyId": new["KeyId"]});
                self.run(|k| k.stream_encryption(&input, true))?;
            }
        }
        Ok(())
    }

    fn update_stream_resource(
        &self,
        request: &ResourceRequest,
        name: &str,
        previous: &Map<String, Value>,
    ) -> Result<Provisioned, ProviderError> {
        let arn = self.stream_arn(name);
        let new_mode = mode(request.property("StreamModeDetails"));
        if new_mode != mode(previous.get("StreamModeDetails")) {
            let input = json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": new_mode}});
            self.run(|k| k.update_stream_mode(&input))?;
        }
        if new_mode == "PROVISIONED" {
            let count = integer(request.property("ShardCount")).unwrap_or(1);
            if Some(count) != integer(previous.get("ShardCount")) {
                let input =
                    json!({"StreamName": name, "TargetShardCount": count, "ScalingType": "UNIFORM_SCALING"});
                self.run(|k| k.update_shard_count(&input))?;
            }
        }
        self.configure_stream(request, name, Some(previous))?;
        let tags = tag_map(request);
        if !tags.is_empty() {
            self.run(|k| k.add_tags_to_stream(&json!({"StreamName": name, "Tags": tags})))?;
        }
        Ok(self.stream_provisioned(name))
    }

    fn create_consumer_resource(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let input = json!({
            "StreamARN": request.string("StreamARN").unwrap_or_default(),
            "ConsumerName": request.string("ConsumerName").unwrap_or_default(),
            "Tags": tag_map(request),
        });
        let output = self.run(|k| k.register_consumer(&input))?;
        let consumer = &output["Consumer"];
        let arn = consumer["ConsumerARN"].as_str().unwrap_or_default().to_string();
        let mut attributes = Map::new();
        for (attribute, field) in [
            ("ConsumerARN", "ConsumerARN"),
            ("ConsumerName", "ConsumerName"),
            ("ConsumerStatus", "ConsumerStatus"),
            ("ConsumerCreationTimestamp", "ConsumerCreationTimestamp"),
        ] {
            attributes.insert(attribute.into(), consumer[field].clone());
        }
        attributes.insert("StreamARN".into(), input["StreamARN"].clone());
        Ok(Provisioned { physical_id: arn, attributes })
    }
}

/// The CloudFormation types this service provisions (known before the service opens).
pub const RESOURCE_TYPES: &[&str] = &[STREAM, CONSUMER];

impl ResourceProvider for Kinesis {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            STREAM => property == "Name",
            CONSUMER => true,
            _ => false,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                STREAM => self.create_stream_resource(&request),
                CONSUMER => self.create_consumer_resource(&request),
                other => Err(ProviderError::new(format!("Kinesis does not provision {other}"))),
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
                STREAM => self.update_stream_resource(&request, &physical_id, &previous),
                // Every consumer property replaces it; only the stack's tags can change here.
                CONSUMER => Ok(Provisioned { physical_id, attributes: Map::new() }),
                other => Err(ProviderError::new(format!("Kinesis does not provision {other}"))),
            }
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let result = match request.resource_type.as_str() {
                STREAM => self.run(|k| {
                    k.delete_stream(&json!({"StreamName": physical_id, "EnforceConsumerDeletion": true}))
                }),
                CONSUMER => self.run(|k| k.deregister_consumer(&json!({"ConsumerARN": physical_id}))),
                other => return Err(ProviderError::new(format!("Kinesis does not provision {other}"))),
            };
            match result {
                Err(e) if e.message.contains("ResourceNotFoundException") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use nimbus_api::provider::{ResourceProvider, ResourceRequest};
    use nimbus_api::Identity;
    use nimbus_store::Database;
    use serde_json::{json, Value};

    use crate::{Kinesis, Options};

    fn request(ty: &str, props: Value) -> ResourceRequest {
        ResourceRequest::example("stack", "Clicks", ty, props)
    }

    fn summary(kinesis: &Kinesis, name: &str) -> Value {
        kinesis.describe_stream_summary(&json!({"StreamName": name})).unwrap()["StreamDescriptionSummary"]
            .clone()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn streams_are_created_updated_in_place_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options { write_limits: false, sweep_every: None, clock: None, announce: None };
        let kinesis = Kinesis::open(&Database::sqlite(dir.path()), Identity::default(), options).unwrap();
        let created = kinesis
            .create(request("AWS::Kinesis::Stream", json!({"ShardCount": 2, "RetentionPeriodHours": 48})))
            .await
            .unwrap();
        let name = created.physical_id.clone();
        assert!(name.starts_with("stack-Clicks-"), "{name}");
        assert_eq!(created.attributes["Arn"], json!(kinesis.stream_arn(&name)));
        let s = summary(&kinesis, &name);
        assert_eq!(s["OpenShardCount"], 2);
        assert_eq!(s["RetentionPeriodHours"], 48);

        let previous = json!({"ShardCount": 2, "RetentionPeriodHours": 48}).as_object().cloned().unwrap();
        kinesis
            .update(request("AWS::Kinesis::Stream", json!({"ShardCount": 4})), name.clone(), previous)
            .await
            .unwrap();
        let s = summary(&kinesis, &name);
        assert_eq!(s["OpenShardCount"], 4);
        assert_eq!(s["RetentionPeriodHours"], 24);

        let consumer = kinesis
            .create(request(
                "AWS::Kinesis::StreamConsumer",
                json!({"StreamARN": kinesis.stream_arn(&name), "ConsumerName": "reader"}),
            ))
            .await
            .unwrap();
        assert!(consumer.physical_id.contains("/consumer/reader:"));
        kinesis
            .delete(request("AWS::Kinesis::StreamConsumer", json!({})), consumer.physical_id)
            .await
            .unwrap();
        kinesis.delete(request("AWS::Kinesis::Stream", json!({})), name.clone()).await.unwrap();
        kinesis.delete(request("AWS::Kinesis::Stream", json!({})), name).await.unwrap();
        assert!(kinesis.replaces("AWS::Kinesis::Stream", "Name"));
        assert!(!kinesis.replaces("AWS::Kinesis::Stream", "ShardCount"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_on_demand_stream_with_a_shard_count_fails_with_kinesis_reason() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options { write_limits: false, sweep_every: None, clock: None, announce: None };
        let kinesis = Kinesis::open(&Database::sqlite(dir.path()), Identity::default(), options).unwrap();
        let ok = kinesis
            .create(request(
                "AWS::Kinesis::Stream",
                json!({"Name": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
            ))
            .await
            .unwrap();
        assert_eq!(ok.physical_id, "od");
        let err = kinesis.create(request("AWS::Kinesis::Stream", json!({"Name": "od"}))).await.unwrap_err();
        assert!(err.message.contains("ResourceInUseException"), "{}", err.message);
    }
}
