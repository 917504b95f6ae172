//! SNS's errors, as botocore's model names them (`InvalidParameter`, `NotFound` …).

use nimbus_api::AwsError;

pub type Result<T> = std::result::Result<T, AwsError>;

pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameter", message)
}

/// `Invalid parameter: {what}`, AWS's usual wording.
pub fn invalid_parameter(what: &str) -> AwsError {
    invalid(format!("Invalid parameter: {what}"))
}

pub fn value_invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ParameterValueInvalid", message)
}

pub fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(404, "NotFound", message)
}

pub fn topic_missing() -> AwsError {
    not_found("Topic does not exist")
}

pub fn subscription_missing() -> AwsError {
    not_found("Subscription does not exist")
}

pub fn resource_missing() -> AwsError {
    AwsError::new(404, "ResourceNotFound", "Resource does not exist")
}

pub fn internal(error: impl std::fmt::Display) -> AwsError {
    AwsError::new(500, "InternalError", error.to_string())
}

pub fn db(error: nimbus_store::DbError) -> AwsError {
    match error {
        nimbus_store::DbError::Unstorable(message) => invalid(message),
        other => internal(other),
    }
}

pub fn tag_limit() -> AwsError {
    AwsError::new(400, "TagLimitExceeded", "Could not complete request: tag quota of per resource exceeded")
}

/// An ARN parameter that is not one, as AWS words it.
pub fn arn_parts(field: &str, arn: &str) -> AwsError {
    let parts = arn.split(':').count();
    invalid(format!("Invalid parameter: {field} Reason: An ARN must have at least 6 elements, not {parts}"))
}
