//! Lambda's resource types for CloudFormation (Function, Version, Alias, LayerVersion,
//! Permission, EventSourceMapping, EventInvokeConfig, Url): each step is a call to Lambda's own
//! API, in-process. Inline code (`Code.ZipFile`) is packaged as AWS does (`index.py` with the
//! `cfnresponse` module, `index.js`).

use std::sync::Arc;

use hyper::Method;
use nimbus_api::provider::{
    booleans, call, numbers, tag_map, text, ProviderError, ProviderFuture, Provisioned, ResourceProvider,
    ResourceRequest,
};
use nimbus_api::Service;
use serde_json::{json, Map, Value};

use crate::inline_code::code;

pub struct FunctionProvider {
    lambda: Arc<dyn Service>,
}

const TYPES: &[&str] = &[
    "AWS::Lambda::Function",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Url",
    "AWS::Lambda::LayerVersionPermission",
];

const NOT_CONFIGURATION: &[&str] = &[
    "Code",
    "Tags",
    "ReservedConcurrentExecutions",
    "FunctionName",
    "PackageType",
    "Architectures",
    "CodeSigningConfigArn",
];

/// Configuration properties (those `UpdateFunctionConfiguration` takes), typed.
fn configuration(properties: &Map<String, Value>) -> Map<String, Value> {
    let mut config: Map<String, Value> = properties
        .iter()
        .filter(|(k, _)| !NOT_CONFIGURATION.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    numbers(&mut config, &["MemorySize", "Timeout"]);
    if let Some(Value::Object(storage)) = config.get_mut("EphemeralStorage") {
        numbers(storage, &["Size"]);
    }
    config
}

fn name_of(function: &str) -> String {
    // `arn:aws:lambda:r:a:function:NAME[:QUALIFIER]` or a name.
    let parts: Vec<&str> = function.split(':').collect();
    if parts.len() >= 7 && parts[0] == "arn" {
        parts[6].to_owned()
    } else {
        function.to_owned()
    }
}

fn qualifier_of(function: &str) -> Option<String> {
    let parts: Vec<&str> = function.split(':').collect();
    (parts.len() == 8 && parts[0] == "arn").then(|| parts[7].to_owned())
}

fn missing(name: &str) -> ProviderError {
    ProviderError::new(format!("Property {name} cannot be empty."))
}

impl FunctionProvider {
    pub fn new(lambda: Arc<dyn Service>) -> FunctionProvider {
        FunctionProvider { lambda }
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ProviderError> {
        let headers = [("content-type", "application/json")];
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let bytes = call(self.lambda.as_ref(), method, path, &headers, body).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Layers published in other accounts (AWS's own, say) that nimbus does not hold: the
    /// function keeps naming them and runs without them until they are imported; the returned
    /// note (the resource's event) names them.
    async fn missing_layers(&self, config: &Map<String, Value>, account: &str) -> Option<String> {
        let Some(Value::Array(layers)) = config.get("Layers") else { return None };
        let mut missing = Vec::new();
        for layer in layers {
            let arn = text(layer);
            let foreign = arn.split(':').nth(4).is_some_and(|owner| owner != account);
            let path = format!("/2018-10-31/layers?find=LayerVersion&Arn={arn}");
            if foreign && self.api(Method::GET, &path, None).await.is_err() {
                missing.push(arn);
            }
        }
        if missing.is_empty() {
            return None;
        }
        Some(format!(
            "Layers published in other accounts are not in nimbus: [{}]. The function runs without them (its log says so) until `nimbus layers import ARN LAYER.zip` brings each in",
            missing.join(", ")
        ))
    }

    async fn create_function(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let name = request
            .string("FunctionName")
            .map(str::to_owned)
            .unwrap_or_else(|| request.generated_name(64, false));
        let mut body = configuration(&request.properties);
        let note = self.missing_layers(&body, &request.account).await;
        body.insert("FunctionName".into(), name.clone().into());
        body.insert("Code".into(), code(&request.properties)?);
        for key in ["PackageType", "Architectures", "CodeSigningConfigArn"] {
            if let Some(value) = request.property(key) {
                body.insert(key.into(), value.clone());
            }
        }
        let tags = tag_map(request.property("Tags"));
        if !tags.is_empty() {
            body.insert("Tags".into(), Value::Object(tags));
        }
        let created = self.api(Method::POST, "/2015-03-31/functions", Some(Value::Object(body))).await?;
        if let Some(reserved) = request.property("ReservedConcurrentExecutions") {
            let path = format!("/2017-10-31/functions/{name}/concurrency");
            let reserved = text(reserved).parse::<i64>().unwrap_or_default();
            if let Err(error) =
                self.api(Method::PUT, &path, Some(json!({"ReservedConcurrentExecutions": reserved}))).await
            {
                let _ = self.api(Method::DELETE, &format!("/2015-03-31/functions/{name}"), None).await;
                return Err(error);
            }
        }
        let provisioned = function_provisioned(name, &created);
        Ok(match note {
            Some(note) => provisioned.with_note(note),
            None => provisioned,
        })
    }

    async fn update_function(
        &self,
        request: &ResourceRequest,
        name: String,
        previous: &Map<String, Value>,
    ) -> Result<Provisioned, ProviderError> {
        let mut config = configuration(&request.properties);
        // What the template no longer sets returns to Lambda's defaults.
        let defaults = [
            ("Environment", json!({"Variables": {}})),
            ("Layers", json!([])),
            ("Description", json!("")),
            ("Timeout", json!(3)),
            ("MemorySize", json!(128)),
            ("DeadLetterConfig", json!({})),
            ("VpcConfig", json!({"SubnetIds": [], "SecurityGroupIds": []})),
        ];
        for (key, default) in defaults {
            if previous.contains_key(key) && !config.contains_key(key) {
                config.insert(key.into(), default);
            }
        }
        let note = self.missing_layers(&config, &request.account).await;
        let old_config = configuration(previous);
        if config != old_config {
            self.api(
                Method::PUT,
                &format!("/2015-03-31/functions/{name}/configuration"),
                Some(Value::Object(config)),
            )
            .await?;
        }
        if previous.get("Code") != request.property("Code")
            || previous.get("Architectures") != request.property("Architectures")
        {
            let mut body = code(&request.properties)?.as_object().cloned().unwrap_or_default();
            if let Some(arch) = request.property("Architectures") {
                body.insert("Architectures".into(), arch.clone());
            }
            self.api(Method::PUT, &format!("/2015-03-31/functions/{name}/code"), Some(Value::Object(body)))
                .await?;
        }
        if previous.get("ReservedConcurrentExecutions") != request.property("ReservedConcurrentExecutions") {
            let path = format!("/2017-10-31/functions/{name}/concurrency");
            match request.property("ReservedConcurrentExecutions") {
                Some(reserved) => {
                    let reserved = text(reserved).parse::<i64>().unwrap_or_default();
                    self.api(Method::PUT, &path, Some(json!({"ReservedConcurrentExecutions": reserved})))
                        .await?;
                }
                None => {
                    self.api(Method::DELETE, &path, None).await?;
                }
            }
        }
        let (old_tags, new_tags) = (tag_map(previous.get("Tags")), tag_map(request.property("Tags")));
        let got = self.api(Method::GET, &format!("/2015-03-31/functions/{name}"), None).await?;
        let arn = got["Configuration"]["FunctionArn"].as_str().unwrap_or_default().to_owned();
        if old_tags != new_tags {
            let removed: Vec<String> =
                old_tags.keys().filter(|k| !new_tags.contains_key(*k)).cloned().collect();
            if !removed.is_empty() {
                let keys: String =
                    removed.iter().map(|k| format!("tagKeys={k}")).collect::<Vec<_>>().join("&");
                self.api(Method::DELETE, &format!("/2017-03-31/tags/{arn}?{keys}"), None).await?;
            }
            if !new_tags.is_empty() {
                self.api(Method::POST, &format!("/2017-03-31/tags/{arn}"), Some(json!({"Tags": new_tags})))
                    .await?;
            }
        }
        let provisioned = function_provisioned(name, &got["Configuration"]);
        Ok(match note {
            Some(note) => provisioned.with_note(note),
            None => provisioned,
        })
    }
}

fn function_provisioned(name: String, config: &Value) -> Provisioned {
    let mut attributes = Map::new();
    attributes.insert("Arn".into(), config["FunctionArn"].clone());
    Provisioned { physical_id: name, attributes }
}

fn layer_parts(arn: &str) -> (String, String) {
    // arn:aws:lambda:r:a:layer:NAME:VERSION
    let parts: Vec<&str> = arn.split(':').collect();
    (
        parts.get(6).copied().unwrap_or_default().to_owned(),
        parts.get(7).copied().unwrap_or_default().to_owned(),
    )
}

impl ResourceProvider for FunctionProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            "AWS::Lambda::Function" => matches!(property, "FunctionName" | "PackageType"),
            "AWS::Lambda::Alias" => matches!(property, "FunctionName" | "Name"),
            "AWS::Lambda::EventSourceMapping" => matches!(
                property,
                "EventSourceArn"
                    | "StartingPosition"
                    | "StartingPositionTimestamp"
                    | "SelfManagedEventSource"
                    | "Topics"
                    | "Queues"
            ),
            "AWS::Lambda::EventInvokeConfig" | "AWS::Lambda::Url" => {
                matches!(property, "FunctionName" | "Qualifier" | "TargetFunctionArn")
            }
            // Versions, layer versions and permissions are immutable.
            _ => true,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            let function = request.string("FunctionName").map(str::to_owned);
            match request.resource_type.as_str() {
                "AWS::Lambda::Function" => self.create_function(&request).await,
                "AWS::Lambda::Version" => {
                    let function = function.ok_or_else(|| missing("FunctionName"))?;
                    let mut body = Map::new();
                    for key in ["Description", "CodeSha256"] {
                        if let Some(v) = request.property(key) {
                            body.insert(key.into(), v.clone());
                        }
                    }
                    let path = format!("/2015-03-31/functions/{}/versions", name_of(&function));
                    let published = self.api(Method::POST, &path, Some(Value::Object(body))).await?;
                    let mut attributes = Map::new();
                    attributes.insert("Version".into(), published["Version"].clone());
                    attributes.insert("FunctionArn".into(), published["FunctionArn"].clone());
                    let arn = published["FunctionArn"].as_str().unwrap_or_default().to_owned();
                    Ok(Provisioned { physical_id: arn, attributes })
                }
                "AWS::Lambda::Alias" => {
                    let function = function.ok_or_else(|| missing("FunctionName"))?;
                    let body = alias_body(&request, true);
                    let path = format!("/2015-03-31/functions/{}/aliases", name_of(&function));
                    let alias = self.api(Method::POST, &path, Some(body)).await?;
                    let arn = alias["AliasArn"].as_str().unwrap_or_default().to_owned();
                    let mut attributes = Map::new();
                    attributes.insert("AliasArn".into(), arn.clone().into());
                    Ok(Provisioned { physical_id: arn, attributes })
                }
                "AWS::Lambda::LayerVersion" => {
                    let name = request
                        .string("LayerName")
                        .map(str::to_owned)
                        .unwrap_or_else(|| request.generated_name(140, false));
                    let mut body = Map::new();
                    for key in [
                        "Content",
                        "CompatibleRuntimes",
                        "CompatibleArchitectures",
                        "Description",
                        "LicenseInfo",
                    ] {
                        if let Some(v) = request.property(key) {
                            body.insert(key.into(), v.clone());
                        }
                    }
                    let path = format!("/2018-10-31/layers/{}/versions", name_of(&name));
                    let layer = self.api(Method::POST, &path, Some(Value::Object(body))).await?;
                    let arn = layer["LayerVersionArn"].as_str().unwrap_or_default().to_owned();
                    let mut attributes = Map::new();
                    attributes.insert("LayerVersionArn".into(), arn.clone().into());
                    Ok(Provisioned { physical_id: arn, attributes })
                }
                "AWS::Lambda::Permission" => {
                    let function = function.ok_or_else(|| missing("FunctionName"))?;
                    let sid = request.generated_name(100, false);
                    let mut body = request.properties.clone();
                    body.remove("FunctionName");
                    body.insert("StatementId".into(), sid.clone().into());
                    let mut path = format!("/2015-03-31/functions/{}/policy", name_of(&function));
                    if let Some(qualifier) = qualifier_of(&function) {
                        path.push_str(&format!("?Qualifier={qualifier}"));
                    }
                    self.api(Method::POST, &path, Some(Value::Object(body))).await?;
                    Ok(Provisioned { physical_id: sid, attributes: Map::new() })
                }
                "AWS::Lambda::EventSourceMapping" => {
                    let body = mapping_body(&request.properties);
                    let mapping =
                        self.api(Method::POST, "/2015-03-31/event-source-mappings", Some(body)).await?;
                    let id = mapping["UUID"].as_str().unwrap_or_default().to_owned();
                    let mut attributes = Map::new();
                    attributes.insert("Id".into(), id.clone().into());
                    attributes
                        .insert("EventSourceMappingArn".into(), mapping["EventSourceMappingArn"].clone());
                    Ok(Provisioned { physical_id: id, attributes })
                }
                "AWS::Lambda::EventInvokeConfig" => {
                    self.put_invoke_config(&request).await?;
                    Ok(Provisioned {
                        physical_id: request.generated_name(128, false),
                        attributes: Map::new(),
                    })
                }
                "AWS::Lambda::LayerVersionPermission" => {
                    let arn = request.string("LayerVersionArn").ok_or_else(|| missing("LayerVersionArn"))?;
                    let (name, version) = layer_parts(arn);
                    let sid = request.generated_name(100, false);
                    let mut body = request.properties.clone();
                    body.remove("LayerVersionArn");
                    body.insert("StatementId".into(), sid.clone().into());
                    let path = format!("/2018-10-31/layers/{name}/versions/{version}/policy");
                    self.api(Method::POST, &path, Some(Value::Object(body))).await?;
                    Ok(Provisioned { physical_id: sid, attributes: Map::new() })
                }
                _ => self.put_url(&request, Method::POST).await,
            }
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                "AWS::Lambda::Function" => self.update_function(&request, physical_id, &previous).await,
                "AWS::Lambda::Alias" => {
                    let function = request.string("FunctionName").ok_or_else(|| missing("FunctionName"))?;
                    let name = request.string("Name").unwrap_or_default();
                    let path = format!("/2015-03-31/functions/{}/aliases/{name}", name_of(function));
                    let mut body = alias_body(&request, false);
                    // A template without `RoutingConfig` wants none (an interrupted traffic
                    // shift left some behind, say).
                    if let Value::Object(body) = &mut body {
                        body.entry("RoutingConfig").or_insert(json!({"AdditionalVersionWeights": {}}));
                    }
                    self.api(Method::PUT, &path, Some(body)).await?;
                    let mut attributes = Map::new();
                    attributes.insert("AliasArn".into(), physical_id.clone().into());
                    Ok(Provisioned { physical_id, attributes })
                }
                "AWS::Lambda::EventSourceMapping" => {
                    let mut body = mapping_body(&request.properties);
                    if let Value::Object(map) = &mut body {
                        for key in [
                            "EventSourceArn",
                            "StartingPosition",
                            "StartingPositionTimestamp",
                            "Topics",
                            "Queues",
                        ] {
                            map.remove(key);
                        }
                    }
                    let path = format!("/2015-03-31/event-source-mappings/{physical_id}");
                    let mapping = self.api(Method::PUT, &path, Some(body)).await?;
                    let mut attributes = Map::new();
                    attributes.insert("Id".into(), physical_id.clone().into());
                    attributes
                        .insert("EventSourceMappingArn".into(), mapping["EventSourceMappingArn"].clone());
                    Ok(Provisioned { physical_id, attributes })
                }
                "AWS::Lambda::EventInvokeConfig" => {
                    self.put_invoke_config(&request).await?;
                    Ok(Provisioned { physical_id, attributes: Map::new() })
                }
                "AWS::Lambda::Url" => self.put_url(&request, Method::PUT).await,
                other => Err(ProviderError::new(format!("{other} cannot be updated in place"))),
            }
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let function = request.string("FunctionName").map(name_of).unwrap_or_default();
            let path = match request.resource_type.as_str() {
                "AWS::Lambda::Function" => format!("/2015-03-31/functions/{physical_id}"),
                "AWS::Lambda::Version" => {
                    let version = physical_id.rsplit(':').next().unwrap_or_default();
                    format!("/2015-03-31/functions/{function}?Qualifier={version}")
                }
                "AWS::Lambda::Alias" => {
                    let alias = physical_id.rsplit(':').next().unwrap_or_default();
                    format!("/2015-03-31/functions/{function}/aliases/{alias}")
                }
                "AWS::Lambda::LayerVersion" => {
                    let (name, version) = layer_parts(&physical_id);
                    format!("/2018-10-31/layers/{name}/versions/{version}")
                }
                "AWS::Lambda::Permission" => {
                    let full = request.string("FunctionName").unwrap_or_default();
                    let mut path = format!("/2015-03-31/functions/{function}/policy/{physical_id}");
                    if let Some(qualifier) = qualifier_of(full) {
                        path.push_str(&format!("?Qualifier={qualifier}"));
                    }
                    path
                }
                "AWS::Lambda::EventSourceMapping" => {
                    format!("/2015-03-31/event-source-mappings/{physical_id}")
                }
                "AWS::Lambda::LayerVersionPermission" => {
                    let (name, version) = layer_parts(request.string("LayerVersionArn").unwrap_or_default());
                    format!("/2018-10-31/layers/{name}/versions/{version}/policy/{physical_id}")
                }
                "AWS::Lambda::EventInvokeConfig" => {
                    let qualifier = request.string("Qualifier").unwrap_or("$LATEST");
                    format!("/2019-09-25/functions/{function}/event-invoke-config?Qualifier={qualifier}")
                }
                _ => {
                    let target = request.string("TargetFunctionArn").unwrap_or_default();
                    let mut path = format!("/2021-10-31/functions/{}/url", name_of(target));
                    if let Some(qualifier) =
                        request.string("Qualifier").map(str::to_owned).or_else(|| qualifier_of(target))
                    {
                        path.push_str(&format!("?Qualifier={qualifier}"));
                    }
                    path
                }
            };
            match self.api(Method::DELETE, &path, None).await {
                Err(error) if error.message.contains("ResourceNotFoundException") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

fn alias_body(request: &ResourceRequest, with_name: bool) -> Value {
    let mut body = Map::new();
    let keys: &[&str] = if with_name {
        &["Name", "FunctionVersion", "Description", "RoutingConfig"]
    } else {
        &["FunctionVersion", "Description", "RoutingConfig"]
    };
    for key in keys {
        if let Some(v) = request.property(key) {
            body.insert((*key).into(), v.clone());
        }
    }
    Value::Object(body)
}

fn mapping_body(properties: &Map<String, Value>) -> Value {
    let mut body = properties.clone();
    body.remove("Tags");
    numbers(
        &mut body,
        &[
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "MaximumRecordAgeInSeconds",
            "MaximumRetryAttempts",
            "ParallelizationFactor",
            "TumblingWindowInSeconds",
            "StartingPositionTimestamp",
        ],
    );
    booleans(&mut body, &["Enabled", "BisectBatchOnFunctionError"]);
    Value::Object(body)
}

impl FunctionProvider {
    async fn put_invoke_config(&self, request: &ResourceRequest) -> Result<(), ProviderError> {
        let function = request.string("FunctionName").ok_or_else(|| missing("FunctionName"))?;
        let qualifier = request.string("Qualifier").unwrap_or("$LATEST");
        let mut body = request.properties.clone();
        body.remove("FunctionName");
        body.remove("Qualifier");
        numbers(&mut body, &["MaximumRetryAttempts", "MaximumEventAgeInSeconds"]);
        let path =
            format!("/2019-09-25/functions/{}/event-invoke-config?Qualifier={qualifier}", name_of(function));
        self.api(Method::PUT, &path, Some(Value::Object(body))).await.map(|_| ())
    }

    async fn put_url(&self, request: &ResourceRequest, method: Method) -> Result<Provisioned, ProviderError> {
        let target = request.string("TargetFunctionArn").ok_or_else(|| missing("TargetFunctionArn"))?;
        let mut body = request.properties.clone();
        body.remove("TargetFunctionArn");
        body.remove("Qualifier");
        let mut path = format!("/2021-10-31/functions/{}/url", name_of(target));
        if let Some(qualifier) =
            request.string("Qualifier").map(str::to_owned).or_else(|| qualifier_of(target))
        {
            path.push_str(&format!("?Qualifier={qualifier}"));
        }
        let url = self.api(method, &path, Some(Value::Object(body))).await?;
        let arn = url["FunctionArn"].as_str().unwrap_or(target).to_owned();
        let mut attributes = Map::new();
        attributes.insert("FunctionArn".into(), arn.clone().into());
        attributes.insert("FunctionUrl".into(), url["FunctionUrl"].clone());
        Ok(Provisioned { physical_id: arn, attributes })
    }
}
