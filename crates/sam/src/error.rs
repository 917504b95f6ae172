//! The transform's errors, worded as aws-sam-translator words them, so a failed deploy reads the
//! same against nimbus as against AWS.

use std::fmt;

/// Why a template could not be transformed. `message` is the whole text CloudFormation shows:
/// "Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application
/// Specification document. Number of errors found: 1. Resource with id [X] is invalid. …".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformError {
    pub message: String,
    /// Each cause's own text ("Resource with id [X] is invalid. …").
    pub causes: Vec<String>,
}

impl TransformError {
    pub(crate) fn from_errors(causes: Vec<String>) -> TransformError {
        let mut message = format!(
            "Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application \
             Specification document. Number of errors found: {}.",
            causes.len()
        );
        for cause in &causes {
            message.push(' ');
            message.push_str(cause);
        }
        TransformError { message, causes }
    }

    /// A template-level error ("Structure of the SAM template is invalid. …").
    pub(crate) fn template(message: &str) -> TransformError {
        TransformError::from_errors(vec![template_message(message)])
    }
}

pub(crate) fn template_message(message: &str) -> String {
    format!("Structure of the SAM template is invalid. {message}")
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransformError {}

/// One resource's error: "Resource with id [X] is invalid. …" (or an event's, a section's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceError {
    text: String,
}

impl ResourceError {
    pub(crate) fn new(logical_id: &str, message: impl fmt::Display) -> ResourceError {
        ResourceError { text: format!("Resource with id [{logical_id}] is invalid. {message}") }
    }

    /// "Event with id [X] is invalid. …"
    pub(crate) fn event(event_id: &str, message: impl fmt::Display) -> ResourceError {
        ResourceError { text: format!("Event with id [{event_id}] is invalid. {message}") }
    }

    /// "'Globals' section is invalid. …"
    pub(crate) fn section(name: &str, message: impl fmt::Display) -> ResourceError {
        ResourceError { text: format!("'{name}' section is invalid. {message}") }
    }

    pub(crate) fn template(message: &str) -> ResourceError {
        ResourceError { text: template_message(message) }
    }

    pub(crate) fn message(&self) -> String {
        self.text.clone()
    }
}

pub(crate) type Result<T> = std::result::Result<T, ResourceError>;

impl ResourceError {
    /// A message used as it is.
    pub(crate) fn raw(text: String) -> ResourceError {
        ResourceError { text }
    }
}
