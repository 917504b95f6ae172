//! States with Retry and Catch: Task, Parallel and Map (inline).

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::states::{input_path, output_path, parameters, result_path, run_machine, Entered, Scope};
use super::{query, Cursor, Run, Step};
use crate::asl::jsonata::States;
use crate::asl::{matches, path, template, Failure};

pub async fn run_with_policies(
    run: &Arc<Run>,
    kind: &str,
    mut at: Entered<'_>,
    input: Value,
    cursor: &mut Cursor,
) -> Step {
    let state = at.state;
    let jsonata = crate::asl::jsonata::is_jsonata(state);
    let retriers = state["Retry"].as_array().cloned().unwrap_or_default();
    let mut counts = vec![0u32; retriers.len()];
    let mut retries = 0;
    loop {
        let context = super::states::context(run, &at, retries);
        let resume = at.resume.take();
        let result = match kind {
            "Task" if jsonata => {
                super::task::run(run, &at, input.clone(), &context, cursor, resume, &input).await
            }
            "Task" => match input_path(state, &input) {
                Ok(effective) => {
                    super::task::run(run, &at, effective, &context, cursor, resume, &input).await
                }
                Err(f) => Err(f),
            },
            "Parallel" => parallel(run, &at, &input, &context, cursor).await,
            "Map" => super::map::run(run, &at, &input, &context, cursor).await,
            other => Err(Failure::runtime(format!("Unknown state type {other}"))),
        };
        let failure = if jsonata {
            let finished = result.and_then(|r| {
                let states = States { result: Some(&r), ..query::inputs(&input, &context) };
                query::finish(at.scope, state, "", &states, r.clone())
            });
            match finished {
                Ok(output) => return Ok((output, at.next())),
                Err(failure) => {
                    let failure = query::located(&at, failure);
                    query::record_evaluation_failed(run, &at, &failure, cursor);
                    failure
                }
            }
        } else {
            let result = result.and_then(|r| match state.get("ResultSelector") {
                Some(selector) => template::fill(selector, &r, &context),
                None => Ok(r),
            });
            match result.and_then(|r| at.scope.assign(state, &r, &context).map(|()| r)) {
                Ok(result) => {
                    return Ok((output_path(state, result_path(state, input, result)?)?, at.next()))
                }
                Err(failure) => failure,
            }
        };
        if let Some(delay_ms) = retry_delay(&retriers, &mut counts, &failure.error) {
            retries += 1;
            run.commit();
            let until = run.engine.now().saturating_add(delay_ms);
            nimbus_api::clock::sleep_until(run.engine.clock.as_ref(), until).await;
            continue;
        }
        for (i, catcher) in state["Catch"].as_array().into_iter().flatten().enumerate() {
            let errors = catcher["ErrorEquals"].as_array().cloned().unwrap_or_default();
            if matches(&errors, &failure.error) && jsonata {
                let error = failure.to_json();
                let states = States { error_output: Some(&error), ..query::inputs(&input, &context) };
                let output = query::finish(at.scope, catcher, &format!("Catch[{i}]"), &states, error.clone())
                    .map_err(|f| {
                        let failure = query::located(&at, f);
                        query::record_evaluation_failed(run, &at, &failure, cursor);
                        failure
                    })?;
                return Ok((output, catcher["Next"].as_str().map(str::to_owned)));
            }
            if matches(&errors, &failure.error) {
                at.scope.assign(catcher, &failure.to_json(), &context)?;
                let output = match catcher.get("ResultPath") {
                    None => failure.to_json(),
                    Some(Value::Null) => input,
                    Some(p) => path::set(input, p.as_str().unwrap_or("$"), failure.to_json())
                        .map_err(|_| Failure::runtime("Unable to apply the Catch's ResultPath"))?,
                };
                return Ok((output, catcher["Next"].as_str().map(str::to_owned)));
            }
        }
        return Err(failure);
    }
}

/// The delay before the next attempt, if a retrier matches `error` and has attempts left.
/// The first matching retrier decides, as in AWS.
pub(crate) fn retry_delay(retriers: &[Value], counts: &mut [u32], error: &str) -> Option<i64> {
    let (i, retrier) = retriers
        .iter()
        .enumerate()
        .find(|(_, r)| matches(r["ErrorEquals"].as_array().map_or(&[][..], Vec::as_slice), error))?;
    let max = retrier["MaxAttempts"].as_u64().unwrap_or(3) as u32;
    if counts[i] >= max {
        return None;
    }
    let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
    let backoff = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
    let mut delay = interval * backoff.powi(counts[i] as i32);
    if let Some(cap) = retrier["MaxDelaySeconds"].as_f64() {
        delay = delay.min(cap);
    }
    if retrier["JitterStrategy"].as_str() == Some("FULL") {
        delay *= fastrand::f64();
    }
    counts[i] += 1;
    Some((delay * 1000.0).round() as i64)
}

async fn parallel(
    run: &Arc<Run>,
    at: &Entered<'_>,
    input: &Value,
    context: &Value,
    cursor: &mut Cursor,
) -> Result<Value, Failure> {
    let effective = if crate::asl::jsonata::is_jsonata(at.state) {
        query::arguments(at.state, input, context)?
    } else {
        parameters(at.state, &input_path(at.state, input)?, context)?
    };
    run.record(cursor, "ParallelStateStarted", None);
    let branches = at.state["Branches"].as_array().cloned().unwrap_or_default();
    let mut set = JoinSet::new();
    for (index, branch) in branches.into_iter().enumerate() {
        let (run, input, start, variables) = (run.clone(), effective.clone(), *cursor, at.scope.variables());
        set.spawn(async move {
            let mut cursor = start;
            let scope = Scope::new(false, json!({}), variables);
            (index, run_machine(&run, Arc::new(branch), input, &mut cursor, scope, None).await)
        });
    }
    let mut results = vec![Value::Null; set.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((index, Ok(output))) => results[index] = output,
            Ok((_, Err(failure))) => {
                set.abort_all();
                run.record(cursor, "ParallelStateFailed", None);
                return Err(failure);
            }
            Err(error) => return Err(Failure::runtime(format!("A branch stopped: {error}"))),
        }
    }
    run.record(cursor, "ParallelStateSucceeded", None);
    Ok(Value::Array(results))
}
