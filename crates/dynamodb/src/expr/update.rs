//! Update expressions: `SET` (with `+`, `-`, `if_not_exists`, `list_append`), `REMOVE`, `ADD`
//! and `DELETE`, parsed once and applied to a copy of the item; every right-hand side reads the
//! item as it was before the update, as on AWS.

use super::lex::Tok;
use super::parse::{long_type, Parser};
use super::{resolve_path, Ctx, Elem, Path};
use crate::error::{validation, Result};
use crate::value::{Av, Item};

#[derive(Debug, Clone)]
pub enum Action {
    Set(Path, SetValue),
    Remove(Path),
    Add(Path, Av),
    Delete(Path, Av),
}

#[derive(Debug, Clone)]
pub enum SetValue {
    Op(UOp),
    Plus(UOp, UOp),
    Minus(UOp, UOp),
}

#[derive(Debug, Clone)]
pub enum UOp {
    Path(Path),
    Value(Av),
    IfNotExists(Path, Box<UOp>),
    ListAppend(Box<UOp>, Box<UOp>),
}

#[derive(Debug, Clone, Default)]
pub struct Update {
    pub actions: Vec<Action>,
}

impl Update {
    /// Only removals (`REMOVE`, `DELETE`): on AWS such an update of an absent item creates
    /// nothing (an empty update, though, creates the item).
    pub fn only_removes(&self) -> bool {
        !self.actions.is_empty()
            && self.actions.iter().all(|a| matches!(a, Action::Remove(_) | Action::Delete(..)))
    }

    /// The paths the update writes (for key checks).
    pub fn targets(&self) -> impl Iterator<Item = &Path> {
        self.actions.iter().map(|a| match a {
            Action::Set(p, _) | Action::Remove(p) | Action::Add(p, _) | Action::Delete(p, _) => p,
        })
    }
}

pub fn parse_update(ctx: &mut Ctx, text: &str) -> Result<Update> {
    let mut p = Parser::new(ctx, "UpdateExpression", text)?;
    let mut update = Update::default();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let clause = match p.peek() {
            Tok::Eof if !seen.is_empty() => break,
            Tok::Word(w) if ["SET", "REMOVE", "ADD", "DELETE"].contains(&w.to_ascii_uppercase().as_str()) => {
                w.to_ascii_uppercase()
            }
            _ => return Err(p.error()),
        };
        if seen.contains(&clause) {
            return Err(p.invalid(format!(
                "The \"{clause}\" section can only be used once in an update expression;"
            )));
        }
        p.next();
        seen.push(clause.clone());
        loop {
            let path = p.path()?;
            let action = match clause.as_str() {
                "SET" => {
                    p.expect("=")?;
                    let first = uop(&mut p)?;
                    let value = if p.eat("+") {
                        SetValue::Plus(first, uop(&mut p)?)
                    } else if p.eat("-") {
                        SetValue::Minus(first, uop(&mut p)?)
                    } else {
                        SetValue::Op(first)
                    };
                    Action::Set(path, value)
                }
                "REMOVE" => Action::Remove(path),
                kind => {
                    let value = p.value()?;
                    let fits = match kind {
                        "ADD" => matches!(value, Av::N(_) | Av::Ss(_) | Av::Ns(_) | Av::Bs(_)),
                        _ => matches!(value, Av::Ss(_) | Av::Ns(_) | Av::Bs(_)),
                    };
                    if !fits {
                        return Err(p.invalid(format!(
                            "Incorrect operand type for operator or function; operator: {kind}, operand type: {}, typeSet: ALLOWED_FOR_{kind}_OPERAND",
                            type_word(&value)
                        )));
                    }
                    if kind == "ADD" {
                        Action::Add(path, value)
                    } else {
                        Action::Delete(path, value)
                    }
                }
            };
            update.actions.push(action);
            if !p.eat(",") {
                break;
            }
        }
    }
    let targets: Vec<&Path> = update.targets().collect();
    for (i, a) in targets.iter().enumerate() {
        for b in &targets[i + 1..] {
            let n = a.len().min(b.len());
            if a[..n] == b[..n] {
                return Err(validation(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [{}], path two: [{}]",
                    elems(a), elems(b)
                )));
            }
        }
    }
    Ok(update)
}

