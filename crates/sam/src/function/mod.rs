//! `AWS::Serverless::Function` → `AWS::Lambda::Function`, its execution role, version and alias,
//! URL, event invoke config, and the resources of its events.

mod code;
mod invoke;

pub(crate) use code::{s3_location, truthy};

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::{self, Target};
use crate::intrinsics::{is_if, is_no_value};
use crate::model::{check_tags, passthrough_attrs, properties, resource_attrs, tag_list, Cfn, Out};
use crate::policies::{self, aws_policy, RoleSpec};

/// Properties copied to the Lambda function as they are.
const PASS_THROUGH: &[&str] = &[
    "FunctionName",
    "Handler",
    "Runtime",
    "Description",
    "MemorySize",
    "Timeout",
    "VpcConfig",
    "Role",
    "Environment",
    "KmsKeyArn",
    "ReservedConcurrentExecutions",
    "Layers",
    "FileSystemConfigs",
    "ImageConfig",
    "PackageType",
    "Architectures",
    "SnapStart",
    "EphemeralStorage",
    "CodeSigningConfigArn",
    "RuntimeManagementConfig",
    "LoggingConfig",
    "TenancyConfig",
    "RecursiveLoop",
    "DurableConfig",
    "FunctionScalingConfig",
    "PublishToLatestPublished",
];

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let props = properties(resource);
    // Policy templates become statements before anything else (the translator's plugin).
    let policies = policies::expand_templates(id, policies::policy_list(props.get("Policies")))?;
    let get = |k: &str| props.get(k).filter(|v| !v.is_null());
    let events_map = match get("Events") {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ResourceError::new(id, "Property 'Events' should be a map.")),
        None => Map::new(),
    };
    let events = events::parse(id, &events_map, &out.ctx.source_order)?;
    if get("VersionDeletionPolicy").is_some() && get("AutoPublishAlias").is_none() {
        return Err(ResourceError::new(id, "VersionDeletionPolicy must be used with AutoPublishAlias."));
    }
    if let Some(dlq) = get("DeadLetterQueue") {
        validate_dlq(id, dlq)?;
    }
    check_tags(id, get("Tags"))?;

    let attrs = passthrough_attrs(resource);
    let mut function = Cfn::with(id, "AWS::Lambda::Function", &resource_attrs(resource));
    if let Some(deps) = resource.get("DependsOn") {
        function.attrs.insert("DependsOn".into(), deps.clone());
    }
    for key in PASS_THROUGH {
        function.set_opt(key, get(key));
    }
    if get("FunctionName").is_some_and(|v| v.as_str() == Some("")) {
        function.props.remove("FunctionName");
    }
    function.set("Code", Value::Object(code::code_dict(id, &props)?));
    function.set("Tags", Value::Array(tag_list(get("Tags"), true)));
    let tracing = get("Tracing").cloned();
    let traced = tracing.as_ref().is_some_and(|t| {
        out.params.resolve(t).as_str() != Some("Disabled") && !matches!(t, Value::String(s) if s.is_empty())
    });
    if traced {
        function.set("TracingConfig", json!({"Mode": tracing}));
    }
    if let Some(dlq) = get("DeadLetterQueue") {
        function.set("DeadLetterConfig", json!({"TargetArn": dlq["TargetArn"]}));
    }
    if let Some(cp) = get("CapacityProviderConfig") {
        function.set("CapacityProviderConfig", cp.clone());
    }
    code::validate_package_type(id, &function)?;

    if get("ProvisionedConcurrencyConfig").is_some() && get("AutoPublishAlias").is_none() {
        return Err(ResourceError::new(
            id,
            "To set ProvisionedConcurrencyConfig AutoPublishALias must be defined on the function",
        ));
    }
    let mut resources = vec![];
    let mut alias: Option<Cfn> = None;
    let mut alias_name = String::new();
    if let Some(raw) = get("AutoPublishAlias") {
        alias_name = match out.params.resolve(raw) {
            Value::String(s) => s,
            _ => {
                return Err(ResourceError::new(
                    id,
                    "'AutoPublishAlias' must be a string or a Ref to a template parameter",
                ))
            }
        };
        let sha = match get("AutoPublishCodeSha256") {
            Some(raw) => match out.params.resolve(raw) {
                Value::String(s) => Some(s),
                _ => return Err(ResourceError::new(id, "AutoPublishCodeSha256 must be a string")),
            },
            None => None,
        };
        if let Some(sha) = &sha {
            let description = get("Description").map(|d| out.params.resolve(d));
            let new = match description {
                None | Some(Value::Null) => json!(sha),
                Some(Value::String(d)) if d.is_empty() => json!(sha),
                Some(Value::String(d)) => json!(format!("{d} {sha}")),
                Some(d) => json!({"Fn::Join": [" ", [d, sha]]}),
            };
            function.set("Description", new);
        }
        let version = code::version(out, id, &props, &function, sha.as_deref(), &attrs)?;
        // The translator resolves parameters in the code location in place when it hashes it.
        let code = out.params.resolve(&function.props["Code"]);
        function.set("Code", code);
        let a = code::alias(id, &alias_name, &props, &function, &version, &attrs)?;
        resources.push(version);
        alias = Some(a);
    }
    if let Some(url_config) = get("FunctionUrlConfig") {
        resources.extend(invoke::function_url(id, url_config, alias.as_ref(), &attrs)?);
    }
    if get("DeploymentPreference").is_none() {
    } else if let Some(a) = &mut alias {
        crate::deployment::add(out, id, resource, &props, a)?;
    } else {
        crate::deployment::add_without_alias(out, id, resource, &props)?;
    }
    let mut invoke_policies = vec![];
    if let Some(config) = get("EventInvokeConfig") {
        let (generated, policies) =
            invoke::event_invoke_config(out, id, config, &alias_name, alias.as_ref(), resource)?;
        resources.extend(generated);
        invoke_policies = policies;
    }

    let mut role = execution_role(out, id, &props, policies, invoke_policies, traced, &attrs)?;
    let mut role_added = false;
    match function.props.get("Role").cloned() {
        None => {
            function.set("Role", role.arn());
            role_added = true;
        }
        Some(r) if is_if(&r) => {
            let resolved = out.params.resolve(&r);
            let items = resolved["Fn::If"].as_array().cloned().unwrap_or_default();
            if items.len() != 3 {
                return Err(ResourceError::new(
                    id,
                    "Malformed 'Role' property: Fn::If requires 3 arguments.",
                ));
            }
            let (cond, then, otherwise) = (&items[0], &items[1], &items[2]);
            if is_no_value(then) && is_no_value(otherwise) {
                function.set("Role", role.arn());
                role_added = true;
            } else if is_no_value(then) {
                function.set("Role", json!({"Fn::If": [cond, role.arn(), otherwise]}));
                role.attrs.insert("Condition".into(), cond.clone());
                role_added = true;
            } else if is_no_value(otherwise) {
                function.set("Role", json!({"Fn::If": [cond, then, role.arn()]}));
                let not = format!("NOT{}", cond.as_str().unwrap_or_default());
                role.attrs.insert("Condition".into(), json!(not));
                out.conditions.insert(not, json!({"Fn::Not": [{"Condition": cond}]}));
                role_added = true;
            }
        }
        Some(_) => {}
    }

    let target = match &alias {
        Some(a) => Target {
            name: a.reference(),
            arn: a.reference(),
            attrs: passthrough_attrs(&a.to_value()),
            function_id: id.to_string(),
            state_machine: false,
        },
        None => Target {
            name: function.reference(),
            arn: function.arn(),
            attrs: passthrough_attrs(resource),
            function_id: id.to_string(),
            state_machine: false,
        },
    };
    let event_resources = events::translate(out, id, events, &target, Some(&mut role))?;

    let mut all = vec![function];
    if role_added {
        all.push(role);
    }
    all.extend(resources);
    if let Some(a) = alias {
        all.push(a);
    }
    all.extend(event_resources);
    if get("PropagateTags").and_then(Value::as_bool) == Some(true) {
        crate::model::propagate_tags(&mut all, get("Tags"));
    }
    for (prop, ty) in [
        ("Alias", "AWS::Lambda::Alias"),
        ("Version", "AWS::Lambda::Version"),
        ("DestinationTopic", "AWS::SNS::Topic"),
        ("DestinationQueue", "AWS::SQS::Queue"),
    ] {
        if let Some(r) = all.iter().rev().find(|r| r.ty == ty) {
            out.add_ref(id, prop, &r.id.clone());
        }
    }
    out.add(id, all)
}

