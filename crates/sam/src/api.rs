//! `AWS::Serverless::Api` and the implicit `ServerlessRestApi` that `Api` events without a
//! `RestApiId` share: a RestApi with a Swagger body SAM writes (or the template's), a Deployment
//! whose logical id hashes the body (so any change redeploys), a Stage, and a permission per event.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::{permission, Event, Target};
use crate::function::s3_location;
use crate::model::{check_known, passthrough_attrs, properties, resource_attrs, tag_list, Cfn, Out};
use crate::py27::{Shadow, Shadows};
use crate::{hash, py27, swagger};

pub(crate) const IMPLICIT_ID: &str = "ServerlessRestApi";

const KNOWN: &[&str] = &[
    "__MANAGE_SWAGGER",
    "Name",
    "StageName",
    "Tags",
    "PropagateTags",
    "DefinitionBody",
    "DefinitionUri",
    "MergeDefinitions",
    "CacheClusterEnabled",
    "CacheClusterSize",
    "Variables",
    "EndpointConfiguration",
    "MethodSettings",
    "BinaryMediaTypes",
    "MinimumCompressionSize",
    "Cors",
    "Auth",
    "GatewayResponses",
    "AccessLogSetting",
    "CanarySetting",
    "TracingEnabled",
    "OpenApiVersion",
    "Models",
    "Domain",
    "FailOnWarnings",
    "Description",
    "Mode",
    "DisableExecuteApiEndpoint",
    "ApiKeySourceType",
    "AlwaysDeploy",
    "Policy",
    "SecurityPolicy",
    "EndpointAccessMode",
];

/// Properties nimbus's transform does not generate yet: refused by name, never ignored.
const UNSUPPORTED: &[&str] = &["Auth", "Domain", "GatewayResponses", "Models", "MergeDefinitions"];

/// After Globals: managed bodies of APIs with `OpenApiVersion: 3.x` become OpenAPI documents.
pub(crate) fn fix_openapi_versions(resources: &mut Map<String, Value>, shadows: &mut Shadows) {
    for (id, resource) in resources.iter_mut() {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Api") {
            continue;
        }
        let Some(props) = resource.get_mut("Properties").and_then(Value::as_object_mut) else { continue };
        let managed = props.get("__MANAGE_SWAGGER").is_some_and(crate::function::truthy);
        let version = match props.get("OpenApiVersion") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let parts: Vec<&str> = version.split('.').collect();
        let is3 = parts.first() == Some(&"3")
            && (2..=3).contains(&parts.len())
            && parts[1..].iter().all(|p| p.len() == 1 && p.chars().all(|c| c.is_ascii_digit()));
        if !managed || !is3 {
            continue;
        }
        props.insert("OpenApiVersion".into(), json!(version));
        if let Some(body) = props.get_mut("DefinitionBody").and_then(Value::as_object_mut) {
            body.insert("openapi".into(), json!(version));
            if let Some(shadow) = shadows.get_mut(id) {
                shadow.set(&[], "openapi", &json!(version));
                if body.contains_key("swagger") {
                    shadow.remove(&[], "swagger");
                }
            }
            body.remove("swagger");
        }
    }
}

/// APIs without a body get SAM's skeleton and are "managed": events write their paths into it.
pub(crate) fn default_bodies(sam: &mut Map<String, Value>, shadows: &mut Shadows) {
    for (id, resource) in sam.iter_mut() {
        let ty = resource.get("Type").and_then(Value::as_str).unwrap_or("").to_string();
        let skeleton = match ty.as_str() {
            "AWS::Serverless::Api" => swagger::swagger_skeleton(),
            "AWS::Serverless::HttpApi" => swagger::openapi_skeleton(),
            _ => continue,
        };
        let Some(obj) = resource.as_object_mut() else { continue };
        let props = obj.entry("Properties").or_insert_with(|| json!({}));
        let Some(props) = props.as_object_mut() else { continue };
        let truthy = |k: &str| props.get(k).is_some_and(crate::function::truthy);
        if truthy("DefinitionBody") || truthy("DefinitionUri") {
            continue;
        }
        if ty == "AWS::Serverless::Api" {
            shadows.insert(id.clone(), Shadow::new(&skeleton));
        }
        props.insert("DefinitionBody".into(), skeleton);
        props.insert("__MANAGE_SWAGGER".into(), json!(true));
    }
}

