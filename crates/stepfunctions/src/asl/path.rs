//! JSONPath as the States Language uses it: `$`-rooted paths with `.name`, `['name']`, `[n]`,
//! `[*]`, `[a:b]` and `..name`; reference paths (definite: no wildcards) for `ResultPath`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>),
    Descend(String),
}

/// Why a path could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum PathError {
    /// The path is not valid JSONPath.
    Invalid(String),
    /// Nothing in the value at the path (`$['missing']` in AWS's words).
    NoResults(String),
}

impl PathError {
    pub fn message(&self) -> String {
        match self {
            PathError::Invalid(path) => format!("Invalid path '{path}'"),
            PathError::NoResults(path) => {
                format!("Invalid path '{path}' : No results for path: {}", bracketed(path))
            }
        }
    }
}

/// AWS's way of echoing a path back: `$.a.b[0]` → `$['a']['b'][0]`.
fn bracketed(path: &str) -> String {
    let Ok(steps) = parse(path) else { return path.to_owned() };
    let mut out = String::from("$");
    for step in steps {
        match step {
            Step::Field(name) => out.push_str(&format!("['{name}']")),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Wildcard => out.push_str("[*]"),
            Step::Slice(a, b) => out.push_str(&format!(
                "[{}:{}]",
                a.map(|a| a.to_string()).unwrap_or_default(),
                b.map(|b| b.to_string()).unwrap_or_default()
            )),
            Step::Descend(name) => out.push_str(&format!("..['{name}']")),
        }
    }
    out
}

fn parse(path: &str) -> Result<Vec<Step>, PathError> {
    let invalid = || PathError::Invalid(path.to_owned());
    let rest = path.strip_prefix('$').ok_or_else(invalid)?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    let name_end = |from: usize| {
        let mut j = from;
        while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        match chars[i] {
            '.' if chars.get(i + 1) == Some(&'.') => {
                let end = name_end(i + 2);
                let name: String = chars[i + 2..end].iter().collect();
                if name.is_empty() {
                    return Err(invalid());
                }
                steps.push(Step::Descend(name));
                i = end;
            }
            '.' => {
                let end = name_end(i + 1);
                let name: String = chars[i + 1..end].iter().collect();
                match name.as_str() {
                    "" => return Err(invalid()),
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
                i = end;
            }
            '[' => {
                let close = (i + 1..chars.len()).find(|&j| chars[j] == ']').ok_or_else(invalid)?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                let quoted = (inner.starts_with('\'') && inner.ends_with('\''))
                    || (inner.starts_with('"') && inner.ends_with('"'));
                if quoted && inner.len() >= 2 {
                    // A quoted name may hold ']' : find the closing quote first.
                    steps.push(Step::Field(inner[1..inner.len() - 1].to_owned()));
                } else if inner == "*" {
                    steps.push(Step::Wildcard);
                } else if let Some((a, b)) = inner.split_once(':') {
                    let num = |s: &str| -> Result<Option<i64>, PathError> {
                        let s = s.trim();
                        if s.is_empty() {
                            Ok(None)
                        } else {
                            s.parse().map(Some).map_err(|_| invalid())
                        }
                    };
                    steps.push(Step::Slice(num(a)?, num(b)?));
                } else {
                    steps.push(Step::Index(inner.parse().map_err(|_| invalid())?));
                }
                i = close + 1;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(steps)
}

/// Whether `path` is valid JSONPath (for definition validation).
pub fn is_valid(path: &str) -> bool {
    parse(path).is_ok()
}

/// Whether `path` is a reference path: valid and definite (one value, no wildcards).
pub fn is_reference(path: &str) -> bool {
    parse(path).is_ok_and(|steps| steps.iter().all(|s| matches!(s, Step::Field(_) | Step::Index(_))))
}

/// The value at `path` in `value`; a path with wildcards, slices or descents gives the array of
/// what it matched.
pub fn select(value: &Value, path: &str) -> Result<Value, PathError> {
    let steps = parse(path)?;
    let definite = steps.iter().all(|s| matches!(s, Step::Field(_) | Step::Index(_)));
    let mut current: Vec<&Value> = vec![value];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, v, &mut next);
        }
        current = next;
    }
    if definite {
        current.first().map(|v| (*v).clone()).ok_or_else(|| PathError::NoResults(path.to_owned()))
    } else {
        Ok(Value::Array(current.into_iter().cloned().collect()))
    }
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => out.extend(map.get(name)),
        (Step::Index(i), Value::Array(items)) => {
            let i = if *i < 0 { items.len() as i64 + i } else { *i };
            out.extend(usize::try_from(i).ok().and_then(|i| items.get(i)));
        }
        (Step::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Step::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Step::Slice(a, b), Value::Array(items)) => {
            let len = items.len() as i64;
            let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
            let (a, b) = (clamp(a.unwrap_or(0)), clamp(b.unwrap_or(len)));
            if a < b {
                out.extend(items[a as usize..b as usize].iter());
            }
        }
        (Step::Descend(name), _) => descend(name, value, out),
        _ => {}
    }
}

