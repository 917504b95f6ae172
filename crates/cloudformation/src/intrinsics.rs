//! Intrinsic functions and pseudo parameters: a template fragment resolved to plain JSON, given
//! the parameters, the conditions, and what provisioned resources answer to `Ref`/`Fn::GetAtt`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::params;

/// What provisioned resources (and other stacks' exports) answer.
pub trait Resources {
    fn reference(&self, id: &str) -> Option<Value>;
    fn attribute(&self, id: &str, attribute: &str) -> Result<Value, String>;
    fn import(&self, name: &str) -> Option<String>;
}

/// Everything a template's functions can read besides resources.
pub struct Scope<'a> {
    pub template: &'a Value,
    pub params: &'a BTreeMap<String, String>,
    pub conditions: &'a BTreeMap<String, bool>,
    pub region: &'a str,
    pub account: &'a str,
    pub stack_name: &'a str,
    pub stack_id: &'a str,
    pub notification_arns: &'a [String],
    pub resources: &'a dyn Resources,
}

pub const PSEUDO: &[&str] = &[
    "AWS::Region",
    "AWS::AccountId",
    "AWS::StackName",
    "AWS::StackId",
    "AWS::Partition",
    "AWS::URLSuffix",
    "AWS::NoValue",
    "AWS::NotificationARNs",
];

