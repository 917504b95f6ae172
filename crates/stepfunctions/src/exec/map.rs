//! Map states: inline (items from `ItemsPath`, iterations in this execution's history) and
//! distributed (items from an S3 `ItemReader`, batched by `ItemBatcher`, results written by a
//! `ResultWriter`; a map run whose iterations stay out of the parent's history). Both run the
//! processor here, at most `MaxConcurrency` at a time, within the tolerated failures.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::reader;
use super::states::{input_path, run_machine, Entered, Scope};
use super::{map_runs, query, Cursor, Run};
use crate::asl::{path, Failure};

type Outcome = (usize, Value, Result<Value, Failure>);

/// The cause given to iterations never run because another failed first.
const STOPPED: &str = "The iteration was stopped";

pub async fn run(
    run: &Arc<Run>,
    at: &Entered<'_>,
    input: &Value,
    context: &Value,
    cursor: &mut Cursor,
) -> Result<Value, Failure> {
    let state = at.state;
    let distributed = state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED";
    let jsonata = crate::asl::jsonata::is_jsonata(state);
    let effective = if jsonata { input.clone() } else { input_path(state, input)? };
    let items = match state.get("ItemReader") {
        Some(item_reader) => reader::read(run, state, item_reader, &effective, context).await?,
        None if jsonata => {
            let items = match state.get("Items") {
                Some(t) => query::payload(state, t, &effective, context, "Items")?,
                None => effective.clone(),
            };
            match items {
                Value::Array(items) => items,
                other => {
                    return Err(Failure::new(
                        crate::asl::jsonata::ERROR,
                        format!("The Items field must be a JSON array, not {other}"),
                    ))
                }
            }
        }
        None => {
            let items_path = state["ItemsPath"].as_str().unwrap_or("$");
            match path::select(&effective, items_path).map_err(|e| Failure::runtime(e.message()))? {
                Value::Array(items) => items,
                other => {
                    return Err(Failure::runtime(format!(
                        "Invalid path '{items_path}': The Map state's ItemsPath must reference a JSON array, not {other}"
                    )))
                }
            }
        }
    };
    let selector = state.get("ItemSelector").or_else(|| state.get("Parameters")).cloned();
    let mut inputs = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let mut item_context = context.clone();
        item_context["Map"] = json!({"Item": {"Index": index, "Value": item}});
        inputs.push(match &selector {
            Some(t) => query::payload(state, t, &effective, &item_context, "ItemSelector")?,
            None => item,
        });
    }
    let item_count = inputs.len();
    if let Some(batcher) = state.get("ItemBatcher") {
        inputs = reader::batch(inputs, state, batcher, &effective, context)?;
    }
    let total = inputs.len();
    let map_run = distributed.then(|| map_run_arn(run, at));
    match &map_run {
        Some(arn) => run.record(
            cursor,
            "MapRunStarted",
            Some(("mapRunStartedEventDetails", json!({"mapRunArn": arn}))),
        ),
        None => run.record(
            cursor,
            "MapStateStarted",
            Some(("mapStateStartedEventDetails", json!({"length": total}))),
        ),
    };
    let max_concurrency =
        query::number(state, "MaxConcurrency", &effective, context)?.and_then(|v| v.as_u64());
    let tolerated_count =
        query::number(state, "ToleratedFailureCount", &effective, context)?.and_then(|v| v.as_u64());
    let tolerated_percent =
        query::number(state, "ToleratedFailurePercentage", &effective, context)?.and_then(|v| v.as_f64());
    let max = map_runs::concurrency(max_concurrency.unwrap_or(0), distributed);
    let gate = Arc::new(tokio::sync::Semaphore::new(max));
    let live = map_run.as_ref().map(|arn| {
        let limits = map_runs::Limits { max_concurrency, tolerated_count, tolerated_percent };
        map_runs::started(run, arn, item_count, total, &limits);
        map_runs::Live::register(&run.engine, arn, gate.clone(), max)
    });
    let outcomes = iterate(run, at, inputs, *cursor, distributed, gate, live.clone()).await;
    // UpdateMapRun may have changed the thresholds while the items ran.
    let (tolerated_count, tolerated_percent) = match live.and_then(|live| live.finish(&run.engine)) {
        Some(updated) => updated,
        None => (tolerated_count, tolerated_percent),
    };
    let failures = outcomes.iter().filter(|(_, _, r)| r.is_err()).count() as u64;
    let tolerated = (tolerated_count.is_none() && tolerated_percent.is_none() && failures == 0)
        || tolerated_count.is_some_and(|c| failures <= c)
        || tolerated_percent.is_some_and(|p| (failures as f64) * 100.0 / (total.max(1) as f64) <= p);
    let failed_kind = if map_run.is_some() { "MapRunFailed" } else { "MapStateFailed" };
    if !tolerated {
        if let Some(arn) = &map_run {
            map_runs::finished(run, at, arn, &outcomes, item_count, false);
        }
        run.record(cursor, failed_kind, None);
        if tolerated_count.is_some() || tolerated_percent.is_some() {
            return Err(Failure::new(
                "States.ExceedToleratedFailureThreshold",
                "The specified tolerated failure threshold was exceeded",
            ));
        }
        let first = outcomes.into_iter().filter_map(|(_, _, r)| r.err()).find(|f| f.cause != STOPPED);
        return Err(first.unwrap_or_else(|| Failure::runtime("A Map iteration failed")));
    }
    let output = match (state.get("ResultWriter"), &map_run) {
        (Some(writer), Some(arn)) => {
            reader::write(run, state, writer, arn, &outcomes, &effective, context).await
        }
        _ => Ok(Value::Array(
            outcomes.iter().map(|(_, _, r)| r.clone().unwrap_or_else(|f| f.to_json())).collect(),
        )),
    };
    if let Some(arn) = &map_run {
        map_runs::finished(run, at, arn, &outcomes, item_count, output.is_ok());
    }
    let succeeded = if map_run.is_some() { "MapRunSucceeded" } else { "MapStateSucceeded" };
    run.record(cursor, if output.is_ok() { succeeded } else { failed_kind }, None);
    output
}