fn descend<'a>(name: &str, value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(name) {
                out.push(v);
            }
            map.values().for_each(|v| descend(name, v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| descend(name, v, out)),
        _ => {}
    }
}

/// Where the context object keeps the workflow's variables (`Assign`), which paths name as
/// `$name`.
pub const VARIABLES: &str = "__variables";

/// `$name.rest` (a variable) as a path into the context object; None for other paths.
pub fn variable(path: &str) -> Option<String> {
    let rest = path.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    Some(format!("$['{VARIABLES}']['{}']{}", &rest[..end], &rest[end..]))
}

/// A path's value: `$$…` in the context object, `$name…` among the variables, `$…` in `input`.
pub fn resolve(input: &Value, context: &Value, path: &str) -> Result<Value, PathError> {
    if let Some(rest) = path.strip_prefix("$$") {
        return select(context, &format!("${rest}"));
    }
    match variable(path) {
        Some(inner) => select(context, &inner).map_err(|e| match e {
            PathError::NoResults(_) => PathError::NoResults(path.to_owned()),
            other => other,
        }),
        None => select(input, path),
    }
}

/// `target` with `value` placed at reference path `path` (`$` replaces it whole); objects on
/// the way are created, a non-object in the way is an error.
pub fn set(target: Value, path: &str, value: Value) -> Result<Value, PathError> {
    let steps = parse(path)?;
    if steps.is_empty() {
        return Ok(value);
    }
    let mut root = target;
    let mut slot = &mut root;
    for step in &steps {
        let Step::Field(name) = step else { return Err(PathError::Invalid(path.to_owned())) };
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(map) = slot else { return Err(PathError::Invalid(path.to_owned())) };
        slot = map.entry(name.clone()).or_insert(Value::Null);
    }
    *slot = value;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_fields_indexes_and_wildcards() {
        let doc = json!({"a": {"b": [1, 2, {"c": "x"}]}, "d e": 4});
        assert_eq!(select(&doc, "$").unwrap(), doc);
        assert_eq!(select(&doc, "$.a.b[1]").unwrap(), json!(2));
        assert_eq!(select(&doc, "$.a.b[-1].c").unwrap(), json!("x"));
        assert_eq!(select(&doc, "$['d e']").unwrap(), json!(4));
        assert_eq!(select(&doc, "$.a.b[*]").unwrap(), json!([1, 2, {"c": "x"}]));
        assert_eq!(select(&doc, "$.a.b[0:2]").unwrap(), json!([1, 2]));
        assert_eq!(select(&doc, "$..c").unwrap(), json!(["x"]));
        let missing = select(&doc, "$.nope").unwrap_err();
        assert_eq!(missing.message(), "Invalid path '$.nope' : No results for path: $['nope']");
        assert!(select(&doc, "a.b").is_err());
    }

    #[test]
    fn sets_reference_paths() {
        let out = set(json!({"x": 1}), "$.r.s", json!(true)).unwrap();
        assert_eq!(out, json!({"x": 1, "r": {"s": true}}));
        assert_eq!(set(json!({"x": 1}), "$", json!(2)).unwrap(), json!(2));
        assert!(set(json!({"x": 1}), "$.x.y", json!(2)).is_err());
        assert!(is_reference("$.a['b']") && !is_reference("$.a[*]"));
    }

    #[test]
    fn resolves_variables_and_the_context() {
        let context = json!({"Execution": {"Name": "e"}, VARIABLES: {"total": {"n": 3}}});
        let input = json!({"a": 1});
        assert_eq!(resolve(&input, &context, "$.a").unwrap(), json!(1));
        assert_eq!(resolve(&input, &context, "$$.Execution.Name").unwrap(), json!("e"));
        assert_eq!(resolve(&input, &context, "$total.n").unwrap(), json!(3));
        assert_eq!(resolve(&input, &context, "$total").unwrap(), json!({"n": 3}));
        assert!(resolve(&input, &context, "$missing").is_err());
        assert_eq!(variable("$[0]"), None);
    }
}