/// The implicit-API plugin: `ServerlessRestApi` for `Api` events that name no API, and each
/// event's path and method added to its API's managed body.
pub(crate) fn add_implicit_rest_api(
    sam: &mut Map<String, Value>,
    globals: Option<&Value>,
    shadows: &mut Shadows,
    source: &crate::SourceOrder,
    errors: &mut Vec<String>,
) {
    let existing = shadows.remove(IMPLICIT_ID);
    shadows.insert(IMPLICIT_ID.to_string(), Shadow::new(&swagger::swagger_skeleton()));
    crate::http_api::add_implicit(sam, globals, Some(&mut *shadows), source, errors, &ImplicitKind::rest());
    if !sam.contains_key(IMPLICIT_ID) || sam[IMPLICIT_ID].pointer("/Properties/__MANAGE_SWAGGER").is_none() {
        shadows.remove(IMPLICIT_ID);
        if let Some(e) = existing {
            shadows.insert(IMPLICIT_ID.to_string(), e);
        }
    }
    // The plugin's last pass over every managed API (path conditions) is one more editor step.
    for (id, shadow) in shadows.iter_mut() {
        if sam.get(id).and_then(|r| r.pointer("/Properties/__MANAGE_SWAGGER")).is_some() {
            shadow.round(|_| {});
        }
    }
}

/// What differs between the REST and HTTP implicit APIs.
pub(crate) struct ImplicitKind {
    pub id: &'static str,
    pub event_type: &'static str,
    pub api_property: &'static str,
    pub api_type: &'static str,
    pub resource: Value,
}