impl Scope<'_> {
    fn language_extensions(&self) -> bool {
        crate::template::transforms(self.template).iter().any(|t| t == "AWS::LanguageExtensions")
    }

    /// `value` with every function applied; `None` where it resolves to `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> Result<Option<Value>, String> {
        match value {
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                if key == "Ref" || key.starts_with("Fn::") {
                    return self.function(key, arg);
                }
                let mut out = Map::new();
                if let Some(v) = self.resolve(arg)? {
                    out.insert(key.clone(), v);
                }
                Ok(Some(Value::Object(out)))
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve(v)? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(v) = self.resolve(item)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    /// As [`Scope::resolve`], `AWS::NoValue` counting as null.
    pub fn value(&self, value: &Value) -> Result<Value, String> {
        Ok(self.resolve(value)?.unwrap_or(Value::Null))
    }

    fn string(&self, value: &Value, function: &str) -> Result<String, String> {
        match self.value(value)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(format!("Template error: every {function} object requires a string parameter")),
        }
    }

    fn list(&self, value: &Value, function: &str) -> Result<Vec<Value>, String> {
        match self.value(value)? {
            Value::Array(items) => Ok(items),
            _ => Err(format!("Template error: {function} requires a list argument")),
        }
    }

    pub fn reference(&self, name: &str) -> Result<Option<Value>, String> {
        Ok(Some(match name {
            "AWS::Region" => self.region.into(),
            "AWS::AccountId" => self.account.into(),
            "AWS::StackName" => self.stack_name.into(),
            "AWS::StackId" => self.stack_id.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => return Ok(None),
            "AWS::NotificationARNs" => Value::from(self.notification_arns.to_vec()),
            _ => {
                if let Some(value) = self.params.get(name) {
                    params::ref_value(self.template, name, value)
                } else if let Some(value) = self.resources.reference(name) {
                    value
                } else {
                    return Err(format!("Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template"));
                }
            }
        }))
    }

    fn function(&self, name: &str, arg: &Value) -> Result<Option<Value>, String> {
        let value = match name {
            "Ref" => {
                let target =
                    arg.as_str().ok_or("Template error: every Ref object requires a string parameter")?;
                return self.reference(target);
            }
            "Fn::If" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .ok_or("Template error: Fn::If requires a list argument with three elements")?;
                let condition =
                    items[0].as_str().ok_or("Template error: Fn::If requires a condition name")?;
                let chosen = if self.condition(condition)? { &items[1] } else { &items[2] };
                return self.resolve(chosen);
            }
            "Fn::GetAtt" => {
                let (resource, attribute) =
                    match arg {
                        Value::Array(items) if items.len() == 2 => {
                            let resource = items[0].as_str().unwrap_or_default().to_owned();
                            (resource, self.string(&items[1], "Fn::GetAtt")?)
                        }
                        Value::String(text) => match text.split_once('.') {
                            Some((r, a)) => (r.to_owned(), a.to_owned()),
                            None => return Err(
                                "Template error: every Fn::GetAtt object requires two non-empty parameters"
                                    .into(),
                            ),
                        },
                        _ => {
                            return Err(
                                "Template error: every Fn::GetAtt object requires two non-empty parameters"
                                    .into(),
                            )
                        }
                    };
                self.resources.attribute(&resource, &attribute)?
            }
            "Fn::Join" => {
                let items = arg.as_array().filter(|a| a.len() == 2).ok_or("Template error: every Fn::Join object requires two parameters, (1) a string delimiter and (2) a list of strings to be joined or a function that returns a list of strings (such as Fn::GetAZs) to be joined.")?;
                let delimiter = self.string(&items[0], "Fn::Join")?;
                let parts = self.list(&items[1], "Fn::Join")?;
                let parts: Vec<String> = parts.iter().map(params::text).collect();
                Value::String(parts.join(&delimiter))
            }
            "Fn::Select" => {
                let items = arg.as_array().filter(|a| a.len() == 2).ok_or("Template error: Fn::Select requires a list argument with two elements: an integer index and a list")?;
                let index: usize = self
                    .string(&items[0], "Fn::Select")?
                    .parse()
                    .map_err(|_| "Template error: Fn::Select requires a list argument with two elements: an integer index and a list")?;
                let list = self.list(&items[1], "Fn::Select")?;
                list.get(index)
                    .cloned()
                    .ok_or("Template error: Fn::Select cannot select nonexistent value at index")?
            }
            "Fn::Split" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or("Template error: every Fn::Split object requires two parameters")?;
                let delimiter = self.string(&items[0], "Fn::Split")?;
                let source = self.string(&items[1], "Fn::Split")?;
                Value::from(source.split(delimiter.as_str()).collect::<Vec<_>>())
            }
            "Fn::Sub" => Value::String(self.sub(arg)?),
            "Fn::Base64" => Value::String(
                base64::engine::general_purpose::STANDARD.encode(self.string(arg, "Fn::Base64")?),
            ),
            "Fn::FindInMap" => {
                let items = arg.as_array().filter(|a| a.len() == 3 || a.len() == 4).ok_or("Template error: every Fn::FindInMap object requires three parameters, the map name, map key and the attribute for return value")?;
                let map = self.string(&items[0], "Fn::FindInMap")?;
                let top = self.string(&items[1], "Fn::FindInMap")?;
                let second = self.string(&items[2], "Fn::FindInMap")?;
                let found = self
                    .template
                    .get("Mappings")
                    .and_then(|m| m.get(&map))
                    .and_then(|m| m.get(&top))
                    .and_then(|m| m.get(&second));
                match (found, items.get(3)) {
                    (Some(found), _) => found.clone(),
                    (None, Some(default)) => self.value(default.get("DefaultValue").unwrap_or(default))?,
                    (None, None) => {
                        return Err(format!(
                            "Template error: Unable to get mapping for {map}::{top}::{second}"
                        ))
                    }
                }
            }
            "Fn::GetAZs" => {
                let region = self.string(arg, "Fn::GetAZs")?;
                let region = if region.is_empty() { self.region.to_owned() } else { region };
                Value::from(["a", "b", "c"].iter().map(|s| format!("{region}{s}")).collect::<Vec<_>>())
            }
            "Fn::ImportValue" => {
                let export = self.string(arg, "Fn::ImportValue")?;
                Value::String(
                    self.resources.import(&export).ok_or(format!("No export named {export} found."))?,
                )
            }
            "Fn::Cidr" => {
                let items = arg
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .ok_or("Template error: Fn::Cidr requires three parameters")?;
                let block = self.string(&items[0], "Fn::Cidr")?;
                let count: u32 = self
                    .string(&items[1], "Fn::Cidr")?
                    .parse()
                    .map_err(|_| "Template error: Fn::Cidr count must be a number")?;
                let bits: u32 = self
                    .string(&items[2], "Fn::Cidr")?
                    .parse()
                    .map_err(|_| "Template error: Fn::Cidr bits must be a number")?;
                Value::from(cidr(&block, count, bits)?)
            }
            "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" => Value::Bool(self.truth(&single(name, arg))?),
            "Fn::Length" if self.language_extensions() => Value::from(self.list(arg, "Fn::Length")?.len()),
            "Fn::ToJsonString" if self.language_extensions() => Value::String(self.value(arg)?.to_string()),
            "Fn::Transform" => {
                return Err("Template error: Fn::Transform (macros) is not supported by nimbus".into())
            }
            other => return Err(format!("Template error: encountered unsupported function: {other}")),
        };
        Ok(Some(value))
    }

    fn sub(&self, arg: &Value) -> Result<String, String> {
        let (text, vars) = match arg {
            Value::String(text) => (text.clone(), Map::new()),
            Value::Array(items) if items.len() == 2 => {
                let text = items[0].as_str().ok_or("Template error: One or more Fn::Sub intrinsic functions don't specify expected arguments. Specify a string as first argument, and an optional second argument to specify a mapping of values to replace in the string")?;
                let vars = match &items[1] {
                    Value::Object(map) => map.clone(),
                    _ => return Err("Template error: One or more Fn::Sub intrinsic functions don't specify expected arguments. Specify a string as first argument, and an optional second argument to specify a mapping of values to replace in the string".into()),
                };
                (text.to_owned(), vars)
            }
            _ => return Err("Template error: One or more Fn::Sub intrinsic functions don't specify expected arguments. Specify a string as first argument, and an optional second argument to specify a mapping of values to replace in the string".into()),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = vars.get(name) {
                out.push_str(&params::text(&self.value(value)?));
            } else if let Some((resource, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&params::text(&self.resources.attribute(resource, attribute)?));
            } else {
                out.push_str(&params::text(&self.reference(name)?.unwrap_or(Value::Null)));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn condition(&self, name: &str) -> Result<bool, String> {
        self.conditions.get(name).copied().ok_or(format!("Template format error: Unresolved condition dependencies [{name}] in the Resources block of the template"))
    }

    /// A condition expression's truth.
    pub fn truth(&self, value: &Value) -> Result<bool, String> {
        let Some((name, arg)) = value.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next())
        else {
            return match value {
                Value::Bool(b) => Ok(*b),
                Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
                _ => Err("Template format error: Conditions can only be boolean operations on parameters and other conditions".into()),
            };
        };
        let items = || arg.as_array().cloned().unwrap_or_default();
        match name.as_str() {
            "Fn::Equals" => {
                let items = items();
                if items.len() != 2 {
                    return Err(
                        "Template error: every Fn::Equals object requires a list of 2 string parameters."
                            .into(),
                    );
                }
                Ok(params::text(&self.value(&items[0])?) == params::text(&self.value(&items[1])?))
            }
            "Fn::And" => items().iter().try_fold(true, |all, item| Ok(all & self.truth(item)?)),
            "Fn::Or" => items().iter().try_fold(false, |any, item| Ok(any | self.truth(item)?)),
            "Fn::Not" => Ok(!self.truth(
                items()
                    .first()
                    .ok_or("Template error: Fn::Not requires a list argument with one function token")?,
            )?),
            "Condition" => self.condition(arg.as_str().unwrap_or_default()),
            _ => Ok(params::text(&self.value(value)?) == "true"),
        }
    }
}

fn single(name: &str, arg: &Value) -> Value {
    let mut map = Map::new();
    map.insert(name.to_owned(), arg.clone());
    Value::Object(map)
}

/// `count` subnets of `bits` host bits carved from an IPv4 `block`.
pub fn cidr(block: &str, count: u32, bits: u32) -> Result<Vec<String>, String> {
    let (address, prefix) = block.split_once('/').ok_or("Template error: Fn::Cidr requires a CIDR block")?;
    let prefix: u32 = prefix.parse().map_err(|_| "Template error: Fn::Cidr requires a CIDR block")?;
    let octets: Vec<u32> = address.split('.').filter_map(|o| o.parse().ok()).collect();
    if octets.len() != 4 || prefix > 32 || bits == 0 || bits > 32 - prefix || !(1..=256).contains(&count) {
        return Err(format!(
            "Template error: Fn::Cidr cannot make {count} subnets of {bits} bits from {block}"
        ));
    }
    let base = octets.iter().fold(0u64, |acc, o| (acc << 8) | u64::from(*o & 255));
    let new_prefix = 32 - bits;
    let available = 1u64 << (new_prefix - prefix);
    if u64::from(count) > available {
        return Err(format!(
            "Template error: Fn::Cidr cannot make {count} subnets of {bits} bits from {block}"
        ));
    }
    Ok((0..count)
        .map(|i| {
            let start = (base + (u64::from(i) << bits)) & 0xFFFF_FFFF;
            format!(
                "{}.{}.{}.{}/{new_prefix}",
                start >> 24,
                (start >> 16) & 255,
                (start >> 8) & 255,
                start & 255
            )
        })
        .collect())
}

/// Evaluates the template's `Conditions` section.
pub fn evaluate_conditions(scope: &Scope<'_>) -> Result<BTreeMap<String, bool>, String> {
    let Some(Value::Object(declared)) = scope.template.get("Conditions") else {
        return Ok(BTreeMap::new());
    };
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    // Conditions naming conditions: evaluate in rounds until all are known (bounded by their count).
    for _ in 0..=declared.len() {
        let mut progressed = false;
        for (name, expression) in declared {
            if done.contains_key(name) {
                continue;
            }
            let inner = Scope { conditions: &done, ..*scope };
            if let Ok(value) = inner.truth(expression) {
                done.insert(name.clone(), value);
                progressed = true;
            }
        }
        if done.len() == declared.len() || !progressed {
            break;
        }
    }
    if let Some((name, expression)) = declared.iter().find(|(n, _)| !done.contains_key(*n)) {
        let inner = Scope { conditions: &done, ..*scope };
        inner.truth(expression)?;
        return Err(format!("Template format error: Circular condition dependency in {name}"));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct None_;
    impl Resources for None_ {
        fn reference(&self, id: &str) -> Option<Value> {
            (id == "Queue").then(|| json!("https://q"))
        }
        fn attribute(&self, id: &str, attribute: &str) -> Result<Value, String> {
            Ok(json!(format!("{id}.{attribute}")))
        }
        fn import(&self, name: &str) -> Option<String> {
            (name == "shared").then(|| "exported".into())
        }
    }

    fn with<T>(template: Value, f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let params =
            BTreeMap::from([("Env".to_owned(), "prod".to_owned()), ("Ids".to_owned(), "a,b".to_owned())]);
        let empty = BTreeMap::new();
        let base = Scope {
            template: &template,
            params: &params,
            conditions: &empty,
            region: "us-east-1",
            account: "123",
            stack_name: "s",
            stack_id: "arn:s",
            notification_arns: &[],
            resources: &None_,
        };
        let conditions = evaluate_conditions(&base).unwrap();
        f(&Scope { conditions: &conditions, ..base })
    }

    #[test]
    fn functions_resolve() {
        let template = json!({
            "Transform": "AWS::LanguageExtensions",
            "Parameters": {"Env": {"Type": "String"}, "Ids": {"Type": "CommaDelimitedList"}},
            "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}, "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]}},
            "Mappings": {"M": {"us-east-1": {"Size": 3}}},
        });
        with(template, |scope| {
            let v = |x: Value| scope.value(&x).unwrap();
            assert_eq!(
                v(json!({"Fn::Sub": "${AWS::StackName}-${Env}-${Queue.Arn}-${!Lit}"})),
                json!("s-prod-Queue.Arn-${Lit}")
            );
            assert_eq!(
                v(json!({"Fn::Sub": ["${A}/${AWS::Region}", {"A": {"Ref": "Queue"}}]})),
                json!("https://q/us-east-1")
            );
            assert_eq!(
                v(json!({"Fn::If": ["NotProd", 1, {"Fn::Join": ["-", {"Ref": "Ids"}]}]})),
                json!("a-b")
            );
            assert_eq!(v(json!({"Fn::Select": [1, {"Fn::Split": [",", "x,y"]}]})), json!("y"));
            assert_eq!(v(json!({"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "Size"]})), json!(3));
            assert_eq!(v(json!({"Fn::Base64": "hi"})), json!("aGk="));
            assert_eq!(v(json!({"Fn::GetAZs": ""})), json!(["us-east-1a", "us-east-1b", "us-east-1c"]));
            assert_eq!(v(json!({"Fn::ImportValue": "shared"})), json!("exported"));
            assert_eq!(v(json!({"Fn::Length": [1, 2, 3]})), json!(3));
            assert_eq!(v(json!({"Fn::ToJsonString": {"a": 1}})), json!("{\"a\":1}"));
            assert_eq!(v(json!({"Fn::Cidr": ["10.0.0.0/16", 2, 8]})), json!(["10.0.0.0/24", "10.0.1.0/24"]));
            assert_eq!(v(json!({"Fn::Cidr": ["0.0.0.0/0", 1, 32]})), json!(["0.0.0.0/0"]));
            assert!(scope.value(&json!({"Fn::Cidr": ["10.0.0.0/24", 300, 1]})).is_err());
            assert_eq!(
                v(json!({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]})),
                json!({"B": [1]})
            );
            assert!(scope
                .value(&json!({"Ref": "Nope"}))
                .unwrap_err()
                .contains("Unresolved resource dependencies [Nope]"));
            assert_eq!(
                scope.value(&json!({"Fn::ImportValue": "x"})).unwrap_err(),
                "No export named x found."
            );
        });
    }
}
