//! DynamoDB's CloudFormation resource type `AWS::DynamoDB::Table`, provisioned through
//! DynamoDB's own operations: `CreateTable` (with streams, indexes, tags), TTL and point-in-time
//! recovery after it; billing, throughput, streams, global secondary indexes, protection, TTL
//! and tags updated in place; the key schema, name or local indexes replace the table.

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use serde_json::{json, Map, Value};

use crate::{DdbError, DynamoDb};

const TABLE: &str = "AWS::DynamoDB::Table";

/// Properties passed to `CreateTable` as they are (after number and boolean clean-up).
const CREATE_PASS_THROUGH: &[&str] = &[
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "SSESpecification",
    "TableClass",
    "DeletionProtectionEnabled",
];

fn fail(error: DdbError) -> ProviderError {
    ProviderError::new(format!("{} ({})", error.message, error.code))
}

/// Template values arrive as written: numbers and booleans may be strings. DynamoDB's input is
/// typed, so the numeric and boolean members it reads are converted.
fn typed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        (
                            "ReadCapacityUnits"
                            | "WriteCapacityUnits"
                            | "MaxReadRequestUnits"
                            | "MaxWriteRequestUnits",
                            Value::String(s),
                        ) => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.clone()),
                        (
                            "SSEEnabled"
                            | "Enabled"
                            | "DeletionProtectionEnabled"
                            | "PointInTimeRecoveryEnabled"
                            | "StreamEnabled",
                            Value::String(s),
                        ) => Value::Bool(s.eq_ignore_ascii_case("true")),
                        _ => typed(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(typed).collect()),
        other => other.clone(),
    }
}

fn tags(request: &ResourceRequest) -> Vec<Value> {
    let mut list: Vec<Value> = request.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
    for tag in request.property("Tags").and_then(Value::as_array).into_iter().flatten() {
        list.push(json!({"Key": tag["Key"], "Value": tag["Value"]}));
    }
    list
}

fn stream_spec(spec: Option<&Value>) -> Value {
    match spec.and_then(|s| s.get("StreamViewType")) {
        Some(view) => json!({"StreamEnabled": true, "StreamViewType": view}),
        None => json!({"StreamEnabled": false}),
    }
}

impl DynamoDb {
    async fn op(&self, operation: &str, input: Value) -> Result<Value, ProviderError> {
        self.dispatch(operation, input.to_string().as_bytes()).await.map_err(fail)
    }

