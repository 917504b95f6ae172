//! Cloud Control (`CloudApiService`, JSON 1.0), as much as `sam list endpoints` needs:
//! `GetResource` and `ListResources` of `AWS::Lambda::Function` and `AWS::Lambda::Url`, read
//! from Lambda in the region and account the request is signed for. Other types answer `UnsupportedActionException`, other operations
//! `UnknownOperationException`, each naming what was asked.

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, AwsError, Protocol, Service, ServiceFuture};
use serde_json::{json, Map, Value};

const TARGET_PREFIX: &str = "CloudApiService.";
const TYPES: &[&str] = &["AWS::Lambda::Function", "AWS::Lambda::Url"];

pub struct CloudControl {
    /// Lambda of every region (it picks one by the signature passed on).
    pub lambda: Arc<dyn Service>,
}

/// One request's reads of Lambda, signed as the request was (its region and account).
struct Reads<'a> {
    lambda: &'a dyn Service,
    authorization: Option<&'a str>,
}

impl Reads<'_> {
    async fn lambda(&self, path: &str) -> Result<Option<Value>, AwsError> {
        let headers: Vec<(&str, &str)> =
            self.authorization.map(|a| ("authorization", a)).into_iter().collect();
        match nimbus_api::provider::call(self.lambda, Method::GET, path, &headers, Vec::new()).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or_default())),
            Err(error) if error.message.contains("Status Code: 404") => Ok(None),
            Err(error) => Err(AwsError::new(500, "GeneralServiceException", error.message)),
        }
    }

    /// One resource's description (`Identifier`, `Properties` as a JSON string), or None.
    async fn describe(&self, kind: &str, identifier: &str) -> Result<Option<Value>, AwsError> {
        let name = identifier.split(':').nth(6).unwrap_or(identifier);
        let properties = match kind {
            "AWS::Lambda::Function" => {
                let Some(found) = self.lambda(&format!("/2015-03-31/functions/{name}")).await? else {
                    return Ok(None);
                };
                let config = &found["Configuration"];
                let mut props = Map::new();
                for (from, to) in [
                    ("FunctionName", "FunctionName"),
                    ("FunctionArn", "Arn"),
                    ("Runtime", "Runtime"),
                    ("Handler", "Handler"),
                    ("Role", "Role"),
                    ("MemorySize", "MemorySize"),
                    ("Timeout", "Timeout"),
                    ("Description", "Description"),
                    ("Architectures", "Architectures"),
                    ("PackageType", "PackageType"),
                    ("Environment", "Environment"),
                    ("Layers", "Layers"),
                ] {
                    if let Some(value) = config.get(from).filter(|v| !v.is_null()) {
                        props.insert(to.into(), value.clone());
                    }
                }
                props
            }
            _ => {
                let Some(url) = self.lambda(&format!("/2021-10-31/functions/{name}/url")).await? else {
                    return Ok(None);
                };
                let mut props = Map::new();
                props.insert("TargetFunctionArn".into(), url["FunctionArn"].clone());
                props.insert("FunctionArn".into(), url["FunctionArn"].clone());
                props.insert("FunctionUrl".into(), url["FunctionUrl"].clone());
                props.insert("AuthType".into(), url["AuthType"].clone());
                for key in ["InvokeMode", "Cors"] {
                    if let Some(value) = url.get(key).filter(|v| !v.is_null()) {
                        props.insert(key.into(), value.clone());
                    }
                }
                props
            }
        };
        let identifier = match kind {
            "AWS::Lambda::Url" => properties["FunctionArn"].as_str().unwrap_or(identifier).to_owned(),
            _ => name.to_owned(),
        };
        Ok(Some(json!({"Identifier": identifier, "Properties": Value::Object(properties).to_string()})))
    }
}

impl CloudControl {
    async fn dispatch(&self, operation: &str, input: &Value, reads: &Reads<'_>) -> Result<Value, AwsError> {
        let kind = input["TypeName"].as_str().unwrap_or_default();
        if matches!(operation, "GetResource" | "ListResources") && !TYPES.contains(&kind) {
            return Err(AwsError::new(
                400,
                "UnsupportedActionException",
                format!(
                    "nimbus's Cloud Control does not serve resources of type {kind}: it reads {}",
                    TYPES.join(" and ")
                ),
            ));
        }
        match operation {
            "GetResource" => {
                let identifier = input["Identifier"].as_str().unwrap_or_default();
                match reads.describe(kind, identifier).await? {
                    Some(description) => Ok(json!({"TypeName": kind, "ResourceDescription": description})),
                    None => Err(AwsError::new(
                        404,
                        "ResourceNotFoundException",
                        format!("{kind} Handler returned status FAILED: Resource of type '{kind}' with identifier '{identifier}' was not found. (HandlerErrorCode: NotFound)"),
                    )),
                }
            }
            "ListResources" => {
                let listed = reads.lambda("/2015-03-31/functions/?MaxItems=10000").await?.unwrap_or_default();
                let mut descriptions = Vec::new();
                for function in listed["Functions"].as_array().into_iter().flatten() {
                    let name = function["FunctionName"].as_str().unwrap_or_default();
                    if let Some(description) = reads.describe(kind, name).await? {
                        descriptions.push(description);
                    }
                }
                Ok(json!({"TypeName": kind, "ResourceDescriptions": descriptions}))
            }
            other => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("nimbus's Cloud Control does not implement {other}: it serves GetResource and ListResources"),
            )),
        }
    }
}

impl Service for CloudControl {
    fn name(&self) -> &'static str {
        "cloudcontrol"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, headers: &HeaderMap) -> bool {
        let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
        target.is_some_and(|t| t.starts_with(TARGET_PREFIX))
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            let input: Value = if request.body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(&request.body) {
                    Ok(input) => input,
                    Err(error) => {
                        let message = format!("The request body is not JSON: {error}");
                        return AwsError::new(400, "SerializationException", message)
                            .into_response(Protocol::Json);
                    }
                }
            };
            let reads =
                Reads { lambda: self.lambda.as_ref(), authorization: request.header("authorization") };
            match self.dispatch(&operation, &input, &reads).await {
                Ok(value) => {
                    let mut response = nimbus_api::json_response(value);
                    let json = HeaderValue::from_static("application/x-amz-json-1.0");
                    response.headers_mut().insert(CONTENT_TYPE, json);
                    response
                }
                Err(error) => error.into_response(Protocol::Json),
            }
        })
    }
}
