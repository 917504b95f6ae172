//! REST API deployments (snapshots of the resources that stages serve), stages with their
//! variables, and authorizers.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::store::{new_id, Change};
use crate::{bad_request, conflict, copy_fields, epoch_seconds, not_found, ApiGateway};

impl ApiGateway {
    pub(crate) fn create_deployment(&self, api: &str, input: &Value) -> Result<Value, AwsError> {
        let rest_api = self.rest_api(api)?;
        let resources = self.docs.list(api, "resource");
        if !resources.iter().any(|r| r["resourceMethods"].as_object().is_some_and(|m| !m.is_empty())) {
            return Err(bad_request("The REST API doesn't contain any methods"));
        }
        let id = new_id(6);
        let mut deployment = json!({ "id": id, "createdDate": epoch_seconds() });
        copy_fields(&mut deployment, input, &["description"]);
        let mut stored = deployment.clone();
        stored["snapshot"] = json!({
            "resources": resources,
            "binaryMediaTypes": rest_api.get("binaryMediaTypes").cloned().unwrap_or(json!([])),
        });
        let mut changes = vec![Change::Put("deployment", api.to_owned(), id.clone(), stored)];
        if let Some(stage_name) = input["stageName"].as_str().filter(|s| !s.is_empty()) {
            let mut stage = self.docs.get(api, "stage", stage_name).unwrap_or_else(|| new_stage(stage_name));
            stage["deploymentId"] = json!(id);
            stage["lastUpdatedDate"] = json!(epoch_seconds());
            if let Some(variables) = input.get("variables").filter(|v| v.is_object()) {
                stage["variables"] = variables.clone();
            }
            copy_fields(
                &mut stage,
                &json!({ "description": input.get("stageDescription") }),
                &["description"],
            );
            changes.push(Change::Put("stage", api.to_owned(), stage_name.to_owned(), stage));
        }
        self.docs.write(changes)?;
        Ok(deployment)
    }

    pub(crate) fn create_stage(&self, api: &str, input: &Value) -> Result<Value, AwsError> {
        self.rest_api(api)?;
        let name = input["stageName"].as_str().unwrap_or_default();
        check_stage_name(name)?;
        let deployment = input["deploymentId"].as_str().unwrap_or_default();
        if self.docs.get(api, "deployment", deployment).is_none() {
            return Err(bad_request("Invalid deployment id specified"));
        }
        if self.docs.get(api, "stage", name).is_some() {
            return Err(conflict("Stage already exists"));
        }
        let mut stage = new_stage(name);
        stage["deploymentId"] = json!(deployment);
        copy_fields(
            &mut stage,
            input,
            &["description", "variables", "tags", "tracingEnabled", "cacheClusterEnabled"],
        );
        self.docs.write(vec![Change::Put("stage", api.to_owned(), name.to_owned(), stage.clone())])?;
        Ok(stage)
    }

    pub(crate) fn stage(&self, api: &str, name: &str) -> Result<Value, AwsError> {
        self.rest_api(api)?;
        self.docs.get(api, "stage", name).ok_or_else(|| not_found("Invalid Stage identifier specified"))
    }

    pub(crate) fn create_authorizer(&self, api: &str, input: &Value) -> Result<Value, AwsError> {
        self.rest_api(api)?;
        let kind = input["type"].as_str().unwrap_or_default();
        if !["TOKEN", "REQUEST", "COGNITO_USER_POOLS"].contains(&kind) {
            return Err(bad_request(
                "Invalid authorizer type specified. Valid values are TOKEN, REQUEST, COGNITO_USER_POOLS",
            ));
        }
        let name = input["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err(bad_request("Invalid authorizer name specified"));
        }
        if kind != "COGNITO_USER_POOLS" && input["authorizerUri"].as_str().is_none() {
            return Err(bad_request("Authorizer URI must be specified for TOKEN and REQUEST authorizers"));
        }
        let id = new_id(6);
        let mut doc = json!({ "id": id, "name": name, "type": kind, "authorizerResultTtlInSeconds": 300 });
        if kind == "TOKEN" {
            doc["identitySource"] = json!("method.request.header.Authorization");
        }
        copy_fields(
            &mut doc,
            input,
            &[
                "providerARNs",
                "authType",
                "authorizerUri",
                "authorizerCredentials",
                "identitySource",
                "identityValidationExpression",
                "authorizerResultTtlInSeconds",
            ],
        );
        self.docs.write(vec![Change::Put("authorizer", api.to_owned(), id, doc.clone())])?;
        Ok(doc)
    }

    pub(crate) fn authorizer(&self, api: &str, id: &str) -> Result<Value, AwsError> {
        self.rest_api(api)?;
        self.docs
            .get(api, "authorizer", id)
            .ok_or_else(|| not_found("Invalid Authorizer identifier specified"))
    }
}

pub(crate) fn new_stage(name: &str) -> Value {
    json!({
        "stageName": name,
        "createdDate": epoch_seconds(),
        "lastUpdatedDate": epoch_seconds(),
        "cacheClusterEnabled": false,
        "cacheClusterStatus": "NOT_AVAILABLE",
        "methodSettings": {},
        "tracingEnabled": false,
    })
}

pub(crate) fn deployment_view(mut deployment: Value) -> Value {
    if let Some(object) = deployment.as_object_mut() {
        object.remove("snapshot");
    }
    deployment
}

pub(crate) fn check_stage_name(name: &str) -> Result<(), AwsError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(bad_request("Stage name only allows a-zA-Z0-9_"))
    }
}
