//! API Gateway's CloudFormation resource types (`AWS::ApiGateway::*` and `AWS::ApiGatewayV2::*`),
//! each step a call to API Gateway's own REST API made in-process (its validation and messages):
//! definitions (`Body`, or `BodyS3Location` resolved to a body by nimbus's wiring) go through
//! `ImportRestApi`/`PutRestApi` and `ImportApi`/`ReimportApi`.

use hyper::Method;
use nimbus_api::provider::{
    call, generated_name, text, ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest,
};
use serde_json::{json, Map, Value};

use crate::ApiGateway;

pub(super) const REST_API: &str = "AWS::ApiGateway::RestApi";
pub(super) const RESOURCE: &str = "AWS::ApiGateway::Resource";
pub(super) const METHOD: &str = "AWS::ApiGateway::Method";
pub(super) const DEPLOYMENT: &str = "AWS::ApiGateway::Deployment";
pub(super) const STAGE: &str = "AWS::ApiGateway::Stage";
pub(super) const AUTHORIZER: &str = "AWS::ApiGateway::Authorizer";
pub(super) const API_KEY: &str = "AWS::ApiGateway::ApiKey";
pub(super) const USAGE_PLAN: &str = "AWS::ApiGateway::UsagePlan";
pub(super) const USAGE_PLAN_KEY: &str = "AWS::ApiGateway::UsagePlanKey";
pub(super) const V2_API: &str = "AWS::ApiGatewayV2::Api";
pub(super) const V2_ROUTE: &str = "AWS::ApiGatewayV2::Route";
pub(super) const V2_INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";
pub(super) const V2_STAGE: &str = "AWS::ApiGatewayV2::Stage";
pub(super) const V2_AUTHORIZER: &str = "AWS::ApiGatewayV2::Authorizer";
pub(super) const V2_DEPLOYMENT: &str = "AWS::ApiGatewayV2::Deployment";

/// The account's API Gateway settings (the CloudWatch role): accepted and recorded.
pub(super) const ACCOUNT: &str = "AWS::ApiGateway::Account";

/// Types nimbus does not serve: refused with a message naming them.
pub(super) const UNSERVED: &[&str] = &[
    "AWS::ApiGateway::BasePathMapping",
    "AWS::ApiGateway::BasePathMappingV2",
    "AWS::ApiGateway::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::GatewayResponse",
];

pub const RESOURCE_TYPES: &[&str] = &[
    REST_API,
    RESOURCE,
    METHOD,
    DEPLOYMENT,
    STAGE,
    AUTHORIZER,
    API_KEY,
    USAGE_PLAN,
    USAGE_PLAN_KEY,
    V2_API,
    V2_ROUTE,
    V2_INTEGRATION,
    V2_STAGE,
    V2_AUTHORIZER,
    V2_DEPLOYMENT,
    "AWS::ApiGateway::BasePathMapping",
    "AWS::ApiGateway::BasePathMappingV2",
    "AWS::ApiGateway::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::GatewayResponse",
    ACCOUNT,
];

/// Properties whose values are maps of the user's own keys (left as written).
pub(super) const MAPS: &[&str] = &[
    "Variables",
    "StageVariables",
    "Tags",
    "RequestParameters",
    "RequestTemplates",
    "RequestModels",
    "ResponseParameters",
    "ResponseTemplates",
    "ResponseModels",
    "RouteSettings",
];

/// A CloudFormation property tree in the API's spelling (maps of user keys left as written).
pub(crate) fn camel(value: &Value) -> Value {
    nimbus_api::provider::camel_keys(value, MAPS)
}

pub(super) fn lower_first(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The named properties of `request`, in the API's spelling.
pub(super) fn input(request: &ResourceRequest, names: &[&str]) -> Value {
    let mut out = Map::new();
    for name in names {
        if let Some(value) = request.property(name) {
            let value = if MAPS.contains(name) { value.clone() } else { camel(value) };
            out.insert(lower_first(name), value);
        }
    }
    Value::Object(out)
}

pub(super) fn required<'a>(request: &'a ResourceRequest, name: &str) -> Result<&'a str, ProviderError> {
    request.string(name).ok_or_else(|| ProviderError::new(format!("Property {name} cannot be empty.")))
}

/// A body given as an object or as text (JSON or YAML).
pub(super) fn body_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `replace` patch operations setting each path to its value (nimbus's patch takes JSON values).
pub(super) fn replace_ops(values: &[(&str, Value)]) -> Value {
    let ops: Vec<Value> = values
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(path, value)| json!({"op": "replace", "path": path, "value": value}))
        .collect();
    json!({ "patchOperations": ops })
}

