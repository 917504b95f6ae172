//! CloudWatch's CloudFormation resource type `AWS::CloudWatch::Alarm` (metric alarms), put and
//! deleted through CloudWatch's own JSON operations (the same checks and errors as the API), on
//! whichever node serves CloudWatch. `Ref` is the alarm's name; `Arn` its ARN.

use std::sync::Arc;

use nimbus_api::provider::{
    call, ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest,
};
use nimbus_api::Service;
use serde_json::{json, Map, Value};

pub const ALARM: &str = "AWS::CloudWatch::Alarm";
pub const RESOURCE_TYPES: &[&str] = &[ALARM];

/// Properties that are `PutMetricAlarm` members of the same name, and whether each is a number.
const MEMBERS: &[(&str, bool)] = &[
    ("AlarmDescription", false),
    ("ActionsEnabled", false),
    ("AlarmActions", false),
    ("OKActions", false),
    ("InsufficientDataActions", false),
    ("ComparisonOperator", false),
    ("DatapointsToAlarm", true),
    ("Dimensions", false),
    ("EvaluationPeriods", true),
    ("ExtendedStatistic", false),
    ("MetricName", false),
    ("Namespace", false),
    ("Period", true),
    ("Statistic", false),
    ("Threshold", true),
    ("TreatMissingData", false),
    ("Unit", false),
    ("Metrics", false),
];

/// Provisions alarms through `service` (CloudWatch as the front serves it).
pub struct AlarmProvider(pub Arc<dyn Service>);

impl AlarmProvider {
    async fn op(&self, operation: &str, body: Value) -> Result<(), ProviderError> {
        let target = format!("{}.{operation}", crate::wire::SERVICE);
        let headers = [("x-amz-target", target.as_str()), ("content-type", "application/x-amz-json-1.0")];
        call(self.0.as_ref(), hyper::Method::POST, "/", &headers, body.to_string().into_bytes())
            .await
            .map(drop)
    }

    async fn put(&self, request: &ResourceRequest, name: &str) -> Result<Provisioned, ProviderError> {
        let mut input = Map::new();
        for (member, numeric) in MEMBERS {
            let Some(value) = request.property(member) else { continue };
            let value = match (numeric, value) {
                (true, Value::String(text)) => match (text.trim().parse::<i64>(), text.trim().parse::<f64>())
                {
                    (Ok(n), _) => json!(n),
                    (_, Ok(n)) => json!(n),
                    _ => json!(text),
                },
                (false, Value::String(text)) if *member == "ActionsEnabled" => json!(text == "true"),
                _ => value.clone(),
            };
            input.insert((*member).to_owned(), value);
        }
        input.insert("AlarmName".into(), json!(name));
        self.op("PutMetricAlarm", Value::Object(input)).await?;
        let arn = format!("arn:aws:cloudwatch:{}:{}:alarm:{name}", request.region, request.account);
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), json!(arn));
        Ok(Provisioned { physical_id: name.to_owned(), attributes })
    }
}

impl ResourceProvider for AlarmProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, _resource_type: &str, property: &str) -> bool {
        property == "AlarmName"
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            let name = request
                .string("AlarmName")
                .map(str::to_owned)
                .unwrap_or_else(|| request.generated_name(255, false));
            self.put(&request, &name).await
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.put(&request, &physical_id).await })
    }

    fn delete(&self, _request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            match self.op("DeleteAlarms", json!({ "AlarmNames": [physical_id] })).await {
                Err(error) if error.message.contains("not found") => Ok(()),
                other => other,
            }
        })
    }
}
