//! HTTP APIs (`apigatewayv2`, 2018-11-29, paths under `/v2/`): APIs (with quick create),
//! routes, integrations, stages (auto-deploy), deployments, authorizers, CORS, import and export.

use hyper::Method;
use nimbus_api::{ApiRequest, ApiResponse, AwsError};
use serde_json::{json, Value};

use crate::store::{new_id, Change};
use crate::{
    bad_request, conflict, copy_fields, empty, iso_now, not_found, ok, parse_body, segments, unknown,
    with_status, ApiGateway,
};

const API_FIELDS: &[&str] = &[
    "name",
    "description",
    "corsConfiguration",
    "disableExecuteApiEndpoint",
    "version",
    "tags",
    "routeSelectionExpression",
    "apiKeySelectionExpression",
];
const ROUTE_FIELDS: &[&str] = &[
    "routeKey",
    "target",
    "authorizationType",
    "authorizerId",
    "apiKeyRequired",
    "authorizationScopes",
    "operationName",
    "requestParameters",
];
const INTEGRATION_FIELDS: &[&str] = &[
    "integrationType",
    "integrationUri",
    "integrationMethod",
    "payloadFormatVersion",
    "timeoutInMillis",
    "connectionType",
    "connectionId",
    "credentialsArn",
    "description",
    "requestParameters",
    "responseParameters",
    "integrationSubtype",
];
const STAGE_FIELDS: &[&str] = &[
    "autoDeploy",
    "stageVariables",
    "description",
    "deploymentId",
    "defaultRouteSettings",
    "routeSettings",
    "tags",
    "accessLogSettings",
];
const AUTHORIZER_FIELDS: &[&str] = &[
    "name",
    "authorizerType",
    "authorizerUri",
    "identitySource",
    "jwtConfiguration",
    "authorizerPayloadFormatVersion",
    "enableSimpleResponses",
    "authorizerResultTtlInSeconds",
    "authorizerCredentialsArn",
    "identityValidationExpression",
];

/// (path segment, stored kind, id member, what a missing one is called).
const CHILDREN: &[(&str, &str, &str, &str)] = &[
    ("routes", "route", "routeId", "Route"),
    ("integrations", "integration", "integrationId", "Integration"),
    ("stages", "stage", "stageName", "Stage"),
    ("deployments", "deployment", "deploymentId", "Deployment"),
    ("authorizers", "authorizer", "authorizerId", "Authorizer"),
];

