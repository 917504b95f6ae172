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

impl ResourceProvider for LogGroupProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        &["AWS::Logs::LogGroup"]
    }

    fn replaces(&self, _: &str, property: &str) -> bool {
        matches!(property, "LogGroupName" | "LogGroupClass")
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
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
            self.retention(&physical_id, &request).await?;
            Ok(self.provisioned(&request, physical_id))
        })
    }

    fn delete(&self, _request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            match self.action("DeleteLogGroup", json!({"logGroupName": physical_id})).await {
                Err(error) if error.message.contains("does not exist") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}
