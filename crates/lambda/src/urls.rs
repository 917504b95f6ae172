//! Function URLs: `CreateFunctionUrlConfig`, `GetFunctionUrlConfig`, `UpdateFunctionUrlConfig`,
//! `DeleteFunctionUrlConfig`, `ListFunctionUrlConfigs`, stored as resources of the function
//! (kind `url`, named by qualifier). Requests to the URLs themselves are served by API
//! Gateway's front door, which finds them with [`Lambda::function_url`] and invokes through
//! [`Lambda::invoke_sync`].

use bytes::Bytes;
use nimbus_api::AwsError;
use nimbus_functions::Invocation;
use serde_json::{json, Value};

use crate::registry::LATEST;
use crate::Lambda;

/// What the front door needs of a function URL.
pub struct UrlTarget {
    /// `name` or `name:qualifier`.
    pub function: String,
    pub auth_type: String,
    pub cors: Option<Value>,
}

/// Why a synchronous invocation from a front door did not run.
pub enum SyncFailure {
    Throttled,
    Failed(String),
}

impl Lambda {
    pub(crate) async fn create_url(
        &self,
        name: &str,
        qualifier: Option<&str>,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let (function, key) = self.url_function(name, qualifier)?;
        if function.resource("url", &key).is_some() {
            return Err(AwsError::conflict(format!(
                "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                self.url_arn(function.name(), &key)
            )));
        }
        let input: Value = crate::functions::parse(body)?;
        let id: String = uuid::Uuid::new_v4().simple().to_string();
        let now = crate::functions::now();
        let mut config = json!({
            "UrlId": id,
            "FunctionUrl": self.url_of(&id),
            "FunctionArn": self.url_arn(function.name(), &key),
            "CreationTime": now,
            "LastModifiedTime": now,
            "InvokeMode": "BUFFERED",
        });
        apply(&mut config, &input, true)?;
        self.registry.put_resource(function.name(), "url", &key, config.clone()).await?;
        Ok(view(config, false))
    }

    pub(crate) fn get_url(&self, name: &str, qualifier: Option<&str>) -> Result<Value, AwsError> {
        let (function, key) = self.url_function(name, qualifier)?;
        function.resource("url", &key).cloned().map(|c| view(c, true)).ok_or_else(url_not_found)
    }

    pub(crate) async fn update_url(
        &self,
        name: &str,
        qualifier: Option<&str>,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let (function, key) = self.url_function(name, qualifier)?;
        let mut config = function.resource("url", &key).cloned().ok_or_else(url_not_found)?;
        let input: Value = crate::functions::parse(body)?;
        apply(&mut config, &input, false)?;
        config["LastModifiedTime"] = json!(crate::functions::now());
        self.registry.put_resource(function.name(), "url", &key, config.clone()).await?;
        Ok(view(config, true))
    }

    pub(crate) async fn delete_url(&self, name: &str, qualifier: Option<&str>) -> Result<(), AwsError> {
        let (function, key) = self.url_function(name, qualifier)?;
        if !self.registry.delete_resource(function.name(), "url", &key).await? {
            return Err(url_not_found());
        }
        Ok(())
    }

