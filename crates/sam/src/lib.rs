//! The `AWS::Serverless-2016-10-31` transform: a SAM template in, plain CloudFormation out, with
//! the logical ids, physical names and error messages AWS's own translator (`aws-sam-translator`)
//! produces, so that `sam sync`, `sam logs` … find what they look for.
//!
//! A pure library: the caller (the CloudFormation engine) has already read YAML into JSON with the
//! short-form tags turned into their long forms (`{"Ref": …}`, `{"Fn::GetAtt": […]}`).
//!
//! The order of the work follows the translator: Globals are merged in, implicit APIs
//! (`ServerlessRestApi`, `ServerlessHttpApi`) are added, then functions, state machines, APIs and
//! the rest are turned into CloudFormation resources; references to SAM-only names
//! (`Fn.Alias`, `MyLayer` → `MyLayer<hash>`) are rewritten last.

mod api;
mod api_auth;
mod api_body;
mod api_event;
mod application;
mod connector;
mod cors;
mod deployment;
mod error;
mod events;
mod function;
mod globals;
mod hash;
mod http_api;
mod http_auth;
mod implicit;
mod intrinsics;
mod layer;
mod model;
mod order;
mod plugin_order;
mod policies;
mod py27;
mod refs;
mod sfn_api;
mod simple_table;
mod state_machine;
mod swagger;
mod usage_plan;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use error::ResourceError;
pub use error::TransformError;
use model::Out;
pub use order::SourceOrder;

/// The transform's name, as templates write it.
pub const TRANSFORM_NAME: &str = "AWS::Serverless-2016-10-31";

/// Where the stack is deployed, and the values of its parameters.
#[derive(Clone, Debug)]
pub struct Context {
    pub region: String,
    pub account: String,
    pub partition: String,
    pub stack_name: String,
    /// Parameter values given for this deploy (`ParameterKey` → value); template defaults fill
    /// the rest.
    pub parameters: Map<String, Value>,
    /// The template's key order, when the caller knows it (see [`SourceOrder`]).
    pub source_order: SourceOrder,
}

impl Context {
    pub fn new(region: &str, account: &str, stack_name: &str) -> Context {
        Context {
            region: region.to_string(),
            account: account.to_string(),
            partition: partition_of(region).to_string(),
            stack_name: stack_name.to_string(),
            parameters: Map::new(),
            source_order: SourceOrder::default(),
        }
    }
}

/// The partition a region belongs to, as the translator maps it.
pub fn partition_of(region: &str) -> &'static str {
    let region = region.to_ascii_lowercase();
    for (prefix, partition) in [
        ("cn-", "aws-cn"),
        ("us-iso-", "aws-iso"),
        ("us-isob", "aws-iso-b"),
        ("us-gov", "aws-us-gov"),
        ("eu-isoe", "aws-iso-e"),
        ("us-isof", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ] {
        if region.starts_with(prefix) {
            return partition;
        }
    }
    "aws"
}

/// Whether a template asks for the SAM transform (`Transform` a string or a list naming it).
pub fn uses_transform(template: &Value) -> bool {
    match template.get("Transform") {
        Some(Value::String(name)) => name == TRANSFORM_NAME,
        Some(Value::Array(names)) => names.iter().any(|n| n.as_str() == Some(TRANSFORM_NAME)),
        _ => false,
    }
}