    async fn provisioned(&self, name: &str) -> Result<Provisioned, ProviderError> {
        let described = self.op("DescribeTable", json!({"TableName": name})).await?;
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), json!(self.table_arn(name)));
        if let Some(stream) = described["Table"].get("LatestStreamArn") {
            attributes.insert("StreamArn".into(), stream.clone());
        }
        Ok(Provisioned { physical_id: name.to_string(), attributes })
    }

    async fn create_table_resource(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let name = match request.string("TableName") {
            Some(n) => n.to_string(),
            None => request.generated_name(255, false),
        };
        let mut input = Map::new();
        input.insert("TableName".into(), json!(name));
        for key in CREATE_PASS_THROUGH {
            if let Some(v) = request.property(key) {
                input.insert(key.to_string(), typed(v));
            }
        }
        if let Some(spec) = request.property("StreamSpecification") {
            input.insert("StreamSpecification".into(), stream_spec(Some(spec)));
        }
        let tags = tags(request);
        if !tags.is_empty() {
            input.insert("Tags".into(), Value::Array(tags));
        }
        self.op("CreateTable", Value::Object(input)).await?;
        if let Err(e) = self.settings(request, &name, None).await {
            let _ = self.op("DeleteTable", json!({"TableName": name})).await;
            return Err(e);
        }
        self.provisioned(&name).await
    }

    /// TTL and point-in-time recovery, from `previous` (None: a new table) to the request's.
    async fn settings(
        &self,
        request: &ResourceRequest,
        name: &str,
        previous: Option<&Map<String, Value>>,
    ) -> Result<(), ProviderError> {
        let old_ttl =
            previous.and_then(|p| p.get("TimeToLiveSpecification")).filter(|v| !v.is_null()).map(typed);
        let new_ttl = request.property("TimeToLiveSpecification").map(typed);
        if old_ttl != new_ttl {
            let enabled = new_ttl.as_ref().and_then(|t| t["Enabled"].as_bool()).unwrap_or(false);
            let attribute = new_ttl
                .as_ref()
                .and_then(|t| t["AttributeName"].as_str())
                .or_else(|| old_ttl.as_ref().and_then(|t| t["AttributeName"].as_str()));
            let was_enabled = old_ttl.as_ref().and_then(|t| t["Enabled"].as_bool()).unwrap_or(false);
            if let Some(attribute) = attribute {
                if enabled || was_enabled {
                    let spec = json!({"Enabled": enabled, "AttributeName": attribute});
                    self.op("UpdateTimeToLive", json!({"TableName": name, "TimeToLiveSpecification": spec}))
                        .await?;
                }
            }
        }
        let old_pitr = previous
            .and_then(|p| p.get("PointInTimeRecoverySpecification"))
            .filter(|v| !v.is_null())
            .map(typed);
        let new_pitr = request.property("PointInTimeRecoverySpecification").map(typed);
        if old_pitr != new_pitr {
            let enabled =
                new_pitr.as_ref().and_then(|p| p["PointInTimeRecoveryEnabled"].as_bool()).unwrap_or(false);
            let spec = json!({"PointInTimeRecoveryEnabled": enabled});
            self.op(
                "UpdateContinuousBackups",
                json!({"TableName": name, "PointInTimeRecoverySpecification": spec}),
            )
            .await?;
        }
        Ok(())
    }

    async fn update_table_resource(
        &self,
        request: &ResourceRequest,
        name: &str,
        previous: &Map<String, Value>,
    ) -> Result<Provisioned, ProviderError> {
        let changed = |key: &str| {
            request.property(key).map(typed) != previous.get(key).filter(|v| !v.is_null()).map(typed)
        };
        let mut input = Map::new();
        for key in [
            "BillingMode",
            "ProvisionedThroughput",
            "TableClass",
            "DeletionProtectionEnabled",
            "SSESpecification",
        ] {
            if changed(key) {
                if let Some(v) = request.property(key) {
                    input.insert(key.to_string(), typed(v));
                }
            }
        }
        if changed("StreamSpecification") {
            input.insert("StreamSpecification".into(), stream_spec(request.property("StreamSpecification")));
        }
        if changed("GlobalSecondaryIndexes") {
            input
                .insert("GlobalSecondaryIndexUpdates".into(), Value::Array(index_updates(request, previous)));
            if let Some(defs) = request.property("AttributeDefinitions") {
                input.insert("AttributeDefinitions".into(), typed(defs));
            }
        }
        if !input.is_empty() {
            input.insert("TableName".into(), json!(name));
            self.op("UpdateTable", Value::Object(input)).await?;
        }
        self.settings(request, name, Some(previous)).await?;
        let tags = tags(request);
        if !tags.is_empty() {
            self.op("TagResource", json!({"ResourceArn": self.table_arn(name), "Tags": tags})).await?;
        }
        self.provisioned(name).await
    }
}

/// `GlobalSecondaryIndexUpdates` from the indexes before and after: new ones created, gone ones
/// deleted, changed throughput updated.
fn index_updates(request: &ResourceRequest, previous: &Map<String, Value>) -> Vec<Value> {
    let by_name = |v: Option<&Value>| -> Vec<(String, Value)> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|i| (i["IndexName"].as_str().unwrap_or_default().to_string(), typed(i)))
            .collect()
    };
    let new = by_name(request.property("GlobalSecondaryIndexes"));
    let old = by_name(previous.get("GlobalSecondaryIndexes"));
    let mut updates = vec![];
    for (name, index) in &new {
        match old.iter().find(|(n, _)| n == name) {
            None => updates.push(json!({"Create": index})),
            Some((_, before))
                if before.get("ProvisionedThroughput") != index.get("ProvisionedThroughput") =>
            {
                if let Some(t) = index.get("ProvisionedThroughput") {
                    updates.push(json!({"Update": {"IndexName": name, "ProvisionedThroughput": t}}));
                }
            }
            Some(_) => {}
        }
    }
    for (name, _) in old.iter().filter(|(n, _)| !new.iter().any(|(m, _)| m == n)) {
        updates.push(json!({"Delete": {"IndexName": name}}));
    }
    updates
}

