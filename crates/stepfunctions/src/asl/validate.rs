//! Definition validation with AWS's codes and wording: `SCHEMA_VALIDATION_FAILED` for fields,
//! `MISSING_TRANSITION_TARGET` for `Next`/`StartAt`/`Default` that name no state, unreachable
//! states, and `INVALID_JSON_DESCRIPTION` for text that is not JSON.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::{choice, intrinsic, jsonata, path, template};

const TYPES: &[&str] = &["Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"];
const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const IO: &[&str] = &["InputPath", "OutputPath"];
const FLOW: &[&str] = &["Next", "End"];

fn allowed(kind: &str) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = COMMON.to_vec();
    let extra: &[&str] = match kind {
        "Pass" => &["Assign", "InputPath", "OutputPath", "Next", "End", "Parameters", "Result", "ResultPath"],
        "Task" => &[
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Parameters",
            "ResultPath",
            "ResultSelector",
            "Resource",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        "Choice" => &["Assign", "InputPath", "OutputPath", "Choices", "Default"],
        "Wait" => &[
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
        ],
        "Succeed" => IO,
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Parameters",
            "ResultPath",
            "ResultSelector",
            "Branches",
            "Retry",
            "Catch",
        ],
        "Map" => &[
            "InputPath",
            "OutputPath",
            "Next",
            "End",
            "Parameters",
            "ResultPath",
            "ResultSelector",
            "Iterator",
            "ItemProcessor",
            "ItemsPath",
            "ItemSelector",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "Retry",
            "Catch",
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCountPath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
        ],
        _ => &[],
    };
    fields.extend_from_slice(extra);
    // Variables: every state that ends in a transition may assign them.
    if matches!(kind, "Task" | "Wait" | "Parallel" | "Map") {
        fields.push("Assign");
    }
    // JSONata's fields (refused in JSONPath states with AWS's message by `jsonata::validate`).
    if kind != "Fail" {
        fields.push("Output");
    }
    if matches!(kind, "Task" | "Parallel") {
        fields.push("Arguments");
    }
    if kind == "Map" {
        fields.push("Items");
    }
    let _ = FLOW;
    fields
}

/// Validates a definition's text; `Err` holds the message of AWS's `InvalidDefinition`.
pub fn definition(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: {e}'"))?;
    let mut errors = Vec::new();
    match value.as_object() {
        Some(top) => {
            let jsonata = jsonata::validate::language(top, false, "", &mut errors);
            machine(top, "", true, jsonata, &mut errors)
        }
        None => errors.push("SCHEMA_VALIDATION_FAILED: The definition must be a JSON object at /".to_owned()),
    }
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(format!("Invalid State Machine Definition: '{}'", errors.join(", ")))
    }
}

fn schema(errors: &mut Vec<String>, message: impl std::fmt::Display, at: &str) {
    errors.push(format!("SCHEMA_VALIDATION_FAILED: {message} at {}", if at.is_empty() { "/" } else { at }));
}

/// A state machine or a branch/processor of one at JSON pointer `at`.
fn machine(top: &Map<String, Value>, at: &str, root: bool, jsonata: bool, errors: &mut Vec<String>) {
    let mut missing: Vec<&str> =
        ["StartAt", "States"].into_iter().filter(|k| !top.contains_key(*k)).collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        schema(errors, format!("These fields are required: [{}]", missing.join(", ")), at);
        return;
    }
    let known: &[&str] = if root {
        &["Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"]
    } else {
        &["Comment", "StartAt", "States", "ProcessorConfig"]
    };
    for key in top.keys().filter(|k| !known.contains(&k.as_str())) {
        schema(errors, format!("Field '{key}' is not supported"), at);
    }
    let Some(states) = top["States"].as_object() else {
        schema(errors, "The value for the field 'States' must be an OBJECT", &format!("{at}/States"));
        return;
    };
    let start = top["StartAt"].as_str().unwrap_or_default();
    let started = states.contains_key(start);
    if !started {
        errors.push(format!("MISSING_TRANSITION_TARGET: Missing 'StartAt' target: {start} at {at}/StartAt"));
    }
    for (name, state) in states {
        let here = format!("{at}/States/{name}");
        match state.as_object() {
            Some(fields) => one_state(name, fields, states, &here, jsonata, errors),
            None => schema(errors, "The value for the state must be an OBJECT", &here),
        }
    }
    // Reachability from StartAt through Next, Default, Choices and Catch.
    let mut seen = HashSet::new();
    let mut todo = vec![start.to_owned()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(state) = states.get(&name) {
            todo.extend(targets(state));
        }
    }
    for name in states.keys().filter(|n| started && !seen.contains(*n)) {
        errors.push(format!(
            "MISSING_TRANSITION_TARGET: State \"{name}\" is not reachable. at {at}/States/{name}"
        ));
    }
}

