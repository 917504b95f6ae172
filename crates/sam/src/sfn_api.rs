//! `Api` events of a state machine: API Gateway starts an execution (an `aws` integration with
//! Step Functions' `StartExecution`, a role API Gateway assumes to call it) on the API's body.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::{Event, Target};
use crate::model::{assume_role, properties, Cfn, Out};
use crate::swagger::{self, INTEGRATION};

pub(crate) fn api_event(
    out: &mut Out,
    event: &Event<'_>,
    target: &Target,
    boundary: Option<&Value>,
) -> Result<Vec<Cfn>> {
    let role_id = format!("{}Role", event.id);
    let mut role = Cfn::with(role_id.clone(), "AWS::IAM::Role", &target.attrs);
    role.set("AssumeRolePolicyDocument", assume_role("apigateway.amazonaws.com"));
    role.set(
        "Policies",
        json!([{
            "PolicyName": format!("{role_id}StartExecutionPolicy"),
            "PolicyDocument": {"Statement": [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": target.arn}]}
        }]),
    );
    if let Some(b) = boundary.filter(|b| crate::function::truthy(b)) {
        role.set("PermissionsBoundary", b.clone());
    }
    let api_ref = event.get("RestApiId").cloned().unwrap_or(Value::Null);
    let api_id = match &api_ref {
        Value::Object(m) if m.contains_key("Ref") => m["Ref"].as_str().unwrap_or_default().to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let Some(api) = out.sam.get(&api_id).filter(|a| a.is_object()).cloned() else {
        return Err(event
            .error("RestApiId property of Api event must reference a valid resource in the same template."));
    };
    let api_props = properties(&api);
    if api_props.get("StageName").and_then(Value::as_str) == Some("") {
        return Err(ResourceError::new(&api_id, "StageName cannot be empty."));
    }
    let managed = api_props.get("__MANAGE_SWAGGER").and_then(Value::as_bool) == Some(true);
    let Some(mut body) = api_props.get("DefinitionBody").cloned().filter(|_| managed) else {
        return Ok(vec![role]);
    };
    let path = event.get("Path").and_then(Value::as_str).unwrap_or_default().to_string();
    let method = event.get("Method").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    if swagger::has_integration(&body, &path, &method) {
        return Err(
            event.error(format!("API method \"{method}\" defined multiple times for path \"{path}\"."))
        );
    }
    let machine = &target.function_id;
    let template = if event.get("UnescapeMappingTemplate").and_then(Value::as_bool) == Some(true) {
        format!(
            "{{\"input\": \"$util.escapeJavaScript($input.json('$')).replaceAll(\"\\\\'\",\"'\")\", \"stateMachineArn\": \"${{{machine}}}\"}}"
        )
    } else {
        format!("{{\"input\": \"$util.escapeJavaScript($input.json('$'))\", \"stateMachineArn\": \"${{{machine}}}\"}}")
    };
    let integration = json!({
        "type": "aws",
        "httpMethod": "POST",
        "uri": {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:states:action/StartExecution"},
        "responses": {"200": {"statusCode": "200"}, "400": {"statusCode": "400"}},
        "credentials": role.arn(),
        "requestTemplates": {"application/json": {"Fn::Sub": template}}
    });
    let responses = json!({"200": {"description": "OK"}, "400": {"description": "Bad Request"}});
    let condition = target.attrs.get("Condition").cloned();
    let method_key = swagger::normalize_method(&method);
    swagger::add_path(&mut body, &path, &method)?;
    if let Some(item) = body.get_mut("paths").and_then(|p| p.get_mut(&path)) {
        for item in swagger::conditional_contents(item) {
            let Some(m) = item.get_mut(&method_key).and_then(Value::as_object_mut) else { continue };
            let mut integration = integration.clone();
            if let Some(c) = &condition {
                integration["uri"] = json!({"Fn::If": [c, integration["uri"], {"Ref": "AWS::NoValue"}]});
            }
            m.insert(INTEGRATION.into(), integration);
            m.entry("responses").or_insert_with(|| responses.clone());
            if let Some(c) = &condition {
                let wrapped = json!({"Fn::If": [c, Value::Object(m.clone()), {"Ref": "AWS::NoValue"}]});
                item[&method_key] = wrapped;
            }
        }
    }
    if let Some(auth) = event.get("Auth").and_then(Value::as_object).filter(|a| !a.is_empty()) {
        let api_auth =
            api_props.get("Auth").map(|a| out.params.resolve(a)).and_then(|a| a.as_object().cloned());
        crate::api_auth::add_event_auth(event, &mut body, &path, &method, auth, api_auth.as_ref())?;
    }
    if let (Some(shadow), None) = (out.shadows.get_mut(&api_id), &condition) {
        let definition = body
            .pointer(&format!("/paths/{}/{}", crate::api::escape(&path), crate::api::escape(&method_key)))
            .cloned();
        // The integration is written type, httpMethod, uri, responses, credentials, then the
        // request templates.
        let order = |_: &[String], map: &Map<String, Value>| -> Vec<String> {
            let first = ["type", "httpMethod", "uri", "responses", "credentials", "requestTemplates"];
            let mut keys: Vec<String> =
                first.iter().filter(|k| map.contains_key(**k)).map(|k| k.to_string()).collect();
            let rest: Vec<String> =
                crate::py27::insertion_order(map).into_iter().filter(|k| !keys.contains(k)).collect();
            keys.extend(rest);
            keys
        };
        shadow.round(|s| {
            s.set_default(&["paths"], &path);
            s.set_default(&["paths", &path], &method_key);
            let m = ["paths", path.as_str(), method_key.as_str()];
            if let Some(d) = &definition {
                if let Some(i) = d.get(INTEGRATION) {
                    s.set_ordered(&m, INTEGRATION, i, &order);
                }
                if let Some(r) = d.get("responses") {
                    s.set(&m, "responses", r);
                }
                if let Some(sec) = d.get("security") {
                    s.set(&m, "security", sec);
                }
            }
        });
    }
    if let Some(props) =
        out.sam.get_mut(&api_id).and_then(|a| a.get_mut("Properties")).and_then(Value::as_object_mut)
    {
        props.insert("DefinitionBody".into(), body);
    }
    Ok(vec![role])
}
