//! A stack's resources as `Ref`/`Fn::GetAtt` see them, and the scope its template resolves in.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::intrinsics::{self, Resources, Scope};
use crate::model::{Output, Stack};

/// Provisioned resources of one stack, and the exports of all live stacks.
pub struct Provisioned<'a> {
    pub stack: &'a Stack,
    pub exports: &'a BTreeMap<String, (String, String)>,
    /// In change-set previews: resources not provisioned yet resolve to a placeholder.
    pub preview: bool,
}

pub const PLACEHOLDER: &str = "{{changes-on-deploy}}";

impl Resources for Provisioned<'_> {
    fn reference(&self, id: &str) -> Option<Value> {
        if self.stack.current.template.get("Resources").is_none_or(|r| r.get(id).is_none()) {
            return None;
        }
        match self.stack.resources.get(id).and_then(|r| r.physical_id.clone()) {
            Some(physical) => Some(Value::String(physical)),
            None if self.preview => Some(Value::String(PLACEHOLDER.into())),
            None => Some(Value::String(String::new())),
        }
    }

    fn attribute(&self, id: &str, attribute: &str) -> Result<Value, String> {
        let declared = self.stack.current.template.get("Resources").and_then(|r| r.get(id));
        let Some(declared) = declared else {
            return Err(format!("Template error: instance of Fn::GetAtt references undefined resource {id}"));
        };
        match self.stack.resources.get(id).filter(|r| r.physical_id.is_some()) {
            Some(resource) => resource.attributes.get(attribute).cloned().ok_or_else(|| {
                format!(
                    "Template error: resource {id} does not support attribute type {attribute} in Fn::GetAtt"
                )
            }),
            None if self.preview => Ok(Value::String(PLACEHOLDER.into())),
            None => Err(format!(
                "Template error: resource {id} ({}) is not available for Fn::GetAtt {attribute}",
                declared.get("Type").and_then(Value::as_str).unwrap_or_default()
            )),
        }
    }

    fn import(&self, name: &str) -> Option<String> {
        self.exports.get(name).map(|(_, value)| value.clone())
    }
}

/// Resolves with `stack`'s current version.
pub fn with_scope<T>(
    stack: &Stack,
    region: &str,
    account: &str,
    exports: &BTreeMap<String, (String, String)>,
    preview: bool,
    work: impl FnOnce(&Scope<'_>) -> Result<T, String>,
) -> Result<T, String> {
    let resources = Provisioned { stack, exports, preview };
    let empty = BTreeMap::new();
    let base = Scope {
        template: &stack.current.template,
        params: &stack.current.parameters,
        conditions: &empty,
        region,
        account,
        stack_name: &stack.name,
        stack_id: &stack.id,
        notification_arns: &stack.notification_arns,
        resources: &resources,
    };
    let conditions = intrinsics::evaluate_conditions(&base)?;
    work(&Scope { conditions: &conditions, ..base })
}

/// Whether a resource or output's `Condition` holds.
pub fn holds(scope: &Scope<'_>, declared: &Value) -> Result<bool, String> {
    match declared.get("Condition").and_then(Value::as_str) {
        Some(name) => scope.condition(name),
        None => Ok(true),
    }
}

/// A resource's properties resolved.
pub fn properties(scope: &Scope<'_>, declared: &Value) -> Result<Map<String, Value>, String> {
    match declared.get("Properties") {
        Some(props) => match scope.value(props)? {
            Value::Object(map) => Ok(map),
            Value::Null => Ok(Map::new()),
            _ => Err("Template format error: Properties must be an object".into()),
        },
        None => Ok(Map::new()),
    }
}

/// The stack's outputs resolved.
pub fn outputs(scope: &Scope<'_>) -> Result<Vec<Output>, String> {
    let mut out = Vec::new();
    let Some(Value::Object(declared)) = scope.template.get("Outputs") else {
        return Ok(out);
    };
    for (key, output) in declared {
        if !holds(scope, output)? {
            continue;
        }
        let value = crate::params::text(&scope.value(&output["Value"])?);
        let export = match output.get("Export").and_then(|e| e.get("Name")) {
            Some(name) => Some(crate::params::text(&scope.value(name)?)),
            None => None,
        };
        let description = output.get("Description").map(crate::params::text);
        out.push(Output { key: key.clone(), value, description, export });
    }
    Ok(out)
}

/// The export names a stack's template imports (resolved where they can be).
pub fn imports(scope: &Scope<'_>) -> Vec<String> {
    let mut names = Vec::new();
    collect_imports(scope, scope.template.get("Resources").unwrap_or(&Value::Null), &mut names);
    collect_imports(scope, scope.template.get("Outputs").unwrap_or(&Value::Null), &mut names);
    names
}

fn collect_imports(scope: &Scope<'_>, value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let (1, Some(arg)) = (map.len(), map.get("Fn::ImportValue")) {
                if let Ok(name) = scope.value(arg) {
                    names.push(crate::params::text(&name));
                }
                return;
            }
            map.values().for_each(|v| collect_imports(scope, v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_imports(scope, v, names)),
        _ => {}
    }
}
