//! JSONata evaluated in this process with `jsonata-core`: `$states` and the variables bound, the
//! functions Step Functions adds, the budgets AWS draws (nesting depth, sequence length) and the
//! values AWS gives for what JSON cannot hold (`1/0` is `"Infinity"`). Nimbus runs this inside a
//! worker process (`workers`), so what no budget catches (memory, a stack overflow while dropping a
//! deep value) ends the worker, not the server.

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError, EvaluatorOptions, HostFnResult};
use jsonata_core::value::JValue;
use serde_json::{Map, Number, Value};

use super::{States, ERROR};
use crate::asl::{path, Failure};

/// How long one expression may run (jsonata-core's own clock, D1012).
pub const TIMEOUT_MS: u64 = 5_000;
/// Evaluation levels one expression may nest. AWS accepts 99 nested parentheses or brackets, a
/// chain of 100 additions and 31 levels of a non-tail recursive call (`1 + $f($x - 1)`), and
/// refuses one more of each; jsonata-core counts levels so that this value draws the line at the
/// same places (a chain of 99 `~>` is the one shape it refuses one level early; see the tests).
pub const MAX_DEPTH: usize = 99;
/// The longest sequence AWS builds: `[1..873782]` evaluates, one more element is refused as over
/// its memory limit.
pub const MAX_SEQUENCE: usize = 873_782;

/// AWS's causes for the limits it draws.
pub const MEMORY_LIMIT: &str =
    "Expression evaluation memory limit exceeded: Check for excessive memory usage";
pub const STACK_LIMIT: &str =
    "Stack overflow error: Check for non-terminating recursive function. Consider rewriting as tail-recursive";

impl States<'_> {
    fn bindings(&self) -> (JValue, Map<String, Value>) {
        let mut context = self.context.clone();
        let variables = match context.as_object_mut().and_then(|c| c.remove(path::VARIABLES)) {
            Some(Value::Object(v)) => v,
            _ => Map::new(),
        };
        let mut states = Map::new();
        states.insert("input".into(), self.input.clone());
        states.insert("context".into(), context);
        if let Some(result) = self.result {
            states.insert("result".into(), result.clone());
        }
        if let Some(error) = self.error_output {
            states.insert("errorOutput".into(), error.clone());
        }
        (JValue::from(Value::Object(states)), variables)
    }
}

/// `template` with every `{% … %}` string replaced by its value; one evaluator serves all its
/// expressions.
pub fn fill(template: &Value, states: &States<'_>, field: &str) -> Result<Value, Failure> {
    fill_with(template, states, field, &mut None)
}

