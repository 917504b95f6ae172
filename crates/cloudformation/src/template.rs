//! Templates as submitted (JSON, or YAML with CloudFormation's short-form tags) read into one
//! JSON value in the long form (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` →
//! `{"Fn::GetAtt": ["A", "B"]}`), and the checks CloudFormation makes before anything runs.

use serde_json::Value;

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

/// A template's text (JSON, or YAML with the short forms) as JSON: crates/template reads it
/// for the engine and the CLI alike.
pub fn parse(text: &str) -> Result<Value, String> {
    nimbus_template::parse(text).map_err(|error| error.0)
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
