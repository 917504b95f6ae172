//! The legacy parameters older code and some libraries still send: `Expected`,
//! `AttributeUpdates`, `KeyConditions`, `QueryFilter`, `ScanFilter` — turned into the same
//! conditions and updates the expressions make.

use serde_json::Value;

use crate::error::{validation, Result};
use crate::expr::{Action, Cmp, Cond, Elem, Operand, Update};
use crate::input::Input;
use crate::value::Av;

fn path(name: &str) -> Operand {
    Operand::Path(vec![Elem::Name(name.to_owned())])
}

fn values(spec: &Value) -> Result<Vec<Av>> {
    spec.get("AttributeValueList")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(Av::parse).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

/// One `{ComparisonOperator, AttributeValueList}` on attribute `name`.
fn condition(name: &str, spec: &Value) -> Result<Cond> {
    let op = spec.get("ComparisonOperator").and_then(Value::as_str).unwrap_or("");
    let list = values(spec)?;
    let arity = |n: usize| -> Result<()> {
        if list.len() != n {
            return Err(validation(format!(
                "One or more parameter values were invalid: Invalid number of argument(s) for the {op} ComparisonOperator"
            )));
        }
        Ok(())
    };
    let v = |i: usize| Operand::Value(list[i].clone());
    Ok(match op {
        "EQ" | "NE" | "LE" | "LT" | "GE" | "GT" => {
            arity(1)?;
            let cmp = match op {
                "EQ" => Cmp::Eq,
                "NE" => Cmp::Ne,
                "LE" => Cmp::Le,
                "LT" => Cmp::Lt,
                "GE" => Cmp::Ge,
                _ => Cmp::Gt,
            };
            Cond::Cmp(path(name), cmp, v(0))
        }
        "NOT_NULL" => Cond::Exists(vec![Elem::Name(name.to_owned())]),
        "NULL" => Cond::NotExists(vec![Elem::Name(name.to_owned())]),
        "CONTAINS" => {
            arity(1)?;
            Cond::Contains(path(name), v(0))
        }
        "NOT_CONTAINS" => {
            arity(1)?;
            Cond::And(Box::new(Cond::Exists(vec![Elem::Name(name.to_owned())])), Box::new(Cond::Not(Box::new(Cond::Contains(path(name), v(0))))))
        }
        "BEGINS_WITH" => {
            arity(1)?;
            Cond::BeginsWith(path(name), v(0))
        }
        "IN" => Cond::In(path(name), (0..list.len()).map(v).collect()),
        "BETWEEN" => {
            arity(2)?;
            Cond::Between(path(name), v(0), v(1))
        }
        other => return Err(validation(format!("1 validation error detected: Value '{other}' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"))),
    })
}

fn combine(conds: Vec<Cond>, or: bool) -> Option<Cond> {
    conds.into_iter().reduce(|a, b| {
        if or {
            Cond::Or(Box::new(a), Box::new(b))
        } else {
            Cond::And(Box::new(a), Box::new(b))
        }
    })
}

fn conditional_or(input: &Input) -> Result<bool> {
    Ok(input.choice("ConditionalOperator", &["AND", "OR"])? == Some("OR"))
}

/// `Expected` (PutItem, UpdateItem, DeleteItem).
pub fn expected(input: &Input) -> Result<Option<Cond>> {
    let Some(map) = input.object("Expected")? else { return Ok(None) };
    let mut conds = Vec::new();
    for (name, spec) in map {
        let cond = if spec.get("ComparisonOperator").is_some() {
            condition(name, spec)?
        } else {
            let exists = spec.get("Exists").and_then(Value::as_bool).unwrap_or(true);
            match (exists, spec.get("Value").filter(|v| !v.is_null())) {
                (true, Some(value)) => Cond::Cmp(path(name), Cmp::Eq, Operand::Value(Av::parse(value)?)),
                (false, None) => Cond::NotExists(vec![Elem::Name(name.to_owned())]),
                (true, None) => return Err(validation(format!("One or more parameter values were invalid: Value must be provided when Exists is true for Attribute: {name}"))),
                (false, Some(_)) => return Err(validation(format!("One or more parameter values were invalid: Value cannot be used when Exists is false for Attribute: {name}"))),
            }
        };
        conds.push(cond);
    }
    Ok(combine(conds, conditional_or(input)?))
}

/// `QueryFilter` / `ScanFilter`.
pub fn filter(input: &Input, member: &str) -> Result<Option<Cond>> {
    let Some(map) = input.object(member)? else { return Ok(None) };
    let conds = map.iter().map(|(name, spec)| condition(name, spec)).collect::<Result<Vec<_>>>()?;
    Ok(combine(conds, conditional_or(input)?))
}

/// `KeyConditions` (Query).
pub fn key_conditions(input: &Input) -> Result<Option<Cond>> {
    let Some(map) = input.object("KeyConditions")? else { return Ok(None) };
    let conds = map.iter().map(|(name, spec)| condition(name, spec)).collect::<Result<Vec<_>>>()?;
    Ok(combine(conds, false))
}

/// `AttributeUpdates` (UpdateItem): PUT, DELETE (a set's elements or the attribute), ADD.
pub fn attribute_updates(input: &Input) -> Result<Update> {
    let mut update = Update::default();
    let Some(map) = input.object("AttributeUpdates")? else { return Ok(update) };
    for (name, spec) in map {
        let target = vec![Elem::Name(name.clone())];
        let value = spec.get("Value").filter(|v| !v.is_null()).map(Av::parse).transpose()?;
        let action = spec.get("Action").and_then(Value::as_str).unwrap_or("PUT");
        update.actions.push(match (action, value) {
            ("PUT", Some(v)) => Action::Set(target, crate::expr::SetValue::Op(crate::expr::UOp::Value(v))),
            ("DELETE", None) => Action::Remove(target),
            ("DELETE", Some(v)) => Action::Delete(target, v),
            ("ADD", Some(v)) => Action::Add(target, v),
            _ => return Err(validation(format!("One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified: {name}"))),
        });
    }
    Ok(update)
}
