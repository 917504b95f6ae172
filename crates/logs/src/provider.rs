//! `AWS::Logs::LogGroup` for CloudFormation, through the Logs API's own handlers.

use std::sync::Arc;

use hyper::Method;
use nimbus_api::provider::{
    call, tag_map, text, ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest,
};
use nimbus_api::Service;
use serde_json::{json, Map, Value};

pub struct LogGroupProvider {
    logs: Arc<dyn Service>,
}

impl LogGroupProvider {
    pub fn new(logs: Arc<dyn Service>) -> LogGroupProvider {
        LogGroupProvider { logs }
    }

    async fn action(&self, action: &str, body: Value) -> Result<Value, ProviderError> {
        let target = format!("Logs_20140328.{action}");
        let headers = [("x-amz-target", target.as_str()), ("content-type", "application/x-amz-json-1.1")];
        let bytes =
            call(self.logs.as_ref(), Method::POST, "/", &headers, body.to_string().into_bytes()).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn retention(&self, name: &str, request: &ResourceRequest) -> Result<(), ProviderError> {
        match request.property("RetentionInDays").map(text).and_then(|d| d.parse::<i64>().ok()) {
            Some(days) => {
                self.action("PutRetentionPolicy", json!({"logGroupName": name, "retentionInDays": days}))
                    .await
            }
            None => self.action("DeleteRetentionPolicy", json!({"logGroupName": name})).await,
        }
        .map(|_| ())
    }

    fn provisioned(&self, request: &ResourceRequest, name: String) -> Provisioned {
        let arn = format!("arn:aws:logs:{}:{}:log-group:{name}:*", request.region, request.account);
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), arn.into());
        Provisioned { physical_id: name, attributes }
    }
}

impl LogGroupProvider {
    /// Log streams, subscription filters and metric filters: one put each (a put replaces).
    async fn put_other(
        &self,
        request: &ResourceRequest,
        physical: Option<String>,
    ) -> Result<Provisioned, ProviderError> {
        let group = request
            .string("LogGroupName")
            .ok_or(ProviderError::new("Property LogGroupName cannot be empty."))?;
        let name_property =
            if request.resource_type == "AWS::Logs::LogStream" { "LogStreamName" } else { "FilterName" };
        let name = physical
            .or_else(|| request.string(name_property).map(str::to_owned))
            .unwrap_or_else(|| request.generated_name(512, false));
        let (action, body) = match request.resource_type.as_str() {
            "AWS::Logs::LogStream" => {
                ("CreateLogStream", json!({"logGroupName": group, "logStreamName": name}))
            }
            "AWS::Logs::SubscriptionFilter" => {
                let mut body = json!({
                    "logGroupName": group,
                    "filterName": name,
                    "filterPattern": request.property("FilterPattern").map(text).unwrap_or_default(),
                    "destinationArn": request.property("DestinationArn").map(text).unwrap_or_default(),
                });
                for (property, field) in [("RoleArn", "roleArn"), ("Distribution", "distribution")] {
                    if let Some(value) = request.property(property) {
                        body[field] = Value::String(text(value));
                    }
                }
                ("PutSubscriptionFilter", body)
            }
            _ => {
                let transformations: Vec<Value> = match request.property("MetricTransformations") {
                    Some(Value::Array(items)) => items.iter().map(metric_transformation).collect(),
                    _ => Vec::new(),
                };
                let body = json!({
                    "logGroupName": group,
                    "filterName": name,
                    "filterPattern": request.property("FilterPattern").map(text).unwrap_or_default(),
                    "metricTransformations": transformations,
                });
                ("PutMetricFilter", body)
            }
        };
        self.action(action, body).await?;
        Ok(Provisioned { physical_id: name, attributes: Map::new() })
    }
}

/// A metric transformation as the API takes it (`metricName` …, dimensions as a map).
fn metric_transformation(item: &Value) -> Value {
    let mut out = Map::new();
    for (property, field) in [
        ("MetricName", "metricName"),
        ("MetricNamespace", "metricNamespace"),
        ("MetricValue", "metricValue"),
        ("Unit", "unit"),
    ] {
        if let Some(value) = item.get(property) {
            out.insert(field.into(), Value::String(text(value)));
        }
    }
    if let Some(default) = item.get("DefaultValue").map(text).and_then(|d| d.parse::<f64>().ok()) {
        out.insert("defaultValue".into(), json!(default));
    }
    if let Some(Value::Array(dimensions)) = item.get("Dimensions") {
        let map: Map<String, Value> = dimensions
            .iter()
            .filter_map(|d| Some((d.get("Key").map(text)?, Value::String(d.get("Value").map(text)?))))
            .collect();
        out.insert("dimensions".into(), Value::Object(map));
    }
    Value::Object(out)
}

impl ResourceProvider for LogGroupProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        &[
            "AWS::Logs::LogGroup",
            "AWS::Logs::LogStream",
            "AWS::Logs::SubscriptionFilter",
            "AWS::Logs::MetricFilter",
        ]
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            "AWS::Logs::LogGroup" => matches!(property, "LogGroupName" | "LogGroupClass"),
            "AWS::Logs::LogStream" => true,
            _ => matches!(property, "LogGroupName" | "FilterName"),
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type != "AWS::Logs::LogGroup" {
                return self.put_other(&request, None).await;
            }
            let name = request
                .string("LogGroupName")
                .map(str::to_owned)
                .unwrap_or_else(|| request.generated_name(512, false));
            let mut body = json!({"logGroupName": name});
            let tags = tag_map(request.property("Tags"));
            if !tags.is_empty() {
                body["tags"] = Value::Object(tags);
            }
            if let Some(key) = request.string("KmsKeyId") {
                body["kmsKeyId"] = key.into();
            }
            self.action("CreateLogGroup", body).await?;
            if request.property("RetentionInDays").is_some() {
                self.retention(&name, &request).await?;
            }
            Ok(self.provisioned(&request, name))
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type != "AWS::Logs::LogGroup" {
                return self.put_other(&request, Some(physical_id)).await;
            }
            self.retention(&physical_id, &request).await?;
            Ok(self.provisioned(&request, physical_id))
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let group = request.string("LogGroupName").unwrap_or_default().to_owned();
            let (action, body) = match request.resource_type.as_str() {
                "AWS::Logs::LogStream" => {
                    ("DeleteLogStream", json!({"logGroupName": group, "logStreamName": physical_id}))
                }
                "AWS::Logs::SubscriptionFilter" => {
                    ("DeleteSubscriptionFilter", json!({"logGroupName": group, "filterName": physical_id}))
                }
                "AWS::Logs::MetricFilter" => {
                    ("DeleteMetricFilter", json!({"logGroupName": group, "filterName": physical_id}))
                }
                _ => ("DeleteLogGroup", json!({"logGroupName": physical_id})),
            };
            match self.action(action, body).await {
                Err(error) if error.message.contains("does not exist") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}
