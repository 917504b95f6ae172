//! Walking a machine (or a branch) state by state, and the states that need no policies:
//! Pass, Wait, Choice, Succeed and Fail. Task, Parallel and Map are in `flow`.

use std::sync::Arc;

use std::sync::Mutex;

use serde_json::{json, Map, Value};

use super::{Cursor, Run, Step};
use crate::asl::{choice, intrinsic, path, template, Failure};
use crate::BoxFuture;

/// AWS's limit on a STANDARD execution's history: past it the execution fails.
const MAX_EVENTS: i64 = 25_000;

/// Where a thread of states runs: at the top of the execution (checkpointed), or inside a
/// Parallel branch or Map iteration (with `extra` context: `Map.Item`).
#[derive(Clone)]
pub struct Scope {
    pub top: bool,
    pub extra: Value,
    /// The variables this thread sees and assigns (`Assign`); a branch or iteration starts
    /// from a copy of its parent's.
    pub variables: Arc<Mutex<Map<String, Value>>>,
}

impl Scope {
    pub fn new(top: bool, extra: Value, variables: Map<String, Value>) -> Scope {
        Scope { top, extra, variables: Arc::new(Mutex::new(variables)) }
    }

    pub fn variables(&self) -> Map<String, Value> {
        self.variables.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Evaluates `block`'s `Assign` (`$` being `value`) with the variables as they were, then
    /// sets them all.
    pub fn assign(&self, block: &Value, value: &Value, context: &Value) -> Result<(), Failure> {
        let Some(assign) = block.get("Assign") else { return Ok(()) };
        let Value::Object(assigned) = template::fill(assign, value, context)? else {
            return Err(Failure::runtime("The value of 'Assign' must be an object"));
        };
        self.variables.lock().unwrap_or_else(|p| p.into_inner()).extend(assigned);
        Ok(())
    }
}

/// The context object for a state, with the variables its thread sees.
pub fn context(run: &Run, at: &Entered<'_>, retries: u32) -> Value {
    let mut context = run.context_for(at.name, at.entered, retries, &at.scope.extra);
    let variables = at.scope.variables();
    if !variables.is_empty() {
        context[path::VARIABLES] = Value::Object(variables);
    }
    context
}

/// Runs `machine` from `start` (its StartAt by default) until it ends; `resume` is the
/// checkpoint of the state that was running when nimbus stopped (not entered again).
pub fn run_machine<'a>(
    run: &'a Arc<Run>,
    machine: Arc<Value>,
    input: Value,
    cursor: &'a mut Cursor,
    scope: Scope,
    resume: Option<Value>,
) -> BoxFuture<'a, Result<Value, Failure>> {
    Box::pin(async move {
        let mut name = match &resume {
            Some(checkpoint) => checkpoint["state"].as_str().unwrap_or_default().to_owned(),
            None => machine["StartAt"].as_str().unwrap_or_default().to_owned(),
        };
        let mut input = input;
        // A redriven execution enters its failed state again, as a fresh one.
        let mut resume = resume.filter(|c| c["redrive"] != json!(true));
        loop {
            let Some(state) = machine["States"].get(&name).cloned() else {
                return Err(Failure::runtime(format!("The state '{name}' is not in the definition")));
            };
            let kind = state["Type"].as_str().unwrap_or("Pass").to_owned();
            if run.durable && run.last_event() >= MAX_EVENTS {
                return Err(Failure::runtime(format!(
                    "The execution reached the maximum number of history events ({MAX_EVENTS})."
                )));
            }
            let entered = run.engine.now();
            // An EXPRESS execution that logs nothing keeps no events: none are made.
            if resume.is_none() && run.keeps_events() {
                let details =
                    json!({"name": name, "input": input.to_string(), "inputDetails": {"truncated": false}});
                let checkpoint = (scope.top && run.durable)
                    .then(|| json!({"state": name, "input": input, "variables": scope.variables()}));
                run.record_with(
                    cursor,
                    &format!("{kind}StateEntered"),
                    Some(("stateEnteredEventDetails", details)),
                    checkpoint.as_ref(),
                );
            }
            let entered_id = *cursor;
            if scope.top {
                *run.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind.clone());
            }
            let at =
                |resume| Entered { name: &name, state: &state, entered, entered_id, scope: &scope, resume };
            let (output, next) = match run_state(run, &kind, at(resume.take()), input, cursor).await {
                Ok(step) => step,
                Err(failure) => {
                    // Task, Parallel and Map record it themselves, before their Retry and Catch.
                    if !matches!(kind.as_str(), "Task" | "Parallel" | "Map") {
                        super::query::record_evaluation_failed(run, &at(None), &failure, cursor);
                    }
                    return Err(failure);
                }
            };
            if scope.top {
                *run.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            let text = output.to_string();
            if text.len() > crate::asl::MAX_PAYLOAD {
                return Err(Failure::new("States.DataLimitExceeded", format!(
                    "The state/task '{name}' returned a result with a size exceeding the maximum number of bytes service limit."
                )));
            }
            if run.keeps_events() {
                let details = json!({"name": name, "output": text, "outputDetails": {"truncated": false}});
                run.record(cursor, &format!("{kind}StateExited"), Some(("stateExitedEventDetails", details)));
            }
            match next {
                Some(next) => {
                    name = next;
                    input = output;
                }
                None => return Ok(output),
            }
        }
    })
}

