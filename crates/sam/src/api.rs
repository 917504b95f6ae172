//! `AWS::Serverless::Api` and the implicit `ServerlessRestApi` that `Api` events without a
//! `RestApiId` share: a RestApi with a Swagger body SAM writes (or the template's), a Deployment
//! whose logical id hashes the body (so any change redeploys), a Stage, and a permission per event.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::function::s3_location;
use crate::implicit::{add_implicit, ImplicitKind};
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
const UNSUPPORTED: &[&str] = &["Domain", "MergeDefinitions"];

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

/// The implicit-API plugin for `Api` events (see `implicit.rs`); returns new conditions.
pub(crate) fn add_implicit_rest_api(
    sam: &mut Map<String, Value>,
    globals: Option<&Value>,
    shadows: &mut Shadows,
    source: &crate::SourceOrder,
    errors: &mut Vec<String>,
) -> Map<String, Value> {
    let existing = shadows.remove(IMPLICIT_ID);
    shadows.insert(IMPLICIT_ID.to_string(), Shadow::new(&swagger::swagger_skeleton()));
    let kind = ImplicitKind {
        id: IMPLICIT_ID,
        condition_name: "ServerlessRestApiCondition",
        event_type: "Api",
        api_property: "RestApiId",
        api_type: "AWS::Serverless::Api",
        resource: json!({
            "Type": "AWS::Serverless::Api",
            "Properties": {"StageName": "Prod", "DefinitionBody": swagger::swagger_skeleton(), "__MANAGE_SWAGGER": true}
        }),
    };
    let conditions = add_implicit(sam, globals, Some(&mut *shadows), source, errors, &kind);
    if !sam.contains_key(IMPLICIT_ID) || sam[IMPLICIT_ID].pointer("/Properties/__MANAGE_SWAGGER").is_none() {
        shadows.remove(IMPLICIT_ID);
        if let Some(e) = existing {
            shadows.insert(IMPLICIT_ID.to_string(), e);
        }
    }
    conditions
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
    if crate::api_body::event_iam_authorizer(out, id) {
        sam_strings.push(py27::EVENT_IAM.to_string());
    }
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
        let before: Vec<Vec<String>> =
            crate::api_body::options_items(b).into_iter().map(|(at, _)| at).collect();
        crate::cors::add_rest_cors(id, b, cors, &mut sam_strings)?;
        let added: Vec<(Vec<String>, Value)> =
            crate::api_body::options_items(b).into_iter().filter(|(at, _)| !before.contains(at)).collect();
        shadow.round(|s| {
            for (at, options) in &added {
                let at: Vec<&str> = at.iter().map(String::as_str).collect();
                s.set(&at, "options", options);
            }
        });
    }
    let auth = props.get("Auth").and_then(Value::as_object).filter(|a| !a.is_empty()).cloned();
    if let Some(auth) = &auth {
        let Some(b) = body.as_mut() else {
            return Err(ResourceError::new(
                id,
                "Auth works only with inline Swagger specified in 'DefinitionBody' property.",
            ));
        };
        let order = out.ctx.source_order.keys(
            &["Resources", id, "Properties", "Auth", "Authorizers"],
            auth.get("Authorizers").and_then(Value::as_object).unwrap_or(&Map::new()),
        );
        let result = crate::api_auth::add_api_auth(id, b, auth, &order, &out.ctx.partition)?;
        let definitions = b.get("securityDefinitions").cloned();
        // Each method's security, in the path item or in the branches of its `Fn::If`.
        let mut methods: Vec<(Vec<String>, Value)> = vec![];
        for (p, m) in &result.changed {
            let (p, m) = (escape(p), escape(m));
            for (pointer, at) in [
                (format!("/paths/{p}/{m}"), vec![]),
                (format!("/paths/{p}/Fn::If/1/{m}"), vec!["Fn::If", "[1]"]),
                (format!("/paths/{p}/Fn::If/2/{m}"), vec!["Fn::If", "[2]"]),
            ] {
                if let Some(security) = b.pointer(&format!("{pointer}/security")) {
                    let mut loc = vec!["paths".to_string(), unescape(&p)];
                    loc.extend(at.iter().map(|s| s.to_string()));
                    loc.push(unescape(&m));
                    methods.push((loc, security.clone()));
                }
            }
        }
        shadow.round(|s| {
            for (loc, security) in &methods {
                let loc: Vec<&str> = loc.iter().map(String::as_str).collect();
                s.set(&loc, "security", security);
            }
            if let Some(d) = &definitions {
                // AWS_IAM written by an event's own authorizer keeps the translator's key order
                // for it, unless the DefaultAuthorizer AWS_IAM rewrote it.
                let sigv4 = sam_strings.iter().any(|s| s == py27::EVENT_IAM)
                    && auth.get("DefaultAuthorizer").and_then(Value::as_str) != Some("AWS_IAM");
                let order = |path: &[String], map: &Map<String, Value>| -> Vec<String> {
                    if sigv4 && path.len() == 2 && path[0] == "securityDefinitions" && path[1] == "AWS_IAM" {
                        let mut keys: Vec<String> = ["x-amazon-apigateway-authtype", "type", "name", "in"]
                            .iter()
                            .map(|k| k.to_string())
                            .filter(|k| map.contains_key(k))
                            .collect();
                        keys.extend(map.keys().filter(|k| !keys.contains(k)).cloned().collect::<Vec<_>>());
                        return keys;
                    }
                    py27::insertion_order(map)
                };
                s.set_ordered(&[], "securityDefinitions", d, &order);
            }
        });
        crate::api_body::openapi_postprocess(b, open_api_version.as_ref(), &mut shadow);
    }
    if let Some(responses) = get("GatewayResponses") {
        let Some(b) = body.as_mut().and_then(Value::as_object_mut) else {
            return Err(ResourceError::new(
                id,
                "GatewayResponses works only with inline Swagger specified in 'DefinitionBody' property.",
            ));
        };
        let Some(responses) = responses.as_object() else {
            return Err(ResourceError::new(id, "Property 'GatewayResponses' should be a map."));
        };
        let value = crate::api_body::gateway_responses(id, responses)?;
        if value.as_object().is_some_and(|m| !m.is_empty()) {
            // Each response is written responseParameters, responseTemplates, statusCode.
            let order = |path: &[String], map: &Map<String, Value>| -> Vec<String> {
                if path.len() == 2 {
                    let mut keys: Vec<String> = ["responseParameters", "responseTemplates", "statusCode"]
                        .iter()
                        .filter(|k| map.contains_key(**k))
                        .map(|k| k.to_string())
                        .collect();
                    let rest: Vec<String> = map.keys().filter(|k| !keys.contains(k)).cloned().collect();
                    keys.extend(rest);
                    keys
                } else {
                    py27::insertion_order(map)
                }
            };
            shadow.round(|s| s.set_ordered(&[], "x-amazon-apigateway-gateway-responses", &value, &order));
            b.insert("x-amazon-apigateway-gateway-responses".into(), value);
        }
    }
    if let Some(types) = get("BinaryMediaTypes") {
        if let Some(b) = body.as_mut().and_then(Value::as_object_mut) {
            let list: Vec<Value> =
                types.as_array().into_iter().flatten().map(crate::api_body::unescape_media_type).collect();
            let list = Value::Array(list);
            shadow.round(|s| s.set(&[], "x-amazon-apigateway-binary-media-types", &list));
            b.insert("x-amazon-apigateway-binary-media-types".into(), list);
        }
    }
    if let Some(models) = get("Models").filter(|m| crate::function::truthy(m)) {
        let Some(b) = body.as_mut().and_then(Value::as_object_mut) else {
            return Err(ResourceError::new(
                id,
                "Models works only with inline Swagger specified in 'DefinitionBody' property.",
            ));
        };
        let Some(models) = models.as_object() else {
            return Err(ResourceError::new(id, "Invalid value for 'Models' property"));
        };
        let value = crate::api_body::models(id, models, b.get("definitions"))?;
        shadow.round(|s| s.set(&[], "definitions", &value));
        b.insert("definitions".into(), value);
        if let Some(b) = body.as_mut() {
            crate::api_body::openapi_postprocess(b, open_api_version.as_ref(), &mut shadow);
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
        crate::api_body::openapi_postprocess(&mut b, open_api_version.as_ref(), &mut shadow);
        let original = out.original.get(id).and_then(|r| r.pointer("/Properties/DefinitionBody"));
        hashed_body = Some(py27::swagger_repr(&b, managed, &sam_strings, Some(&shadow), original));
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
    if let Some(auth) = props.get("Auth").and_then(Value::as_object) {
        let order = out.ctx.source_order.keys(
            &["Resources", id, "Properties", "Auth", "Authorizers"],
            auth.get("Authorizers").and_then(Value::as_object).unwrap_or(&Map::new()),
        );
        resources.extend(crate::api_auth::permissions(id, auth, &order, &attrs, &out.ctx.partition)?);
        let stage_id = resources[2].id.clone();
        let plans = crate::usage_plan::resources(out, id, auth, &stage_id, &attrs)?;
        for plan in plans {
            // A shared plan is written again, grown, by each API that joins it.
            out.resources.remove(&plan.id);
            resources.push(plan);
        }
    }
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

/// A JSON pointer token.
pub(crate) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}