impl ApiGateway {
    pub(crate) fn route_v2(&self, request: &ApiRequest, path: &str) -> Result<ApiResponse, AwsError> {
        let segments = segments(path);
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let body = &request.body;
        use Method as M;
        match (&request.method, &s[1..]) {
            (&M::POST, ["apis"]) => with_status(self.create_http_api(&parse_body(body)?)?, 201),
            (&M::PUT, ["apis"]) => {
                let input = parse_body(body)?;
                let definition = input["body"].as_str().ok_or_else(|| bad_request("Body is required"))?;
                with_status(self.import_http_api(definition, None)?, 201)
            }
            (&M::GET, ["apis"]) => ok(json!({ "items": self.docs.list("", "httpapi") })),
            (&M::GET, ["apis", api]) => ok(self.http_api(api)?),
            (&M::PUT, ["apis", api]) => {
                self.http_api(api)?;
                let input = parse_body(body)?;
                let definition = input["body"].as_str().ok_or_else(|| bad_request("Body is required"))?;
                with_status(self.import_http_api(definition, Some(api))?, 201)
            }
            (&M::PATCH, ["apis", api]) => {
                let mut doc = self.http_api(api)?;
                copy_fields(&mut doc, &parse_body(body)?, API_FIELDS);
                self.save_v2("httpapi", "", api, doc.clone())?;
                ok(doc)
            }
            (&M::DELETE, ["apis", api]) => {
                self.http_api(api)?;
                self.docs.write(vec![
                    Change::Delete("httpapi", String::new(), api.to_string()),
                    Change::DeleteApi(api.to_string()),
                ])?;
                empty(204)
            }
            (&M::DELETE, ["apis", api, "cors"]) => {
                let mut doc = self.http_api(api)?;
                if let Some(object) = doc.as_object_mut() {
                    object.remove("corsConfiguration");
                }
                self.save_v2("httpapi", "", api, doc)?;
                empty(204)
            }
            (&M::GET, ["apis", api, "exports", _spec]) => {
                let yaml = request.query("outputType").as_deref() == Some("YAML");
                self.export_http_api(api, yaml)
            }
            (method, ["apis", api, collection, rest @ ..]) => {
                let Some(&(_, kind, id_field, label)) = CHILDREN.iter().find(|c| c.0 == *collection) else {
                    return Err(unknown(method, path));
                };
                self.http_api(api)?;
                match (method, rest) {
                    (&M::POST, []) => with_status(self.create_child(api, kind, &parse_body(body)?)?, 201),
                    (&M::GET, []) => ok(json!({ "items": self.docs.list(api, kind) })),
                    (&M::GET, [id]) => ok(self.child(api, kind, id, label)?),
                    (&M::PATCH, [id]) => {
                        let mut doc = self.child(api, kind, id, label)?;
                        let input = parse_body(body)?;
                        self.update_child(api, kind, &mut doc, &input)?;
                        self.save_v2(kind, api, id, doc.clone())?;
                        if kind != "stage" {
                            self.auto_deploy(api)?;
                        }
                        ok(doc)
                    }
                    (&M::DELETE, [id]) => {
                        self.child(api, kind, id, label)?;
                        let _ = id_field;
                        self.docs.write(vec![Change::Delete(kind, api.to_string(), id.to_string())])?;
                        if kind != "stage" {
                            self.auto_deploy(api)?;
                        }
                        empty(204)
                    }
                    _ => Err(unknown(method, path)),
                }
            }
            _ => Err(unknown(&request.method, path)),
        }
    }

    pub(crate) fn http_api(&self, api: &str) -> Result<Value, AwsError> {
        self.docs.get("", "httpapi", api).ok_or_else(|| {
            not_found(format!("Invalid API identifier specified {}:{api}", self.identity.account))
        })
    }

    fn child(&self, api: &str, kind: &str, id: &str, label: &str) -> Result<Value, AwsError> {
        self.docs
            .get(api, kind, id)
            .ok_or_else(|| not_found(format!("Invalid {label} identifier specified {id}")))
    }

    fn save_v2(&self, kind: &'static str, api: &str, id: &str, doc: Value) -> Result<(), AwsError> {
        self.docs.write(vec![Change::Put(kind, api.to_owned(), id.to_owned(), doc)])
    }