/// The state being run.
pub struct Entered<'a> {
    pub name: &'a str,
    pub state: &'a Value,
    pub entered: i64,
    /// The id of its `…StateEntered` event (named in JSONata failures).
    pub entered_id: i64,
    pub scope: &'a Scope,
    pub resume: Option<Value>,
}

impl Entered<'_> {
    pub fn next(&self) -> Option<String> {
        self.state["Next"].as_str().map(str::to_owned)
    }
}

/// One state on its own (TestState), without entering or exiting events.
pub async fn run_one(
    run: &Arc<Run>,
    name: &str,
    state: &Value,
    input: Value,
    variables: Map<String, Value>,
) -> Step {
    let kind = state["Type"].as_str().unwrap_or("Pass").to_owned();
    let scope = Scope::new(false, json!({}), variables);
    let at = Entered { name, state, entered: run.engine.now(), entered_id: 0, scope: &scope, resume: None };
    let mut cursor = 0;
    run_state(run, &kind, at, input, &mut cursor).await
}

async fn run_state(run: &Arc<Run>, kind: &str, at: Entered<'_>, input: Value, cursor: &mut Cursor) -> Step {
    if crate::asl::jsonata::is_jsonata(at.state) {
        return super::query::run_state(run, kind, at, input, cursor).await;
    }
    let context = context(run, &at, 0);
    match kind {
        "Pass" => {
            let effective = parameters(at.state, &input_path(at.state, &input)?, &context)?;
            let result = at.state.get("Result").cloned().unwrap_or(effective);
            at.scope.assign(at.state, &result, &context)?;
            Ok((output_path(at.state, result_path(at.state, input, result)?)?, at.next()))
        }
        "Succeed" => Ok((output_path(at.state, input_path(at.state, &input)?)?, None)),
        "Fail" => Err(fail(at.state, &input, &context)),
        "Choice" => {
            let effective = input_path(at.state, &input)?;
            let mut next = None;
            for rule in at.state["Choices"].as_array().into_iter().flatten() {
                if choice::evaluate(rule, &effective, &context)? {
                    at.scope.assign(rule, &effective, &context)?;
                    next = rule["Next"].as_str().map(str::to_owned);
                    break;
                }
            }
            if next.is_none() {
                at.scope.assign(at.state, &effective, &context)?;
            }
            let next = next.or_else(|| at.state["Default"].as_str().map(str::to_owned));
            let Some(next) = next else {
                return Err(Failure::new(
                    "States.NoChoiceMatched",
                    format!("No Choice Rules matched and no Default was specified in state '{}'", at.name),
                ));
            };
            Ok((output_path(at.state, effective)?, Some(next)))
        }
        "Wait" => {
            let effective = input_path(at.state, &input)?;
            let until = match at.resume.as_ref().and_then(|c| c["waitUntil"].as_i64()) {
                Some(until) => until,
                None => deadline(at.state, &effective, at.entered)?,
            };
            if at.scope.top {
                let variables = at.scope.variables();
                run.checkpoint(
                    &json!({"state": at.name, "input": input, "waitUntil": until, "variables": variables}),
                );
            }
            nimbus_api::clock::sleep_until(run.engine.clock.as_ref(), until).await;
            at.scope.assign(at.state, &effective, &context)?;
            Ok((output_path(at.state, effective)?, at.next()))
        }
        _ => super::flow::run_with_policies(run, kind, at, input, cursor).await,
    }
}

