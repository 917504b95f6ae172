//! JSONata for states whose `QueryLanguage` is `JSONata`: `{% … %}` expressions in `Arguments`,
//! `Output`, `Assign`, `Items`, `Condition` and the other fields AWS lets hold one, evaluated with
//! `$states` (`input`, `result`, `errorOutput`, `context`) and the workflow's variables bound, and
//! the functions Step Functions adds (`$partition`, `$range`, `$hash`, `$random(seed)`, `$uuid`,
//! `$parse`; `$eval` is disabled as on AWS).
//!
//! The language itself is the `jsonata-core` crate (safe Rust, passes JSONata's 1,686 reference
//! tests), run in `eval` with AWS's budgets, inside worker processes (`workers`) whose memory,
//! CPU and time are bounded, so no expression can exhaust or hold the server.

use jsonata_core::ast::AstNode;
use serde_json::Value;

use super::Failure;

pub mod eval;
pub mod validate;
pub mod workers;

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

/// `template` with every `{% … %}` string replaced by its value; `field` names where it is
/// (`Output`, `Arguments/Payload`…) for error messages. Evaluated by a worker process when nimbus
/// runs them (see `workers`), else here.
pub fn fill(template: &Value, states: &States<'_>, field: &str) -> Result<Value, Failure> {
    workers::fill(template, states, field)
}

/// A `{% … %}` field that must give a boolean (a Choice rule's `Condition`).
pub fn condition(text: &str, states: &States<'_>, field: &str) -> Result<bool, Failure> {
    let value = match expression(text) {
        Some(_) => fill(&Value::String(text.to_owned()), states, field)?,
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

#[cfg(test)]
mod tests;