/// Transforms a SAM template into CloudFormation.
pub fn transform(template: &Value, context: &Context) -> Result<Value, TransformError> {
    let Some(root) = template.as_object() else {
        return Err(TransformError::template("Template must be a dictionary."));
    };
    let mut root = root.clone();
    if root.get("Resources").and_then(Value::as_object).is_none_or(|r| r.is_empty()) {
        return Err(TransformError::template("'Resources' section is required"));
    }
    let params = intrinsics::Params::new(&root, context);

    let mut errors: Vec<String> = Vec::new();
    let mut sam = root.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
    for (id, resource) in &sam {
        if !resource.is_object() {
            return Err(TransformError::template(
                "All 'Resources' must be Objects. If you're using YAML, this may be an indentation issue.",
            ));
        }
        let is_sam = resource_type(resource).starts_with("AWS::Serverless::");
        if is_sam && resource.get("Properties").is_some_and(|p| !p.is_object() && !p.is_null()) {
            return Err(TransformError::from_errors(vec![ResourceError::new(
                id,
                "Attribute 'Properties' should be a map.",
            )
            .message()]));
        }
    }
    // The translator's plugins, in its order: default API bodies, implicit APIs, then Globals.
    let mut shadows = py27::Shadows::new();
    api::default_bodies(&mut sam, &mut shadows);
    let globals = root.get("Globals").cloned();
    let mut walk = plugin_order::PluginOrder::new(&root, &sam, &context.source_order);
    let had_rest = sam.contains_key(api::IMPLICIT_ID);
    walk.add_implicit(api::IMPLICIT_ID, had_rest);
    let mut conditions =
        api::add_implicit_rest_api(&mut sam, globals.as_ref(), &mut shadows, &walk.order, &mut errors);
    walk.after_plugin(api::IMPLICIT_ID, had_rest, &sam, "Api");
    let had_http = sam.contains_key(http_api::IMPLICIT_ID);
    walk.add_implicit(http_api::IMPLICIT_ID, had_http);
    conditions.extend(http_api::add_implicit_http_api(&mut sam, globals.as_ref(), &walk.order, &mut errors));
    walk.after_plugin(http_api::IMPLICIT_ID, had_http, &sam, "HttpApi");
    if !conditions.is_empty() {
        if let Some(map) =
            root.entry("Conditions").or_insert_with(|| Value::Object(Map::new())).as_object_mut()
        {
            map.extend(conditions);
        }
    }
    if !errors.is_empty() {
        return Err(TransformError::from_errors(errors));
    }
    root.insert("Resources".into(), Value::Object(sam));
    globals::apply(&mut root).map_err(TransformError::from_errors)?;
    if let Some(Value::Object(resources)) = root.get_mut("Resources") {
        api::fix_openapi_versions(resources, &mut shadows);
        connector::embed(resources, &mut walk.order, &mut errors);
    }
    let sam: Map<String, Value> = root
        .get("Resources")
        .and_then(Value::as_object)
        .map(|r| {
            r.iter()
                .filter(|(_, v)| resource_type(v).starts_with("AWS::Serverless::"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();

    let mut ctx = context.clone();
    ctx.source_order = walk.order;
    let context = &ctx;
    let mut out = Out::new(&root, context, params);
    out.sam = sam.clone();
    out.shadows = shadows;
    let order = processing_order(&sam, &context.source_order);
    out.api_function_names = api_function_names(&out, &order);
    for id in order {
        let resource = out.sam[&id].clone();
        let result = match resource_type(&resource) {
            "AWS::Serverless::Function" => function::translate(&mut out, &id, &resource),
            "AWS::Serverless::StateMachine" => state_machine::translate(&mut out, &id, &resource),
            "AWS::Serverless::Api" => api::translate(&mut out, &id, &resource),
            "AWS::Serverless::HttpApi" => http_api::translate(&mut out, &id, &resource),
            "AWS::Serverless::SimpleTable" => simple_table::translate(&mut out, &id, &resource),
            "AWS::Serverless::LayerVersion" => layer::translate(&mut out, &id, &resource),
            "AWS::Serverless::Application" => application::translate(&mut out, &id, &resource),
            "AWS::Serverless::Connector" => connector::translate(&mut out, &id, &resource),
            other => Err(ResourceError::new(
                &id,
                format!("Resource type {other} is not supported by nimbus's SAM transform."),
            )),
        };
        if let Err(e) = result {
            errors.push(e.message());
        }
    }
    if let Err(e) = deployment::finish(&mut out) {
        errors.push(e.message());
    }
    // Duplicates of one message count once, as the translator counts them.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|m| seen.insert(m.clone()));
    if !errors.is_empty() {
        return Err(TransformError::from_errors(errors));
    }
    Ok(out.finish())
}

fn resource_type(resource: &Value) -> &str {
    resource.get("Type").and_then(Value::as_str).unwrap_or("")
}

/// Functions first (their API events write into the APIs' definitions), then state machines,
/// then APIs, then the rest, connectors last; non-SAM resources are left where they are.
fn processing_order(sam: &Map<String, Value>, source: &SourceOrder) -> Vec<String> {
    let rank = |t: &str| match t {
        "AWS::Serverless::Function" => Some(0),
        "AWS::Serverless::StateMachine" => Some(1),
        "AWS::Serverless::Api" | "AWS::Serverless::HttpApi" => Some(2),
        "AWS::Serverless::Connector" => Some(4),
        t if t.starts_with("AWS::Serverless::") => Some(3),
        _ => None,
    };
    let mut ids: Vec<(u8, String)> = source
        .keys(&["Resources"], sam)
        .into_iter()
        .filter_map(|id| rank(resource_type(&sam[&id])).map(|k| (k, id)))
        .collect();
    ids.sort_by_key(|(k, _)| *k);
    ids.into_iter().map(|(_, id)| id).collect()
}

/// For each REST API, the resolved `FunctionName`s of the functions whose `Api` events name it,
/// concatenated: part of what its deployment's id hashes.
fn api_function_names(out: &Out, order: &[String]) -> std::collections::BTreeMap<String, String> {
    let mut names = std::collections::BTreeMap::<String, String>::new();
    for id in order {
        let resource = &out.sam[id];
        if resource_type(resource) != "AWS::Serverless::Function" {
            continue;
        }
        let Some(events) = resource.pointer("/Properties/Events").and_then(Value::as_object) else {
            continue;
        };
        let keys = out.ctx.source_order.keys(&["Resources", id, "Properties", "Events"], events);
        for event in keys.iter().map(|k| &events[k]) {
            if event.get("Type").and_then(Value::as_str) != Some("Api") {
                continue;
            }
            let api = match event.pointer("/Properties/RestApiId") {
                Some(Value::Object(m)) if m.contains_key("Ref") => m["Ref"].clone(),
                Some(other) => other.clone(),
                None => continue,
            };
            let Some(api) = api.as_str() else { continue };
            let Some(name) = resource.pointer("/Properties/FunctionName") else { continue };
            let resolved = out.params.resolve(name);
            if !function::truthy(&resolved) {
                continue;
            }
            let text = match &resolved {
                Value::String(s) => s.clone(),
                other => py27::swagger_repr(other, false, &[], None, None),
            };
            names.entry(api.to_string()).or_default().push_str(&text);
        }
    }
    names
}