fn fill_with(
    template: &Value,
    states: &States<'_>,
    field: &str,
    session: &mut Option<Evaluator>,
) -> Result<Value, Failure> {
    match template {
        Value::String(text) => match super::expression(text) {
            Some(expr) => evaluate(expr, states, field, session),
            None => Ok(template.clone()),
        },
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                out.insert(key.clone(), fill_with(value, states, &format!("{field}/{key}"), session)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| fill_with(item, states, &format!("{field}[{i}]"), session))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// The cause AWS gives when an expression throws: JSONata's own errors after a full stop, the
/// limits AWS draws after a colon.
pub fn threw(expr: &str, field: &str, message: &str) -> Failure {
    let message = if message.starts_with("D1011") || message.starts_with("U1001") {
        format!(": {STACK_LIMIT}")
    } else if message.starts_with("D2015") {
        format!(": {MEMORY_LIMIT}")
    } else if message == MEMORY_LIMIT || message == STACK_LIMIT {
        format!(": {message}")
    } else {
        format!(". {message}")
    };
    Failure::new(
        ERROR,
        format!("The JSONata expression '{expr}' specified for the field '{field}' threw an error during evaluation{message}"),
    )
}

fn evaluate(
    expr: &str,
    states: &States<'_>,
    field: &str,
    session: &mut Option<Evaluator>,
) -> Result<Value, Failure> {
    let failed = |message: &str| threw(expr, field, message);
    let ast = jsonata_core::parser::parse(expr).map_err(|e| failed(&e.to_string()))?;
    let evaluator = match session {
        Some(evaluator) => evaluator,
        None => session.insert(evaluator(states).map_err(|e| failed(e.message()))?),
    };
    let value = evaluator.evaluate(&ast, &JValue::Undefined).map_err(|e| failed(e.message()))?;
    if value.is_undefined() {
        return Err(Failure::new(
            ERROR,
            format!("The JSONata expression '{expr}' specified for the field '{field}' returned nothing (undefined)."),
        ));
    }
    to_json(&value, 0).ok_or_else(|| failed(STACK_LIMIT))
}

/// Levels a value may nest: as deep as the server reads JSON (serde_json's limit), so that no
/// walk over a value overflows a stack.
const MAX_NESTING: usize = 128;

/// A JSONata value as JSON. JSON has no non-finite numbers: AWS writes them as the strings
/// JavaScript names them by (`[1/0]` gives `["Infinity"]`, `0/0` gives `"NaN"`). Functions are
/// `""`, as `JSON.stringify`'s replacer in jsonata-js makes them. `None` past [`MAX_NESTING`].
pub fn to_json(value: &JValue, depth: usize) -> Option<Value> {
    if depth > MAX_NESTING {
        return None;
    }
    Some(match value {
        JValue::Null | JValue::Undefined => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) if n.is_nan() => Value::String("NaN".into()),
        JValue::Number(n) if n.is_infinite() => {
            Value::String(if *n > 0.0 { "Infinity" } else { "-Infinity" }.into())
        }
        JValue::Number(n) if n.fract() == 0.0 && *n >= i64::MIN as f64 && *n < i64::MAX as f64 => {
            Value::Number((*n as i64).into())
        }
        JValue::Number(n) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(items) => {
            Value::Array(items.iter().map(|v| to_json(v, depth + 1)).collect::<Option<_>>()?)
        }
        JValue::Object(fields) => Value::Object(
            fields.iter().map(|(k, v)| Some((k.clone(), to_json(v, depth + 1)?))).collect::<Option<_>>()?,
        ),
        _ => Value::String(String::new()),
    })
}

/// An evaluator with `$states`, the variables and Step Functions' functions bound, and AWS's
/// budgets.
fn evaluator(states: &States<'_>) -> Result<Evaluator, EvaluatorError> {
    let (bound, variables) = states.bindings();
    let mut context = Context::new();
    context.bind("states".into(), bound);
    for (name, value) in variables {
        context.bind(name, JValue::from(value));
    }
    let options = EvaluatorOptions {
        timeout_ms: Some(TIMEOUT_MS),
        max_stack_depth: Some(MAX_DEPTH),
        max_sequence_length: Some(MAX_SEQUENCE),
        ..EvaluatorOptions::default()
    };
    let mut evaluator = Evaluator::with_options(context, options);
    functions(&mut evaluator)?;
    Ok(evaluator)
}

fn argument_error(name: &str, message: &str) -> EvaluatorError {
    EvaluatorError::TypeError(format!("{name}: {message}"))
}

fn number(name: &str, args: &[JValue], i: usize) -> Result<f64, EvaluatorError> {
    args.get(i)
        .and_then(JValue::as_f64)
        .ok_or_else(|| argument_error(name, &format!("argument {} must be a number", i + 1)))
}

/// The functions Step Functions adds to JSONata's library.
fn functions(evaluator: &mut Evaluator) -> Result<(), EvaluatorError> {
    evaluator.register_fn("partition", |args: &[JValue]| -> HostFnResult {
        let Some(items) = args.first().and_then(JValue::as_array) else {
            return Err(argument_error("$partition", "argument 1 must be an array"));
        };
        let size = number("$partition", args, 1)?.trunc();
        if size < 1.0 || items.is_empty() {
            return Ok(JValue::Undefined);
        }
        let chunks = items.chunks(size as usize).map(|c| JValue::array(c.to_vec())).collect();
        Ok(JValue::array(chunks))
    })?;
    evaluator.register_fn("range", |args: &[JValue]| -> HostFnResult {
        let (start, end) = (number("$range", args, 0)?.trunc(), number("$range", args, 1)?.trunc());
        let Some(step) = args.get(2).and_then(JValue::as_f64).map(f64::trunc) else {
            return Ok(JValue::Undefined);
        };
        if step == 0.0 || (end - start) * step < 0.0 {
            return Ok(JValue::Undefined);
        }
        // AWS has no cap of its own on `$range`: its memory limit is what stops a long one.
        if ((end - start) / step).abs() >= MAX_SEQUENCE as f64 {
            return Err(EvaluatorError::EvaluationError(MEMORY_LIMIT.into()));
        }
        let mut values = Vec::new();
        let mut v = start;
        while (step > 0.0 && v <= end) || (step < 0.0 && v >= end) {
            values.push(JValue::from(v));
            v += step;
        }
        Ok(if values.len() == 1 { values.remove(0) } else { JValue::array(values) })
    })?;
    evaluator.register_fn("hash", |args: &[JValue]| -> HostFnResult {
        let Some(text) = args.first().and_then(JValue::as_str) else {
            return Err(argument_error("$hash", "argument 1 must be a string"));
        };
        let Some(algorithm) = args.get(1).and_then(JValue::as_str) else { return Ok(JValue::Undefined) };
        crate::asl::intrinsic::hash(text.as_bytes(), algorithm)
            .map(JValue::from)
            .map_err(|m| argument_error("$hash", &m))
    })?;
    evaluator.register_fn("uuid", |_: &[JValue]| -> HostFnResult {
        Ok(JValue::from(uuid::Uuid::new_v4().to_string()))
    })?;
    evaluator.register_fn("parse", |args: &[JValue]| -> HostFnResult {
        let Some(text) = args.first().and_then(JValue::as_str) else {
            return Err(argument_error("$parse", "argument 1 must be a string"));
        };
        serde_json::from_str::<Value>(text)
            .map(JValue::from)
            .map_err(|e| argument_error("$parse", &format!("the string is not JSON: {e}")))
    })?;
    evaluator.register_fn_override("random", |args: &[JValue]| -> HostFnResult {
        Ok(JValue::from(match args.first().and_then(JValue::as_f64) {
            Some(seed) => fastrand::Rng::with_seed(seed as i64 as u64).f64(),
            None => fastrand::f64(),
        }))
    })?;
    // AWS leaves `$eval` unbound: calling it is calling nothing.
    evaluator.register_fn_override("eval", |_: &[JValue]| -> HostFnResult {
        Err(EvaluatorError::TypeError("T1006: Attempted to invoke a non-function".into()))
    })?;
    Ok(())
}
