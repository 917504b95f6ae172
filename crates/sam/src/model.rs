//! The output being built: CloudFormation resources, new conditions, the names SAM-only
//! references resolve to (`Fn.Alias` → `FnAliaslive`), and logical ids that changed
//! (`MyLayer` → `MyLayer1a2b3c4d5e`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::deployment::Preferences;
use crate::error::{ResourceError, Result};
use crate::intrinsics::Params;
use crate::Context;

/// One CloudFormation resource being generated.
#[derive(Clone, Debug)]
pub(crate) struct Cfn {
    pub id: String,
    pub ty: &'static str,
    pub props: Map<String, Value>,
    /// `DependsOn`, `Condition`, `DeletionPolicy`, `UpdatePolicy` …
    pub attrs: Map<String, Value>,
}

impl Cfn {
    pub(crate) fn new(id: impl Into<String>, ty: &'static str) -> Cfn {
        Cfn { id: id.into(), ty, props: Map::new(), attrs: Map::new() }
    }

    /// With the attributes a SAM resource passes to everything it generates.
    pub(crate) fn with(id: impl Into<String>, ty: &'static str, attrs: &Map<String, Value>) -> Cfn {
        let mut cfn = Cfn::new(id, ty);
        cfn.attrs = attrs.clone();
        cfn
    }

    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Cfn {
        self.props.insert(key.to_string(), value.into());
        self
    }

    /// Sets the property when the value is present (the translator drops `None` only).
    pub(crate) fn set_opt(&mut self, key: &str, value: Option<&Value>) -> &mut Cfn {
        if let Some(v) = value {
            if !v.is_null() {
                self.props.insert(key.to_string(), v.clone());
            }
        }
        self
    }

    pub(crate) fn arn(&self) -> Value {
        json!({"Fn::GetAtt": [self.id, "Arn"]})
    }

    pub(crate) fn reference(&self) -> Value {
        json!({"Ref": self.id})
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut out = Map::new();
        out.insert("Type".into(), json!(self.ty));
        for (k, v) in &self.attrs {
            out.insert(k.clone(), v.clone());
        }
        out.insert("Properties".into(), Value::Object(self.props.clone()));
        Value::Object(out)
    }
}

/// The attributes a SAM resource passes on to every resource it generates.
pub(crate) fn passthrough_attrs(resource: &Value) -> Map<String, Value> {
    let mut attrs = Map::new();
    for key in ["Condition", "DeletionPolicy", "UpdateReplacePolicy"] {
        if let Some(v) = resource.get(key) {
            attrs.insert(key.into(), v.clone());
        }
    }
    attrs
}

/// The attributes the main generated resource keeps (the pass-through ones, `Metadata`,
/// `UpdatePolicy`).
pub(crate) fn resource_attrs(resource: &Value) -> Map<String, Value> {
    let mut attrs = Map::new();
    for key in ["DeletionPolicy", "UpdatePolicy", "Condition", "UpdateReplacePolicy", "Metadata"] {
        if let Some(v) = resource.get(key) {
            attrs.insert(key.into(), v.clone());
        }
    }
    attrs
}

pub(crate) struct Out {
    pub ctx: Context,
    pub params: Params,
    /// The template as the plugins left it (Globals merged, implicit APIs added), less Resources.
    pub root: Map<String, Value>,
    /// SAM resources (with the plugins' changes; API events write into their API here).
    pub sam: Map<String, Value>,
    /// Resources of the result: the non-SAM ones, then everything generated.
    pub resources: Map<String, Value>,
    pub conditions: Map<String, Value>,
    /// `(LogicalId, Property)` → generated logical id, for `!Ref Fn.Alias` and such.
    pub refs: BTreeMap<(String, String), String>,
    /// SAM logical ids whose CloudFormation id differs.
    pub changed_ids: BTreeMap<String, String>,
    pub deployments: Preferences,
    /// REST API id → the names of the functions its events call (see `api_function_names`).
    pub api_function_names: BTreeMap<String, String>,
    /// Python 2.7 key order of the REST APIs' bodies (for their deployment ids).
    pub shadows: crate::py27::Shadows,
    /// The `SHARED` usage plan the REST APIs build together.
    pub shared_usage_plan: crate::usage_plan::Shared,
    /// Function logical id → whether it names a `FunctionName` (REST API redeploy hashing).
    pub original: Map<String, Value>,
}