fn map_run_arn(run: &Run, at: &Entered<'_>) -> String {
    let machine = run.context["StateMachine"]["Name"].as_str().unwrap_or("machine");
    let label = at.state["Label"].as_str().unwrap_or(at.name);
    let account = run.arn.split(':').nth(4).unwrap_or("000000000000");
    format!("arn:aws:states:{}:{account}:mapRun:{machine}/{label}:{}", run.region, uuid::Uuid::new_v4())
}

/// Runs every input through the processor, `MaxConcurrency` at a time; the outcomes in order.
/// The first failure stops the others when no failure is tolerated.
async fn iterate(
    run: &Arc<Run>,
    at: &Entered<'_>,
    inputs: Vec<Value>,
    started: Cursor,
    distributed: bool,
    gate: Arc<tokio::sync::Semaphore>,
    live: Option<Arc<map_runs::Live>>,
) -> Vec<Outcome> {
    let state = at.state;
    let processor =
        Arc::new(state.get("ItemProcessor").or_else(|| state.get("Iterator")).cloned().unwrap_or_default());
    let tolerates =
        state.get("ToleratedFailureCount").is_some() || state.get("ToleratedFailurePercentage").is_some();
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut set = JoinSet::new();
    let total = inputs.len();
    for (index, item_input) in inputs.into_iter().enumerate() {
        let Ok(permit) = gate.clone().acquire_owned().await else { break };
        if !tolerates && failed.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let (run, processor, name, failed) =
            (run.clone(), processor.clone(), at.name.to_owned(), failed.clone());
        let variables = at.scope.variables();
        set.spawn(async move {
            let _permit = permit;
            let mut cursor = started;
            let details = json!({"name": name, "index": index});
            if !distributed {
                run.record(
                    &mut cursor,
                    "MapIterationStarted",
                    Some(("mapIterationStartedEventDetails", details.clone())),
                );
            }
            let extra = json!({"Map": {"Item": {"Index": index, "Value": item_input}}});
            let scope = Scope::new(false, extra, variables);
            let result = run_machine(&run, processor, item_input.clone(), &mut cursor, scope, None).await;
            if result.is_err() {
                failed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            if !distributed {
                let (kind, key) = match &result {
                    Ok(_) => ("MapIterationSucceeded", "mapIterationSucceededEventDetails"),
                    Err(_) => ("MapIterationFailed", "mapIterationFailedEventDetails"),
                };
                run.record(&mut cursor, kind, Some((key, details)));
            }
            (index, item_input, result)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let Ok(outcome) = joined else { continue };
        let failed = outcome.2.is_err();
        if let Some(live) = &live {
            live.done(failed);
        }
        let index = outcome.0;
        outcomes[index] = Some(outcome);
        if failed && !tolerates {
            set.abort_all();
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(index, o)| o.unwrap_or((index, Value::Null, Err(Failure::new("States.Runtime", STOPPED)))))
        .collect()
}
