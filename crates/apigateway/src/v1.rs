//! REST APIs (`apigateway`, 2015-07-09): APIs, resources, methods, integrations and their
//! responses, deployments (snapshots of the resources that stages serve), stages with
//! variables, authorizers, import from and export to OpenAPI.

use hyper::Method;
use nimbus_api::{ApiRequest, ApiResponse, AwsError};
use serde_json::{json, Value};

use crate::store::{new_id, Change};
use crate::v1_stages::deployment_view;
use crate::{
    bad_request, conflict, copy_fields, empty, epoch_seconds, not_found, ok, parse_body, patch, segments,
    unknown, with_status, ApiGateway,
};

const API_FIELDS: &[&str] = &[
    "description",
    "version",
    "binaryMediaTypes",
    "minimumCompressionSize",
    "apiKeySource",
    "endpointConfiguration",
    "policy",
    "tags",
    "disableExecuteApiEndpoint",
];
const METHOD_FIELDS: &[&str] = &[
    "authorizationType",
    "authorizerId",
    "apiKeyRequired",
    "requestValidatorId",
    "operationName",
    "requestParameters",
    "requestModels",
    "authorizationScopes",
];
const INTEGRATION_FIELDS: &[&str] = &[
    "type",
    "httpMethod",
    "uri",
    "connectionType",
    "connectionId",
    "credentials",
    "requestParameters",
    "requestTemplates",
    "passthroughBehavior",
    "cacheNamespace",
    "cacheKeyParameters",
    "contentHandling",
    "timeoutInMillis",
    "tlsConfig",
];

