//! `AWS::ApiGatewayV2::*`: HTTP APIs (by `Body`, or quick create) and their children, for
//! [`super::provider`].

use hyper::Method;
use nimbus_api::provider::{ProviderError, Provisioned, ResourceRequest};
use serde_json::{json, Value};

use super::provider::*;
use crate::ApiGateway;

impl ApiGateway {
    // ---- HTTP APIs (v2) ----

    pub(super) async fn cfn_create_v2_api(
        &self,
        request: &ResourceRequest,
    ) -> Result<Provisioned, ProviderError> {
        let doc = match request.property("Body") {
            Some(body) => {
                self.cfn_api(Method::PUT, "/v2/apis", Some(json!({"body": body_text(body)}))).await?
            }
            None => {
                if request.property("BodyS3Location").is_some() {
                    return Err(ProviderError::new("BodyS3Location could not be read from S3"));
                }
                let mut body = self.cfn_v2_api_input(request);
                body["name"] = json!(required(request, "Name")?);
                self.cfn_api(Method::POST, "/v2/apis", Some(body)).await?
            }
        };
        let id = doc["apiId"].as_str().unwrap_or_default().to_owned();
        self.cfn_v2_api_props(&id, request, request.property("Body").is_some()).await
    }

    pub(super) fn cfn_v2_api_input(&self, request: &ResourceRequest) -> Value {
        input(
            request,
            &[
                "Name",
                "ProtocolType",
                "Target",
                "RouteKey",
                "CredentialsArn",
                "CorsConfiguration",
                "Description",
                "DisableExecuteApiEndpoint",
                "Version",
                "Tags",
                "RouteSelectionExpression",
                "ApiKeySelectionExpression",
            ],
        )
    }

    /// Properties given beside a body override the definition's.
    pub(super) async fn cfn_v2_api_props(
        &self,
        id: &str,
        request: &ResourceRequest,
        patch: bool,
    ) -> Result<Provisioned, ProviderError> {
        let path = format!("/v2/apis/{id}");
        let overrides =
            input(request, &["Name", "Description", "CorsConfiguration", "DisableExecuteApiEndpoint"]);
        let doc = if patch && overrides.as_object().is_some_and(|o| !o.is_empty()) {
            self.cfn_api(Method::PATCH, &path, Some(overrides)).await?
        } else {
            self.cfn_api(Method::GET, &path, None).await?
        };
        Ok(provisioned(id, &[("ApiId", json!(id)), ("ApiEndpoint", doc["apiEndpoint"].clone())]))
    }

    /// A child of an HTTP API: its collection, id field, and properties.
    pub(super) fn cfn_v2_child(resource_type: &str) -> (&'static str, &'static str, &'static [&'static str]) {
        match resource_type {
            V2_ROUTE => (
                "routes",
                "routeId",
                &[
                    "RouteKey",
                    "Target",
                    "AuthorizationType",
                    "AuthorizerId",
                    "ApiKeyRequired",
                    "AuthorizationScopes",
                    "OperationName",
                    "RequestParameters",
                ],
            ),
            V2_INTEGRATION => (
                "integrations",
                "integrationId",
                &[
                    "IntegrationType",
                    "IntegrationUri",
                    "IntegrationMethod",
                    "PayloadFormatVersion",
                    "TimeoutInMillis",
                    "ConnectionType",
                    "ConnectionId",
                    "CredentialsArn",
                    "Description",
                    "RequestParameters",
                    "ResponseParameters",
                    "IntegrationSubtype",
                ],
            ),
            V2_STAGE => (
                "stages",
                "stageName",
                &[
                    "StageName",
                    "AutoDeploy",
                    "DeploymentId",
                    "Description",
                    "StageVariables",
                    "DefaultRouteSettings",
                    "RouteSettings",
                    "AccessLogSettings",
                    "Tags",
                ],
            ),
            V2_AUTHORIZER => (
                "authorizers",
                "authorizerId",
                &[
                    "Name",
                    "AuthorizerType",
                    "AuthorizerUri",
                    "IdentitySource",
                    "JwtConfiguration",
                    "AuthorizerPayloadFormatVersion",
                    "EnableSimpleResponses",
                    "AuthorizerResultTtlInSeconds",
                    "AuthorizerCredentialsArn",
                ],
            ),
            _ => ("deployments", "deploymentId", &["Description", "StageName"]),
        }
    }

    pub(super) async fn cfn_create_v2_child(
        &self,
        request: &ResourceRequest,
    ) -> Result<Provisioned, ProviderError> {
        let api = required(request, "ApiId")?;
        let (collection, id_field, names) = Self::cfn_v2_child(&request.resource_type);
        let mut body = input(request, names);
        // `IdentitySource` is a list in CloudFormation and in the API alike; a string is one source.
        if let Some(Value::String(source)) = body.get("identitySource").cloned() {
            body["identitySource"] = json!([source]);
        }
        let doc = self.cfn_api(Method::POST, &format!("/v2/apis/{api}/{collection}"), Some(body)).await?;
        let id = doc[id_field].as_str().unwrap_or_default().to_owned();
        let attribute = match request.resource_type.as_str() {
            V2_ROUTE => Some("RouteId"),
            V2_INTEGRATION => Some("IntegrationId"),
            V2_AUTHORIZER => Some("AuthorizerId"),
            V2_DEPLOYMENT => Some("DeploymentId"),
            _ => None,
        };
        let attributes: Vec<(&str, Value)> = attribute.map(|a| (a, json!(id))).into_iter().collect();
        Ok(provisioned(id, &attributes))
    }
}
