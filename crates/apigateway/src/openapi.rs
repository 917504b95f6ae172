//! OpenAPI 3 and Swagger 2 definitions (JSON or YAML) with API Gateway's extensions
//! (`x-amazon-apigateway-integration`, `-any-method`, `-authorizer`, `-authtype`,
//! `-binary-media-types`, `-cors`): imported into REST and HTTP APIs, and exported from them.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{ApiResponse, AwsError, Body};
use serde_json::{json, Map, Value};

use crate::store::{new_id, Change};
use crate::{bad_request, epoch_seconds, iso_now, not_found, ApiGateway};

const METHODS: &[&str] =
    &["get", "post", "put", "patch", "delete", "head", "options", "x-amazon-apigateway-any-method"];

pub fn parse(body: &[u8]) -> Result<Value, AwsError> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => serde_norway::from_slice(body).map_err(|e| {
            bad_request(format!("Invalid OpenAPI input: the definition is neither JSON nor YAML ({e})"))
        })?,
    };
    if !value.is_object() || !(value.get("openapi").is_some() || value.get("swagger").is_some()) {
        return Err(bad_request("Invalid OpenAPI input: 'openapi' or 'swagger' version is missing"));
    }
    if !value["paths"].is_object() {
        return Err(bad_request("Invalid OpenAPI input: no paths"));
    }
    Ok(value)
}

fn http_method(key: &str) -> String {
    if key == "x-amazon-apigateway-any-method" {
        "ANY".into()
    } else {
        key.to_ascii_uppercase()
    }
}

fn security_schemes(spec: &Value) -> Map<String, Value> {
    let schemes =
        spec["components"]["securitySchemes"].as_object().or(spec["securityDefinitions"].as_object());
    schemes.cloned().unwrap_or_default()
}

/// The scheme names an operation's `security` (or the document's) lists.
fn security_of<'a>(operation: &'a Value, spec: &'a Value) -> Vec<String> {
    let security = operation.get("security").or(spec.get("security"));
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect()
}

/// An integration extension in the control plane's shape (types in upper case).
fn integration_of(extension: &Value) -> Value {
    let mut integration = extension.clone();
    if let Some(kind) = extension["type"].as_str() {
        integration["type"] = json!(kind.to_ascii_uppercase());
    }
    integration
}

impl ApiGateway {
    /// `ImportRestApi`: a new REST API from a definition.
    pub(crate) fn import_rest_api(&self, body: &[u8]) -> Result<Value, AwsError> {
        let spec = parse(body)?;
        let name = spec["info"]["title"].as_str().unwrap_or("API");
        let mut input = json!({ "name": name });
        if let Some(description) = spec["info"]["description"].as_str() {
            input["description"] = json!(description);
        }
        let api = self.create_rest_api(&input)?;
        let id = api["id"].as_str().unwrap_or_default().to_owned();
        self.apply_rest_definition(&id, &spec, true)?;
        self.rest_api(&id)
    }

    /// `PutRestApi`: the definition replaces (`overwrite`) or merges into (`merge`) the API.
    pub(crate) fn put_rest_api(&self, api: &str, body: &[u8], mode: &str) -> Result<Value, AwsError> {
        self.rest_api(api)?;
        let spec = parse(body)?;
        self.apply_rest_definition(api, &spec, mode == "overwrite")?;
        self.rest_api(api)
    }