pub(super) fn gone(error: &ProviderError) -> bool {
    error.message.contains("NotFoundException") || error.message.contains("Invalid ")
}

pub(super) fn provisioned(physical_id: impl Into<String>, attributes: &[(&str, Value)]) -> Provisioned {
    let mut map = Map::new();
    for (name, value) in attributes {
        map.insert((*name).to_owned(), value.clone());
    }
    Provisioned { physical_id: physical_id.into(), attributes: map }
}

impl ApiGateway {
    pub(super) async fn cfn_api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ProviderError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let headers = [("content-type", "application/json")];
        let answer = call(self, method, path, &headers, bytes).await?;
        Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null))
    }

    async fn cfn_raw(&self, method: Method, path: &str, body: String) -> Result<Value, ProviderError> {
        let headers = [("content-type", "application/json")];
        let answer = call(self, method, path, &headers, body.into_bytes()).await?;
        Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null))
    }

    pub(super) async fn cfn_remove(&self, path: &str) -> Result<(), ProviderError> {
        match self.cfn_api(Method::DELETE, path, None).await {
            Err(error) if gone(&error) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    // ---- REST APIs (v1) ----

    async fn cfn_rest_api_props(
        &self,
        id: &str,
        request: &ResourceRequest,
    ) -> Result<Provisioned, ProviderError> {
        let mut values = Vec::new();
        for (property, path) in [
            ("Name", "/name"),
            ("Description", "/description"),
            ("BinaryMediaTypes", "/binaryMediaTypes"),
            ("EndpointConfiguration", "/endpointConfiguration"),
            ("ApiKeySourceType", "/apiKeySource"),
            ("DisableExecuteApiEndpoint", "/disableExecuteApiEndpoint"),
            ("MinimumCompressionSize", "/minimumCompressionSize"),
            ("Policy", "/policy"),
        ] {
            if let Some(value) = request.property(property) {
                let value = if property == "Policy" { json!(body_text(value)) } else { camel(value) };
                values.push((path, value));
            }
        }
        let path = format!("/restapis/{id}");
        let doc = if values.is_empty() {
            self.cfn_api(Method::GET, &path, None).await?
        } else {
            self.cfn_api(Method::PATCH, &path, Some(replace_ops(&values))).await?
        };
        Ok(provisioned(id, &[("RestApiId", json!(id)), ("RootResourceId", doc["rootResourceId"].clone())]))
    }

    async fn cfn_create_rest_api(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let doc = match request.property("Body") {
            Some(body) => self.cfn_raw(Method::POST, "/restapis?mode=import", body_text(body)).await?,
            None => {
                if request.property("BodyS3Location").is_some() {
                    return Err(ProviderError::new("BodyS3Location could not be read from S3"));
                }
                let name = required(request, "Name")?;
                self.cfn_api(Method::POST, "/restapis", Some(json!({"name": name}))).await?
            }
        };
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        self.cfn_rest_api_props(&id, request).await
    }

    async fn cfn_create_resource(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let api = required(request, "RestApiId")?;
        let parent = required(request, "ParentId")?;
        let path = format!("/restapis/{api}/resources/{parent}");
        let doc = self.cfn_api(Method::POST, &path, Some(input(request, &["PathPart"]))).await?;
        let id = doc["id"].as_str().unwrap_or_default();
        Ok(provisioned(id, &[("ResourceId", json!(id))]))
    }

    fn cfn_method_path(request: &ResourceRequest) -> Result<String, ProviderError> {
        let api = required(request, "RestApiId")?;
        let resource = required(request, "ResourceId")?;
        let verb = required(request, "HttpMethod")?.to_ascii_uppercase();
        Ok(format!("/restapis/{api}/resources/{resource}/methods/{verb}"))
    }

    async fn cfn_put_method(&self, request: &ResourceRequest) -> Result<(), ProviderError> {
        let path = Self::cfn_method_path(request)?;
        let mut method = input(
            request,
            &[
                "AuthorizationType",
                "AuthorizerId",
                "ApiKeyRequired",
                "AuthorizationScopes",
                "OperationName",
                "RequestModels",
                "RequestParameters",
                "RequestValidatorId",
            ],
        );
        if method.get("authorizationType").is_none() {
            method["authorizationType"] = json!("NONE");
        }
        self.cfn_api(Method::PUT, &path, Some(method)).await?;
        for response in request.property("MethodResponses").and_then(Value::as_array).into_iter().flatten() {
            let code = response.get("StatusCode").map(text).unwrap_or_default();
            let mut body = camel(response);
            if let Some(object) = body.as_object_mut() {
                object.remove("statusCode");
            }
            self.cfn_api(Method::PUT, &format!("{path}/responses/{code}"), Some(body)).await?;
        }
        if let Some(integration) = request.property("Integration") {
            let mut body = camel(integration);
            let responses = body.as_object_mut().and_then(|o| o.remove("integrationResponses"));
            if let Some(object) = body.as_object_mut() {
                if let Some(verb) = object.remove("integrationHttpMethod") {
                    object.insert("httpMethod".into(), verb);
                }
            }
            self.cfn_api(Method::PUT, &format!("{path}/integration"), Some(body)).await?;
            for response in responses.as_ref().and_then(Value::as_array).into_iter().flatten() {
                let code = response.get("statusCode").map(text).unwrap_or_default();
                let mut body = response.clone();
                if let Some(object) = body.as_object_mut() {
                    object.remove("statusCode");
                }
                self.cfn_api(Method::PUT, &format!("{path}/integration/responses/{code}"), Some(body))
                    .await?;
            }
        }
        Ok(())
    }

    async fn cfn_create_deployment(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let api = required(request, "RestApiId")?;
        let mut body = input(request, &["Description", "StageName"]);
        if let Some(description) = request.property("StageDescription").and_then(|d| d.get("Description")) {
            body["stageDescription"] = description.clone();
        }
        if let Some(variables) = request.property("StageDescription").and_then(|d| d.get("Variables")) {
            body["variables"] = variables.clone();
        }
        let doc = self.cfn_api(Method::POST, &format!("/restapis/{api}/deployments"), Some(body)).await?;
        let id = doc["id"].as_str().unwrap_or_default();
        Ok(provisioned(id, &[("DeploymentId", json!(id))]))
    }

    async fn cfn_delete_deployment(&self, request: &ResourceRequest, id: &str) -> Result<(), ProviderError> {
        let Some(api) = request.string("RestApiId") else { return Ok(()) };
        // The stage the deployment made (`StageName`) goes with it, if it still points there.
        if let Some(stage) = request.string("StageName") {
            let path = format!("/restapis/{api}/stages/{stage}");
            if let Ok(doc) = self.cfn_api(Method::GET, &path, None).await {
                if doc["deploymentId"] == id {
                    self.cfn_remove(&path).await?;
                }
            }
        }
        self.cfn_remove(&format!("/restapis/{api}/deployments/{id}")).await
    }

    fn cfn_stage_input(request: &ResourceRequest) -> Value {
        input(
            request,
            &[
                "StageName",
                "DeploymentId",
                "Description",
                "Variables",
                "CacheClusterEnabled",
                "CacheClusterSize",
                "TracingEnabled",
                "MethodSettings",
                "AccessLogSetting",
                "CanarySetting",
            ],
        )
    }

    async fn cfn_update_stage(&self, request: &ResourceRequest, name: &str) -> Result<(), ProviderError> {
        let api = required(request, "RestApiId")?;
        let body = Self::cfn_stage_input(request);
        let mut values: Vec<(&str, Value)> = Vec::new();
        for (field, path) in [
            ("deploymentId", "/deploymentId"),
            ("description", "/description"),
            ("variables", "/variables"),
            ("tracingEnabled", "/tracingEnabled"),
            ("accessLogSettings", "/accessLogSettings"),
        ] {
            values.push((path, body.get(field).cloned().unwrap_or(Value::Null)));
        }
        if let Some(setting) = body.get("accessLogSetting") {
            values.push(("/accessLogSettings", setting.clone()));
        }
        let path = format!("/restapis/{api}/stages/{name}");
        self.cfn_api(Method::PATCH, &path, Some(replace_ops(&values))).await.map(|_| ())
    }
}

impl ApiGateway {
    async fn cfn_create_one(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let kind = request.resource_type.as_str();
        if UNSERVED.contains(&kind) {
            let why = if kind.contains("Domain") || kind.contains("Mapping") {
                "nimbus does not serve custom domain names (APIs are reached at their execute-api addresses)"
            } else {
                "nimbus's API Gateway has no models, request validators or gateway responses as resources (give them in the API's OpenAPI body)"
            };
            return Err(ProviderError::new(format!("{kind} is not supported: {why}")));
        }
        match kind {
            ACCOUNT => {
                Ok(provisioned(generated_name(&request.stack_name, &request.logical_id, 64, false), &[])
                    .with_note("accepted and recorded: nimbus's access logs need no CloudWatch role"))
            }
            REST_API => self.cfn_create_rest_api(request).await,
            RESOURCE => self.cfn_create_resource(request).await,
            METHOD => {
                self.cfn_put_method(request).await?;
                Ok(provisioned(generated_name(&request.stack_name, &request.logical_id, 128, false), &[]))
            }
            DEPLOYMENT => self.cfn_create_deployment(request).await,
            STAGE => {
                let api = required(request, "RestApiId")?;
                let body = Self::cfn_stage_input(request);
                let doc = self.cfn_api(Method::POST, &format!("/restapis/{api}/stages"), Some(body)).await?;
                Ok(provisioned(doc["stageName"].as_str().unwrap_or_default(), &[]))
            }
            AUTHORIZER => {
                let api = required(request, "RestApiId")?;
                let body = input(
                    request,
                    &[
                        "Name",
                        "Type",
                        "AuthorizerUri",
                        "AuthorizerCredentials",
                        "IdentitySource",
                        "IdentityValidationExpression",
                        "AuthorizerResultTtlInSeconds",
                        "ProviderARNs",
                        "AuthType",
                    ],
                );
                let mut body = body;
                if let Some(arns) = body.as_object_mut().and_then(|o| o.remove("providerARNs")) {
                    body["providerARNs"] = arns;
                }
                let doc =
                    self.cfn_api(Method::POST, &format!("/restapis/{api}/authorizers"), Some(body)).await?;
                let id = doc["id"].as_str().unwrap_or_default();
                Ok(provisioned(id, &[("AuthorizerId", json!(id))]))
            }
            API_KEY => {
                let mut body = input(
                    request,
                    &["Name", "Description", "Enabled", "Value", "StageKeys", "CustomerId", "Tags"],
                );
                if body.get("name").is_none() {
                    body["name"] = json!(request.generated_name(128, false));
                }
                let doc = self.cfn_api(Method::POST, "/apikeys", Some(body)).await?;
                let id = doc["id"].as_str().unwrap_or_default();
                Ok(provisioned(id, &[("APIKeyId", json!(id))]))
            }
            USAGE_PLAN => {
                let mut body = input(
                    request,
                    &["UsagePlanName", "Description", "ApiStages", "Quota", "Throttle", "Tags"],
                );
                let name = body.as_object_mut().and_then(|o| o.remove("usagePlanName"));
                body["name"] = name.unwrap_or_else(|| json!(request.generated_name(128, false)));
                let doc = self.cfn_api(Method::POST, "/usageplans", Some(body)).await?;
                let id = doc["id"].as_str().unwrap_or_default();
                Ok(provisioned(id, &[("Id", json!(id))]))
            }
            USAGE_PLAN_KEY => {
                let plan = required(request, "UsagePlanId")?;
                let body = input(request, &["KeyId", "KeyType"]);
                let doc = self.cfn_api(Method::POST, &format!("/usageplans/{plan}/keys"), Some(body)).await?;
                let id = doc["id"].as_str().unwrap_or_default();
                Ok(provisioned(id, &[("Id", json!(id))]))
            }
            V2_API => self.cfn_create_v2_api(request).await,
            _ => self.cfn_create_v2_child(request).await,
        }
    }

    async fn cfn_update_one(
        &self,
        request: &ResourceRequest,
        id: String,
        previous: &Map<String, Value>,
    ) -> Result<Provisioned, ProviderError> {
        match request.resource_type.as_str() {
            REST_API => {
                if let Some(body) = request.property("Body") {
                    let path = format!("/restapis/{id}?mode=overwrite");
                    self.cfn_raw(Method::PUT, &path, body_text(body)).await?;
                }
                self.cfn_rest_api_props(&id, request).await
            }
            RESOURCE => Ok(provisioned(id.clone(), &[("ResourceId", json!(id))])),
            ACCOUNT => Ok(provisioned(id, &[])),
            METHOD => {
                self.cfn_remove(&Self::cfn_method_path(request)?).await?;
                self.cfn_put_method(request).await?;
                Ok(provisioned(id, &[]))
            }
            DEPLOYMENT => {
                let api = required(request, "RestApiId")?;
                let values =
                    [("/description", request.property("Description").cloned().unwrap_or(Value::Null))];
                let path = format!("/restapis/{api}/deployments/{id}");
                let _ = self.cfn_api(Method::PATCH, &path, Some(replace_ops(&values))).await;
                if let Some(stage) = request.string("StageName") {
                    let values = [("/deploymentId", json!(id))];
                    let path = format!("/restapis/{api}/stages/{stage}");
                    if self.cfn_api(Method::PATCH, &path, Some(replace_ops(&values))).await.is_err() {
                        let body = json!({"stageName": stage, "deploymentId": id});
                        self.cfn_api(Method::POST, &format!("/restapis/{api}/stages"), Some(body)).await?;
                    }
                }
                Ok(provisioned(id.clone(), &[("DeploymentId", json!(id))]))
            }
            STAGE => {
                self.cfn_update_stage(request, &id).await?;
                Ok(provisioned(id, &[]))
            }
            V2_API => {
                if let Some(body) = request.property("Body") {
                    let path = format!("/v2/apis/{id}");
                    self.cfn_api(Method::PUT, &path, Some(json!({"body": body_text(body)}))).await?;
                    return self.cfn_v2_api_props(&id, request, true).await;
                }
                let body = self.cfn_v2_api_input(request);
                self.cfn_api(Method::PATCH, &format!("/v2/apis/{id}"), Some(body)).await?;
                self.cfn_v2_api_props(&id, request, false).await
            }
            V2_ROUTE | V2_INTEGRATION | V2_STAGE | V2_AUTHORIZER | V2_DEPLOYMENT => {
                let api = required(request, "ApiId")?;
                let (collection, _, names) = Self::cfn_v2_child(&request.resource_type);
                let body = input(request, names);
                self.cfn_api(Method::PATCH, &format!("/v2/apis/{api}/{collection}/{id}"), Some(body)).await?;
                let mut done = provisioned(id.clone(), &[]);
                let attribute = match request.resource_type.as_str() {
                    V2_ROUTE => "RouteId",
                    V2_INTEGRATION => "IntegrationId",
                    V2_AUTHORIZER => "AuthorizerId",
                    V2_DEPLOYMENT => "DeploymentId",
                    _ => return Ok(done),
                };
                done.attributes.insert(attribute.into(), json!(id));
                Ok(done)
            }
            _ => {
                // Keys, plans, authorizers: replaced on change of their identity, others rewritten.
                self.cfn_delete_one(request, &id, previous).await?;
                self.cfn_create_one(request).await
            }
        }
    }

    async fn cfn_delete_one(
        &self,
        request: &ResourceRequest,
        id: &str,
        _previous: &Map<String, Value>,
    ) -> Result<(), ProviderError> {
        let api = request.string("RestApiId").unwrap_or_default();
        let v2 = request.string("ApiId").unwrap_or_default();
        match request.resource_type.as_str() {
            REST_API => self.cfn_remove(&format!("/restapis/{id}")).await,
            RESOURCE => self.cfn_remove(&format!("/restapis/{api}/resources/{id}")).await,
            METHOD => match Self::cfn_method_path(request) {
                Ok(path) => self.cfn_remove(&path).await,
                Err(_) => Ok(()),
            },
            DEPLOYMENT => self.cfn_delete_deployment(request, id).await,
            STAGE => self.cfn_remove(&format!("/restapis/{api}/stages/{id}")).await,
            AUTHORIZER => self.cfn_remove(&format!("/restapis/{api}/authorizers/{id}")).await,
            API_KEY => self.cfn_remove(&format!("/apikeys/{id}")).await,
            USAGE_PLAN => self.cfn_remove(&format!("/usageplans/{id}")).await,
            USAGE_PLAN_KEY => {
                let plan = request.string("UsagePlanId").unwrap_or_default();
                self.cfn_remove(&format!("/usageplans/{plan}/keys/{id}")).await
            }
            V2_API => self.cfn_remove(&format!("/v2/apis/{id}")).await,
            kind if UNSERVED.contains(&kind) || kind == ACCOUNT => Ok(()),
            kind => {
                let (collection, _, _) = Self::cfn_v2_child(kind);
                let id = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
                self.cfn_remove(&format!("/v2/apis/{v2}/{collection}/{id}")).await
            }
        }
    }
}

impl ResourceProvider for ApiGateway {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            RESOURCE => matches!(property, "RestApiId" | "ParentId" | "PathPart"),
            METHOD => matches!(property, "RestApiId" | "ResourceId" | "HttpMethod"),
            DEPLOYMENT => matches!(property, "RestApiId" | "DeploymentCanarySettings"),
            STAGE => matches!(property, "RestApiId" | "StageName"),
            AUTHORIZER => property == "RestApiId",
            API_KEY => matches!(property, "Name" | "Value" | "GenerateDistinctId"),
            USAGE_PLAN_KEY => true,
            V2_API => property == "ProtocolType",
            V2_ROUTE | V2_INTEGRATION | V2_AUTHORIZER | V2_DEPLOYMENT => property == "ApiId",
            V2_STAGE => matches!(property, "ApiId" | "StageName"),
            _ => false,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.cfn_create_one(&request).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.cfn_update_one(&request, physical_id, &previous).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move { self.cfn_delete_one(&request, &physical_id, &Map::new()).await })
    }
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