    pub(crate) fn create_http_api(&self, input: &Value) -> Result<Value, AwsError> {
        let name = input["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad_request("Name is required"))?;
        let protocol = input["protocolType"].as_str().unwrap_or("HTTP");
        if protocol != "HTTP" {
            return Err(bad_request(format!("nimbus serves HTTP APIs only, not protocol type {protocol}")));
        }
        let id = self.new_api_id();
        let mut doc = json!({
            "apiId": id,
            "name": name,
            "protocolType": "HTTP",
            "apiEndpoint": format!("https://{id}.execute-api.{}.amazonaws.com", self.identity.region),
            "apiKeySelectionExpression": "$request.header.x-api-key",
            "routeSelectionExpression": "$request.method $request.path",
            "createdDate": iso_now(),
            "disableExecuteApiEndpoint": false,
            "tags": {},
        });
        copy_fields(&mut doc, input, API_FIELDS);
        let mut changes = vec![Change::Put("httpapi", String::new(), id.clone(), doc.clone())];
        // Quick create: a Lambda (or HTTP) target behind `$default` (or RouteKey), on an
        // auto-deployed `$default` stage.
        if let Some(target) = input["target"].as_str() {
            let integration = new_id(7);
            let kind = if target.starts_with("arn:") { "AWS_PROXY" } else { "HTTP_PROXY" };
            let mut integration_doc = json!({
                "integrationId": integration,
                "integrationType": kind,
                "integrationUri": target,
                "integrationMethod": "POST",
                "payloadFormatVersion": "2.0",
                "timeoutInMillis": 30000,
                "connectionType": "INTERNET",
                "apiGatewayManaged": true,
            });
            if kind == "HTTP_PROXY" {
                integration_doc["integrationMethod"] = json!("ANY");
                integration_doc["payloadFormatVersion"] = json!("1.0");
            }
            let route_key = input["routeKey"].as_str().unwrap_or("$default");
            check_route_key(route_key)?;
            let route = new_id(7);
            let route_doc = json!({
                "routeId": route,
                "routeKey": route_key,
                "target": format!("integrations/{integration}"),
                "authorizationType": "NONE",
                "apiKeyRequired": false,
                "apiGatewayManaged": true,
            });
            let mut stage = new_stage("$default");
            stage["autoDeploy"] = json!(true);
            stage["apiGatewayManaged"] = json!(true);
            changes.push(Change::Put("integration", id.clone(), integration, integration_doc));
            changes.push(Change::Put("route", id.clone(), route, route_doc));
            changes.push(Change::Put("stage", id.clone(), "$default".into(), stage));
        }
        self.docs.write(changes)?;
        Ok(doc)
    }

    fn create_child(&self, api: &str, kind: &'static str, input: &Value) -> Result<Value, AwsError> {
        let (id, doc) = match kind {
            "route" => {
                let key = input["routeKey"].as_str().unwrap_or_default();
                check_route_key(key)?;
                if self.docs.list(api, "route").iter().any(|r| r["routeKey"] == key) {
                    return Err(conflict(format!(
                        "Unable to create Route: Route with key {key} already exists for this API"
                    )));
                }
                self.check_route_refs(api, input)?;
                let id = new_id(7);
                let mut doc = json!({ "routeId": id, "authorizationType": "NONE", "apiKeyRequired": false });
                copy_fields(&mut doc, input, ROUTE_FIELDS);
                (id, doc)
            }
            "integration" => {
                let kind = input["integrationType"].as_str().unwrap_or_default();
                if !["AWS_PROXY", "HTTP_PROXY", "MOCK", "AWS", "HTTP"].contains(&kind) {
                    return Err(bad_request(format!("Invalid integration type {kind}")));
                }
                let id = new_id(7);
                let version =
                    if kind == "AWS_PROXY" { input["payloadFormatVersion"].as_str() } else { Some("1.0") };
                let version = version.ok_or_else(|| {
                    bad_request("PayloadFormatVersion is a required parameter for AWS_PROXY integration type")
                })?;
                if !["1.0", "2.0"].contains(&version) {
                    return Err(bad_request(format!("Invalid payload format version {version}")));
                }
                let mut doc = json!({
                    "integrationId": id,
                    "timeoutInMillis": 30000,
                    "connectionType": "INTERNET",
                    "payloadFormatVersion": version,
                    "integrationMethod": "POST",
                });
                copy_fields(&mut doc, input, INTEGRATION_FIELDS);
                (id, doc)
            }
            "stage" => {
                let name = input["stageName"].as_str().unwrap_or_default();
                if name.is_empty() {
                    return Err(bad_request("StageName is required"));
                }
                if self.docs.get(api, "stage", name).is_some() {
                    return Err(conflict(format!("Stage {name} already exists")));
                }
                let mut doc = new_stage(name);
                copy_fields(&mut doc, input, STAGE_FIELDS);
                (name.to_owned(), doc)
            }
            "deployment" => {
                let id = new_id(6);
                let mut doc = json!({ "deploymentId": id, "deploymentStatus": "DEPLOYED", "createdDate": iso_now(), "autoDeployed": false });
                copy_fields(&mut doc, input, &["description"]);
                if let Some(stage) = input["stageName"].as_str() {
                    let mut stage_doc = self.child(api, "stage", stage, "Stage")?;
                    stage_doc["deploymentId"] = json!(id);
                    stage_doc["lastUpdatedDate"] = json!(iso_now());
                    self.save_v2("stage", api, stage, stage_doc)?;
                }
                (id, doc)
            }
            _ => {
                let kind = input["authorizerType"].as_str().unwrap_or_default();
                if !["JWT", "REQUEST"].contains(&kind) {
                    return Err(bad_request(format!("Invalid authorizer type {kind}")));
                }
                if kind == "JWT" && !input["jwtConfiguration"].is_object() {
                    return Err(bad_request("JwtConfiguration is required for JWT authorizers"));
                }
                if kind == "REQUEST" && input["authorizerUri"].as_str().is_none() {
                    return Err(bad_request("AuthorizerUri is required for REQUEST authorizers"));
                }
                let id = new_id(6);
                let mut doc = json!({ "authorizerId": id });
                if kind == "REQUEST" {
                    doc["authorizerResultTtlInSeconds"] = json!(0);
                }
                copy_fields(&mut doc, input, AUTHORIZER_FIELDS);
                (id, doc)
            }
        };
        self.save_v2(kind, api, &id, doc.clone())?;
        if kind != "deployment" {
            self.auto_deploy(api)?;
        }
        Ok(doc)
    }

    fn update_child(&self, api: &str, kind: &str, doc: &mut Value, input: &Value) -> Result<(), AwsError> {
        let fields = match kind {
            "route" => {
                if let Some(key) = input["routeKey"].as_str() {
                    check_route_key(key)?;
                }
                self.check_route_refs(api, input)?;
                ROUTE_FIELDS
            }
            "integration" => INTEGRATION_FIELDS,
            "stage" => {
                doc["lastUpdatedDate"] = json!(iso_now());
                STAGE_FIELDS
            }
            "authorizer" => AUTHORIZER_FIELDS,
            _ => &["description"],
        };
        copy_fields(doc, input, fields);
        Ok(())
    }

    fn check_route_refs(&self, api: &str, input: &Value) -> Result<(), AwsError> {
        if let Some(target) = input["target"].as_str() {
            let integration = target.strip_prefix("integrations/").unwrap_or_default();
            if self.docs.get(api, "integration", integration).is_none() {
                return Err(not_found(format!("Invalid Integration identifier specified {integration}")));
            }
        }
        if let Some(authorizer) = input["authorizerId"].as_str() {
            if self.docs.get(api, "authorizer", authorizer).is_none() {
                return Err(not_found(format!("Invalid Authorizer identifier specified {authorizer}")));
            }
        }
        Ok(())
    }

    /// Stages with `autoDeploy` take every change as a new deployment.
    fn auto_deploy(&self, api: &str) -> Result<(), AwsError> {
        let mut changes = Vec::new();
        for mut stage in self.docs.list(api, "stage").into_iter().filter(|s| s["autoDeploy"] == true) {
            let id = new_id(6);
            let deployment = json!({ "deploymentId": id, "deploymentStatus": "DEPLOYED", "createdDate": iso_now(), "autoDeployed": true });
            stage["deploymentId"] = json!(id);
            stage["lastDeploymentStatusMessage"] =
                json!(format!("Successfully deployed stage with deployment ID '{id}'"));
            let name = stage["stageName"].as_str().unwrap_or_default().to_owned();
            changes.push(Change::Put("deployment", api.to_owned(), id, deployment));
            changes.push(Change::Put("stage", api.to_owned(), name, stage));
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.docs.write(changes)
    }
}

fn new_stage(name: &str) -> Value {
    json!({
        "stageName": name,
        "createdDate": iso_now(),
        "lastUpdatedDate": iso_now(),
        "autoDeploy": false,
        "defaultRouteSettings": { "detailedMetricsEnabled": false },
        "routeSettings": {},
        "stageVariables": {},
        "tags": {},
    })
}

pub(crate) fn check_route_key(key: &str) -> Result<(), AwsError> {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];
    let valid = key == "$default"
        || key
            .split_once(' ')
            .is_some_and(|(method, path)| METHODS.contains(&method) && path.starts_with('/'));
    if valid {
        Ok(())
    } else {
        Err(bad_request(format!("Unable to create Route: route key {key} is not valid")))
    }
}
