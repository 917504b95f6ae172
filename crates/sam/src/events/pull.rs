//! Pull sources: SQS, Kinesis and DynamoDB streams become event source mappings, and the
//! execution role gets the AWS managed policy that lets Lambda poll them.

use serde_json::Value;

use super::{add_managed_policy, add_role_policy, s3_payload_policy, statement_policy, Event, Target};
use crate::error::Result;
use crate::model::Cfn;

const PASS_THROUGH: &[&str] = &[
    "StartingPosition",
    "StartingPositionTimestamp",
    "BatchSize",
    "Enabled",
    "MaximumBatchingWindowInSeconds",
    "MaximumRetryAttempts",
    "BisectBatchOnFunctionError",
    "MaximumRecordAgeInSeconds",
    "ParallelizationFactor",
    "Topics",
    "Queues",
    "SourceAccessConfigurations",
    "TumblingWindowInSeconds",
    "FunctionResponseTypes",
    "FilterCriteria",
    "KmsKeyArn",
    "ScalingConfig",
    "ProvisionedPollerConfig",
    "MetricsConfig",
    "LoggingConfig",
];

fn policy_name(ty: &str) -> &'static str {
    match ty {
        "SQS" => "service-role/AWSLambdaSQSQueueExecutionRole",
        "Kinesis" => "service-role/AWSLambdaKinesisExecutionRole",
        _ => "service-role/AWSLambdaDynamoDBExecutionRole",
    }
}

pub(super) fn mapping(event: &Event<'_>, target: &Target, role: Option<&mut Cfn>) -> Result<Vec<Cfn>> {
    let mut esm = Cfn::with(event.id.clone(), "AWS::Lambda::EventSourceMapping", &target.attrs);
    esm.set("FunctionName", target.name.clone());
    let source = if event.ty == "SQS" { "Queue" } else { "Stream" };
    esm.set_opt("EventSourceArn", event.get(source));
    for key in PASS_THROUGH {
        esm.set_opt(key, event.get(key));
    }
    if let Some(filter) = event.get("FilterCriteria") {
        if !crate::intrinsics::is_intrinsic(filter) {
            let ok = filter
                .as_object()
                .is_some_and(|m| m.is_empty() || (m.len() == 1 && m.contains_key("Filters")));
            if !ok {
                return Err(event.error("FilterCriteria field has a wrong format"));
            }
        }
    }
    if event.get("ConsumerGroupId").is_some() {
        return Err(super::ResourceError::event(
            &event.id,
            format!("Property ConsumerGroupId not defined for resource of type {}.", event.ty),
        ));
    }
    let mut destination_policy = None;
    if let Some(config) = event.get("DestinationConfig") {
        let mut config = config.clone();
        let Some(on_failure) = config.get_mut("OnFailure").and_then(Value::as_object_mut) else {
            return Err(super::ResourceError::event(
                &event.id,
                "Property 'DestinationConfig.OnFailure' should be a map.",
            ));
        };
        if let Some(ty) = on_failure.remove("Type") {
            let ty = ty.as_str().unwrap_or_default().to_string();
            let dest = on_failure.get("Destination").cloned().unwrap_or(Value::Null);
            destination_policy = match ty.as_str() {
                "SQS" => Some(statement_policy(format!("{}SQSPolicy", event.id), "sqs:SendMessage", dest)),
                "SNS" => Some(statement_policy(format!("{}SNSPolicy", event.id), "sns:publish", dest)),
                "S3" => Some(s3_payload_policy(format!("{}S3Policy", event.id), dest)),
                "Kafka" => None,
                _ => {
                    return Err(super::ResourceError::event(
                        &event.id,
                        "The only valid values for 'Type' are 'SQS', 'SNS', 'S3', and 'Kafka'",
                    ))
                }
            };
        }
        esm.set("DestinationConfig", config);
    }
    if let Some(role) = role {
        let partition = role_partition(role);
        add_managed_policy(role, crate::policies::aws_policy(&partition, policy_name(event.ty)));
        if let Some(policy) = destination_policy {
            add_role_policy(role, policy);
        }
    }
    Ok(vec![esm])
}

/// The partition of the role's first managed policy ARN (always the basic execution role).
fn role_partition(role: &Cfn) -> String {
    role.props
        .get("ManagedPolicyArns")
        .and_then(|l| l.get(0))
        .and_then(Value::as_str)
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws")
        .to_string()
}

/// The queue mapping an SNS event's `SqsSubscription` makes.
pub(super) fn sqs_mapping(
    id: String,
    queue_arn: &Value,
    batch_size: Value,
    enabled: Value,
    target: &Target,
    role: Option<&mut Cfn>,
) -> Vec<Cfn> {
    let mut esm = Cfn::with(id, "AWS::Lambda::EventSourceMapping", &target.attrs);
    esm.set("FunctionName", target.name.clone());
    esm.set("EventSourceArn", queue_arn.clone());
    esm.set("BatchSize", batch_size);
    esm.set("Enabled", enabled);
    if let Some(role) = role {
        let partition = role_partition(role);
        add_managed_policy(role, crate::policies::aws_policy(&partition, policy_name("SQS")));
    }
    vec![esm]
}