    fn apply_rest_definition(&self, api: &str, spec: &Value, overwrite: bool) -> Result<(), AwsError> {
        let mut rest_api = self.rest_api(api)?;
        let root_id = rest_api["rootResourceId"].as_str().unwrap_or_default().to_owned();
        let mut changes = Vec::new();
        let mut resources: Vec<Value> = self.docs.list(api, "resource");
        if overwrite {
            for resource in &resources {
                let id = resource["id"].as_str().unwrap_or_default();
                if id != root_id {
                    changes.push(Change::Delete("resource", api.to_owned(), id.to_owned()));
                }
            }
            for authorizer in self.docs.list(api, "authorizer") {
                changes.push(Change::Delete(
                    "authorizer",
                    api.to_owned(),
                    authorizer["id"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            resources = vec![json!({ "id": root_id, "path": "/" })];
        }
        if let Some(types) = spec.get("x-amazon-apigateway-binary-media-types") {
            rest_api["binaryMediaTypes"] = types.clone();
        }
        if let Some(title) = spec["info"]["title"].as_str() {
            rest_api["name"] = json!(title);
        }
        changes.push(Change::Put("restapi", String::new(), api.to_owned(), rest_api));
        // Authorizers and API-key schemes.
        let mut authorizers: Map<String, Value> = Map::new();
        let mut key_schemes = Vec::new();
        for (name, scheme) in security_schemes(spec) {
            if let Some(extension) = scheme.get("x-amazon-apigateway-authorizer") {
                let kind = extension["type"].as_str().unwrap_or("token").to_ascii_uppercase();
                let id = new_id(6);
                let mut doc =
                    json!({ "id": id, "name": name, "type": kind, "authorizerResultTtlInSeconds": 300 });
                let source = match kind.as_str() {
                    "TOKEN" => scheme["name"].as_str().map(|h| format!("method.request.header.{h}")),
                    _ => None,
                };
                if let Some(source) = extension["identitySource"].as_str().map(str::to_owned).or(source) {
                    doc["identitySource"] = json!(source);
                }
                crate::copy_fields(
                    &mut doc,
                    extension,
                    &[
                        "authorizerUri",
                        "authorizerCredentials",
                        "authorizerResultTtlInSeconds",
                        "identityValidationExpression",
                        "providerARNs",
                    ],
                );
                changes.push(Change::Put("authorizer", api.to_owned(), id.clone(), doc));
                authorizers.insert(name, json!(id));
            } else if scheme["type"] == "apiKey"
                && scheme["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
            {
                key_schemes.push(name);
            }
        }
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in &paths {
            let resource_index = ensure_resource(&mut resources, path);
            let resource = &mut resources[resource_index];
            for (key, operation) in item.as_object().into_iter().flatten() {
                if !METHODS.contains(&key.as_str()) {
                    continue;
                }
                let method = http_method(key);
                let security = security_of(operation, spec);
                let authorizer = security.iter().find_map(|s| authorizers.get(s).cloned());
                let mut doc = json!({
                    "httpMethod": method,
                    "authorizationType": if authorizer.is_some() { "CUSTOM" } else { "NONE" },
                    "apiKeyRequired": security.iter().any(|s| key_schemes.contains(s)),
                });
                if let Some(authorizer) = authorizer {
                    doc["authorizerId"] = authorizer;
                }
                if let Some(responses) = operation["responses"].as_object() {
                    let responses: Map<String, Value> = responses
                        .keys()
                        .filter(|code| code.parse::<u16>().is_ok())
                        .map(|code| (code.clone(), json!({ "statusCode": code })))
                        .collect();
                    doc["methodResponses"] = Value::Object(responses);
                }
                if let Some(extension) = operation.get("x-amazon-apigateway-integration") {
                    let mut integration = integration_of(extension);
                    if let Some(responses) = extension["responses"].as_object() {
                        let mapped: Map<String, Value> = responses
                            .values()
                            .map(|r| {
                                let code = r["statusCode"]
                                    .as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| r["statusCode"].to_string());
                                let mut response = r.clone();
                                response["statusCode"] = json!(code);
                                (code, response)
                            })
                            .collect();
                        integration["integrationResponses"] = Value::Object(mapped);
                        if let Some(object) = integration.as_object_mut() {
                            object.remove("responses");
                        }
                    }
                    integration["timeoutInMillis"] =
                        extension.get("timeoutInMillis").cloned().unwrap_or(json!(29000));
                    doc["methodIntegration"] = integration;
                }
                if !resource["resourceMethods"].is_object() {
                    resource["resourceMethods"] = json!({});
                }
                resource["resourceMethods"][method.as_str()] = doc;
            }
        }
        for resource in resources {
            let id = resource["id"].as_str().unwrap_or_default().to_owned();
            changes.push(Change::Put("resource", api.to_owned(), id, resource));
        }
        self.docs.write(changes)
    }

    /// `ImportApi` (`existing` None) and `ReimportApi`: routes and integrations from a definition.
    pub(crate) fn import_http_api(
        &self,
        definition: &str,
        existing: Option<&str>,
    ) -> Result<Value, AwsError> {
        let spec = parse(definition.as_bytes())?;
        let title = spec["info"]["title"].as_str().unwrap_or("API");
        let api = match existing {
            Some(id) => id.to_owned(),
            None => {
                let created = self.create_http_api(&json!({ "name": title, "protocolType": "HTTP" }))?;
                created["apiId"].as_str().unwrap_or_default().to_owned()
            }
        };
        let mut doc = self.http_api(&api)?;
        doc["name"] = json!(title);
        if let Some(cors) = spec.get("x-amazon-apigateway-cors") {
            doc["corsConfiguration"] = cors.clone();
        }
        let mut changes = vec![Change::Put("httpapi", String::new(), api.clone(), doc.clone())];
        for kind in ["route", "integration", "authorizer"] {
            for existing in self.docs.list(&api, kind) {
                let id = existing[format!("{kind}Id")].as_str().unwrap_or_default().to_owned();
                changes.push(Change::Delete(kind, api.clone(), id));
            }
        }
        let mut authorizers = Map::new();
        for (name, scheme) in security_schemes(&spec) {
            let Some(extension) = scheme.get("x-amazon-apigateway-authorizer") else { continue };
            let id = new_id(6);
            let kind = extension["type"].as_str().unwrap_or("request").to_ascii_uppercase();
            let mut authorizer = json!({ "authorizerId": id, "name": name, "authorizerType": kind });
            crate::copy_fields(
                &mut authorizer,
                extension,
                &[
                    "authorizerUri",
                    "identitySource",
                    "jwtConfiguration",
                    "authorizerPayloadFormatVersion",
                    "enableSimpleResponses",
                    "authorizerResultTtlInSeconds",
                ],
            );
            if let Some(source) = authorizer["identitySource"].as_str().map(|s| json!([s])) {
                authorizer["identitySource"] = source;
            }
            changes.push(Change::Put("authorizer", api.clone(), id.clone(), authorizer));
            authorizers.insert(name, json!(id));
        }
        for (path, item) in spec["paths"].as_object().into_iter().flatten() {
            for (key, operation) in item.as_object().into_iter().flatten() {
                if !METHODS.contains(&key.as_str()) {
                    continue;
                }
                let route_key = if path == "$default" {
                    "$default".to_owned()
                } else {
                    format!("{} {path}", http_method(key))
                };
                let route = new_id(7);
                let mut route_doc = json!({ "routeId": route, "routeKey": route_key, "authorizationType": "NONE", "apiKeyRequired": false });
                if let Some(authorizer) =
                    security_of(operation, &spec).iter().find_map(|s| authorizers.get(s))
                {
                    let jwt = changes.iter().any(|c| matches!(c, Change::Put("authorizer", _, id, a) if *id == *authorizer && a["authorizerType"] == "JWT"));
                    route_doc["authorizationType"] = json!(if jwt { "JWT" } else { "CUSTOM" });
                    route_doc["authorizerId"] = authorizer.clone();
                }
                if let Some(extension) = operation.get("x-amazon-apigateway-integration") {
                    let integration = new_id(7);
                    let kind = extension["type"].as_str().unwrap_or("aws_proxy").to_ascii_uppercase();
                    let mut doc = json!({
                        "integrationId": integration,
                        "integrationType": kind,
                        "integrationUri": extension["uri"],
                        "integrationMethod": extension["httpMethod"].as_str().unwrap_or("POST"),
                        "payloadFormatVersion": extension["payloadFormatVersion"].as_str().unwrap_or(if kind == "AWS_PROXY" { "2.0" } else { "1.0" }),
                        "timeoutInMillis": extension.get("timeoutInMillis").cloned().unwrap_or(json!(30000)),
                        "connectionType": "INTERNET",
                    });
                    if doc["integrationUri"].is_null() {
                        doc.as_object_mut().map(|o| o.remove("integrationUri"));
                    }
                    route_doc["target"] = json!(format!("integrations/{integration}"));
                    changes.push(Change::Put("integration", api.clone(), integration, doc));
                }
                changes.push(Change::Put("route", api.clone(), route, route_doc));
            }
        }
        self.docs.write(changes)?;
        self.http_api(&api)
    }

    /// `GetExport` of a REST API stage: `oas30` or `swagger`, JSON or YAML.
    pub(crate) fn export(
        &self,
        api: &str,
        stage: &str,
        kind: &str,
        accept: &str,
        extensions: Option<&str>,
    ) -> Result<ApiResponse, AwsError> {
        let rest_api = self.rest_api(api)?;
        let stage_doc = self
            .docs
            .get(api, "stage", stage)
            .ok_or_else(|| not_found("Invalid Stage identifier specified"))?;
        let deployment = self
            .docs
            .get(api, "deployment", stage_doc["deploymentId"].as_str().unwrap_or_default())
            .unwrap_or(Value::Null);
        let with_integrations =
            extensions.is_some_and(|e| e.contains("integrations") || e.contains("apigateway"));
        let mut paths = Map::new();
        for resource in deployment["snapshot"]["resources"].as_array().into_iter().flatten() {
            let Some(methods) = resource["resourceMethods"].as_object().filter(|m| !m.is_empty()) else {
                continue;
            };
            let mut item = Map::new();
            for (method, doc) in methods {
                let key = if method == "ANY" {
                    "x-amazon-apigateway-any-method".to_owned()
                } else {
                    method.to_ascii_lowercase()
                };
                let responses: Map<String, Value> = doc["methodResponses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, _)| (code.clone(), json!({ "description": format!("{code} response") })))
                    .collect();
                let mut operation = json!({ "responses": responses });
                if with_integrations {
                    if let Some(integration) = doc.get("methodIntegration") {
                        let mut extension = integration.clone();
                        extension["type"] =
                            json!(integration["type"].as_str().unwrap_or_default().to_ascii_lowercase());
                        operation["x-amazon-apigateway-integration"] = extension;
                    }
                }
                item.insert(key, operation);
            }
            paths.insert(resource["path"].as_str().unwrap_or("/").to_owned(), Value::Object(item));
        }
        let info =
            json!({ "title": rest_api["name"], "version": iso_date(rest_api["createdDate"].as_i64()) });
        let document = match kind {
            "oas30" => {
                json!({ "openapi": "3.0.1", "info": info, "servers": [{ "url": format!("https://{api}.execute-api.{}.amazonaws.com/{{basePath}}", self.identity.region), "variables": { "basePath": { "default": stage } } }], "paths": paths })
            }
            "swagger" => {
                json!({ "swagger": "2.0", "info": info, "host": format!("{api}.execute-api.{}.amazonaws.com", self.identity.region), "basePath": format!("/{stage}"), "schemes": ["https"], "paths": paths })
            }
            other => {
                return Err(bad_request(format!(
                    "Invalid export type {other}: nimbus exports oas30 and swagger"
                )))
            }
        };
        document_response(&document, accept.contains("yaml"))
    }

    pub(crate) fn export_http_api(&self, api: &str, yaml: bool) -> Result<ApiResponse, AwsError> {
        let doc = self.http_api(api)?;
        let integrations: Map<String, Value> = self
            .docs
            .list(api, "integration")
            .into_iter()
            .map(|i| (i["integrationId"].as_str().unwrap_or_default().to_owned(), i))
            .collect();
        let mut paths: Map<String, Value> = Map::new();
        for route in self.docs.list(api, "route") {
            let key = route["routeKey"].as_str().unwrap_or_default();
            let (method, path) = key.split_once(' ').unwrap_or(("ANY", key));
            let method = if method == "ANY" {
                "x-amazon-apigateway-any-method".to_owned()
            } else {
                method.to_ascii_lowercase()
            };
            let mut operation = json!({ "responses": { "default": { "description": "Default response" } } });
            let target = route["target"].as_str().and_then(|t| t.strip_prefix("integrations/"));
            if let Some(integration) = target.and_then(|t| integrations.get(t)) {
                operation["x-amazon-apigateway-integration"] = json!({
                    "type": integration["integrationType"].as_str().unwrap_or_default().to_ascii_lowercase(),
                    "uri": integration["integrationUri"],
                    "httpMethod": integration["integrationMethod"],
                    "payloadFormatVersion": integration["payloadFormatVersion"],
                    "connectionType": "INTERNET",
                });
            }
            let item = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
            item[method] = operation;
        }
        let mut document = json!({ "openapi": "3.0.1", "info": { "title": doc["name"], "version": doc["createdDate"] }, "paths": paths });
        if let Some(cors) = doc.get("corsConfiguration") {
            document["x-amazon-apigateway-cors"] = cors.clone();
        }
        document_response(&document, yaml)
    }
}

/// The index of the resource at `path` in `resources`, created (with its parents) if missing.
fn ensure_resource(resources: &mut Vec<Value>, path: &str) -> usize {
    let mut current = resources.iter().position(|r| r["path"] == "/").unwrap_or(0);
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        so_far.push('/');
        so_far.push_str(part);
        current = match resources.iter().position(|r| r["path"] == so_far.as_str()) {
            Some(index) => index,
            None => {
                let parent = resources[current]["id"].clone();
                resources
                    .push(json!({ "id": new_id(6), "parentId": parent, "pathPart": part, "path": so_far }));
                resources.len() - 1
            }
        };
    }
    current
}

fn iso_date(seconds: Option<i64>) -> String {
    let seconds = seconds.unwrap_or_else(epoch_seconds);
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(iso_now)
}

fn document_response(document: &Value, yaml: bool) -> Result<ApiResponse, AwsError> {
    let (text, kind) = if yaml {
        (serde_norway::to_string(document).unwrap_or_default(), "application/yaml")
    } else {
        (serde_json::to_string_pretty(document).unwrap_or_default(), "application/json")
    };
    let mut response = ApiResponse::new(Body::new(Bytes::from(text)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(response)
}
