//! DynamoDB's expression language: condition, filter and key-condition expressions, update
//! expressions and projections, with `ExpressionAttributeNames`/`Values` substituted at parse
//! time (so that evaluation never looks them up) and AWS's messages for the usual mistakes.

mod eval;
mod lex;
mod parse;
mod update;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::error::{validation, Result};
use crate::value::Av;

pub use eval::{eval, resolve_path};
pub use update::{apply_update, parse_update, Action, SetValue, UOp, Update};

#[derive(Debug, Clone, PartialEq)]
pub enum Elem {
    Name(String),
    Index(usize),
}

pub type Path = Vec<Elem>;

#[derive(Debug, Clone)]
pub enum Operand {
    Path(Path),
    Value(Av),
    Size(Path),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub enum Cond {
    Or(Box<Cond>, Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Cmp(Operand, Cmp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
}

/// One request's `ExpressionAttributeNames` and `ExpressionAttributeValues`, and which of them
/// its expressions used (AWS refuses unused ones).
pub struct Ctx {
    names: HashMap<String, String>,
    values: HashMap<String, Av>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl Ctx {
    pub fn from_request(body: &serde_json::Map<String, Value>) -> Result<Ctx> {
        let mut names = HashMap::new();
        if let Some(Value::Object(map)) = body.get("ExpressionAttributeNames") {
            for (k, v) in map {
                let v = v.as_str().ok_or_else(|| validation("ExpressionAttributeNames must be strings"))?;
                names.insert(k.clone(), v.to_owned());
            }
        }
        let mut values = HashMap::new();
        if matches!(body.get("ExpressionAttributeValues"), Some(Value::Object(map)) if map.is_empty()) {
            return Err(validation("ExpressionAttributeValues must not be empty"));
        }
        if matches!(body.get("ExpressionAttributeNames"), Some(Value::Object(map)) if map.is_empty()) {
            return Err(validation("ExpressionAttributeNames must not be empty"));
        }
        if let Some(Value::Object(map)) = body.get("ExpressionAttributeValues") {
            for (k, v) in map {
                let parsed = Av::parse(v).map_err(|e| {
                    if e.code == "ValidationException" && !e.message.starts_with("ExpressionAttributeValues")
                    {
                        validation(format!(
                            "ExpressionAttributeValues contains invalid value: {} for key {k}",
                            e.message
                        ))
                    } else {
                        e
                    }
                })?;
                values.insert(k.clone(), parsed);
            }
        }
        let uses_expressions = [
            "ConditionExpression",
            "UpdateExpression",
            "KeyConditionExpression",
            "FilterExpression",
            "ProjectionExpression",
        ]
        .iter()
        .any(|m| body.get(*m).is_some_and(|v| !v.is_null()));
        if !uses_expressions {
            if !names.is_empty() {
                return Err(validation(
                    "ExpressionAttributeNames can only be specified when using expressions",
                ));
            }
            if !values.is_empty() {
                return Err(validation(
                    "ExpressionAttributeValues can only be specified when using expressions",
                ));
            }
        }
        Ok(Ctx { names, values, used_names: BTreeSet::new(), used_values: BTreeSet::new() })
    }

    /// AWS refuses names and values no expression of the request used.
    pub fn check_unused(&self) -> Result<()> {
        let unused: Vec<&String> = self
            .names
            .keys()
            .filter(|k| !self.used_names.contains(*k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unused.is_empty() {
            let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            return Err(validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                list.join(", ")
            )));
        }
        let unused: BTreeSet<&String> =
            self.values.keys().filter(|k| !self.used_values.contains(*k)).collect();
        if !unused.is_empty() {
            let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            return Err(validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                list.join(", ")
            )));
        }
        Ok(())
    }

    pub fn condition(&mut self, kind: &str, text: &str) -> Result<Cond> {
        parse::Parser::new(self, kind, text)?.condition_expression()
    }

    pub fn projection(&mut self, text: &str) -> Result<Vec<Path>> {
        parse::Parser::new(self, "ProjectionExpression", text)?.projection()
    }

    pub fn update(&mut self, text: &str) -> Result<Update> {
        parse_update(self, text)
    }
}

/// The top-level attribute names a projection keeps, then the projection applied.
pub fn project(item: &crate::value::Item, paths: &[Path]) -> crate::value::Item {
    let mut out = crate::value::Item::new();
    for path in paths {
        if let Some(value) = resolve_path(item, path) {
            insert_projected(&mut out, path, value.clone());
        }
    }
    out
}

fn insert_projected(out: &mut crate::value::Item, path: &Path, value: Av) {
    let Some(Elem::Name(first)) = path.first() else { return };
    if path.len() == 1 {
        out.insert(first.clone(), value);
        return;
    }
    // Nested: keep the structure down to the value (list elements in order of projection).
    let slot = out.entry(first.clone()).or_insert_with(|| match path[1] {
        Elem::Name(_) => Av::M(Default::default()),
        Elem::Index(_) => Av::L(Vec::new()),
    });
    insert_nested(slot, &path[1..], value);
}

fn insert_nested(slot: &mut Av, rest: &[Elem], value: Av) {
    match (&rest[0], slot) {
        (Elem::Name(name), Av::M(map)) => {
            if rest.len() == 1 {
                map.insert(name.clone(), value);
            } else {
                let next = map.entry(name.clone()).or_insert_with(|| match rest[1] {
                    Elem::Name(_) => Av::M(Default::default()),
                    Elem::Index(_) => Av::L(Vec::new()),
                });
                insert_nested(next, &rest[1..], value);
            }
        }
        (Elem::Index(_), Av::L(list)) => {
            if rest.len() == 1 {
                list.push(value);
            } else {
                let mut fresh = match rest[1] {
                    Elem::Name(_) => Av::M(Default::default()),
                    Elem::Index(_) => Av::L(Vec::new()),
                };
                insert_nested(&mut fresh, &rest[1..], value);
                list.push(fresh);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;

/// Whether two items hold the same attributes and values (sets in any order).
pub fn same_item(a: &crate::value::Item, b: &crate::value::Item) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| eval::equal(v, w)))
}

/// Every document path a condition reads.
pub fn paths_of(cond: &Cond, out: &mut Vec<Path>) {
    let operand = |op: &Operand, out: &mut Vec<Path>| match op {
        Operand::Path(p) | Operand::Size(p) => out.push(p.clone()),
        Operand::Value(_) => {}
    };
    match cond {
        Cond::Or(a, b) | Cond::And(a, b) => {
            paths_of(a, out);
            paths_of(b, out);
        }
        Cond::Not(a) => paths_of(a, out),
        Cond::Cmp(a, _, b) | Cond::BeginsWith(a, b) | Cond::Contains(a, b) => {
            operand(a, out);
            operand(b, out);
        }
        Cond::Between(a, b, c) => {
            operand(a, out);
            operand(b, out);
            operand(c, out);
        }
        Cond::In(a, list) => {
            operand(a, out);
            for op in list {
                operand(op, out);
            }
        }
        Cond::Exists(p) | Cond::NotExists(p) => out.push(p.clone()),
        Cond::Type(p, t) => {
            out.push(p.clone());
            operand(t, out);
        }
    }
}