impl Out {
    pub(crate) fn new(root: &Map<String, Value>, ctx: &Context, params: Params) -> Out {
        let original = root.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
        let resources = original
            .iter()
            .filter(|(_, r)| {
                !r.get("Type").and_then(Value::as_str).unwrap_or("").starts_with("AWS::Serverless::")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut root = root.clone();
        root.remove("Resources");
        Out {
            ctx: ctx.clone(),
            params,
            root,
            sam: Map::new(),
            resources,
            conditions: Map::new(),
            refs: BTreeMap::new(),
            changed_ids: BTreeMap::new(),
            deployments: Preferences::default(),
            api_function_names: BTreeMap::new(),
            shadows: Default::default(),
            shared_usage_plan: Default::default(),
            original,
        }
    }

    /// Adds generated resources, refusing ids the template already uses for something else.
    pub(crate) fn add(&mut self, sam_id: &str, resources: Vec<Cfn>) -> Result<()> {
        for r in &resources {
            if let Some(existing) = self.original.get(&r.id) {
                let existing_type = existing.get("Type").and_then(Value::as_str).unwrap_or("");
                if !same_resource(r.ty, existing_type) {
                    return Err(ResourceError::raw(format!(
                        "Transforming resource with id [{sam_id}] attempts to create a new resource \
                         with id [{}] and type \"{}\". A resource with that id already exists within \
                         this template. Please use a different id for that resource.",
                        r.id, r.ty
                    )));
                }
            }
        }
        for r in resources {
            self.resources.insert(r.id.clone(), r.to_value());
        }
        Ok(())
    }

    pub(crate) fn add_ref(&mut self, id: &str, property: &str, target: &str) {
        self.refs.insert((id.to_string(), property.to_string()), target.to_string());
    }

    pub(crate) fn finish(self) -> Value {
        let mut root = self.root;
        root.remove("Transform");
        root.remove("Globals");
        root.insert("Resources".into(), Value::Object(self.resources));
        if !self.conditions.is_empty() {
            let conditions = root.entry("Conditions").or_insert_with(|| json!({}));
            if let Some(map) = conditions.as_object_mut() {
                for (k, v) in self.conditions {
                    map.insert(k, v);
                }
            }
        }
        let mut template = Value::Object(root);
        crate::refs::resolve(&mut template, &self.changed_ids, &self.refs);
        template
    }
}

fn same_resource(generated: &str, existing: &str) -> bool {
    let allowed: &[&str] = match generated {
        "AWS::Lambda::Function" => &["AWS::Serverless::Function"],
        "AWS::Lambda::LayerVersion" => &["AWS::Serverless::LayerVersion"],
        "AWS::ApiGateway::RestApi" => &["AWS::Serverless::Api"],
        "AWS::ApiGatewayV2::Api" => &["AWS::Serverless::HttpApi", "AWS::Serverless::WebSocketApi"],
        "AWS::S3::Bucket" => &["AWS::S3::Bucket"],
        "AWS::SNS::Topic" => &["AWS::SNS::Topic"],
        "AWS::DynamoDB::Table" => &["AWS::Serverless::SimpleTable"],
        "AWS::CloudFormation::Stack" => &["AWS::Serverless::Application"],
        "AWS::StepFunctions::StateMachine" => &["AWS::Serverless::StateMachine"],
        _ => &[],
    };
    allowed.contains(&existing)
}

/// A resource's `Properties` (an empty map when absent).
pub(crate) fn properties(resource: &Value) -> Map<String, Value> {
    resource.get("Properties").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// `{"k": "v"}` → `[{"Key": "k", "Value": "v"}]`, `lambda:createdBy: SAM` first when `sam`.
pub(crate) fn tag_list(tags: Option<&Value>, sam: bool) -> Vec<Value> {
    let mut list = Vec::new();
    if sam {
        list.push(json!({"Key": "lambda:createdBy", "Value": "SAM"}));
    }
    if let Some(Value::Object(tags)) = tags {
        for (k, v) in tags {
            list.push(json!({"Key": k, "Value": v}));
        }
    }
    list
}

/// The reserved tag names a template may not set.
pub(crate) fn check_tags(id: &str, tags: Option<&Value>) -> Result<()> {
    if let Some(Value::Object(tags)) = tags {
        for reserved in ["lambda:createdBy", "serverlessrepo:applicationId", "serverlessrepo:semanticVersion"]
        {
            if tags.contains_key(reserved) {
                return Err(ResourceError::new(
                    id,
                    format!(
                        "{reserved} is a reserved Tag key name and cannot be set on your resource. \
                         Please change the tag key in the input."
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Generated types SAM's `PropagateTags` tags (the ones its models give a `Tags` list).
pub(crate) fn takes_tags(ty: &str) -> bool {
    matches!(
        ty,
        "AWS::Lambda::Function"
            | "AWS::IAM::Role"
            | "AWS::SQS::Queue"
            | "AWS::SNS::Topic"
            | "AWS::StepFunctions::StateMachine"
            | "AWS::ApiGateway::RestApi"
            | "AWS::ApiGateway::Stage"
            | "AWS::DynamoDB::Table"
            | "AWS::S3::Bucket"
            | "AWS::CloudFormation::Stack"
            | "AWS::CodeDeploy::Application"
            | "AWS::CodeDeploy::DeploymentGroup"
    )
}

/// `PropagateTags: true`: the resource's tags replace the tags of everything generated.
pub(crate) fn propagate_tags(resources: &mut [Cfn], tags: Option<&Value>) {
    let Some(Value::Object(tags)) = tags else { return };
    if tags.is_empty() {
        return;
    }
    for r in resources {
        if r.ty == "AWS::ApiGatewayV2::Stage" {
            r.set("Tags", Value::Object(tags.clone()));
        } else if takes_tags(r.ty) {
            r.set("Tags", Value::Array(tag_list(Some(&Value::Object(tags.clone())), false)));
        }
    }
}

/// `Type: AWS::IAM::Role` assume-role document for a service principal.
pub(crate) fn assume_role(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": [service]}}]
    })
}

/// Refuses properties the SAM resource type does not define, as the translator does.
pub(crate) fn check_known(id: &str, ty: &str, props: &Map<String, Value>, known: &[&str]) -> Result<()> {
    for key in props.keys() {
        if !known.contains(&key.as_str()) {
            return Err(ResourceError::new(
                id,
                format!("property {key} not defined for resource of type {ty}"),
            ));
        }
    }
    Ok(())
}
