//! The errors CloudWatch Logs answers with, as one-liners.

use std::fmt::Display;

use nimbus_api::AwsError;

use crate::store::catalog::CatalogError;

pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterException", message)
}

/// AWS's wording for a member that breaks its model's constraint.
pub fn constraint(value: impl Display, member: &str, constraint: &str) -> AwsError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

pub fn missing(member: &str) -> AwsError {
    invalid(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

pub fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "SerializationException", message)
}

pub fn bad_token() -> AwsError {
    invalid("The specified nextToken is invalid.")
}

pub fn busy() -> AwsError {
    AwsError::new(503, "ServiceUnavailableException", "The service cannot complete the request.")
}

pub fn catalog(error: CatalogError) -> AwsError {
    match error {
        CatalogError::GroupNotFound | CatalogError::StreamNotFound => {
            AwsError::new(400, "ResourceNotFoundException", error.to_string())
        }
        CatalogError::GroupExists | CatalogError::StreamExists => {
            AwsError::new(400, "ResourceAlreadyExistsException", error.to_string())
        }
        CatalogError::Database(_) => AwsError::new(500, "ServiceUnavailableException", error.to_string()),
    }
}

pub fn io(error: std::io::Error) -> AwsError {
    AwsError::new(500, "ServiceUnavailableException", format!("cannot read log events: {error}"))
}
