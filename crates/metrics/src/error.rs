//! CloudWatch's errors. CloudWatch is `awsQueryCompatible`: its JSON and CBOR errors carry the
//! Query protocol's code in `x-amzn-query-error`, which botocore maps to the same exception
//! class (`InvalidParameterValueException` …) whatever the protocol.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidParameterValue,
    MissingParameter,
    InvalidParameterCombination,
    /// A member outside its model constraint (an enum, a length): `ValidationError`.
    Validation,
    InvalidNextToken,
    /// An alarm that does not exist.
    ResourceNotFound,
    /// An operation nimbus does not serve, or that does not exist.
    InvalidAction,
    /// A body that does not decode (JSON, CBOR).
    Serialization,
    InternalServiceError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CwError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CwError {
        CwError { kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> CwError {
        CwError::new(ErrorKind::InvalidParameterValue, message)
    }

    pub fn missing(parameter: &str) -> CwError {
        CwError::new(ErrorKind::MissingParameter, format!("The parameter {parameter} is required."))
    }

    pub fn combination(message: impl Into<String>) -> CwError {
        CwError::new(ErrorKind::InvalidParameterCombination, message)
    }

    /// AWS's `ValidationError` for a value outside an enum, at the Query `path` of the member
    /// (`MetricData.member.1.Unit` is named `metricData.1.member.unit`, as AWS names it).
    pub fn not_in_enum(value: &str, path: &str, set: &[&str]) -> CwError {
        CwError::new(
            ErrorKind::Validation,
            format!(
                "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                validation_path(path),
                set.join(", ")
            ),
        )
    }
}

/// A Query path as validation messages name it: `A.member.N.B` becomes `a.N.member.b`.
fn validation_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        if parts[i] == "member" && i + 1 < parts.len() {
            out.push(parts[i + 1].to_owned());
            out.push("member".to_owned());
            i += 2;
            continue;
        }
        let mut chars = parts[i].chars();
        out.push(
            chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default(),
        );
        i += 1;
    }
    out.join(".")
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InternalServiceError => 500,
            ErrorKind::ResourceNotFound => 404,
            _ => 400,
        }
    }

    /// The Query protocol's `<Code>`, and the first half of `x-amzn-query-error`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidParameterValue => "InvalidParameterValue",
            ErrorKind::MissingParameter => "MissingParameter",
            ErrorKind::InvalidParameterCombination => "InvalidParameterCombination",
            ErrorKind::Validation => "ValidationError",
            ErrorKind::InvalidNextToken => "InvalidNextToken",
            ErrorKind::ResourceNotFound => "ResourceNotFound",
            ErrorKind::InvalidAction => "InvalidAction",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::InternalServiceError => "InternalServiceError",
        }
    }

    /// The error shape's name in the model, for `__type` in JSON and CBOR.
    pub fn shape(self) -> &'static str {
        match self {
            ErrorKind::InvalidParameterValue => "InvalidParameterValueException",
            ErrorKind::MissingParameter => "MissingRequiredParameterException",
            ErrorKind::InvalidParameterCombination => "InvalidParameterCombinationException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::InvalidNextToken => "InvalidNextToken",
            ErrorKind::ResourceNotFound => "ResourceNotFound",
            ErrorKind::InvalidAction => "UnknownOperationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::InternalServiceError => "InternalServiceFault",
        }
    }

    /// `Sender` or `Receiver`, the blame in Query errors and `x-amzn-query-error`.
    pub fn fault(self) -> &'static str {
        match self {
            ErrorKind::InternalServiceError => "Receiver",
            _ => "Sender",
        }
    }

    /// The member holding the message: `InternalServiceFault` spells it `Message`.
    pub fn message_member(self) -> &'static str {
        match self {
            ErrorKind::InternalServiceError => "Message",
            _ => "message",
        }
    }
}

impl CwError {
    /// `__type` of JSON and CBOR errors.
    pub fn type_id(&self) -> String {
        format!("com.amazonaws.cloudwatch#{}", self.kind.shape())
    }

    /// `x-amzn-query-error`, for the errors that have a Query code.
    pub fn query_error(&self) -> Option<String> {
        (self.kind != ErrorKind::Serialization).then(|| format!("{};{}", self.kind.code(), self.kind.fault()))
    }
}

impl std::fmt::Display for CwError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for CwError {}

#[cfg(test)]
mod validation_tests {
    #[test]
    fn enum_errors_name_members_as_aws_does() {
        let error = super::CwError::not_in_enum("GB", "MetricData.member.1.Unit", &["Bytes", "Count"]);
        assert_eq!(error.kind.code(), "ValidationError");
        assert_eq!(
            error.message,
            "1 validation error detected: Value 'GB' at 'metricData.1.member.unit' failed to satisfy constraint: Member must satisfy enum value set: [Bytes, Count]"
        );
    }
}