fn elems(path: &Path) -> String {
    path.iter()
        .map(|e| match e {
            Elem::Name(n) => n.clone(),
            Elem::Index(i) => format!("[{i}]"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_word(value: &Av) -> &'static str {
    match value {
        Av::S(_) => "STRING",
        Av::N(_) => "NUMBER",
        Av::B(_) => "BINARY",
        Av::Bool(_) => "BOOLEAN",
        Av::Null => "NULL",
        Av::M(_) => "MAP",
        Av::L(_) => "LIST",
        Av::Ss(_) => "STRING SET",
        Av::Ns(_) => "NUMBER SET",
        Av::Bs(_) => "BINARY SET",
    }
}

fn uop(p: &mut Parser<'_>) -> Result<UOp> {
    match p.peek().clone() {
        Tok::Value(_) => Ok(UOp::Value(p.value()?)),
        Tok::Word(w) if p.peek_at(1) == &Tok::Sym("(") => {
            p.next();
            p.next();
            p.deeper()?;
            let op = match w.as_str() {
                "if_not_exists" => {
                    let path = p.path()?;
                    p.expect(",")?;
                    UOp::IfNotExists(path, Box::new(uop(p)?))
                }
                "list_append" => {
                    let a = uop(p)?;
                    p.expect(",")?;
                    UOp::ListAppend(Box::new(a), Box::new(uop(p)?))
                }
                other => return Err(p.invalid(format!("Invalid function name; function: {other}"))),
            };
            p.expect(")")?;
            p.depth -= 1;
            Ok(op)
        }
        _ => Ok(UOp::Path(p.path()?)),
    }
}

fn bad_type() -> crate::error::DdbError {
    validation("An operand in the update expression has an incorrect data type")
}

fn eval_uop(item: &Item, op: &UOp) -> Result<Option<Av>> {
    Ok(match op {
        UOp::Value(v) => Some(v.clone()),
        UOp::Path(path) => {
            let value = resolve_path(item, path).cloned();
            if value.is_none() {
                return Err(validation(
                    "The provided expression refers to an attribute that does not exist in the item",
                ));
            }
            value
        }
        UOp::IfNotExists(path, default) => match resolve_path(item, path) {
            Some(v) => Some(v.clone()),
            None => eval_uop(item, default)?,
        },
        UOp::ListAppend(a, b) => match (eval_uop(item, a)?, eval_uop(item, b)?) {
            (Some(Av::L(mut x)), Some(Av::L(y))) => {
                x.extend(y);
                Some(Av::L(x))
            }
            (Some(x), Some(y)) => {
                let wrong = if matches!(x, Av::L(_)) { y } else { x };
                return Err(validation(format!(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append, operand type: {}",
                    long_type(&wrong)
                )));
            }
            _ => None,
        },
    })
}

/// The item after `update`; `item` is the item before (keys only when it did not exist).
pub fn apply_update(item: &Item, update: &Update) -> Result<Item> {
    let mut out = item.clone();
    let mut removes: Vec<&Path> = Vec::new();
    for action in &update.actions {
        match action {
            Action::Set(path, value) => {
                let value = match value {
                    SetValue::Op(op) => eval_uop(item, op)?,
                    SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
                        match (eval_uop(item, a)?, eval_uop(item, b)?) {
                            (Some(Av::N(x)), Some(Av::N(y))) => {
                                let y = if matches!(value, SetValue::Minus(..)) { y.neg() } else { y };
                                Some(Av::N(x.add(&y)?))
                            }
                            _ => return Err(bad_type()),
                        }
                    }
                };
                if let Some(value) = value {
                    set_path(&mut out, path, value)?;
                }
            }
            Action::Remove(path) => removes.push(path),
            Action::Add(path, value) => {
                let new = match (resolve_path(item, path), value) {
                    (None, v) => v.clone(),
                    (Some(Av::N(x)), Av::N(y)) => Av::N(x.add(y)?),
                    (Some(Av::Ss(x)), Av::Ss(y)) => Av::Ss(union(x, y)),
                    (Some(Av::Ns(x)), Av::Ns(y)) => Av::Ns(union(x, y)),
                    (Some(Av::Bs(x)), Av::Bs(y)) => Av::Bs(union(x, y)),
                    _ => return Err(bad_type()),
                };
                set_path(&mut out, path, new)?;
            }
            Action::Delete(path, value) => {
                let new = match (resolve_path(item, path), value) {
                    (None, _) => continue,
                    (Some(Av::Ss(x)), Av::Ss(y)) => Av::Ss(minus(x, y)),
                    (Some(Av::Ns(x)), Av::Ns(y)) => Av::Ns(minus(x, y)),
                    (Some(Av::Bs(x)), Av::Bs(y)) => Av::Bs(minus(x, y)),
                    _ => return Err(bad_type()),
                };
                let empty = matches!(&new, Av::Ss(s) if s.is_empty())
                    || matches!(&new, Av::Ns(s) if s.is_empty())
                    || matches!(&new, Av::Bs(s) if s.is_empty());
                if empty {
                    removes.push(path);
                } else {
                    set_path(&mut out, path, new)?;
                }
            }
        }
    }
    // List elements removed from the highest index down, so that indexes mean the old list.
    removes.sort_by(|a, b| b.cmp_index(a));
    for path in removes {
        remove_path(&mut out, path);
    }
    Ok(out)
}

trait IndexOrder {
    fn cmp_index(&self, other: &Self) -> std::cmp::Ordering;
}

impl IndexOrder for &Path {
    fn cmp_index(&self, other: &Self) -> std::cmp::Ordering {
        match (self.last(), other.last()) {
            (Some(Elem::Index(a)), Some(Elem::Index(b))) => a.cmp(b),
            _ => std::cmp::Ordering::Equal,
        }
    }
}

fn union<T: Clone + PartialEq>(x: &[T], y: &[T]) -> Vec<T> {
    let mut out = x.to_vec();
    for v in y {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

fn minus<T: Clone + PartialEq>(x: &[T], y: &[T]) -> Vec<T> {
    x.iter().filter(|v| !y.contains(v)).cloned().collect()
}

fn invalid_path() -> crate::error::DdbError {
    validation("The document path provided in the update expression is invalid for update")
}

fn set_path(item: &mut Item, path: &Path, value: Av) -> Result<()> {
    let Some(Elem::Name(first)) = path.first() else { return Err(invalid_path()) };
    if path.len() == 1 {
        item.insert(first.clone(), value);
        return Ok(());
    }
    let mut current = item.get_mut(first).ok_or_else(invalid_path)?;
    for (i, elem) in path[1..].iter().enumerate() {
        let last = i + 2 == path.len();
        match (elem, current) {
            (Elem::Name(name), Av::M(map)) => {
                if last {
                    map.insert(name.clone(), value);
                    return Ok(());
                }
                current = map.get_mut(name).ok_or_else(invalid_path)?;
            }
            (Elem::Index(index), Av::L(list)) => {
                if last {
                    if *index < list.len() {
                        list[*index] = value;
                    } else {
                        list.push(value);
                    }
                    return Ok(());
                }
                current = list.get_mut(*index).ok_or_else(invalid_path)?;
            }
            _ => return Err(invalid_path()),
        }
    }
    Ok(())
}

fn remove_path(item: &mut Item, path: &Path) {
    let Some(Elem::Name(first)) = path.first() else { return };
    if path.len() == 1 {
        item.remove(first);
        return;
    }
    let Some(mut current) = item.get_mut(first) else { return };
    for (i, elem) in path[1..].iter().enumerate() {
        let last = i + 2 == path.len();
        match (elem, current) {
            (Elem::Name(name), Av::M(map)) => {
                if last {
                    map.remove(name);
                    return;
                }
                match map.get_mut(name) {
                    Some(next) => current = next,
                    None => return,
                }
            }
            (Elem::Index(index), Av::L(list)) => {
                if last {
                    if *index < list.len() {
                        list.remove(*index);
                    }
                    return;
                }
                match list.get_mut(*index) {
                    Some(next) => current = next,
                    None => return,
                }
            }
            _ => return,
        }
    }
}
