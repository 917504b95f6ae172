//! Retry strategies (`evaluateOnExit`, first match wins) and `Ref::name` substitution.

use serde_json::{Map, Value};

/// AWS's patterns: literal, or a prefix ending in `*`. A condition on an absent field matches
/// only `*`.
pub fn glob(pattern: &str, value: Option<&str>) -> bool {
    match (pattern.strip_suffix('*'), value) {
        (Some(""), _) => true,
        (_, None) => false,
        (Some(prefix), Some(value)) => value.starts_with(prefix),
        (None, Some(value)) => value == pattern,
    }
}

/// What a failed attempt leads to: true to retry (attempts allowing).
pub fn should_retry(
    strategy: Option<&Value>,
    exit_code: Option<i32>,
    reason: Option<&str>,
    status_reason: &str,
    attempts_made: u32,
) -> bool {
    let Some(strategy) = strategy else { return false };
    let attempts = strategy["attempts"].as_u64().unwrap_or(1) as u32;
    if attempts_made >= attempts {
        return false;
    }
    let code = exit_code.map(|c| c.to_string());
    let rules = strategy["evaluateOnExit"].as_array().cloned().unwrap_or_default();
    for rule in &rules {
        let matches = rule["onExitCode"].as_str().is_none_or(|p| glob(p, code.as_deref()))
            && rule["onReason"].as_str().is_none_or(|p| glob(p, reason))
            && rule["onStatusReason"].as_str().is_none_or(|p| glob(p, Some(status_reason)));
        if matches {
            return rule["action"].as_str().is_some_and(|a| a.eq_ignore_ascii_case("RETRY"));
        }
    }
    // No rule matched (or none given): retried.
    true
}

/// `Ref::name` in a command, replaced by the parameter's value (unknown references stay).
pub fn substitute(command: &[String], parameters: &Map<String, Value>) -> Vec<String> {
    command
        .iter()
        .map(|arg| match arg.strip_prefix("Ref::") {
            Some(name) => {
                parameters.get(name).and_then(Value::as_str).map_or_else(|| arg.clone(), str::to_owned)
            }
            None => arg.clone(),
        })
        .collect()
}