/// The CloudFormation types this service provisions (known before the service opens).
pub const RESOURCE_TYPES: &[&str] = &[TABLE];

impl ResourceProvider for DynamoDb {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        resource_type == TABLE && matches!(property, "TableName" | "KeySchema" | "LocalSecondaryIndexes")
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                TABLE => self.create_table_resource(&request).await,
                other => Err(ProviderError::new(format!("DynamoDB does not provision {other}"))),
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
                TABLE => self.update_table_resource(&request, &physical_id, &previous).await,
                other => Err(ProviderError::new(format!("DynamoDB does not provision {other}"))),
            }
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            if request.resource_type != TABLE {
                return Err(ProviderError::new(format!(
                    "DynamoDB does not provision {}",
                    request.resource_type
                )));
            }
            match self.op("DeleteTable", json!({"TableName": physical_id})).await {
                Err(e) if e.message.contains("ResourceNotFoundException") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use nimbus_api::provider::{ResourceProvider, ResourceRequest};
    use serde_json::{json, Value};

    use crate::{DynamoDb, Options};

    fn request(props: Value) -> ResourceRequest {
        ResourceRequest::example("stack", "Orders", "AWS::DynamoDB::Table", props)
    }

    fn table() -> Value {
        json!({
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": "5", "WriteCapacityUnits": 5},
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": "true"}
        })
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tables_are_created_updated_in_place_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let ddb = DynamoDb::open(
            &nimbus_store::Database::sqlite(dir.path()),
            Default::default(),
            Options::default(),
        )
        .unwrap();
        let created = ddb.create(request(table())).await.unwrap();
        let name = created.physical_id.clone();
        assert!(name.starts_with("stack-Orders-"), "{name}");
        assert!(created.attributes["StreamArn"].as_str().unwrap().contains("/stream/"));
        let ttl = ddb.op("DescribeTimeToLive", json!({"TableName": name})).await.unwrap();
        assert_eq!(ttl["TimeToLiveDescription"]["TimeToLiveStatus"], "ENABLED");

        let mut updated = table();
        updated["ProvisionedThroughput"] = json!({"ReadCapacityUnits": 10, "WriteCapacityUnits": 10});
        updated["AttributeDefinitions"] = json!([{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}]);
        updated["GlobalSecondaryIndexes"] = json!([{
            "IndexName": "byG", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
        }]);
        let previous = table().as_object().cloned().unwrap();
        ddb.update(request(updated), name.clone(), previous).await.unwrap();
        let described = ddb.op("DescribeTable", json!({"TableName": name})).await.unwrap();
        assert_eq!(described["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"], 10);
        assert_eq!(described["Table"]["GlobalSecondaryIndexes"][0]["IndexName"], "byG");

        ddb.delete(request(json!({})), name.clone()).await.unwrap();
        ddb.delete(request(json!({})), name).await.unwrap();
        assert!(ddb.replaces("AWS::DynamoDB::Table", "KeySchema"));
        assert!(!ddb.replaces("AWS::DynamoDB::Table", "BillingMode"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bad_table_fails_with_dynamodb_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ddb = DynamoDb::open(
            &nimbus_store::Database::sqlite(dir.path()),
            Default::default(),
            Options::default(),
        )
        .unwrap();
        let err = ddb
            .create(request(json!({"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]})))
            .await
            .unwrap_err();
        assert!(err.message.contains("ValidationException"), "{}", err.message);
    }
}