impl ImplicitKind {
    fn rest() -> ImplicitKind {
        ImplicitKind {
            id: IMPLICIT_ID,
            event_type: "Api",
            api_property: "RestApiId",
            api_type: "AWS::Serverless::Api",
            resource: json!({
                "Type": "AWS::Serverless::Api",
                "Properties": {"StageName": "Prod", "DefinitionBody": swagger::swagger_skeleton(), "__MANAGE_SWAGGER": true}
            }),
        }
    }
}

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let mut props = properties(resource);
    props.retain(|_, v| !v.is_null());
    check_known(id, "AWS::Serverless::Api", &props, KNOWN)?;
    for key in UNSUPPORTED {
        if props.get(*key).is_some_and(crate::function::truthy) {
            return Err(ResourceError::new(
                id,
                format!(
                    "nimbus's SAM transform does not support property '{key}' of AWS::Serverless::Api yet."
                ),
            ));
        }
    }
    let Some(stage_name) = props.get("StageName").cloned() else {
        return Err(ResourceError::new(id, "Missing required property 'StageName'."));
    };
    for key in ["BinaryMediaTypes", "Domain", "Auth"] {
        if let Some(v) = props.get(key) {
            let resolved = out.params.resolve(v);
            props.insert(key.into(), resolved);
        }
    }
    let get = |k: &str| props.get(k).filter(|v| crate::function::truthy(v));
    let body = get("DefinitionBody").cloned();
    let uri = get("DefinitionUri").cloned();
    if body.is_some() && uri.is_some() {
        return Err(ResourceError::new(
            id,
            "Specify either 'DefinitionUri' or 'DefinitionBody' property and not both.",
        ));
    }
    let open_api_version = get("OpenApiVersion").cloned();
    if let Some(v) = &open_api_version {
        let ok = v.as_str().is_some_and(|s| {
            let parts: Vec<&str> = s.split('.').collect();
            matches!(parts.first(), Some(&"2") | Some(&"3"))
                && (2..=3).contains(&parts.len())
                && parts[1..].iter().all(|p| p.len() == 1 && p.chars().all(|c| c.is_ascii_digit()))
        });
        if !ok {
            return Err(ResourceError::new(id, "The OpenApiVersion value must be of the format '3.0.0'."));
        }
    }

    let mut rest = Cfn::with(id, "AWS::ApiGateway::RestApi", &resource_attrs(resource));
    if let Some(d) = resource.get("DependsOn") {
        rest.attrs.insert("DependsOn".into(), d.clone());
    }
    rest.set_opt("BinaryMediaTypes", props.get("BinaryMediaTypes"));
    rest.set_opt("MinimumCompressionSize", props.get("MinimumCompressionSize"));
    if let Some(endpoint) = get("EndpointConfiguration") {
        set_endpoint_configuration(&mut rest, endpoint)?;
    }
    if let Some(fail) = get("FailOnWarnings") {
        rest.set("FailOnWarnings", fail.clone());
    }
    let managed = props.get("__MANAGE_SWAGGER").and_then(Value::as_bool) == Some(true);
    let mut body = body;
    let mut sam_strings = vec![];
    let mut shadow = match (out.shadows.remove(id), &body) {
        (Some(s), _) => s,
        (None, Some(b)) => {
            Shadow::from_source(b, &["Resources", id, "Properties", "DefinitionBody"], &out.ctx.source_order)
        }
        (None, None) => Shadow::default(),
    };
    // The translator's editor steps, in its order: CORS, binary media types, endpoint config.
    if let Some(cors) = get("Cors") {
        let Some(b) = body.as_mut() else {
            return Err(ResourceError::new(
                id,
                "Cors works only with inline Swagger specified in 'DefinitionBody' property.",
            ));
        };
        let before: Vec<String> = options_paths(b);
        crate::cors::add_rest_cors(id, b, cors, &mut sam_strings)?;
        let added: Vec<(String, Value)> = options_paths(b)
            .into_iter()
            .filter(|p| !before.contains(p))
            .map(|p| (p.clone(), b["paths"][&p]["options"].clone()))
            .collect();
        shadow.round(|s| {
            for (path, options) in &added {
                s.set(&["paths", path], "options", options);
            }
        });
    }
    if let Some(types) = get("BinaryMediaTypes") {
        if let Some(b) = body.as_mut().and_then(Value::as_object_mut) {
            let list: Vec<Value> = types
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| match t {
                    Value::String(s) => json!(s.replace("~1", "/")),
                    other => other.clone(),
                })
                .collect();
            let list = Value::Array(list);
            shadow.round(|s| s.set(&[], "x-amazon-apigateway-binary-media-types", &list));
            b.insert("x-amazon-apigateway-binary-media-types".into(), list);
        }
    }
    if let Some(disable) = props.get("DisableExecuteApiEndpoint") {
        let Some(b) = body.as_mut().and_then(Value::as_object_mut) else {
            return Err(ResourceError::new(
                id,
                "DisableExecuteApiEndpoint works only within 'DefinitionBody' property.",
            ));
        };
        let config = json!({"disableExecuteApiEndpoint": disable});
        let openapi3 = b.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with('3'));
        if openapi3 {
            let servers = b.entry("servers").or_insert_with(|| json!([{}]));
            for server in servers.as_array_mut().into_iter().flatten() {
                if let Some(s) = server.as_object_mut() {
                    s.insert("x-amazon-apigateway-endpoint-configuration".into(), config.clone());
                }
            }
            let servers = servers.clone();
            shadow.round(|s| s.set(&[], "servers", &servers));
        } else {
            shadow.round(|s| s.set(&[], "x-amazon-apigateway-endpoint-configuration", &config));
            b.insert("x-amazon-apigateway-endpoint-configuration".into(), config);
        }
    }
    let hashed_body;
    if let Some(uri) = &uri {
        let s3 = s3_location(id, uri, "DefinitionUri", ("Bucket", "Key", "Version"))?;
        hashed_body = Some(py27::body_s3_repr(&s3));
        rest.set("BodyS3Location", Value::Object(s3));
    } else if let Some(mut b) = body {
        openapi_postprocess(&mut b, open_api_version.as_ref());
        hashed_body = Some(py27::swagger_repr(&b, managed, &sam_strings, Some(&shadow)));
        rest.set("Body", b);
    } else {
        hashed_body = None;
    }
    for key in
        ["Name", "Description", "Mode", "ApiKeySourceType", "Policy", "SecurityPolicy", "EndpointAccessMode"]
    {
        if let Some(v) = get(key) {
            rest.set(key, v.clone());
        }
    }

    let attrs = passthrough_attrs(resource);
    let mut deployment = Cfn::with(format!("{id}Deployment"), "AWS::ApiGateway::Deployment", &attrs);
    deployment.set("RestApiId", json!({"Ref": id}));
    if open_api_version.is_none() {
        deployment.set("StageName", "Stage");
    }
    let stage_prefix = stage_name.as_str().unwrap_or("").to_string();
    let stage_id = if !stage_prefix.is_empty() && stage_prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("{id}{stage_prefix}Stage")
    } else {
        hash::logical_id(&format!("{id}Stage"), &json!(stage_prefix))
    };
    let mut stage = Cfn::with(stage_id, "AWS::ApiGateway::Stage", &attrs);
    stage.set("RestApiId", json!({"Ref": id}));
    stage.set("StageName", stage_name);
    for key in [
        "CacheClusterEnabled",
        "CacheClusterSize",
        "Variables",
        "MethodSettings",
        "AccessLogSetting",
        "CanarySetting",
        "TracingEnabled",
    ] {
        stage.set_opt(key, props.get(key));
    }
    if let Some(body_repr) = hashed_body {
        let mut parts = vec![body_repr];
        if let Some(v) = &open_api_version {
            parts.push(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
        if let Some(names) = out.api_function_names.get(id) {
            parts.push(names.clone());
        }
        if props.get("AlwaysDeploy").and_then(Value::as_bool) == Some(true) {
            parts = vec![format!("{}", now_seconds())];
        }
        let data = json!(parts.join("||"));
        deployment.id = hash::logical_id(&format!("{id}Deployment"), &data);
        deployment.set("Description", format!("RestApi deployment id: {}", hash::data_hash(&data, 40)));
    }
    stage.set("DeploymentId", json!({"Ref": deployment.id}));
    if let Some(tags) = props.get("Tags") {
        stage.set("Tags", Value::Array(tag_list(Some(tags), false)));
    }
    out.add_ref(id, "Stage", &stage.id.clone());
    out.add_ref(id, "Deployment", &deployment.id.clone());
    let mut resources = vec![rest, deployment, stage];
    if props.get("PropagateTags").and_then(Value::as_bool) == Some(true) {
        crate::model::propagate_tags(&mut resources, props.get("Tags"));
    }
    out.add(id, resources)
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn set_endpoint_configuration(rest: &mut Cfn, value: &Value) -> Result<()> {
    match value {
        Value::Object(map) if map.get("Type").is_some_and(crate::function::truthy) => {
            let ty = map["Type"].clone();
            rest.set("Parameters", json!({"endpointConfigurationTypes": ty}));
            let mut config = Map::new();
            config.insert("Types".into(), json!([ty]));
            if map.contains_key("VPCEndpointIds") && map.contains_key("VpcEndpointIds") {
                return Err(ResourceError::new(
                    &rest.id,
                    "'VPCEndpointIds' and 'VpcEndpointIds' cannot be used together in EndpointConfiguration.",
                ));
            }
            if let Some(ids) = map.get("VPCEndpointIds").or_else(|| map.get("VpcEndpointIds")) {
                config.insert("VpcEndpointIds".into(), ids.clone());
            }
            if let Some(ip) = map.get("IpAddressType") {
                config.insert("IpAddressType".into(), ip.clone());
            }
            rest.set("EndpointConfiguration", Value::Object(config));
        }
        other => {
            rest.set("EndpointConfiguration", json!({"Types": [other]}));
            rest.set("Parameters", json!({"endpointConfigurationTypes": other}));
        }
    }
    Ok(())
}

/// OpenApiVersion 3: securityDefinitions and definitions move under components.
fn openapi_postprocess(body: &mut Value, version: Option<&Value>) {
    let Some(map) = body.as_object_mut() else { return };
    if map.get("swagger").is_some_and(|v| !v.is_null()) {
        return;
    }
    let version = match (map.get("openapi"), version) {
        (Some(v), None) => Some(v.clone()),
        (_, v) => v.cloned(),
    };
    let is3 = version.as_ref().and_then(Value::as_str).is_some_and(|v| v.starts_with('3'));
    if !is3 {
        return;
    }
    for (from, to) in [("securityDefinitions", "securitySchemes"), ("definitions", "schemas")] {
        if let Some(v) = map.remove(from).filter(crate::function::truthy) {
            let components = map.entry("components").or_insert_with(|| json!({}));
            if let Some(c) = components.as_object_mut() {
                c.insert(to.into(), v);
            }
        }
    }
}

/// An `Api` event: a permission for API Gateway, and the Lambda integration in the API's body.
pub(crate) fn event(out: &mut Out, event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let api_ref = event.get("RestApiId").cloned().unwrap_or(Value::Null);
    let api_id = match &api_ref {
        Value::Object(m) if m.contains_key("Ref") => m["Ref"].clone(),
        other => other.clone(),
    };
    let Some(api_id) = api_id.as_str().map(str::to_string) else {
        return Err(event.error(
            "RestApiId must be a valid reference to an 'AWS::Serverless::Api' resource in same template.",
        ));
    };
    let Some(api) = out.sam.get(&api_id).filter(|a| a.is_object()).cloned() else {
        return Err(event
            .error("RestApiId property of Api event must reference a valid resource in the same template."));
    };
    let api_props = properties(&api);
    let suffix = match api_props.get("StageName") {
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ResourceError::new(&api_id, "StageName cannot be empty."))
        }
        Some(Value::String(s)) => s.clone(),
        _ => "Stage".to_string(),
    };
    let path = event.get("Path").and_then(Value::as_str).unwrap_or_default().to_string();
    let method = event.get("Method").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let trimmed = if path.len() > 1 { path.strip_suffix('/').unwrap_or(&path) } else { &path };
    let arn_method = if method == "any" { "*".to_string() } else { method.to_ascii_uppercase() };
    let resource = format!("${{__ApiId__}}/${{__Stage__}}/{arn_method}{}", swagger::path_wildcards(trimmed));
    let source_arn = json!({"Fn::Sub": [
        format!("arn:{}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:{resource}", out.ctx.partition),
        {"__ApiId__": api_ref, "__Stage__": "*"}
    ]});
    let perm = permission(&event.id, &suffix, target, "apigateway.amazonaws.com", Some(source_arn), None);

    if api_props.get("__MANAGE_SWAGGER").and_then(Value::as_bool) == Some(true) {
        let Some(mut body) = api_props.get("DefinitionBody").cloned() else { return Ok(vec![perm]) };
        if swagger::has_integration(&body, &path, &method) {
            return Err(
                event.error(format!("API method \"{method}\" defined multiple times for path \"{path}\"."))
            );
        }
        if event.get("RequestModel").is_some_and(crate::function::truthy) {
            return Err(event.error(
                "nimbus's SAM transform does not support property 'RequestModel' of Api events yet.",
            ));
        }
        if event.get("Auth").is_some_and(crate::function::truthy) {
            return Err(
                event.error("nimbus's SAM transform does not support property 'Auth' of Api events yet.")
            );
        }
        let mut integration = Map::new();
        integration.insert("type".into(), json!("aws_proxy"));
        integration.insert("httpMethod".into(), json!("POST"));
        integration.insert(
            "uri".into(),
            integration_uri(&target.arn, &out.ctx.partition, event.get("ResponseTransferMode")),
        );
        if event.get("ResponseTransferMode").and_then(Value::as_str) == Some("RESPONSE_STREAM") {
            integration.insert("responseTransferMode".into(), json!("STREAM"));
        }
        swagger::add_lambda_integration(
            &mut body,
            &path,
            &method,
            integration,
            target.attrs.get("Condition"),
        )
        .map_err(|e| ResourceError::raw(e.message()))?;
        if let Some(timeout) = event.get("TimeoutInMillis").filter(|t| crate::function::truthy(t)) {
            swagger::for_each_method(&mut body, &path, &method, &mut |def| {
                if let Some(i) = def.get_mut(swagger::INTEGRATION).and_then(Value::as_object_mut) {
                    i.insert("timeoutInMillis".into(), timeout.clone());
                }
            });
        }
        let parameters = request_parameters(event)?;
        if !parameters.is_empty() {
            swagger::for_each_method(&mut body, &path, &method, &mut |def| {
                let mut cache = vec![];
                let list = def.entry("parameters").or_insert_with(|| json!([]));
                for (name, param, caching) in &parameters {
                    if let Some(list) = list.as_array_mut() {
                        list.push(param.clone());
                    }
                    if *caching {
                        cache.push(json!(name));
                    }
                }
                if !cache.is_empty() {
                    if let Some(i) = def.get_mut(swagger::INTEGRATION).and_then(Value::as_object_mut) {
                        let keys = i.entry("cacheKeyParameters").or_insert_with(|| json!([]));
                        if let Some(keys) = keys.as_array_mut() {
                            keys.extend(cache);
                        }
                    }
                }
            });
        }
        let method_key = swagger::normalize_method(&method);
        if let (Some(shadow), None) = (out.shadows.get_mut(&api_id), target.attrs.get("Condition")) {
            let pointer = format!("/paths/{}/{}", escape(&path), escape(&method_key));
            let definition = body.pointer(&pointer).cloned().unwrap_or(Value::Null);
            shadow.round(|s| {
                s.set_default(&["paths"], &path);
                s.set_default(&["paths", &path], &method_key);
                let m = ["paths", path.as_str(), method_key.as_str()];
                if let Some(i) = definition.get(swagger::INTEGRATION) {
                    let mut first = i.clone();
                    if let Some(f) = first.as_object_mut() {
                        f.remove("timeoutInMillis");
                        f.remove("cacheKeyParameters");
                    }
                    s.set(&m, swagger::INTEGRATION, &first);
                    s.set_default(&m, "responses");
                    let i_path = ["paths", path.as_str(), method_key.as_str(), swagger::INTEGRATION];
                    if let Some(t) = i.get("timeoutInMillis") {
                        s.set(&i_path, "timeoutInMillis", t);
                    }
                    if let Some(p) = definition.get("parameters") {
                        s.set(&m, "parameters", p);
                    }
                    if let Some(c) = i.get("cacheKeyParameters") {
                        s.set(&i_path, "cacheKeyParameters", c);
                    }
                }
            });
        }
        if let Some(props) =
            out.sam.get_mut(&api_id).and_then(|a| a.get_mut("Properties")).and_then(Value::as_object_mut)
        {
            props.insert("DefinitionBody".into(), body);
        }
    }
    Ok(vec![perm])
}

