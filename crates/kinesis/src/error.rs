//! Kinesis's errors, with AWS's codes and messages (every one is a 400 but `InternalFailure`).

use nimbus_api::AwsError;
use nimbus_store::DbError;

pub type Result<T> = std::result::Result<T, AwsError>;

pub fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceNotFoundException", message)
}

pub fn in_use(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceInUseException", message)
}

pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidArgumentException", message)
}

pub fn limit(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "LimitExceededException", message)
}

pub fn expired_iterator(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ExpiredIteratorException", message)
}

pub fn expired_token(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ExpiredNextTokenException", message)
}

pub fn throughput(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ProvisionedThroughputExceededException", message)
}

/// `1 validation error detected: Value '…' at '…' failed to satisfy constraint: …`.
pub fn validation(value: impl std::fmt::Display, at: &str, constraint: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: {constraint}"
    ))
}

pub fn missing(member: &str) -> AwsError {
    validation("null", member, "Member must not be null")
}

pub fn unsupported(operation: &str) -> AwsError {
    AwsError::new(
        400,
        "UnknownOperationException",
        format!("nimbus does not implement the Kinesis operation {operation}."),
    )
}

pub fn stream_not_found(name: &str, account: &str) -> AwsError {
    not_found(format!("Stream {name} under account {account} not found."))
}

pub fn internal(error: impl std::fmt::Display) -> AwsError {
    AwsError::new(500, "InternalFailure", format!("nimbus: {error}"))
}

pub fn db(error: DbError) -> AwsError {
    match error {
        DbError::Unstorable(message) => invalid(message),
        other => internal(other),
    }
}

/// What a transaction's work fails with: the storage layer's errors become AWS's.
pub struct Failure(pub nimbus_api::AwsError);

impl From<DbError> for Failure {
    fn from(error: DbError) -> Failure {
        Failure(db(error))
    }
}
