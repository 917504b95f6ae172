//! States whose `QueryLanguage` is JSONata: `Arguments` instead of `InputPath`/`Parameters`,
//! `Output` instead of `ResultSelector`/`ResultPath`/`OutputPath`, `Assign` evaluated beside
//! `Output` with the variables as they were, `Condition` in Choice rules, and expressions in
//! `Seconds`, `Timestamp`, `Error`, `Cause`, `TimeoutSeconds` … Pass, Succeed, Fail, Choice and
//! Wait run here; Task, Parallel and Map share `flow` with JSONPath states.

use std::sync::Arc;

use serde_json::{json, Value};

use super::states::{context, Entered, Scope};
use super::{Cursor, Run, Step};
use crate::asl::jsonata::{self, States};
use crate::asl::{choice, template, Failure};

/// `$states` for a state that has only its input so far.
pub fn inputs<'a>(input: &'a Value, context: &'a Value) -> States<'a> {
    States { input, result: None, error_output: None, context }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}/{field}")
    }
}

/// `block`'s (a state's, a Choice rule's, a catcher's) `Output` (else `default`) and `Assign`,
/// both evaluated with the variables as they were before the variables are set.
pub fn finish(
    scope: &Scope,
    block: &Value,
    prefix: &str,
    states: &States<'_>,
    default: Value,
) -> Result<Value, Failure> {
    let assigned = match block.get("Assign") {
        Some(assign) => Some(jsonata::fill(assign, states, &join(prefix, "Assign"))?),
        None => None,
    };
    let output = match block.get("Output") {
        Some(output) => jsonata::fill(output, states, &join(prefix, "Output"))?,
        None => default,
    };
    if let Some(Value::Object(assigned)) = assigned {
        scope.variables.lock().unwrap_or_else(|p| p.into_inner()).extend(assigned);
    }
    Ok(output)
}

/// A payload template in either language: JSONPath's `.$` fields, or JSONata's `{% %}` strings.
pub fn payload(
    state: &Value,
    t: &Value,
    input: &Value,
    context: &Value,
    field: &str,
) -> Result<Value, Failure> {
    if jsonata::is_jsonata(state) {
        jsonata::fill(t, &inputs(input, context), field)
    } else {
        template::fill(t, input, context)
    }
}

/// A JSONata state's `Arguments` (its input without them).
pub fn arguments(state: &Value, input: &Value, context: &Value) -> Result<Value, Failure> {
    match state.get("Arguments") {
        Some(t) => jsonata::fill(t, &inputs(input, context), "Arguments"),
        None => Ok(input.clone()),
    }
}

/// A field that holds a number or a `{% %}` expression giving one (`TimeoutSeconds`, `Seconds`,
/// `MaxConcurrency` …); `None` when the state does not have it.
pub fn number(state: &Value, field: &str, input: &Value, context: &Value) -> Result<Option<Value>, Failure> {
    match state.get(field) {
        Some(Value::String(text)) if jsonata::expression(text).is_some() => {
            jsonata::fill(&Value::String(text.clone()), &inputs(input, context), field).map(Some)
        }
        other => Ok(other.cloned()),
    }
}

/// Prefixes a JSONata failure's cause with the state, as AWS words it.
pub fn located(at: &Entered<'_>, mut failure: Failure) -> Failure {
    if failure.error == jsonata::ERROR && !failure.cause.starts_with("An error occurred while executing") {
        failure.cause = format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
            at.name, at.entered_id, failure.cause
        );
    }
    failure
}

/// A JSONata catcher's output for `failure` (TestState's `CAUGHT_ERROR`): its `Output` with
/// `$states.errorOutput`, else the error itself.
pub fn caught(
    catcher: &Value,
    input: &Value,
    failure: &Failure,
    variables: serde_json::Map<String, Value>,
) -> Value {
    let error = failure.to_json();
    let context = json!({crate::asl::path::VARIABLES: variables});
    let states = States { error_output: Some(&error), ..inputs(input, &context) };
    let scope = Scope::new(false, json!({}), serde_json::Map::new());
    finish(&scope, catcher, "", &states, error.clone()).unwrap_or_else(|f| f.to_json())
}

/// The details of the `EvaluationFailed` event AWS records when a state's own JSONata fails.
pub fn evaluation_failed(state: &str, entered_id: i64, failure: &Failure) -> Option<Value> {
    let own = format!(
        "An error occurred while executing the state '{state}' (entered at the event id #{entered_id})."
    );
    if failure.error != jsonata::ERROR || !failure.cause.starts_with(&own) {
        return None;
    }
    let location = failure.cause.split("specified for the field '").nth(1).and_then(|r| r.split('\'').next());
    let mut details = json!({"state": state, "error": failure.error, "cause": failure.cause});
    if let Some(location) = location {
        details["location"] = json!(location);
    }
    Some(details)
}