fn validate_dlq(id: &str, dlq: &Value) -> Result<()> {
    let ty = dlq.get("Type").filter(|v| !v.is_null() && v.as_str() != Some(""));
    if ty.is_none() || dlq.get("TargetArn").is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        return Err(ResourceError::new(
            id,
            "'DeadLetterQueue' requires Type and TargetArn properties to be specified.",
        ));
    }
    match ty.and_then(Value::as_str) {
        Some("SQS") | Some("SNS") => Ok(()),
        Some(_) => Err(ResourceError::new(id, "'DeadLetterQueue' requires Type of ['SQS', 'SNS']")),
        None => Err(ResourceError::new(id, "Property 'DeadLetterQueue.Type' should be a string.")),
    }
}

fn execution_role(
    out: &Out,
    id: &str,
    props: &Map<String, Value>,
    policies: Vec<Value>,
    invoke_policies: Vec<Value>,
    traced: bool,
    attrs: &Map<String, Value>,
) -> Result<Cfn> {
    let partition = out.ctx.partition.clone();
    let get = |k: &str| props.get(k).filter(|v| !v.is_null());
    let mut managed = vec![if get("DurableConfig").is_some() {
        aws_policy(&partition, "service-role/AWSLambdaBasicDurableExecutionRolePolicy")
    } else {
        aws_policy(&partition, "service-role/AWSLambdaBasicExecutionRole")
    }];
    if traced {
        managed.push(aws_policy(&partition, "AWSXrayWriteOnlyAccess"));
    }
    if get("VpcConfig").is_some() {
        managed.push(aws_policy(&partition, "service-role/AWSLambdaVPCAccessExecutionRole"));
    }
    let mut documents = vec![];
    if let Some(dlq) = get("DeadLetterQueue") {
        let action = if dlq["Type"] == "SQS" { "sqs:SendMessage" } else { "sns:Publish" };
        documents.push(json!({
            "PolicyName": "DeadLetterQueuePolicy",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": action, "Resource": dlq["TargetArn"], "Effect": "Allow"}]
            }
        }));
    }
    documents.extend(invoke_policies);
    policies::role(RoleSpec {
        sam_id: id,
        attrs: attrs.clone(),
        assume: get("AssumeRolePolicyDocument")
            .cloned()
            .unwrap_or_else(|| crate::model::assume_role("lambda.amazonaws.com")),
        policies,
        managed,
        documents,
        path: get("RolePath"),
        boundary: get("PermissionsBoundary"),
        tags: Some(tag_list(get("Tags"), true)),
        partition: &partition,
    })
}
