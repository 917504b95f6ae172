//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`): fields whose names end
//! in `.$` take their values from a path into the input, the context object (`$$.`), or an
//! intrinsic function.

use serde_json::{Map, Value};

use super::{intrinsic, path, Failure};

/// `template` filled from `input` and `context`.
pub fn fill(template: &Value, input: &Value, context: &Value) -> Result<Value, Failure> {
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        out.insert(name.to_owned(), dynamic(key, value, input, context)?);
                    }
                    None => {
                        out.insert(key.clone(), fill(value, input, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            items.iter().map(|item| fill(item, input, context)).collect::<Result<_, _>>().map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}

fn dynamic(key: &str, value: &Value, input: &Value, context: &Value) -> Result<Value, Failure> {
    let Some(text) = value.as_str() else {
        return Err(Failure::runtime(format!("The value for the field '{key}' must be a STRING")));
    };
    if intrinsic::is_call(text) {
        return intrinsic::evaluate(text, input, context).map_err(Failure::intrinsic);
    }
    let selected = path::resolve(input, context, text);
    selected.map_err(|e| {
        Failure::runtime(format!(
            "The JSONPath '{text}' specified for the field '{key}' could not be found in the input '{}'",
            if text.starts_with("$$") { context } else { input }
        ))
        .with_detail(e)
    })
}

/// A path into the input (`$…`), the context object (`$$…`) or the variables (`$name…`).
fn valid_path(text: &str) -> bool {
    match text.strip_prefix("$$") {
        Some(rest) => path::is_valid(&format!("${rest}")),
        None => path::is_valid(text) || path::variable(text).is_some_and(|p| path::is_valid(&p)),
    }
}

/// Definition-time check of a template's dynamic fields.
pub fn check(template: &Value) -> Result<(), String> {
    match template {
        Value::Object(fields) => {
            for (key, value) in fields {
                if key.ends_with(".$") {
                    let Some(text) = value.as_str() else {
                        return Err(format!("The value for the field '{key}' must be a STRING"));
                    };
                    if intrinsic::is_call(text) {
                        intrinsic::check(text)?;
                    } else if !valid_path(text) {
                        return Err(format!("The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call"));
                    }
                } else {
                    check(value)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_paths_context_and_intrinsics() {
        let template = json!({
            "static": {"k": [1, {"deep.$": "$.a"}]},
            "a.$": "$.a",
            "name.$": "$$.Execution.Name",
            "greeting.$": "States.Format('hi {}', $.a)"
        });
        let out = fill(&template, &json!({"a": "x"}), &json!({"Execution": {"Name": "e1"}})).unwrap();
        assert_eq!(
            out,
            json!({"static": {"k": [1, {"deep": "x"}]}, "a": "x", "name": "e1", "greeting": "hi x"})
        );
        let missing = fill(&json!({"b.$": "$.b"}), &json!({}), &json!({})).unwrap_err();
        assert_eq!(missing.error, "States.Runtime");
        assert!(check(&json!({"b.$": 3})).is_err());
        assert!(check(&json!({"b.$": "States.Nope()"})).is_err());
        assert!(check(&json!({"v.$": "$total.n", "c.$": "$$.Execution.Id", "p.$": "$.a[0]"})).is_ok());
        assert!(check(&json!({"v.$": "total"})).is_err());
    }
}