/// The states a state may go to next.
fn targets(state: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let name = |v: &Value| v.as_str().map(str::to_owned);
    out.extend(state.get("Next").and_then(name));
    out.extend(state.get("Default").and_then(name));
    for list in ["Choices", "Catch"] {
        for item in state.get(list).and_then(Value::as_array).into_iter().flatten() {
            out.extend(item.get("Next").and_then(name));
        }
    }
    out
}

fn one_state(
    name: &str,
    state: &Map<String, Value>,
    states: &Map<String, Value>,
    at: &str,
    machine_jsonata: bool,
    errors: &mut Vec<String>,
) {
    let Some(kind) = state.get("Type").and_then(Value::as_str) else {
        schema(errors, "These fields are required: [Type]", at);
        return;
    };
    if !TYPES.contains(&kind) {
        schema(
            errors,
            format!("The value for the field 'Type' must be one of [{}]", TYPES.join(", ")),
            &format!("{at}/Type"),
        );
        return;
    }
    let fields = allowed(kind);
    for key in state.keys().filter(|k| !fields.contains(&k.as_str())) {
        schema(errors, format!("Field '{key}' is not supported"), at);
    }
    let jsonata = jsonata::validate::language(state, machine_jsonata, at, errors);
    jsonata::validate::fields(kind, state, jsonata, at, errors);
    let flows = !matches!(kind, "Choice" | "Succeed" | "Fail");
    if flows {
        let end = state.get("End").and_then(Value::as_bool) == Some(true);
        match (state.get("Next"), end) {
            (Some(_), true) => schema(errors, "Only one of 'Next' or 'End' may be set", at),
            (None, false) => errors.push(format!(
                "MISSING_TRANSITION_TARGET: State \"{name}\" is not an end state and does not have a next state at {at}"
            )),
            _ => {}
        }
    }
    let check_target = |errors: &mut Vec<String>, target: Option<&Value>, field: &str, here: &str| {
        if let Some(target) = target {
            match target.as_str() {
                Some(t) if states.contains_key(t) => {}
                Some(t) => errors.push(format!(
                    "MISSING_TRANSITION_TARGET: Missing '{field}' target: {t} at {here}/{field}"
                )),
                None => schema(
                    errors,
                    format!("The value for the field '{field}' must be a STRING"),
                    &format!("{here}/{field}"),
                ),
            }
        }
    };
    check_target(errors, state.get("Next"), "Next", at);
    for field in ["InputPath", "OutputPath"] {
        if let Some(p) = state.get(field).and_then(Value::as_str) {
            if !path::is_valid(p) {
                schema(
                    errors,
                    format!("The value for the field '{field}' must be a valid JSONPath"),
                    &format!("{at}/{field}"),
                );
            }
        }
    }
    if let Some(p) = state.get("ResultPath").and_then(Value::as_str) {
        if !path::is_reference(p) {
            schema(
                errors,
                "The value for the field 'ResultPath' must be a valid ReferencePath",
                &format!("{at}/ResultPath"),
            );
        }
    }
    for field in ["Parameters", "ResultSelector", "ItemSelector", "Assign"] {
        if let Some(t) = state.get(field).filter(|_| !jsonata) {
            if let Err(message) = template::check(t) {
                schema(errors, message, &format!("{at}/{field}"));
            }
        }
    }
    for (i, catcher) in state.get("Catch").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let here = format!("{at}/Catch[{i}]");
        if catcher.get("ErrorEquals").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            schema(errors, "These fields are required: [ErrorEquals]", &here);
        }
        match catcher.get("Next") {
            None => schema(errors, "These fields are required: [Next]", &here),
            next => check_target(errors, next, "Next", &here),
        }
    }
    for (i, retrier) in state.get("Retry").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let here = format!("{at}/Retry[{i}]");
        if retrier.get("ErrorEquals").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            schema(errors, "These fields are required: [ErrorEquals]", &here);
        }
        let number = |field: &str| retrier.get(field).map(|v| v.as_f64());
        let limits = [
            ("IntervalSeconds", 1.0, 99_999_999.0),
            ("MaxAttempts", 0.0, 99_999_999.0),
            ("BackoffRate", 1.0, f64::MAX),
            ("MaxDelaySeconds", 1.0, 31_622_400.0),
        ];
        for (field, low, high) in limits {
            match number(field) {
                Some(Some(v)) if v >= low && v <= high && (field == "BackoffRate" || v.fract() == 0.0) => {}
                Some(_) => schema(
                    errors,
                    format!("The value for the field '{field}' must be in the range [{low}, {high}]"),
                    &format!("{here}/{field}"),
                ),
                None => {}
            }
        }
        if let Some(jitter) = retrier.get("JitterStrategy") {
            if !matches!(jitter.as_str(), Some("FULL" | "NONE")) {
                schema(
                    errors,
                    "The value for the field 'JitterStrategy' must be one of [FULL, NONE]",
                    &format!("{here}/JitterStrategy"),
                );
            }
        }
    }
    match kind {
        "Task" => match state.get("Resource").and_then(Value::as_str) {
            None => schema(errors, "These fields are required: [Resource]", at),
            Some(r) if !r.starts_with("arn:") => schema(
                errors,
                "The value for the field 'Resource' must be a valid ARN",
                &format!("{at}/Resource"),
            ),
            _ => {}
        },
        "Choice" => {
            match state.get("Choices").and_then(Value::as_array) {
                Some(choices) if !choices.is_empty() => {
                    for (i, rule) in choices.iter().enumerate() {
                        let here = format!("{at}/Choices[{i}]");
                        match rule.get("Next") {
                            None => schema(errors, "These fields are required: [Next]", &here),
                            next => check_target(errors, next, "Next", &here),
                        }
                        if !jsonata {
                            choice_rule(rule, &here, errors);
                        }
                    }
                }
                _ => schema(errors, "These fields are required: [Choices]", at),
            }
            check_target(errors, state.get("Default"), "Default", at);
        }
        "Wait" => {
            let count = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                .iter()
                .filter(|k| state.contains_key(**k))
                .count();
            if count != 1 {
                schema(errors, "A Wait state must have exactly one of 'Seconds', 'Timestamp', 'SecondsPath' or 'TimestampPath'", at);
            }
            if let Some(ts) = state.get("Timestamp").filter(|t| !jsonata::validate::is_expression(Some(t))) {
                if ts.as_str().and_then(choice::timestamp).is_none() {
                    schema(
                        errors,
                        "The value for the field 'Timestamp' must be a valid ISO-8601 timestamp",
                        &format!("{at}/Timestamp"),
                    );
                }
            }
        }
        "Parallel" => match state.get("Branches").and_then(Value::as_array) {
            Some(branches) if !branches.is_empty() => {
                for (i, branch) in branches.iter().enumerate() {
                    match branch.as_object() {
                        Some(b) => machine(b, &format!("{at}/Branches[{i}]"), false, machine_jsonata, errors),
                        None => schema(errors, "A branch must be an OBJECT", &format!("{at}/Branches[{i}]")),
                    }
                }
            }
            _ => schema(errors, "These fields are required: [Branches]", at),
        },
        "Map" => {
            let processor = state.get("ItemProcessor").or_else(|| state.get("Iterator"));
            match processor.and_then(Value::as_object) {
                Some(p) => machine(p, &format!("{at}/ItemProcessor"), false, machine_jsonata, errors),
                None => schema(errors, "These fields are required: [ItemProcessor]", at),
            }
            if let Some(p) = state.get("ItemsPath").and_then(Value::as_str) {
                if !path::is_reference(p) {
                    schema(
                        errors,
                        "The value for the field 'ItemsPath' must be a valid ReferencePath",
                        &format!("{at}/ItemsPath"),
                    );
                }
            }
        }
        "Fail" => {
            for field in ["ErrorPath", "CausePath"] {
                if let Some(p) = state.get(field).and_then(Value::as_str) {
                    if !intrinsic::is_call(p) && !path::is_valid(p) {
                        schema(errors, format!("The value for the field '{field}' must be a valid JSONPath or intrinsic function"), &format!("{at}/{field}"));
                    }
                }
            }
        }
        _ => {}
    }
}

