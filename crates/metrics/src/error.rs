//! CloudWatch's errors. CloudWatch is `awsQueryCompatible`: its JSON and CBOR errors carry the
//! Query protocol's code in `x-amzn-query-error`, which botocore maps to the same exception
//! class (`InvalidParameterValueException` …) whatever the protocol.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidParameterValue,
    MissingParameter,
    InvalidParameterCombination,
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