pub(crate) fn integration_uri(function_arn: &Value, partition: &str, mode: Option<&Value>) -> Value {
    let (version, path) = if mode.and_then(Value::as_str) == Some("RESPONSE_STREAM") {
        ("2021-11-15", "/response-streaming-invocations")
    } else {
        ("2015-03-31", "/invocations")
    };
    json!({"Fn::Sub": format!(
        "arn:{partition}:apigateway:${{AWS::Region}}:lambda:path/{version}/functions/{}{path}",
        swagger::shorthand(function_arn)
    )})
}

/// The paths whose item has an `options` method.
fn options_paths(body: &Value) -> Vec<String> {
    body.get("paths")
        .and_then(Value::as_object)
        .map(|p| p.iter().filter(|(_, i)| i.get("options").is_some()).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}

/// A JSON pointer token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `RequestParameters` of an `Api` event: (name, Swagger parameter, caching).
fn request_parameters(event: &Event<'_>) -> Result<Vec<(String, Value, bool)>> {
    let Some(list) = event.get("RequestParameters") else { return Ok(vec![]) };
    let Some(list) = list.as_array() else {
        return Err(event.error("Property 'RequestParameters' should be a list."));
    };
    let key_error = "Invalid value for 'RequestParameters' property. Keys must be in the format \
                     'method.request.[querystring|path|header].{value}', e.g 'method.request.header.Authorization'.";
    let valid = |name: &str| {
        ["method.request.querystring.", "method.request.path.", "method.request.header."]
            .iter()
            .any(|p| name.starts_with(p))
    };
    let mut out = vec![];
    for parameter in list {
        let (name, required, caching) = match parameter {
            Value::String(name) => {
                if !valid(name) {
                    return Err(event.error(key_error));
                }
                (name.clone(), json!(false), false)
            }
            Value::Object(map) if map.len() == 1 => {
                let (name, settings) = map.iter().next().expect("one entry");
                if !valid(name) {
                    return Err(event.error(key_error));
                }
                let ok = settings.as_object().is_some_and(|s| s.keys().all(|k| k == "Required" || k == "Caching"));
                if !ok {
                    return Err(event.error(
                        "Invalid value for 'RequestParameters' property. Values must be an object, e.g { Required: true, Caching: false }",
                    ));
                }
                let required = settings.get("Required").cloned().unwrap_or(json!(false));
                let caching = crate::function::truthy(settings.get("Caching").unwrap_or(&json!(false)));
                (name.clone(), required, caching)
            }
            _ => {
                return Err(event.error(
                    "Invalid value for 'RequestParameters' property. Property must be either a string or an object",
                ))
            }
        };
        let location_name = name.trim_start_matches("method.request.");
        let (location, param) = location_name.split_once('.').unwrap_or((location_name, ""));
        let location = if location == "querystring" { "query" } else { location };
        let swagger_param = json!({"in": location, "name": param, "required": required, "type": "string"});
        out.push((name, swagger_param, caching));
    }
    Ok(out)
}
