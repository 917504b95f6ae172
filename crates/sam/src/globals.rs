//! The `Globals` section: properties every SAM resource of a type inherits. Maps merge key by
//! key, lists concatenate (globals first), anything else (intrinsics included) the resource's
//! own value wins. `IgnoreGlobals` ("*" or a list of names) opts a resource out.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{ResourceError, Result};
use crate::intrinsics::is_intrinsic;

const FUNCTION: &[&str] = &[
    "Handler",
    "Runtime",
    "CodeUri",
    "DeadLetterQueue",
    "Description",
    "MemorySize",
    "Timeout",
    "VpcConfig",
    "Environment",
    "Tags",
    "PropagateTags",
    "Tracing",
    "KmsKeyArn",
    "AutoPublishAlias",
    "AutoPublishAliasAllProperties",
    "Layers",
    "DeploymentPreference",
    "RolePath",
    "PermissionsBoundary",
    "ReservedConcurrentExecutions",
    "ProvisionedConcurrencyConfig",
    "AssumeRolePolicyDocument",
    "EventInvokeConfig",
    "FileSystemConfigs",
    "CodeSigningConfigArn",
    "Architectures",
    "SnapStart",
    "EphemeralStorage",
    "FunctionUrlConfig",
    "RuntimeManagementConfig",
    "LoggingConfig",
    "RecursiveLoop",
    "SourceKMSKeyArn",
    "TenancyConfig",
    "DurableConfig",
    "CapacityProviderConfig",
    "FunctionScalingConfig",
    "PublishToLatestPublished",
    "VersionDeletionPolicy",
];
const API: &[&str] = &[
    "Auth",
    "Name",
    "DefinitionUri",
    "CacheClusterEnabled",
    "CacheClusterSize",
    "MergeDefinitions",
    "Variables",
    "EndpointConfiguration",
    "MethodSettings",
    "BinaryMediaTypes",
    "MinimumCompressionSize",
    "Cors",
    "GatewayResponses",
    "AccessLogSetting",
    "CanarySetting",
    "TracingEnabled",
    "OpenApiVersion",
    "Domain",
    "AlwaysDeploy",
    "PropagateTags",
    "SecurityPolicy",
    "EndpointAccessMode",
];
const HTTP_API: &[&str] = &[
    "Auth",
    "AccessLogSettings",
    "StageVariables",
    "Tags",
    "CorsConfiguration",
    "DefaultRouteSettings",
    "Domain",
    "RouteSettings",
    "FailOnWarnings",
    "PropagateTags",
];
const CAPACITY_PROVIDER: &[&str] = &[
    "VpcConfig",
    "OperatorRole",
    "Tags",
    "InstanceRequirements",
    "ScalingConfig",
    "KmsKeyArn",
    "PropagateTags",
];
const WEBSOCKET_API: &[&str] = &[
    "AccessLogSettings",
    "ApiKeySelectionExpression",
    "DefaultRouteSettings",
    "DisableExecuteApiEndpoint",
    "DisableSchemaValidation",
    "Domain",
    "FailOnWarnings",
    "IpAddressType",
    "PropagateTags",
    "RouteSelectionExpression",
    "RouteSettings",
    "StageVariables",
    "Tags",
];

fn supported(section: &str) -> Option<&'static [&'static str]> {
    Some(match section {
        "Function" => FUNCTION,
        "Api" => API,
        "HttpApi" => HTTP_API,
        "SimpleTable" => &["SSESpecification"],
        "StateMachine" => &["PropagateTags"],
        "LayerVersion" => &["PublishLambdaVersion"],
        "CapacityProvider" => CAPACITY_PROVIDER,
        "WebSocketApi" => WEBSOCKET_API,
        _ => return None,
    })
}

const SECTIONS: &str = "['Api', 'CapacityProvider', 'Function', 'HttpApi', 'LayerVersion', \
                        'SimpleTable', 'StateMachine', 'WebSocketApi']";

