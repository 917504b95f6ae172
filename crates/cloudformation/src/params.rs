//! Template parameters: their types, defaults and constraints, values given with a request (or
//! `UsePreviousValue`), and `NoEcho` masking.

use std::collections::BTreeMap;

use serde_json::Value;

/// A parameter as a request gives it.
#[derive(Clone, Debug, Default)]
pub struct Given {
    pub key: String,
    pub value: Option<String>,
    pub use_previous: bool,
}

pub fn known_type(kind: &str) -> bool {
    matches!(kind, "String" | "Number" | "List<Number>" | "CommaDelimitedList")
        || kind.starts_with("AWS::EC2::")
        || kind.starts_with("List<AWS::EC2::")
        || kind.starts_with("AWS::SSM::Parameter::")
        || kind.starts_with("AWS::Route53::HostedZone::Id")
        || kind.starts_with("List<AWS::Route53::")
}

/// Whether a parameter's `Ref` is a list.
pub fn is_list(kind: &str) -> bool {
    kind.starts_with("List<") || kind == "CommaDelimitedList"
}

fn declarations(template: &Value) -> Vec<(String, Value)> {
    match template.get("Parameters") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

/// Each parameter's value as text, from what was given, the previous values and the defaults.
pub fn resolve(
    template: &Value,
    given: &[Given],
    previous: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, String> {
    let decls = declarations(template);
    let unknown: Vec<&str> =
        given.iter().map(|g| g.key.as_str()).filter(|k| !decls.iter().any(|(name, _)| name == k)).collect();
    if !unknown.is_empty() {
        return Err(format!("Parameters: [{}] do not exist in the template", unknown.join(", ")));
    }
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, decl) in &decls {
        let kind = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
        let given = given.iter().find(|g| &g.key == name);
        let value = match given {
            Some(Given { use_previous: true, .. }) => match previous.and_then(|p| p.get(name)) {
                Some(previous) => Some(previous.clone()),
                None => {
                    return Err(format!("Invalid input for parameter key {name}. Cannot specify usePreviousValue as true for a parameter key not in the previous template"))
                }
            },
            Some(Given { value: Some(value), .. }) => Some(value.clone()),
            _ => decl.get("Default").map(text),
        };
        let Some(value) = value else {
            missing.push(name.clone());
            continue;
        };
        if kind.starts_with("AWS::SSM::Parameter::") {
            return Err(format!(
                "Parameter {name} of type {kind}: nimbus does not serve SSM Parameter Store, so SSM parameter types cannot be resolved; use a String parameter"
            ));
        }
        check(name, kind, decl, &value)?;
        values.insert(name.clone(), value);
    }
    if !missing.is_empty() {
        return Err(format!("Parameters: [{}] must have values", missing.join(", ")));
    }
    Ok(values)
}

/// The values a transform sees (the SAM transform resolves some properties on them): each
/// declared parameter's given, previous or default value, unchecked (`resolve` checks them
/// after the transform).
pub fn for_transform(
    template: &Value,
    given: &[Given],
    previous: Option<&BTreeMap<String, String>>,
) -> serde_json::Map<String, Value> {
    let mut values = serde_json::Map::new();
    for (name, decl) in declarations(template) {
        let value = match given.iter().find(|g| g.key == name) {
            Some(Given { use_previous: true, .. }) => previous.and_then(|p| p.get(&name)).cloned(),
            Some(Given { value: Some(value), .. }) => Some(value.clone()),
            _ => decl.get("Default").map(text),
        };
        if let Some(value) = value {
            values.insert(name, Value::String(value));
        }
    }
    values
}

/// A JSON scalar (or list, for list defaults) as CloudFormation's text.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn check(name: &str, kind: &str, decl: &Value, value: &str) -> Result<(), String> {
    let fail = |default: String| {
        Err(match decl.get("ConstraintDescription").and_then(Value::as_str) {
            Some(description) => format!("Parameter '{name}' failed to satisfy constraint: {description}"),
            None => default,
        })
    };
    let items: Vec<&str> =
        if is_list(kind) { value.split(',').map(str::trim).collect() } else { vec![value] };
    for item in &items {
        if kind == "Number" || kind == "List<Number>" {
            let Ok(number) = item.parse::<f64>() else {
                return fail(format!("Parameter '{name}' must be a number"));
            };
            if let Some(min) = decl.get("MinValue").map(text).and_then(|m| m.parse::<f64>().ok()) {
                if number < min {
                    return fail(format!(
                        "Parameter '{name}' must be a number not less than {}",
                        text(&decl["MinValue"])
                    ));
                }
            }
            if let Some(max) = decl.get("MaxValue").map(text).and_then(|m| m.parse::<f64>().ok()) {
                if number > max {
                    return fail(format!(
                        "Parameter '{name}' must be a number not greater than {}",
                        text(&decl["MaxValue"])
                    ));
                }
            }
        }
        if let Some(Value::Array(allowed)) = decl.get("AllowedValues") {
            if !allowed.iter().any(|a| text(a) == *item) {
                return fail(format!("Parameter '{name}' must be one of AllowedValues"));
            }
        }
    }
    if kind == "String" {
        let length = value.chars().count();
        if let Some(min) = decl.get("MinLength").map(text).and_then(|m| m.parse::<usize>().ok()) {
            if length < min {
                return fail(format!("Parameter '{name}' must contain at least {min} characters"));
            }
        }
        if let Some(max) = decl.get("MaxLength").map(text).and_then(|m| m.parse::<usize>().ok()) {
            if length > max {
                return fail(format!("Parameter '{name}' must contain at most {max} characters"));
            }
        }
        if let Some(pattern) = decl.get("AllowedPattern").and_then(Value::as_str) {
            let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|_| {
                format!("Template format error: AllowedPattern of {name} is not a valid pattern")
            })?;
            if !anchored.is_match(value) {
                return fail(format!("Parameter '{name}' must match pattern {pattern}"));
            }
        }
    }
    Ok(())
}