    pub(crate) fn list_urls(&self, name: &str) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let configs: Vec<Value> = function.resources_of("url").map(|(_, c)| view(c.clone(), true)).collect();
        Ok(json!({ "FunctionUrlConfigs": configs }))
    }

    /// The function URL whose id is `url_id` (from memory), its function named by ARN (the
    /// front door serves every region's URLs).
    pub fn function_url(&self, url_id: &str) -> Option<UrlTarget> {
        self.registry.all().iter().find_map(|function| {
            function.resources_of("url").find(|(_, c)| c["UrlId"] == url_id).map(|(key, config)| UrlTarget {
                function: if key.is_empty() {
                    self.function_arn(function.name())
                } else {
                    format!("{}:{key}", self.function_arn(function.name()))
                },
                auth_type: config["AuthType"].as_str().unwrap_or("NONE").to_owned(),
                cors: config.get("Cors").filter(|c| c.is_object()).cloned(),
            })
        })
    }

    /// Every function URL: (function or `function:alias`, URL).
    pub fn function_urls(&self) -> Vec<(String, String)> {
        let mut urls = Vec::new();
        for function in self.registry.all() {
            for (key, config) in function.resources_of("url") {
                let name = if key.is_empty() {
                    function.name().to_owned()
                } else {
                    format!("{}:{key}", function.name())
                };
                urls.push((name, config["FunctionUrl"].as_str().unwrap_or_default().to_owned()));
            }
        }
        urls
    }

    /// A synchronous invocation for API Gateway and function URLs: the payload, and whether it
    /// is an error document.
    pub async fn invoke_sync(
        &self,
        reference: &str,
        payload: Bytes,
        request_id: &str,
    ) -> Result<(Bytes, bool), SyncFailure> {
        if payload.len() > crate::invoke::MAX_SYNC_PAYLOAD {
            return Err(SyncFailure::Failed(format!(
                "{} byte payload is too large for the RequestResponse invocation type (limit {} bytes)",
                payload.len(),
                crate::invoke::MAX_SYNC_PAYLOAD
            )));
        }
        let target = self.route_invocation(reference, None).map_err(|e| SyncFailure::Failed(e.message))?;
        let invocation = Invocation {
            request_id: request_id.to_owned(),
            payload,
            invoked_arn: match &target.qualifier {
                Some(q) => format!("{}:{q}", self.function_arn(target.function.name())),
                None => self.function_arn(target.function.name()),
            },
            client_context: None,
            tail_log: false,
        };
        match self.engine.invoke(&target.entry.spec, &invocation).await {
            Ok(result) => Ok((result.payload, result.function_error.is_some())),
            Err(nimbus_functions::EngineError::Throttled { .. }) => Err(SyncFailure::Throttled),
            Err(other) => Err(SyncFailure::Failed(crate::invoke::engine_error(other).message)),
        }
    }

    /// The function and the resource key (`""` unqualified, else the alias or `$LATEST`).
    fn url_function(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(std::sync::Arc<crate::registry::Function>, String), AwsError> {
        let (_, suffix) = crate::split_reference(name);
        let function = self.function(name)?;
        let key = qualifier.or(suffix).unwrap_or_default().to_owned();
        if !key.is_empty()
            && key != LATEST
            && (key.parse::<u64>().is_ok() || function.resource("alias", &key).is_none())
        {
            return Err(AwsError::not_found(format!(
                "Function not found: {}:{key}",
                self.function_arn(function.name())
            ))
            .with_code("ResourceNotFoundException"));
        }
        Ok((function, key))
    }

    fn url_arn(&self, name: &str, key: &str) -> String {
        match key {
            "" => self.function_arn(name),
            q => format!("{}:{q}", self.function_arn(name)),
        }
    }

    /// `http://{id}.lambda-url.{region}.localhost:{port}/`: AWS's form, on nimbus's port.
    fn url_of(&self, id: &str) -> String {
        let port = self.endpoint_url.rsplit(':').next().unwrap_or("4566").trim_end_matches('/');
        format!("http://{id}.lambda-url.{}.localhost:{port}/", self.identity.region)
    }
}

fn url_not_found() -> AwsError {
    AwsError::not_found("The resource you requested does not exist.")
}

fn apply(config: &mut Value, input: &Value, create: bool) -> Result<(), AwsError> {
    match input["AuthType"].as_str() {
        Some(kind @ ("NONE" | "AWS_IAM")) => config["AuthType"] = json!(kind),
        Some(other) => {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value '{other}' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_IAM, NONE]"
            )))
        }
        None if create => {
            return Err(AwsError::validation(
                "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null",
            ))
        }
        None => {}
    }
    match input["InvokeMode"].as_str() {
        Some(mode @ ("BUFFERED" | "RESPONSE_STREAM")) => config["InvokeMode"] = json!(mode),
        Some(other) => {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value '{other}' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]"
            )))
        }
        None => {}
    }
    if let Some(cors) = input.get("Cors").filter(|c| c.is_object()) {
        config["Cors"] = cors.clone();
    }
    Ok(())
}

/// The configuration as the API shows it (without nimbus's `UrlId`).
fn view(mut config: Value, with_modified: bool) -> Value {
    if let Some(object) = config.as_object_mut() {
        object.remove("UrlId");
        if !with_modified {
            object.remove("LastModifiedTime");
        }
    }
    config
}