impl ApiGateway {
    pub(crate) fn route_v1(&self, request: &ApiRequest, path: &str) -> Result<ApiResponse, AwsError> {
        let segments = segments(path);
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let body = &request.body;
        use Method as M;
        match (&request.method, s.as_slice()) {
            (&M::POST, ["restapis"]) if request.query("mode").as_deref() == Some("import") => {
                with_status(self.import_rest_api(body)?, 201)
            }
            (&M::POST, ["restapis"]) => with_status(self.create_rest_api(&parse_body(body)?)?, 201),
            (&M::GET, ["restapis"]) => ok(json!({ "item": self.docs.list("", "restapi") })),
            (&M::GET, ["restapis", api]) => ok(self.rest_api(api)?),
            (&M::PUT, ["restapis", api]) => {
                let mode = request.query("mode").unwrap_or_else(|| "merge".into());
                ok(self.put_rest_api(api, body, &mode)?)
            }
            (&M::PATCH, ["restapis", api]) => {
                let mut doc = self.rest_api(api)?;
                patch::apply(&mut doc, &parse_body(body)?)?;
                self.docs.write(vec![Change::Put("restapi", String::new(), api.to_string(), doc.clone())])?;
                ok(doc)
            }
            (&M::DELETE, ["restapis", api]) => {
                self.rest_api(api)?;
                self.docs.write(vec![
                    Change::Delete("restapi", String::new(), api.to_string()),
                    Change::DeleteApi(api.to_string()),
                ])?;
                empty(202)
            }
            (&M::GET, ["restapis", api, "resources"]) => {
                self.rest_api(api)?;
                ok(json!({ "item": self.docs.list(api, "resource") }))
            }
            (&M::GET, ["restapis", api, "resources", id]) => ok(self.resource(api, id)?),
            (&M::POST, ["restapis", api, "resources", parent]) => {
                with_status(self.create_resource(api, parent, &parse_body(body)?)?, 201)
            }
            (&M::DELETE, ["restapis", api, "resources", id]) => {
                self.delete_resource(api, id)?;
                empty(202)
            }
            (&M::PUT, ["restapis", api, "resources", id, "methods", method]) => {
                with_status(self.put_method(api, id, method, &parse_body(body)?)?, 201)
            }
            (&M::GET, ["restapis", api, "resources", id, "methods", method]) => {
                ok(self.method(api, id, method)?.1)
            }
            (&M::DELETE, ["restapis", api, "resources", id, "methods", method]) => {
                let (mut resource, _) = self.method(api, id, method)?;
                if let Some(methods) = resource["resourceMethods"].as_object_mut() {
                    methods.remove(*method);
                }
                self.save_resource(api, resource)?;
                empty(204)
            }
            (&M::PATCH, ["restapis", api, "resources", id, "methods", method]) => {
                let input = parse_body(body)?;
                ok(self.edit_method(api, id, method, |m| {
                    patch::apply(m, &input)?;
                    Ok(m.clone())
                })?)
            }
            (&M::PATCH, ["restapis", api, "resources", id, "methods", method, "integration"]) => {
                let input = parse_body(body)?;
                ok(self.edit_method(api, id, method, |m| {
                    let integration = m.get_mut("methodIntegration").filter(|i| i.is_object());
                    let integration =
                        integration.ok_or_else(|| not_found("Invalid Integration identifier specified"))?;
                    patch::apply(integration, &input)?;
                    Ok(integration.clone())
                })?)
            }
            (&M::DELETE, ["restapis", api, "resources", id, "methods", method, "integration"]) => {
                self.edit_method(api, id, method, |m| {
                    let removed = m.as_object_mut().and_then(|o| o.remove("methodIntegration"));
                    removed.ok_or_else(|| not_found("Invalid Integration identifier specified"))
                })?;
                empty(204)
            }
            (&M::DELETE, ["restapis", api, "resources", id, "methods", method, "responses", code]) => {
                self.edit_method(api, id, method, |m| {
                    let removed = m["methodResponses"].as_object_mut().and_then(|o| o.remove(*code));
                    removed.ok_or_else(|| not_found("Invalid Response status code specified"))
                })?;
                empty(204)
            }
            (
                &M::DELETE,
                ["restapis", api, "resources", id, "methods", method, "integration", "responses", code],
            ) => {
                self.edit_method(api, id, method, |m| {
                    let responses = m["methodIntegration"]["integrationResponses"].as_object_mut();
                    let removed = responses.and_then(|o| o.remove(*code));
                    removed.ok_or_else(|| not_found("Invalid Response status code specified"))
                })?;
                empty(204)
            }
            (&M::PUT, ["restapis", api, "resources", id, "methods", method, "integration"]) => {
                let input = parse_body(body)?;
                let integration = self.edit_method(api, id, method, |m| put_integration(m, id, &input))?;
                with_status(integration, 201)
            }
            (&M::GET, ["restapis", api, "resources", id, "methods", method, "integration"]) => {
                let (_, method_doc) = self.method(api, id, method)?;
                match method_doc.get("methodIntegration") {
                    Some(integration) => ok(integration.clone()),
                    None => Err(not_found("Invalid Integration identifier specified")),
                }
            }
            (&M::PUT, ["restapis", api, "resources", id, "methods", method, "responses", code]) => {
                let input = parse_body(body)?;
                let response = self.edit_method(api, id, method, |m| {
                    let mut response = json!({ "statusCode": code });
                    copy_fields(&mut response, &input, &["responseParameters", "responseModels"]);
                    m["methodResponses"][*code] = response.clone();
                    Ok(response)
                })?;
                with_status(response, 201)
            }
            (&M::GET, ["restapis", api, "resources", id, "methods", method, "responses", code]) => {
                let (_, method_doc) = self.method(api, id, method)?;
                let response = method_doc["methodResponses"].get(*code).cloned();
                response.map_or_else(|| Err(not_found("Invalid Response status code specified")), ok)
            }
            (
                &M::PUT,
                ["restapis", api, "resources", id, "methods", method, "integration", "responses", code],
            ) => {
                let input = parse_body(body)?;
                let response = self.edit_method(api, id, method, |m| {
                    if !m.get("methodIntegration").is_some_and(Value::is_object) {
                        return Err(not_found("Invalid Integration identifier specified"));
                    }
                    let mut response = json!({ "statusCode": code });
                    copy_fields(
                        &mut response,
                        &input,
                        &["selectionPattern", "responseParameters", "responseTemplates", "contentHandling"],
                    );
                    m["methodIntegration"]["integrationResponses"][*code] = response.clone();
                    Ok(response)
                })?;
                with_status(response, 201)
            }
            (
                &M::GET,
                ["restapis", api, "resources", id, "methods", method, "integration", "responses", code],
            ) => {
                let (_, method_doc) = self.method(api, id, method)?;
                let response = method_doc["methodIntegration"]["integrationResponses"].get(*code).cloned();
                response.map_or_else(|| Err(not_found("Invalid Response status code specified")), ok)
            }
            (&M::POST, ["restapis", api, "deployments"]) => {
                with_status(self.create_deployment(api, &parse_body(body)?)?, 201)
            }
            (&M::GET, ["restapis", api, "deployments"]) => {
                self.rest_api(api)?;
                let items: Vec<Value> =
                    self.docs.list(api, "deployment").into_iter().map(deployment_view).collect();
                ok(json!({ "item": items }))
            }
            (&M::GET, ["restapis", api, "deployments", id]) => match self.docs.get(api, "deployment", id) {
                Some(deployment) => ok(deployment_view(deployment)),
                None => Err(not_found("Invalid Deployment identifier specified")),
            },
            (&M::DELETE, ["restapis", api, "deployments", id]) => {
                self.docs
                    .get(api, "deployment", id)
                    .ok_or_else(|| not_found("Invalid Deployment identifier specified"))?;
                let used = self.docs.list(api, "stage").iter().any(|s| s["deploymentId"] == *id);
                if used {
                    return Err(bad_request(
                        "Active stages pointing to this deployment must be moved or deleted",
                    ));
                }
                self.docs.write(vec![Change::Delete("deployment", api.to_string(), id.to_string())])?;
                empty(202)
            }
            (&M::POST, ["restapis", api, "stages"]) => {
                with_status(self.create_stage(api, &parse_body(body)?)?, 201)
            }
            (&M::GET, ["restapis", api, "stages"]) => {
                self.rest_api(api)?;
                ok(json!({ "item": self.docs.list(api, "stage") }))
            }
            (&M::GET, ["restapis", api, "stages", name]) => ok(self.stage(api, name)?),
            (&M::PATCH, ["restapis", api, "stages", name]) => {
                let mut stage = self.stage(api, name)?;
                patch::apply(&mut stage, &parse_body(body)?)?;
                if let Some(id) = stage["deploymentId"].as_str() {
                    self.docs
                        .get(api, "deployment", id)
                        .ok_or_else(|| bad_request("Invalid deployment id specified"))?;
                }
                stage["lastUpdatedDate"] = json!(epoch_seconds());
                self.docs.write(vec![Change::Put(
                    "stage",
                    api.to_string(),
                    name.to_string(),
                    stage.clone(),
                )])?;
                ok(stage)
            }
            (&M::DELETE, ["restapis", api, "stages", name]) => {
                self.stage(api, name)?;
                self.docs.write(vec![Change::Delete("stage", api.to_string(), name.to_string())])?;
                empty(202)
            }
            (&M::GET, ["restapis", api, "stages", name, "exports", kind]) => {
                let accept = request.header("accept").unwrap_or("application/json").to_owned();
                self.export(api, name, kind, &accept, request.query("extensions").as_deref())
            }
            (&M::POST, ["restapis", api, "authorizers"]) => {
                with_status(self.create_authorizer(api, &parse_body(body)?)?, 201)
            }
            (&M::GET, ["restapis", api, "authorizers"]) => {
                self.rest_api(api)?;
                ok(json!({ "item": self.docs.list(api, "authorizer") }))
            }
            (&M::GET, ["restapis", api, "authorizers", id]) => ok(self.authorizer(api, id)?),
            (&M::PATCH, ["restapis", api, "authorizers", id]) => {
                let mut doc = self.authorizer(api, id)?;
                patch::apply(&mut doc, &parse_body(body)?)?;
                self.docs.write(vec![Change::Put(
                    "authorizer",
                    api.to_string(),
                    id.to_string(),
                    doc.clone(),
                )])?;
                ok(doc)
            }
            (&M::DELETE, ["restapis", api, "authorizers", id]) => {
                self.authorizer(api, id)?;
                self.docs.write(vec![Change::Delete("authorizer", api.to_string(), id.to_string())])?;
                empty(202)
            }
            (_, ["apikeys", ..]) | (_, ["usageplans", ..]) => self.route_keys(request, &s),
            _ => Err(unknown(&request.method, path)),
        }
    }

