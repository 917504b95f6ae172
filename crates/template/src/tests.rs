use serde_json::json;

use super::*;

#[test]
fn short_forms_become_long_forms() {
    let template = parse(
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub '${AWS::StackName}-q'\n      \
         DelaySeconds: 5\n      Tags:\n        - Key: k\n          Value: !GetAtt Other.Outputs.Name\n      \
         Policy: !If [IsProd, !Ref P, !Join ['', [a, !Select [0, !Split [',', 'x,y']]]]]\n",
    )
    .unwrap();
    let properties = &template["Resources"]["Q"]["Properties"];
    assert_eq!(properties["QueueName"], json!({"Fn::Sub": "${AWS::StackName}-q"}));
    assert_eq!(properties["DelaySeconds"], json!(5));
    assert_eq!(properties["Tags"][0]["Value"], json!({"Fn::GetAtt": ["Other", "Outputs.Name"]}));
    assert_eq!(
        properties["Policy"],
        json!({"Fn::If": ["IsProd", {"Ref": "P"}, {"Fn::Join": ["", ["a", {"Fn::Select": [0, {"Fn::Split": [",", "x,y"]}]}]]}]})
    );
}

#[test]
fn json_templates_and_the_version_date_stay_text() {
    let template = parse("{\"AWSTemplateFormatVersion\": \"2010-09-09\", \"Resources\": {}}").unwrap();
    assert_eq!(template["AWSTemplateFormatVersion"], "2010-09-09");
    let yaml = parse("AWSTemplateFormatVersion: 2010-09-09\nResources: {}\n").unwrap();
    assert_eq!(yaml["AWSTemplateFormatVersion"], "2010-09-09");
}

#[test]
fn malformed_text_is_a_template_format_error() {
    let error = parse("Resources:\n  Q: [unclosed\n").unwrap_err();
    assert!(error.0.starts_with("Template format error: YAML not well-formed."), "{error}");
    let error = parse("{\"Resources\": ").unwrap_err();
    assert!(error.0.starts_with("Template format error: JSON not well-formed."), "{error}");
    let error = parse("Resources:\n  Q: !Bogus x\n").unwrap_err();
    assert!(error.0.contains("Unsupported YAML tag !Bogus"), "{error}");
    assert!(parse("just text").is_err());
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let yaml = format!("Resources: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&yaml).is_err());
    let json = format!("{{\"Resources\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&json).is_err());
    let tags = format!("Resources: {}x\n", "!Not ".repeat(100_000));
    assert!(parse(&tags).is_err());
}

#[test]
fn key_order_follows_the_yaml_source() {
    let text = "Resources:\n  Zeta:\n    Properties:\n      Events:\n        B: {Type: Api}\n        A: {Type: Api}\n  Alpha:\n    Properties: {Code: !Sub \"x\"}\n";
    let order = crate::key_order(text);
    let keys = |path: &[&str]| {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        order.iter().find(|(p, _)| *p == path).map(|(_, k)| k.clone()).unwrap()
    };
    assert_eq!(keys(&["Resources"]), ["Zeta", "Alpha"]);
    assert_eq!(keys(&["Resources", "Zeta", "Properties", "Events"]), ["B", "A"]);
    assert_eq!(keys(&["Resources", "Alpha", "Properties", "Code"]), ["Fn::Sub"]);
    assert!(crate::key_order("{\"Resources\": {}}").is_empty());
}