fn choice_rule(rule: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(fields) = rule.as_object() else { return };
    for combinator in ["And", "Or"] {
        if let Some(list) = fields.get(combinator) {
            for (i, sub) in list.as_array().into_iter().flatten().enumerate() {
                choice_rule(sub, &format!("{at}/{combinator}[{i}]"), errors);
            }
            return;
        }
    }
    if let Some(sub) = fields.get("Not") {
        return choice_rule(sub, &format!("{at}/Not"), errors);
    }
    match choice::operator(fields) {
        None => schema(errors, "A Choice rule must have a comparison operator", at),
        Some(_) if !fields.contains_key("Variable") => {
            schema(errors, "These fields are required: [Variable]", at)
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        definition(text).unwrap_err()
    }

    #[test]
    fn reports_aws_codes() {
        assert!(definition(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#).is_ok());
        assert_eq!(
            error(r#"{"States":{}}"#),
            "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: These fields are required: [StartAt] at /'"
        );
        assert_eq!(
            error(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"C":{"Type":"Succeed"}}}"#),
            "Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next, \
             MISSING_TRANSITION_TARGET: State \"C\" is not reachable. at /States/C'"
        );
        assert!(error("{nope").contains("INVALID_JSON_DESCRIPTION"));
        assert!(error(r#"{"StartAt":"A","States":{"A":{"Type":"Bogus"}}}"#).contains("'Type' must be one of"));
        assert!(
            error(r#"{"StartAt":"A","States":{"A":{"Type":"Pass"}}}"#).contains("does not have a next state")
        );
        assert!(error(r#"{"StartAt":"A","States":{"A":{"Type":"Task","End":true}}}"#).contains("[Resource]"));
        assert!(error(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Bogus":1}}}"#)
            .contains("'Bogus' is not supported"));
        assert!(definition(
            r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","Output":"{% $states.input %}","End":true}}}"#
        )
        .is_ok());
        assert_eq!(
            error(r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","InputPath":"$","End":true}}}"#),
            "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: The QueryLanguage is set to 'JSONata', \
             but field 'InputPath' is only supported for the 'JSONPath' QueryLanguage at /States/A'"
        );
        assert!(error(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Output":{},"End":true}}}"#)
            .contains("field 'Output' is only supported for the 'JSONata' QueryLanguage at /States/A"));
        assert!(error(r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","QueryLanguage":"JSONPath","End":true}}}"#)
            .contains("'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine at /States/A"));
        assert!(error(r#"{"QueryLanguage":"JSONata","StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.a","IsNull":true,"Next":"C"}]}}}"#)
            .contains("These fields are required: [Condition] at /States/C/Choices[0]"));
        assert!(error(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","QueryLanguage":"JSONata","Output":"{% [1, %}","End":true}}}"#)
            .contains("INVALID_JSONATA_EXPRESSION"));
        assert!(error(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Assign":"{% 1 %}","End":true}}}"#)
            .contains("The value for the field 'Assign' must be an OBJECT at /States/A/Assign"));
        let parallel = r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass","Next":"Y"}}}]}}}"#;
        assert!(error(parallel).contains("/States/P/Branches[0]/States/X/Next"));
        let retry = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Retry":[{"ErrorEquals":["E"],"BackoffRate":0.5,"JitterStrategy":"SOME"}]}}}"#;
        let message = error(retry);
        assert!(
            message.contains("/States/A/Retry[0]/BackoffRate") && message.contains("JitterStrategy"),
            "{message}"
        );
    }
}
