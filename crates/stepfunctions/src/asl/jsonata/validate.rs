//! Definition checks that depend on a state's query language: the fields only one language has,
//! a JSONata machine's states staying JSONata, Choice rules with `Condition`, and every
//! `{% … %}` expression parsing.

use serde_json::{Map, Value};

/// Fields only JSONPath states may have.
const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Result",
    "ItemsPath",
    "MaxConcurrencyPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentagePath",
];

/// Fields only JSONata states may have.
pub const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

/// Fields whose value may be (or hold) `{% … %}` expressions in a JSONata state.
const EXPRESSIONS: &[&str] = &[
    "Arguments",
    "Output",
    "Assign",
    "Items",
    "ItemSelector",
    "Error",
    "Cause",
    "Seconds",
    "Timestamp",
    "TimeoutSeconds",
    "HeartbeatSeconds",
    "MaxConcurrency",
    "ToleratedFailureCount",
    "ToleratedFailurePercentage",
];

fn schema(errors: &mut Vec<String>, message: impl std::fmt::Display, at: &str) {
    errors.push(format!("SCHEMA_VALIDATION_FAILED: {message} at {at}"));
}

/// Checks a state's `QueryLanguage` against the machine's; true when the state is JSONata.
pub fn language(
    state: &Map<String, Value>,
    machine_jsonata: bool,
    at: &str,
    errors: &mut Vec<String>,
) -> bool {
    match state.get("QueryLanguage") {
        None => machine_jsonata,
        Some(Value::String(l)) if l == "JSONata" => true,
        Some(Value::String(l)) if l == "JSONPath" => {
            if machine_jsonata {
                schema(
                    errors,
                    "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                    at,
                );
            }
            machine_jsonata
        }
        Some(_) => {
            schema(
                errors,
                "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                &format!("{at}/QueryLanguage"),
            );
            machine_jsonata
        }
    }
}

/// The fields of the other language, and (for JSONata) every expression's syntax.
pub fn fields(kind: &str, state: &Map<String, Value>, jsonata: bool, at: &str, errors: &mut Vec<String>) {
    let (foreign, mine, other): (&[&str], &str, &str) =
        if jsonata { (JSONPATH_ONLY, "JSONata", "JSONPath") } else { (JSONATA_ONLY, "JSONPath", "JSONata") };
    for key in state.keys().filter(|k| foreign.contains(&k.as_str())) {
        schema(
            errors,
            format!("The QueryLanguage is set to '{mine}', but field '{key}' is only supported for the '{other}' QueryLanguage"),
            at,
        );
    }
    let mut assigns = vec![(state.get("Assign"), format!("{at}/Assign"))];
    for list in ["Catch", "Choices"] {
        for (i, item) in state.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            assigns.push((item.get("Assign"), format!("{at}/{list}[{i}]/Assign")));
        }
    }
    for (assign, here) in assigns {
        if assign.is_some_and(|a| !a.is_object()) {
            schema(errors, "The value for the field 'Assign' must be an OBJECT", &here);
        }
    }
    if !jsonata {
        return;
    }
    let mut check = |value: &Value, here: String| {
        if let Err(message) = super::check(value, &here) {
            errors.push(message);
        }
    };
    for field in EXPRESSIONS {
        if let Some(value) = state.get(*field) {
            check(value, format!("{at}/{field}"));
        }
    }
    for list in ["Catch", "Choices"] {
        for (i, item) in state.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            for field in ["Output", "Assign", "Condition"] {
                if let Some(value) = item.get(field) {
                    check(value, format!("{at}/{list}[{i}]/{field}"));
                }
            }
        }
    }
    for (parent, field) in
        [("ItemReader", "Arguments"), ("ResultWriter", "Arguments"), ("ItemBatcher", "BatchInput")]
    {
        if let Some(value) = state.get(parent).and_then(|p| p.get(field)) {
            check(value, format!("{at}/{parent}/{field}"));
        }
    }
    if kind == "Choice" {
        for (i, rule) in state.get("Choices").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let here = format!("{at}/Choices[{i}]");
            let Some(rule) = rule.as_object() else { continue };
            if !rule.contains_key("Condition") {
                schema(errors, "These fields are required: [Condition]", &here);
            }
            for key in rule
                .keys()
                .filter(|k| !["Condition", "Next", "Comment", "Output", "Assign"].contains(&k.as_str()))
            {
                schema(errors, format!("Field '{key}' is not supported"), &here);
            }
        }
    }
}

/// Whether a field holds a `{% … %}` expression (checked when the state runs, not here).
pub fn is_expression(value: Option<&Value>) -> bool {
    value.and_then(Value::as_str).is_some_and(|t| super::expression(t).is_some())
}