    pub(crate) fn rest_api(&self, api: &str) -> Result<Value, AwsError> {
        self.docs.get("", "restapi", api).ok_or_else(|| {
            not_found(format!("Invalid API identifier specified {}:{api}", self.identity.account))
        })
    }

    pub(crate) fn create_rest_api(&self, input: &Value) -> Result<Value, AwsError> {
        let name = input["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad_request("Invalid REST API name specified"))?;
        let (api, root) = (self.new_api_id(), new_id(10));
        let mut doc = json!({
            "id": api,
            "name": name,
            "createdDate": epoch_seconds(),
            "apiKeySource": "HEADER",
            "endpointConfiguration": { "types": ["EDGE"] },
            "disableExecuteApiEndpoint": false,
            "rootResourceId": root,
        });
        copy_fields(&mut doc, input, API_FIELDS);
        let root_doc = json!({ "id": root, "path": "/" });
        self.docs.write(vec![
            Change::Put("restapi", String::new(), api.clone(), doc.clone()),
            Change::Put("resource", api.clone(), root, root_doc),
        ])?;
        Ok(doc)
    }

    pub(crate) fn resource(&self, api: &str, id: &str) -> Result<Value, AwsError> {
        self.rest_api(api)?;
        self.docs.get(api, "resource", id).ok_or_else(|| not_found("Invalid Resource identifier specified"))
    }

    fn create_resource(&self, api: &str, parent: &str, input: &Value) -> Result<Value, AwsError> {
        let parent_doc = self.resource(api, parent)?;
        let part = input["pathPart"].as_str().unwrap_or_default();
        check_path_part(part)?;
        let siblings = self.docs.list(api, "resource");
        if siblings.iter().any(|r| r["parentId"] == parent && r["pathPart"] == part) {
            return Err(conflict(format!(
                "Another resource with the same parent already has this name: {part}"
            )));
        }
        let base = parent_doc["path"].as_str().unwrap_or("/").trim_end_matches('/');
        let id = new_id(6);
        let doc = json!({ "id": id, "parentId": parent, "pathPart": part, "path": format!("{base}/{part}") });
        self.docs.write(vec![Change::Put("resource", api.to_owned(), id, doc.clone())])?;
        Ok(doc)
    }

    fn delete_resource(&self, api: &str, id: &str) -> Result<(), AwsError> {
        let resource = self.resource(api, id)?;
        if resource.get("parentId").is_none() {
            return Err(bad_request("Cannot delete root resource"));
        }
        let path = resource["path"].as_str().unwrap_or_default().to_owned();
        let changes = self
            .docs
            .list(api, "resource")
            .into_iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p == path || p.starts_with(&format!("{path}/"))))
            .map(|r| {
                Change::Delete("resource", api.to_owned(), r["id"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        self.docs.write(changes)
    }

    fn save_resource(&self, api: &str, resource: Value) -> Result<(), AwsError> {
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        self.docs.write(vec![Change::Put("resource", api.to_owned(), id, resource)])
    }

    fn put_method(&self, api: &str, id: &str, method: &str, input: &Value) -> Result<Value, AwsError> {
        let mut resource = self.resource(api, id)?;
        check_method(method)?;
        let authorization = input["authorizationType"].as_str().unwrap_or_default();
        if !["NONE", "AWS_IAM", "CUSTOM", "COGNITO_USER_POOLS"].contains(&authorization) {
            return Err(bad_request("Invalid authorization type specified. Valid values are NONE, AWS_IAM, CUSTOM, COGNITO_USER_POOLS"));
        }
        if let Some(authorizer) = input["authorizerId"].as_str() {
            self.authorizer(api, authorizer).map_err(|_| bad_request("Invalid authorizer ID specified"))?;
        }
        let mut doc = json!({ "httpMethod": method, "apiKeyRequired": false });
        copy_fields(&mut doc, input, METHOD_FIELDS);
        if !resource.get("resourceMethods").is_some_and(Value::is_object) {
            resource["resourceMethods"] = json!({});
        }
        resource["resourceMethods"][method] = doc.clone();
        self.save_resource(api, resource)?;
        Ok(doc)
    }

    fn method(&self, api: &str, id: &str, method: &str) -> Result<(Value, Value), AwsError> {
        let resource = self.resource(api, id)?;
        let method = resource["resourceMethods"].get(method).cloned();
        let method = method.ok_or_else(|| not_found("Invalid Method identifier specified"))?;
        Ok((resource, method))
    }

    /// Changes one method of a resource; `edit` returns what the call answers.
    fn edit_method(
        &self,
        api: &str,
        id: &str,
        method: &str,
        edit: impl FnOnce(&mut Value) -> Result<Value, AwsError>,
    ) -> Result<Value, AwsError> {
        let (mut resource, mut method_doc) = self.method(api, id, method)?;
        let answer = edit(&mut method_doc)?;
        resource["resourceMethods"][method] = method_doc;
        self.save_resource(api, resource)?;
        Ok(answer)
    }
}

fn put_integration(method: &mut Value, resource: &str, input: &Value) -> Result<Value, AwsError> {
    let kind = input["type"].as_str().unwrap_or_default();
    if !["HTTP", "AWS", "MOCK", "HTTP_PROXY", "AWS_PROXY"].contains(&kind) {
        return Err(bad_request(
            "Invalid integration type specified. Valid values are HTTP, AWS, MOCK, HTTP_PROXY, AWS_PROXY",
        ));
    }
    if kind != "MOCK" && input["httpMethod"].as_str().is_none() {
        return Err(bad_request("Enumeration value for HttpMethod must be non-empty"));
    }
    if kind != "MOCK" && input["uri"].as_str().is_none() {
        return Err(bad_request("Integrations of type 'AWS_PROXY' currently only supports Lambda function and Firehose stream invocations."));
    }
    let mut doc = json!({
        "type": kind,
        "passthroughBehavior": "WHEN_NO_MATCH",
        "timeoutInMillis": 29000,
        "cacheNamespace": resource,
        "cacheKeyParameters": [],
    });
    copy_fields(&mut doc, input, INTEGRATION_FIELDS);
    method["methodIntegration"] = doc.clone();
    Ok(doc)
}

pub(crate) fn check_path_part(part: &str) -> Result<(), AwsError> {
    let inner = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
    let name = inner.map(|i| i.strip_suffix('+').unwrap_or(i)).unwrap_or(part);
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:~@!$&'()*,;=".contains(&b))
        && (inner.is_some() || !part.contains(['{', '}']));
    if valid {
        Ok(())
    } else {
        Err(bad_request(format!(
            "Resource's path part only allow a-zA-Z0-9._- and curly braces at the beginning and the end and an optional plus sign before the closing brace. (Service: path part {part})"
        )))
    }
}

fn check_method(method: &str) -> Result<(), AwsError> {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];
    if METHODS.contains(&method) {
        Ok(())
    } else {
        Err(bad_request(
            "Invalid HttpMethod specified. Valid options are GET,PUT,POST,DELETE,PATCH,OPTIONS,HEAD,ANY",
        ))
    }
}