fn deadline(state: &Value, input: &Value, entered: i64) -> Result<i64, Failure> {
    if let Some(seconds) = state.get("Seconds") {
        return Ok(entered.saturating_add(seconds.as_i64().unwrap_or(0).max(0).saturating_mul(1000)));
    }
    if let Some(ts) = state.get("Timestamp").and_then(Value::as_str) {
        return choice::timestamp(ts).ok_or_else(|| Failure::runtime(format!("Invalid timestamp '{ts}'")));
    }
    if let Some(p) = state.get("SecondsPath").and_then(Value::as_str) {
        let value = path::select(input, p).map_err(|e| Failure::runtime(e.message()))?;
        let seconds = value.as_i64().filter(|s| *s >= 0).ok_or_else(|| {
            Failure::runtime(format!(
                "The SecondsPath parameter does not reference a valid non-negative integer value: {value}"
            ))
        })?;
        return Ok(entered.saturating_add(seconds.saturating_mul(1000)));
    }
    if let Some(p) = state.get("TimestampPath").and_then(Value::as_str) {
        let value = path::select(input, p).map_err(|e| Failure::runtime(e.message()))?;
        return value.as_str().and_then(choice::timestamp).ok_or_else(|| {
            Failure::runtime(format!("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {value}"))
        });
    }
    Ok(entered)
}

fn fail(state: &Value, input: &Value, context: &Value) -> Failure {
    let field = |literal: &str, dynamic: &str| -> Result<Option<String>, Failure> {
        if let Some(value) = state.get(literal).and_then(Value::as_str) {
            return Ok(Some(value.to_owned()));
        }
        let Some(p) = state.get(dynamic).and_then(Value::as_str) else { return Ok(None) };
        let value = if intrinsic::is_call(p) {
            intrinsic::evaluate(p, input, context).map_err(Failure::intrinsic)?
        } else {
            path::select(input, p).map_err(|e| Failure::runtime(e.message()))?
        };
        Ok(Some(value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())))
    };
    match (field("Error", "ErrorPath"), field("Cause", "CausePath")) {
        (Ok(error), Ok(cause)) => Failure::new(error.unwrap_or_default(), cause.unwrap_or_default()),
        (Err(f), _) | (_, Err(f)) => f,
    }
}

/// `InputPath`: `$` by default, `null` gives `{}`.
pub fn input_path(state: &Value, input: &Value) -> Result<Value, Failure> {
    match state.get("InputPath") {
        None => Ok(input.clone()),
        Some(Value::Null) => Ok(json!({})),
        Some(p) => select(input, p.as_str().unwrap_or("$"), "InputPath"),
    }
}

pub fn output_path(state: &Value, output: Value) -> Result<Value, Failure> {
    match state.get("OutputPath") {
        None => Ok(output),
        Some(Value::Null) => Ok(json!({})),
        Some(p) => select(&output, p.as_str().unwrap_or("$"), "OutputPath"),
    }
}

fn select(value: &Value, p: &str, field: &str) -> Result<Value, Failure> {
    path::select(value, p).map_err(|_| {
        Failure::runtime(format!(
            "Invalid path '{p}' : The JSONPath {p} specified for the field {field} could not be found in the input {value}"
        ))
    })
}

/// `Parameters` filled from the effective input (the input itself without them).
pub fn parameters(state: &Value, input: &Value, context: &Value) -> Result<Value, Failure> {
    match state.get("Parameters") {
        Some(t) => template::fill(t, input, context),
        None => Ok(input.clone()),
    }
}

/// `ResultPath` placing `result` into the state's raw input (`null` discards the result).
pub fn result_path(state: &Value, input: Value, result: Value) -> Result<Value, Failure> {
    match state.get("ResultPath") {
        None => Ok(result),
        Some(Value::Null) => Ok(input),
        Some(p) => {
            let p = p.as_str().unwrap_or("$");
            path::set(input, p, result).map_err(|_| {
                Failure::runtime(format!("Invalid path '{p}' : Unable to apply ResultPath {p} to the input"))
            })
        }
    }
}
