//! JSONata for states whose `QueryLanguage` is `JSONata`: `{% … %}` expressions in `Arguments`,
//! `Output`, `Assign`, `Items`, `Condition` and the other fields AWS lets hold one, evaluated with
//! `$states` (`input`, `result`, `errorOutput`, `context`) and the workflow's variables bound, and
//! the functions Step Functions adds (`$partition`, `$range`, `$hash`, `$random(seed)`, `$uuid`,
//! `$parse`; `$eval` is disabled as on AWS).
//!
//! The language itself is the `jsonata-core` crate (safe Rust, passes JSONata's 1,686 reference
//! tests), with a time and depth budget so no expression can hold the server.

use jsonata_core::ast::AstNode;
use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError, EvaluatorOptions, HostFnResult};
use jsonata_core::value::JValue;
use serde_json::{Map, Value};

use super::{path, Failure};

pub mod validate;

pub const ERROR: &str = "States.QueryEvaluationError";

/// The inside of a `{% … %}` string, if `text` is one.
pub fn expression(text: &str) -> Option<&str> {
    text.strip_prefix("{%").and_then(|t| t.strip_suffix("%}")).map(str::trim)
}

/// Whether a state (annotated by [`annotate`]) uses JSONata.
pub fn is_jsonata(state: &Value) -> bool {
    state.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata")
}

/// Writes the query language every state uses into it: its own, else the machine's (a state in a
/// Parallel branch or a Map's processor falls back to the machine's, not the enclosing state's).
pub fn annotate(machine: &mut Value) {
    let top = machine.get("QueryLanguage").and_then(Value::as_str).unwrap_or("JSONPath").to_owned();
    annotate_states(machine, &top);
}

fn annotate_states(machine: &mut Value, top: &str) {
    let Some(states) = machine.get_mut("States").and_then(Value::as_object_mut) else { return };
    for state in states.values_mut() {
        let Some(fields) = state.as_object_mut() else { continue };
        if !fields.contains_key("QueryLanguage") {
            fields.insert("QueryLanguage".into(), Value::String(top.to_owned()));
        }
        for branch in fields.get_mut("Branches").and_then(Value::as_array_mut).into_iter().flatten() {
            annotate_states(branch, top);
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(processor) = fields.get_mut(key) {
                annotate_states(processor, top);
            }
        }
    }
}

/// What `$states` holds while a field is evaluated.
pub struct States<'a> {
    pub input: &'a Value,
    pub result: Option<&'a Value>,
    pub error_output: Option<&'a Value>,
    /// The context object, with the variables the thread sees under [`path::VARIABLES`].
    pub context: &'a Value,
}

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