/// Whether a parameter is declared `NoEcho` (its value shows as `****`).
pub fn no_echo(template: &Value, name: &str) -> bool {
    template.get("Parameters").and_then(|p| p.get(name)).and_then(|d| d.get("NoEcho")).is_some_and(|v| {
        v == &Value::Bool(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    })
}

/// The parameter's value as `Ref` gives it: a list for list types.
pub fn ref_value(template: &Value, name: &str, value: &str) -> Value {
    let kind = template
        .get("Parameters")
        .and_then(|p| p.get(name))
        .and_then(|d| d.get("Type"))
        .and_then(Value::as_str)
        .unwrap_or("String");
    if is_list(kind) {
        if value.is_empty() {
            return Value::Array(Vec::new());
        }
        Value::Array(value.split(',').map(|s| Value::String(s.trim().to_owned())).collect())
    } else {
        Value::String(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn given(key: &str, value: &str) -> Given {
        Given { key: key.into(), value: Some(value.into()), use_previous: false }
    }

    #[test]
    fn defaults_constraints_and_previous_values() {
        let template = json!({"Parameters": {
            "Env": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"},
            "Size": {"Type": "Number", "MinValue": 1, "MaxValue": 10},
            "Name": {"Type": "String", "AllowedPattern": "[a-z]+", "MaxLength": 5},
        }});
        let values = resolve(&template, &[given("Size", "3"), given("Name", "abc")], None).unwrap();
        assert_eq!(values["Env"], "dev");
        assert_eq!(
            resolve(&template, &[given("Name", "abc")], None).unwrap_err(),
            "Parameters: [Size] must have values"
        );
        let err = resolve(&template, &[given("Size", "30"), given("Name", "abc")], None).unwrap_err();
        assert_eq!(err, "Parameter 'Size' must be a number not greater than 10");
        let err = resolve(&template, &[given("Size", "3"), given("Name", "AB")], None).unwrap_err();
        assert_eq!(err, "Parameter 'Name' must match pattern [a-z]+");
        let err = resolve(&template, &[given("Env", "x"), given("Size", "3"), given("Name", "a")], None)
            .unwrap_err();
        assert_eq!(err, "Parameter 'Env' must be one of AllowedValues");
        let previous = values.clone();
        let reuse = [Given { key: "Size".into(), value: None, use_previous: true }, given("Name", "zz")];
        assert_eq!(resolve(&template, &reuse, Some(&previous)).unwrap()["Size"], "3");
        assert!(resolve(&template, &[given("Nope", "1")], None).unwrap_err().contains("[Nope] do not exist"));
    }
}
