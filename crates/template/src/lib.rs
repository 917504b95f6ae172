//! A CloudFormation template's text read into JSON, the one shape every later step works on.
//! JSON templates are read as JSON; anything else as YAML, whose short-form tags (`!Ref X`,
//! `!GetAtt A.B`, `!Sub …`) become the long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`).
//! Errors carry CloudFormation's wording ("Template format error: …").

use serde_json::{Map, Number, Value};
use serde_norway::value::TaggedValue;

/// Why a template's text is not a template, worded as CloudFormation's `ValidationError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// Reads a template (JSON or YAML) into JSON; the document must be a mapping.
pub fn parse(text: &str) -> Result<Value, TemplateError> {
    let value = if looks_like_json(text) {
        serde_json::from_str(text).map_err(|error| {
            TemplateError(format!(
                "Template format error: JSON not well-formed. (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?
    } else {
        // The YAML parser takes time quadratic in flow nesting (`[[[[…`): a template nests a
        // handful of levels, so anything past the limit is refused before parsing.
        if flow_depth(text) > MAX_FLOW_DEPTH {
            return Err(TemplateError(format!(
                "Template format error: YAML not well-formed. (nested deeper than {MAX_FLOW_DEPTH} levels)"
            )));
        }
        let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|error| {
            let place = error
                .location()
                .map(|at| format!(" (line {}, column {})", at.line(), at.column()))
                .unwrap_or_default();
            TemplateError(format!("Template format error: YAML not well-formed.{place}"))
        })?;
        from_yaml(yaml)?
    };
    if !value.is_object() {
        return Err(TemplateError(
            "Template format error: At least one Resources member must be defined.".into(),
        ));
    }
    Ok(value)
}

/// How deep a template's flow collections (`[…]`, `{…}`) may nest.
const MAX_FLOW_DEPTH: usize = 64;

/// The deepest nesting of `[`/`{` in `text` (brackets in quotes count too: a bound, not a parse).
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The keys of every mapping of a YAML template in source order, by path from the root (array
/// items as `[i]`, short forms by their long names: `!Sub` → `Fn::Sub`), for consumers whose
/// output follows the source's order (the SAM transform). Empty for JSON templates and text
/// that does not parse.
pub fn key_order(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    if looks_like_json(text) || flow_depth(text) > MAX_FLOW_DEPTH {
        return Vec::new();
    }
    let Ok(yaml) = serde_norway::from_str::<serde_norway::Value>(text) else { return Vec::new() };
    let mut out = Vec::new();
    record_order(&mut Vec::new(), &yaml, &mut out);
    out
}

fn record_order(
    path: &mut Vec<String>,
    value: &serde_norway::Value,
    out: &mut Vec<(Vec<String>, Vec<String>)>,
) {
    use serde_norway::Value as Yaml;
    match value {
        Yaml::Mapping(entries) => {
            let keys: Vec<(String, &Yaml)> =
                entries.iter().filter_map(|(k, v)| key_text(k.clone()).ok().map(|k| (k, v))).collect();
            out.push((path.clone(), keys.iter().map(|(k, _)| k.clone()).collect()));
            for (key, value) in keys {
                path.push(key);
                record_order(path, value, out);
                path.pop();
            }
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                record_order(path, item, out);
                path.pop();
            }
        }
        Yaml::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let key =
                if matches!(name, "Ref" | "Condition") { name.to_owned() } else { format!("Fn::{name}") };
            out.push((path.clone(), vec![key.clone()]));
            path.push(key);
            record_order(path, &tagged.value, out);
            path.pop();
        }
        _ => {}
    }
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start_matches('\u{feff}').trim_start().starts_with('{')
}

fn from_yaml(value: serde_norway::Value) -> Result<Value, TemplateError> {
    use serde_norway::Value as Yaml;
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number(&n),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(from_yaml).collect::<Result<_, _>>()?),
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                map.insert(key_text(key)?, from_yaml(value)?);
            }
            Value::Object(map)
        }
        Yaml::Tagged(tagged) => short_form(*tagged)?,
    })
}

fn number(n: &serde_norway::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        // NaN and infinities have no JSON form; CloudFormation would read them as text.
        n.as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(n.to_string()))
    }
}

fn key_text(key: serde_norway::Value) -> Result<String, TemplateError> {
    use serde_norway::Value as Yaml;
    match key {
        Yaml::String(s) => Ok(s),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Null => Ok("null".into()),
        _ => Err(TemplateError(
            "Template format error: YAML not well-formed. (a mapping key must be a scalar)".into(),
        )),
    }
}

/// The function names CloudFormation's YAML short forms stand for (`!Sub` → `Fn::Sub`).
const FUNCTIONS: &[&str] = &[
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "ForEach",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
];

fn short_form(tagged: TaggedValue) -> Result<Value, TemplateError> {
    let tag = tagged.tag.to_string();
    let name = tag.trim_start_matches('!');
    let value = from_yaml(tagged.value)?;
    let (key, value) = match name {
        "Ref" => ("Ref".to_owned(), value),
        "Condition" => ("Condition".to_owned(), value),
        // `!GetAtt Resource.Attribute` (the attribute may itself hold dots: `Outputs.Name`).
        "GetAtt" => match value {
            Value::String(text) => match text.split_once('.') {
                Some((resource, attribute)) => {
                    ("Fn::GetAtt".to_owned(), Value::from(vec![resource, attribute]))
                }
                None => {
                    return Err(TemplateError(format!(
                        "Template error: every Fn::GetAtt object requires two non-empty parameters ({text})"
                    )))
                }
            },
            other => ("Fn::GetAtt".to_owned(), other),
        },
        _ if FUNCTIONS.contains(&name) => (format!("Fn::{name}"), value),
        _ => return Err(TemplateError(format!("Template format error: Unsupported YAML tag {tag}"))),
    };
    let mut map = Map::new();
    map.insert(key, value);
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests;