/// `template` with every `{% … %}` string replaced by its value; `field` names where it is
/// (`Output`, `Arguments/Payload`…) for error messages. One evaluator serves all its expressions.
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
        Value::String(text) => match expression(text) {
            Some(expr) => evaluate_with(expr, states, field, session),
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

/// One expression's value; nothing (undefined) is an error, as in AWS.
pub fn evaluate(expr: &str, states: &States<'_>, field: &str) -> Result<Value, Failure> {
    evaluate_with(expr, states, field, &mut None)
}

/// An evaluator with `$states`, the variables and Step Functions' functions bound, and the
/// budgets that keep an expression from holding the server.
fn evaluator(states: &States<'_>) -> Result<Evaluator, EvaluatorError> {
    let (bound, variables) = states.bindings();
    let mut context = Context::new();
    context.bind("states".into(), bound);
    for (name, value) in variables {
        context.bind(name, JValue::from(value));
    }
    let options = EvaluatorOptions {
        timeout_ms: Some(5_000),
        max_stack_depth: Some(1_000),
        max_sequence_length: Some(1_000_000),
        ..EvaluatorOptions::default()
    };
    let mut evaluator = Evaluator::with_options(context, options);
    functions(&mut evaluator)?;
    Ok(evaluator)
}

fn evaluate_with(
    expr: &str,
    states: &States<'_>,
    field: &str,
    session: &mut Option<Evaluator>,
) -> Result<Value, Failure> {
    let failed = |message: String| {
        Failure::new(
            ERROR,
            format!(
                "The JSONata expression '{expr}' specified for the field '{field}' threw an error: {message}"
            ),
        )
    };
    let ast = jsonata_core::parser::parse(expr).map_err(|e| failed(e.to_string()))?;
    let evaluator = match session {
        Some(evaluator) => evaluator,
        None => session.insert(evaluator(states).map_err(|e| failed(e.message().to_owned()))?),
    };
    let value = evaluator.evaluate(&ast, &JValue::Undefined).map_err(|e| failed(e.message().to_owned()))?;
    if value.is_undefined() {
        return Err(Failure::new(
            ERROR,
            format!("The JSONata expression '{expr}' specified for the field '{field}' returned nothing (undefined)."),
        ));
    }
    serde_json::to_value(&value).map_err(|e| failed(e.to_string()))
}

/// A `{% … %}` field that must give a boolean (a Choice rule's `Condition`).
pub fn condition(text: &str, states: &States<'_>, field: &str) -> Result<bool, Failure> {
    let value = match expression(text) {
        Some(expr) => evaluate(expr, states, field)?,
        None => serde_json::from_str(text).unwrap_or(Value::String(text.to_owned())),
    };
    value.as_bool().ok_or_else(|| {
        Failure::new(
            ERROR,
            format!("The Condition '{text}' in the field '{field}' returned a non-boolean value: {value}"),
        )
    })
}

/// Definition-time check: every `{% … %}` in `template` parses. `Err` holds AWS's message.
pub fn check(template: &Value, at: &str) -> Result<(), String> {
    match template {
        Value::String(text) => match expression(text) {
            Some(expr) => match jsonata_core::parser::parse(expr) {
                Ok(ast) => match top_level(&ast) {
                    Some(name) if name == "$$" => Err(format!(
                        "UNSUPPORTED_JSONATA_EXPRESSION: Reference to '$$' is not supported. at {at}"
                    )),
                    Some(name) => Err(format!(
                        "UNSUPPORTED_JSONATA_EXPRESSION: Reference to '{name}' at the top level is not supported. at {at}"
                    )),
                    None => Ok(()),
                },
                Err(e) => Err(format!("INVALID_JSONATA_EXPRESSION: {e} at {at}")),
            },
            None => Ok(()),
        },
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| check(v, &format!("{at}/{k}"))),
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| check(v, &format!("{at}[{i}]")))
        }
        _ => Ok(()),
    }
}

/// The first name an expression reads from the context item at its top level (there is none in
/// Step Functions: the input is `$states.input`), or `$$`. Names in later path steps, predicates
/// and sort terms read items the expression made, and are fine.
fn top_level(node: &AstNode) -> Option<String> {
    match node {
        AstNode::Name(name) => Some(name.clone()),
        AstNode::ParentVariable(_) => Some("$$".into()),
        AstNode::Variable(name) if name == "$" => Some("$$".into()),
        AstNode::Path { steps } => steps.first().and_then(|step| top_level(&step.node)),
        AstNode::Binary { lhs, rhs, .. } => top_level(lhs).or_else(|| top_level(rhs)),
        AstNode::Unary { operand, .. } => top_level(operand),
        AstNode::Function { args, .. } => first(args.iter()),
        AstNode::Call { procedure, args } => top_level(procedure).or_else(|| first(args.iter())),
        AstNode::Lambda { body, .. } => top_level(body),
        AstNode::Array(items) | AstNode::Block(items) | AstNode::ArrayGroup(items) => first(items.iter()),
        AstNode::Object(pairs) => first(pairs.iter().flat_map(|(k, v)| [k, v])),
        AstNode::Conditional { condition, then_branch, else_branch } => top_level(condition)
            .or_else(|| top_level(then_branch))
            .or_else(|| else_branch.as_deref().and_then(top_level)),
        AstNode::Sort { input, .. } => top_level(input),
        AstNode::ObjectTransform { input, .. } => top_level(input),
        AstNode::FunctionApplication(inner) => top_level(inner),
        _ => None,
    }
}

fn first<'a>(mut nodes: impl Iterator<Item = &'a AstNode>) -> Option<String> {
    nodes.find_map(top_level)
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
        if ((end - start) / step).abs() > 1_000_000.0 {
            return Err(argument_error("$range", "the range holds more than 1,000,000 values"));
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
        super::intrinsic::hash(text.as_bytes(), algorithm)
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
    evaluator.register_fn_override("eval", |_: &[JValue]| -> HostFnResult {
        Err(EvaluatorError::EvaluationError(
            "The function $eval is not supported in Step Functions; use $parse".into(),
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
