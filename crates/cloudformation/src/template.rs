//! Templates as submitted (JSON, or YAML with CloudFormation's short-form tags) read into one
//! JSON value in the long form (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` →
//! `{"Fn::GetAtt": ["A", "B"]}`), and the checks CloudFormation makes before anything runs.

use serde_json::{Map, Value};

const SECTIONS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
    "Hooks",
];

/// A template's text, read as JSON when it looks like JSON, else as YAML.
pub fn parse(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    let value = if trimmed.starts_with('{') {
        serde_json::from_str::<Value>(text).map_err(|e| {
            format!("Template format error: JSON not well-formed. (line {}, column {})", e.line(), e.column())
        })?
    } else {
        let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| match e.location() {
            Some(at) => format!(
                "Template format error: YAML not well-formed. (line {}, column {})",
                at.line(),
                at.column()
            ),
            None => format!("Template format error: YAML not well-formed. ({e})"),
        })?;
        from_yaml(yaml)?
    };
    if !value.is_object() {
        return Err("Template format error: unsupported structure.".into());
    }
    Ok(value)
}

fn from_yaml(value: serde_norway::Value) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0)).map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(from_yaml).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("Template format error: unsupported map key {other:?}")),
                };
                out.insert(key, from_yaml(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = from_yaml(tagged.value)?;
            short_form(name, inner)?
        }
    })
}

/// `!Name value` in the long form.
fn short_form(name: &str, inner: Value) -> Result<Value, String> {
    let key = match name {
        "Ref" => "Ref".to_owned(),
        "Condition" => "Condition".to_owned(),
        "GetAtt" => {
            let inner = match inner {
                Value::String(text) => match text.split_once('.') {
                    Some((resource, attribute)) => Value::from(vec![resource, attribute]),
                    None => {
                        return Err(format!(
                        "Template error: every Fn::GetAtt object requires two non-empty parameters ({text})"
                    ))
                    }
                },
                other => other,
            };
            return Ok(single("Fn::GetAtt", inner));
        }
        "Base64" | "Cidr" | "FindInMap" | "GetAZs" | "ImportValue" | "Join" | "Select" | "Split" | "Sub"
        | "Transform" | "If" | "Equals" | "And" | "Or" | "Not" | "Length" | "ToJsonString" | "ForEach" => {
            format!("Fn::{name}")
        }
        other => return Err(format!("Template format error: Unsupported YAML tag !{other}")),
    };
    Ok(single(&key, inner))
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

/// The names a template's `Transform` section lists.
pub fn transforms(template: &Value) -> Vec<String> {
    match template.get("Transform") {
        Some(Value::String(name)) => vec![name.clone()],
        Some(Value::Array(names)) => names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// The structural checks CloudFormation makes on a (transformed) template.
pub fn check(template: &Value) -> Result<(), String> {
    let map = template.as_object().ok_or("Template format error: unsupported structure.")?;
    let unknown: Vec<&str> = map.keys().map(String::as_str).filter(|k| !SECTIONS.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Template format error: Invalid template property or properties [{}]",
            unknown.join(", ")
        ));
    }
    if let Some(version) = map.get("AWSTemplateFormatVersion") {
        if version.as_str() != Some("2010-09-09") {
            return Err("Template format error: Unsupported template version".into());
        }
    }
    let resources = match map.get("Resources") {
        Some(Value::Object(resources)) if !resources.is_empty() => resources,
        _ => return Err("Template format error: At least one Resources member must be defined.".into()),
    };
    for (id, resource) in resources {
        if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("Template format error: Resource name {id} is non alphanumeric."));
        }
        let Some(resource) = resource.as_object() else {
            return Err(format!("Template format error: [/Resources/{id}] resource definition is malformed"));
        };
        match resource.get("Type") {
            Some(Value::String(_)) => {}
            _ => {
                return Err(format!(
                "Template format error: [/Resources/{id}] Every Resources object must contain a Type member."
            ))
            }
        }
        if let Some(props) = resource.get("Properties") {
            if !props.is_object() {
                return Err(format!("Template format error: [/Resources/{id}/Properties] must be an object"));
            }
        }
    }
    if let Some(Value::Object(params)) = map.get("Parameters") {
        for (name, decl) in params {
            match decl.get("Type").and_then(Value::as_str) {
                Some(kind) if crate::params::known_type(kind) => {}
                Some(kind) => return Err(format!("Template format error: Unrecognized parameter type: {kind}")),
                None => {
                    return Err(format!(
                        "Template format error: [/Parameters/{name}] Every Parameters object must contain a Type member."
                    ))
                }
            }
        }
    }
    if let Some(Value::Object(outputs)) = map.get("Outputs") {
        for (name, output) in outputs {
            if output.get("Value").is_none() {
                return Err(format!(
                    "Template format error: Every Outputs member must contain a Value object, the Outputs member [{name}] is not valid."
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_short_forms_become_long_forms() {
        let text = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub '${AWS::StackName}-q'\n      Other: !GetAtt B.Arn\n      List: !Join [',', [!Ref P, !Select [0, !GetAZs '']]]\n      C: !If [IsProd, !Base64 x, !Ref 'AWS::NoValue']\n";
        let template = parse(text).unwrap();
        let props = &template["Resources"]["Q"]["Properties"];
        assert_eq!(props["QueueName"], json!({"Fn::Sub": "${AWS::StackName}-q"}));
        assert_eq!(props["Other"], json!({"Fn::GetAtt": ["B", "Arn"]}));
        assert_eq!(
            props["List"],
            json!({"Fn::Join": [",", [{"Ref": "P"}, {"Fn::Select": [0, {"Fn::GetAZs": ""}]}]]})
        );
        assert_eq!(props["C"]["Fn::If"][1], json!({"Fn::Base64": "x"}));
    }

    #[test]
    fn unquoted_dates_stay_text() {
        let template = parse("AWSTemplateFormatVersion: 2010-09-09\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Doc: {Version: 2012-10-17}\n      On: yes\n").unwrap();
        check(&template).unwrap();
        assert_eq!(template["Resources"]["Q"]["Properties"]["Doc"]["Version"], "2012-10-17");
    }

    #[test]
    fn bad_templates_are_named_as_aws_names_them() {
        assert!(parse("{\"Resources\": ")
            .unwrap_err()
            .starts_with("Template format error: JSON not well-formed."));
        assert!(parse("a: [").unwrap_err().starts_with("Template format error: YAML not well-formed."));
        let no_type = json!({"Resources": {"Q": {"Properties": {}}}});
        assert_eq!(
            check(&no_type).unwrap_err(),
            "Template format error: [/Resources/Q] Every Resources object must contain a Type member."
        );
        assert_eq!(
            check(&json!({"Resources": {}})).unwrap_err(),
            "Template format error: At least one Resources member must be defined."
        );
        assert!(check(&json!({"Resorces": {}}))
            .unwrap_err()
            .contains("Invalid template property or properties [Resorces]"));
    }
}
