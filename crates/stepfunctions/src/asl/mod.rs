//! The Amazon States Language: paths, payload templates, intrinsic functions, Choice rules,
//! error matching, and the validation of definitions.

pub mod choice;
pub mod intrinsic;
pub mod jsonata;
pub mod path;
pub mod template;
pub mod validate;

use serde_json::Value;

/// A state's failure: AWS's error name and its cause.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure { error: error.into(), cause: cause.into() }
    }

    pub fn runtime(cause: impl Into<String>) -> Failure {
        Failure::new("States.Runtime", cause)
    }

    pub fn intrinsic(cause: impl Into<String>) -> Failure {
        Failure::new("States.IntrinsicFailure", cause)
    }

    fn with_detail(mut self, error: path::PathError) -> Failure {
        if let path::PathError::Invalid(_) = error {
            self.cause = error.message();
        }
        self
    }

    /// The `{"Error", "Cause"}` document a Catch hands on.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"Error": self.error, "Cause": self.cause})
    }
}

/// Whether a Retry or Catch `ErrorEquals` list matches `error`. `States.ALL` matches every error
/// but `States.Runtime` and `States.DataLimitExceeded` (which no retrier catches);
/// `States.TaskFailed` matches every error but `States.Timeout`.
pub fn matches(error_equals: &[Value], error: &str) -> bool {
    error_equals.iter().filter_map(Value::as_str).any(|name| match name {
        "States.ALL" => error != "States.Runtime" && error != "States.DataLimitExceeded",
        "States.TaskFailed" => {
            error != "States.Timeout" && error != "States.Runtime" && error != "States.DataLimitExceeded"
        }
        name => name == error,
    })
}

/// AWS's limit on a state's input or output and an execution's input: 256 KiB of JSON text.
pub const MAX_PAYLOAD: usize = 256 * 1024;
