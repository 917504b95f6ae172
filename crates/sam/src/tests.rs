//! The transform's public entry points, end to end on small templates (the corpus under
//! `tests/corpus` compares whole templates with AWS's translator).

use serde_json::{json, Value};

use crate::{partition_of, transform, uses_transform, Context};

fn context() -> Context {
    Context::new("eu-west-1", "111122223333", "demo")
}

fn function(props: Value) -> Value {
    let mut p = json!({"CodeUri": "s3://b/k.zip", "Handler": "app.handler", "Runtime": "python3.12"});
    for (k, v) in props.as_object().cloned().unwrap_or_default() {
        p[k] = v;
    }
    json!({"Transform": "AWS::Serverless-2016-10-31", "Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": p}}})
}

#[test]
fn a_function_becomes_a_lambda_function_and_its_role() {
    let out = transform(&function(json!({})), &context()).unwrap();
    assert!(out.get("Transform").is_none());
    let resources = out["Resources"].as_object().unwrap();
    assert_eq!(resources["Fn"]["Type"], "AWS::Lambda::Function");
    assert_eq!(resources["Fn"]["Properties"]["Role"], json!({"Fn::GetAtt": ["FnRole", "Arn"]}));
    assert_eq!(resources["FnRole"]["Type"], "AWS::IAM::Role");
}

#[test]
fn the_partition_comes_from_the_region() {
    assert_eq!(partition_of("cn-north-1"), "aws-cn");
    assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
    let out = transform(&function(json!({})), &Context::new("cn-north-1", "1", "s")).unwrap();
    assert_eq!(
        out["Resources"]["FnRole"]["Properties"]["ManagedPolicyArns"][0],
        "arn:aws-cn:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    );
}

#[test]
fn parameters_given_override_defaults_in_alias_names() {
    let mut template = function(json!({"AutoPublishAlias": {"Ref": "Alias"}}));
    template["Parameters"] = json!({"Alias": {"Type": "String", "Default": "live"}});
    let out = transform(&template, &context()).unwrap();
    assert!(out["Resources"].get("FnAliaslive").is_some());
    let mut ctx = context();
    ctx.parameters.insert("Alias".into(), json!("beta"));
    let out = transform(&template, &ctx).unwrap();
    assert!(out["Resources"].get("FnAliasbeta").is_some());
}

#[test]
fn errors_are_worded_as_the_translator_words_them() {
    let err = transform(&json!({"Transform": "AWS::Serverless-2016-10-31"}), &context()).unwrap_err();
    assert_eq!(
        err.message,
        "Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application Specification \
         document. Number of errors found: 1. Structure of the SAM template is invalid. 'Resources' section is required"
    );
    let err = transform(&function(json!({"Handler": null})), &context()).unwrap_err();
    assert_eq!(err.causes, vec!["Resource with id [Fn] is invalid. Runtime and Handler needs to be present when PackageType is of type `Zip`".to_string()]);
}

#[test]
fn unsupported_sam_types_are_refused_by_name() {
    let template = json!({"Resources": {"C": {"Type": "AWS::Serverless::GraphQLApi", "Properties": {}}}});
    let err = transform(&template, &context()).unwrap_err();
    assert!(
        err.message.contains("Resource type AWS::Serverless::GraphQLApi is not supported"),
        "{}",
        err.message
    );
}

#[test]
fn a_connector_from_a_function_to_a_queue_is_a_managed_policy_on_its_role() {
    let mut template = function(json!({}));
    template["Resources"]["Q"] = json!({"Type": "AWS::SQS::Queue"});
    template["Resources"]["Fn"]["Connectors"] =
        json!({"ToQ": {"Properties": {"Destination": {"Id": "Q"}, "Permissions": ["Write"]}}});
    let out = transform(&template, &context()).unwrap();
    let policy = &out["Resources"]["FnToQPolicy"];
    assert_eq!(policy["Type"], "AWS::IAM::ManagedPolicy");
    assert_eq!(policy["Properties"]["Roles"], json!([{"Ref": "FnRole"}]));
    assert_eq!(
        policy["Properties"]["PolicyDocument"]["Statement"][0]["Resource"],
        json!([{"Fn::GetAtt": ["Q", "Arn"]}])
    );
    assert!(out["Resources"]["Fn"].get("Connectors").is_none());
    assert_eq!(policy["Metadata"]["aws:sam:connectors"]["FnToQ"]["Destination"]["Type"], "AWS::SQS::Queue");
}

#[test]
fn other_resources_pass_through_untouched() {
    let mut template = function(json!({}));
    template["Resources"]["Q"] = json!({"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 5}});
    let out = transform(&template, &context()).unwrap();
    assert_eq!(out["Resources"]["Q"], template["Resources"]["Q"]);
}

#[test]
fn the_transform_is_recognised_in_either_form() {
    assert!(uses_transform(&json!({"Transform": "AWS::Serverless-2016-10-31"})));
    assert!(uses_transform(&json!({"Transform": ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]})));
    assert!(!uses_transform(&json!({"Resources": {}})));
}

#[test]
fn malformed_connectors_are_errors_not_panics() {
    let odd = [
        json!(1),
        json!([]),
        json!({"C": null}),
        json!({"C": {"Properties": null}}),
        json!({"C": {"Properties": {"Destination": 5, "Permissions": "Read"}}}),
        json!({"C": {"Properties": {"Destination": [], "Permissions": ["Read"]}}}),
        json!({"C": {"Properties": {"Destination": [{"Id": 3}], "Permissions": ["Write"]}}}),
        json!({"C": {"Properties": {"Destination": {"Id": "Q"}, "Permissions": [1]}}}),
        json!({"C": {"Properties": {"SourceReference": [], "Destination": {"Id": "Q"}, "Permissions": ["Write"]}}}),
        json!({"C": {"Properties": {"Destination": {"Type": 7, "Arn": {}}, "Permissions": ["Write"]}}}),
        json!({"C": {"Properties": {"Destination": {"Id": "Fn"}, "Permissions": ["Write"]}}}),
    ];
    for connectors in odd {
        let mut template = function(json!({}));
        template["Resources"]["Q"] = json!({"Type": "AWS::SQS::Queue", "Properties": []});
        template["Resources"]["Fn"]["Connectors"] = connectors.clone();
        let result = transform(&template, &context());
        if let Err(e) = &result {
            assert!(
                e.message.starts_with("Transform AWS::Serverless-2016-10-31 failed with:"),
                "{connectors}"
            );
        }
    }
}