/// Records the `EvaluationFailed` event when `failure` is the state's own JSONata failure, at the
/// point of failure: before a retry, a catcher or the execution's failure, as AWS records it.
pub fn record_evaluation_failed(run: &Run, at: &Entered<'_>, failure: &Failure, cursor: &mut Cursor) {
    if let Some(details) = evaluation_failed(at.name, at.entered_id, failure) {
        if run.keeps_events() {
            run.record(cursor, "EvaluationFailed", Some(("evaluationFailedEventDetails", details)));
        }
    }
}

pub async fn run_state(
    run: &Arc<Run>,
    kind: &str,
    at: Entered<'_>,
    input: Value,
    cursor: &mut Cursor,
) -> Step {
    let context = context(run, &at, 0);
    let states = inputs(&input, &context);
    let outcome = match kind {
        "Pass" => finish(at.scope, at.state, "", &states, input.clone()).map(|out| (out, at.next())),
        "Succeed" => finish(at.scope, at.state, "", &states, input.clone()).map(|out| (out, None)),
        "Fail" => Err(fail(at.state, &states)),
        "Choice" => choose(&at, &states),
        "Wait" => {
            let until = match at.resume.as_ref().and_then(|c| c["waitUntil"].as_i64()) {
                Some(until) => Ok(until),
                None => deadline(at.state, &states, at.entered),
            };
            match until {
                Ok(until) => {
                    if at.scope.top {
                        let variables = at.scope.variables();
                        run.checkpoint(
                            &json!({"state": at.name, "input": input, "waitUntil": until, "variables": variables}),
                        );
                    }
                    nimbus_api::clock::sleep_until(run.engine.clock.as_ref(), until).await;
                    finish(at.scope, at.state, "", &states, input.clone()).map(|out| (out, at.next()))
                }
                Err(f) => Err(f),
            }
        }
        _ => return super::flow::run_with_policies(run, kind, at, input, cursor).await,
    };
    outcome.map_err(|f| located(&at, f))
}

fn choose(at: &Entered<'_>, states: &States<'_>) -> Step {
    for (i, rule) in at.state["Choices"].as_array().into_iter().flatten().enumerate() {
        let field = format!("Choices[{i}]/Condition");
        let holds = match &rule["Condition"] {
            Value::Bool(b) => *b,
            Value::String(text) => jsonata::condition(text, states, &field)?,
            other => {
                return Err(Failure::new(jsonata::ERROR, format!("The Condition {other} is not a boolean")))
            }
        };
        if holds {
            let output = finish(at.scope, rule, &format!("Choices[{i}]"), states, states.input.clone())?;
            return Ok((output, rule["Next"].as_str().map(str::to_owned)));
        }
    }
    let Some(next) = at.state["Default"].as_str() else {
        return Err(Failure::new(
            "States.NoChoiceMatched",
            format!("No Choice Rules matched and no Default was specified in state '{}'", at.name),
        ));
    };
    let output = finish(at.scope, at.state, "", states, states.input.clone())?;
    Ok((output, Some(next.to_owned())))
}

fn deadline(state: &Value, states: &States<'_>, entered: i64) -> Result<i64, Failure> {
    if let Some(seconds) = number(state, "Seconds", states.input, states.context)? {
        let seconds = seconds.as_i64().filter(|s| *s >= 0).ok_or_else(|| {
            Failure::new(
                jsonata::ERROR,
                format!("The Seconds field must be a non-negative integer, not {seconds}"),
            )
        })?;
        return Ok(entered.saturating_add(seconds.saturating_mul(1000)));
    }
    if let Some(ts) = state.get("Timestamp") {
        let ts = jsonata::fill(ts, states, "Timestamp")?;
        return ts.as_str().and_then(choice::timestamp).ok_or_else(|| {
            Failure::new(
                jsonata::ERROR,
                format!("The Timestamp field must be an ISO-8601 extended offset date-time string, not {ts}"),
            )
        });
    }
    Ok(entered)
}

fn fail(state: &Value, states: &States<'_>) -> Failure {
    let field = |name: &str| -> Result<String, Failure> {
        match state.get(name) {
            None => Ok(String::new()),
            Some(t) => Ok(match jsonata::fill(t, states, name)? {
                Value::String(s) => s,
                other => other.to_string(),
            }),
        }
    };
    match (field("Error"), field("Cause")) {
        (Ok(error), Ok(cause)) => Failure::new(error, cause),
        (Err(f), _) | (_, Err(f)) => f,
    }
}