/// Merges `Globals` into the SAM resources and removes the section.
pub(crate) fn apply(root: &mut Map<String, Value>) -> std::result::Result<(), Vec<String>> {
    let Some(globals) = root.remove("Globals") else {
        return Ok(());
    };
    let sections = parse(&globals).map_err(|e| vec![e.message()])?;
    let Some(Value::Object(resources)) = root.get_mut("Resources") else {
        return Ok(());
    };
    for (id, resource) in resources.iter_mut() {
        let Some(ty) = resource.get("Type").and_then(Value::as_str) else { continue };
        let Some(section) = ty.strip_prefix("AWS::Serverless::") else { continue };
        let Some(global) = sections.get(section) else { continue };
        let mut global = global.clone();
        match resource.get("IgnoreGlobals") {
            None => {}
            Some(Value::String(s)) if s == "*" => continue,
            Some(Value::Array(names)) => {
                for name in names {
                    let key = name.as_str().unwrap_or_default();
                    if global.remove(key).is_none() {
                        return Err(vec![invalid_attribute(
                            id,
                            &format!("Resource {id} has invalid resource attribute 'IgnoreGlobals' on item '{key}'."),
                        )]);
                    }
                }
            }
            Some(_) => {
                return Err(vec![invalid_attribute(
                    id,
                    &format!("Resource {id} has invalid resource attribute 'IgnoreGlobals'."),
                )])
            }
        }
        let local = resource.get("Properties").cloned().unwrap_or_else(|| Value::Object(Map::new()));
        let merged = merge(&Value::Object(global), &local);
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("Properties".into(), merged);
        }
    }
    Ok(())
}

fn invalid_attribute(id: &str, message: &str) -> String {
    ResourceError::new(id, message).message()
}

fn parse(globals: &Value) -> Result<BTreeMap<String, Map<String, Value>>> {
    let section_error = |m: String| ResourceError::section("Globals", m);
    let Some(map) = globals.as_object().filter(|m| !m.is_empty()) else {
        return Err(section_error("It must be a non-empty dictionary".into()));
    };
    let mut out = BTreeMap::new();
    for (name, props) in map {
        let Some(allowed) = supported(name) else {
            return Err(section_error(format!(
                "'{name}' is not supported. Must be one of the following values - {SECTIONS}"
            )));
        };
        let Some(props) = props.as_object() else {
            return Err(section_error("Value of ${section} must be a dictionary".into()));
        };
        for key in props.keys() {
            if !allowed.contains(&key.as_str()) {
                let list: Vec<String> = allowed.iter().map(|p| format!("'{p}'")).collect();
                return Err(section_error(format!(
                    "'{key}' is not a supported property of '{name}'. Must be one of the following values - [{}]",
                    list.join(", ")
                )));
            }
        }
        out.insert(name.clone(), props.clone());
    }
    Ok(out)
}

#[derive(PartialEq)]
enum Token {
    Primitive,
    Dict,
    List,
}

fn token(v: &Value) -> Token {
    match v {
        Value::Object(_) if is_intrinsic(v) => Token::Primitive,
        Value::Object(_) => Token::Dict,
        Value::Array(_) => Token::List,
        _ => Token::Primitive,
    }
}

pub(crate) fn merge(global: &Value, local: &Value) -> Value {
    match (token(global), token(local)) {
        (Token::Dict, Token::Dict) => {
            let mut out = global.as_object().cloned().unwrap_or_default();
            for (k, v) in local.as_object().into_iter().flatten() {
                let merged = match out.get(k) {
                    Some(g) => merge(g, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Token::List, Token::List) => {
            let mut out = global.as_array().cloned().unwrap_or_default();
            out.extend(local.as_array().cloned().unwrap_or_default());
            Value::Array(out)
        }
        _ => local.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_lists_concatenate_scalars_override() {
        let g = json!({"Timeout": 3, "Layers": ["a"], "Environment": {"Variables": {"A": "1", "B": "2"}}});
        let l = json!({"Timeout": 5, "Layers": ["b"], "Environment": {"Variables": {"B": "x"}}});
        assert_eq!(
            merge(&g, &l),
            json!({"Timeout": 5, "Layers": ["a", "b"], "Environment": {"Variables": {"A": "1", "B": "x"}}})
        );
        assert_eq!(merge(&json!({"A": 1}), &json!({"Ref": "P"})), json!({"Ref": "P"}));
    }

    #[test]
    fn unknown_global_property_is_refused_as_the_translator_words_it() {
        let mut root = json!({"Globals": {"Function": {"Nope": 1}}, "Resources": {}});
        let err = apply(root.as_object_mut().unwrap()).unwrap_err();
        assert!(err[0]
            .starts_with("'Globals' section is invalid. 'Nope' is not a supported property of 'Function'."));
    }
}
