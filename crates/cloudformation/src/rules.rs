//! The template's `Rules`: assertions on the parameters a create or update is given, refused
//! with the assertion's description when one fails.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::intrinsics::{Resources, Scope};
use crate::params;

struct NoResources;

impl Resources for NoResources {
    fn reference(&self, _: &str) -> Option<Value> {
        None
    }
    fn attribute(&self, id: &str, _: &str) -> Result<Value, String> {
        Err(format!("Template error: rules cannot refer to the resource {id}"))
    }
    fn import(&self, _: &str) -> Option<String> {
        None
    }
}

pub fn check(
    template: &Value,
    parameters: &BTreeMap<String, String>,
    region: &str,
    account: &str,
) -> Result<(), String> {
    let Some(Value::Object(rules)) = template.get("Rules") else { return Ok(()) };
    let conditions = BTreeMap::new();
    let scope = Scope {
        template,
        params: parameters,
        conditions: &conditions,
        region,
        account,
        stack_name: "",
        stack_id: "",
        notification_arns: &[],
        resources: &NoResources,
    };
    for (name, rule) in rules {
        if let Some(condition) = rule.get("RuleCondition") {
            if !truth(&scope, condition)? {
                continue;
            }
        }
        let assertions = rule.get("Assertions").and_then(Value::as_array).cloned().unwrap_or_default();
        for assertion in assertions {
            let Some(assert) = assertion.get("Assert") else { continue };
            if !truth(&scope, assert)? {
                return Err(match assertion.get("AssertDescription").and_then(Value::as_str) {
                    Some(description) => description.to_owned(),
                    None => format!("Template error: the rule {name} failed"),
                });
            }
        }
    }
    Ok(())
}

fn list(scope: &Scope<'_>, value: &Value) -> Result<Vec<String>, String> {
    Ok(match value_of(scope, value)? {
        Value::Array(items) => items.iter().map(params::text).collect(),
        other => vec![params::text(&other)],
    })
}

/// A rule operand: parameters, `Fn::RefAll` (every parameter of a type), literals.
fn value_of(scope: &Scope<'_>, value: &Value) -> Result<Value, String> {
    if let Some(Value::String(kind)) = value.get("Fn::RefAll") {
        let declared =
            scope.template.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
        let values = declared
            .iter()
            .filter(|(_, d)| d.get("Type").and_then(Value::as_str) == Some(kind.as_str()))
            .filter_map(|(name, _)| scope.params.get(name).cloned())
            .map(Value::String);
        return Ok(Value::Array(values.collect()));
    }
    if value.get("Fn::ValueOf").is_some() || value.get("Fn::ValueOfAll").is_some() {
        return Err("Template error: Fn::ValueOf and Fn::ValueOfAll are not supported by nimbus".into());
    }
    scope.value(value)
}

fn truth(scope: &Scope<'_>, value: &Value) -> Result<bool, String> {
    let Some((name, arg)) = value.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) else {
        return Ok(params::text(&value_of(scope, value)?) == "true");
    };
    let items = arg.as_array().cloned().unwrap_or_default();
    let pair = || -> Result<(Value, Value), String> {
        match items.as_slice() {
            [a, b] => Ok((a.clone(), b.clone())),
            _ => Err(format!("Template error: {name} requires two parameters")),
        }
    };
    match name.as_str() {
        "Fn::And" => items.iter().try_fold(true, |all, i| Ok(all & truth(scope, i)?)),
        "Fn::Or" => items.iter().try_fold(false, |any, i| Ok(any | truth(scope, i)?)),
        "Fn::Not" => Ok(!truth(scope, items.first().ok_or("Template error: Fn::Not requires a parameter")?)?),
        "Fn::Equals" => {
            let (a, b) = pair()?;
            Ok(params::text(&value_of(scope, &a)?) == params::text(&value_of(scope, &b)?))
        }
        "Fn::Contains" => {
            let (list_of, one) = pair()?;
            let one = params::text(&value_of(scope, &one)?);
            Ok(list(scope, &list_of)?.contains(&one))
        }
        "Fn::EachMemberEquals" => {
            let (list_of, one) = pair()?;
            let one = params::text(&value_of(scope, &one)?);
            Ok(list(scope, &list_of)?.iter().all(|item| *item == one))
        }
        "Fn::EachMemberIn" => {
            let (members, allowed) = pair()?;
            let allowed = list(scope, &allowed)?;
            Ok(list(scope, &members)?.iter().all(|item| allowed.contains(item)))
        }
        _ => Ok(params::text(&value_of(scope, value)?) == "true"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assertions_hold_or_refuse_with_their_description() {
        let template = json!({
            "Parameters": {"Env": {"Type": "String"}, "Size": {"Type": "String"}},
            "Rules": {"ProdIsBig": {
                "RuleCondition": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
                "Assertions": [{"Assert": {"Fn::Contains": [["large", "xlarge"], {"Ref": "Size"}]},
                                "AssertDescription": "prod needs a large size"}]}},
        });
        let params = |env: &str, size: &str| {
            BTreeMap::from([("Env".to_owned(), env.to_owned()), ("Size".to_owned(), size.to_owned())])
        };
        assert!(check(&template, &params("dev", "small"), "us-east-1", "1").is_ok());
        assert!(check(&template, &params("prod", "large"), "us-east-1", "1").is_ok());
        assert_eq!(
            check(&template, &params("prod", "small"), "us-east-1", "1").unwrap_err(),
            "prod needs a large size"
        );
    }
}
