//! Lambda's REST bindings: method and path to operation. Paths carry the API date of each
//! operation family (`/2015-03-31/functions`, `/2017-03-31/tags` …), as botocore sends them.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use nimbus_api::{json_response, percent_decode, ApiRequest, ApiResponse, AwsError, Body};
use serde_json::Value;

use crate::{operations, Lambda, CODE_PATH, IMPORT_PATH, INVENTORY_PATH, LAYERS_PATH};

impl Lambda {
    pub(crate) async fn route(&self, request: ApiRequest) -> Result<ApiResponse, AwsError> {
        let path = request.uri.path().to_owned();
        if let Some(file) = path.strip_prefix(CODE_PATH) {
            return self.code_package(file).await;
        }
        if path == INVENTORY_PATH {
            return ok(self.inventory());
        }
        if path == IMPORT_PATH && request.method == hyper::Method::POST {
            let arn = request.query("arn").ok_or_else(|| AwsError::invalid_parameter("arn is required"))?;
            return ok(self.import_layer(&arn, request.body.to_vec()).await?);
        }
        if let Some(rest) = path.strip_prefix(LAYERS_PATH) {
            return self.route_layers(&request, rest).await;
        }
        let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let Some(reference) = segments.get(2).filter(|_| segments[1] == "functions") {
            self.refuse_other_regions(&request, reference)?;
        }
        let qualifier = request.query("Qualifier");
        let qualifier = qualifier.as_deref();
        let query = |name| request.query(name);
        let body = &request.body;
        use Method as M;
        match (&request.method, segments.as_slice()) {
            (&M::POST, ["2015-03-31", "functions"]) => {
                let (status, value) = self.create_function(body).await?;
                Ok(with_status(json_response(value), status))
            }
            (&M::GET, ["2015-03-31", "functions"]) => {
                ok(self.list_functions(query("Marker").as_deref(), query("MaxItems").as_deref())?)
            }
            (&M::GET, ["2015-03-31", "functions", name]) => ok(self.get_function(name, qualifier)?),
            (&M::DELETE, ["2015-03-31", "functions", name]) => {
                self.delete_function(name, qualifier).await?;
                Ok(no_content())
            }
            (&M::GET, ["2015-03-31", "functions", name, "configuration"]) => {
                ok(self.get_configuration(name, qualifier)?)
            }
            (&M::PUT, ["2015-03-31", "functions", name, "configuration"]) => {
                ok(self.update_configuration(name, body).await?)
            }
            (&M::PUT, ["2015-03-31", "functions", name, "code"]) => ok(self.update_code(name, body).await?),
            (&M::POST, ["2015-03-31", "functions", name, "invocations"]) => self.invoke(&request, name).await,
            (&M::POST, ["2015-03-31", "functions", name, "versions"]) => {
                Ok(with_status(json_response(self.publish_version(name, body).await?), 201))
            }
            (&M::GET, ["2015-03-31", "functions", name, "versions"]) => {
                ok(self.list_versions(name, query("Marker").as_deref(), query("MaxItems").as_deref())?)
            }
            (&M::POST, ["2015-03-31", "functions", name, "aliases"]) => {
                Ok(with_status(json_response(self.create_alias(name, body).await?), 201))
            }
            (&M::GET, ["2015-03-31", "functions", name, "aliases"]) => ok(self.list_aliases(
                name,
                query("FunctionVersion").as_deref(),
                query("Marker").as_deref(),
                query("MaxItems").as_deref(),
            )?),
            (&M::GET, ["2015-03-31", "functions", name, "aliases", alias]) => {
                ok(self.get_alias(name, alias)?)
            }
            (&M::PUT, ["2015-03-31", "functions", name, "aliases", alias]) => {
                ok(self.update_alias(name, alias, body).await?)
            }
            (&M::DELETE, ["2015-03-31", "functions", name, "aliases", alias]) => {
                self.delete_alias(name, alias).await?;
                Ok(no_content())
            }
            (&M::POST, ["2015-03-31", "functions", name, "policy"]) => {
                Ok(with_status(json_response(self.add_permission(name, qualifier, body).await?), 201))
            }
            (&M::GET, ["2015-03-31", "functions", name, "policy"]) => ok(self.get_policy(name, qualifier)?),
            (&M::DELETE, ["2015-03-31", "functions", name, "policy", sid]) => {
                self.remove_permission(name, qualifier, sid).await?;
                Ok(no_content())
            }
            (&M::PUT, ["2017-10-31", "functions", name, "concurrency"]) => {
                ok(self.put_concurrency(name, body).await?)
            }
            (&M::DELETE, ["2017-10-31", "functions", name, "concurrency"]) => {
                self.delete_concurrency(name).await?;
                Ok(no_content())
            }
            (&M::GET, ["2019-09-30", "functions", name, "concurrency"]) => ok(self.get_concurrency(name)?),
            (&M::PUT, ["2019-09-30", "functions", name, "provisioned-concurrency"]) => {
                let lambda = self.this.upgrade().ok_or_else(|| AwsError::service("nimbus is stopping"))?;
                Ok(with_status(json_response(lambda.put_provisioned(name, qualifier, body).await?), 202))
            }
            (&M::GET, ["2019-09-30", "functions", name, "provisioned-concurrency"]) => {
                if query("List").is_some() {
                    ok(self.list_provisioned(name)?)
                } else {
                    ok(self.get_provisioned(name, qualifier)?)
                }
            }
            (&M::DELETE, ["2019-09-30", "functions", name, "provisioned-concurrency"]) => {
                self.delete_provisioned(name, qualifier).await?;
                Ok(no_content())
            }
            (&M::GET, ["2016-08-19", "account-settings"]) => ok(self.account_settings()),
            (&M::POST, ["2015-03-31", "event-source-mappings"]) => {
                Ok(with_status(json_response(self.create_mapping(body).await?), 202))
            }
            (&M::GET, ["2015-03-31", "event-source-mappings"]) => {
                ok(self.list_mappings(query("EventSourceArn").as_deref(), query("FunctionName").as_deref())?)
            }
            (&M::GET, ["2015-03-31", "event-source-mappings", uuid]) => ok(self.get_mapping(uuid)?),
            (&M::PUT, ["2015-03-31", "event-source-mappings", uuid]) => {
                Ok(with_status(json_response(self.update_mapping(uuid, body).await?), 202))
            }
            (&M::DELETE, ["2015-03-31", "event-source-mappings", uuid]) => {
                Ok(with_status(json_response(self.delete_mapping(uuid).await?), 202))
            }
            (&M::POST, ["2017-03-31", "tags", arn]) => {
                self.tag_resource(arn, body).await?;
                Ok(no_content())
            }
            (&M::DELETE, ["2017-03-31", "tags", arn]) => {
                self.untag_resource(arn, query_all(&request, "tagKeys")).await?;
                Ok(no_content())
            }
            (&M::GET, ["2017-03-31", "tags", arn]) => ok(self.list_tags(arn)?),
            (&M::PUT, ["2019-09-25", "functions", name, "event-invoke-config"]) => {
                ok(self.put_invoke_config(name, qualifier, body, false).await?)
            }
            (&M::POST, ["2019-09-25", "functions", name, "event-invoke-config"]) => {
                ok(self.put_invoke_config(name, qualifier, body, true).await?)
            }
            (&M::GET, ["2019-09-25", "functions", name, "event-invoke-config"]) => {
                ok(self.get_invoke_config(name, qualifier)?)
            }
            (&M::DELETE, ["2019-09-25", "functions", name, "event-invoke-config"]) => {
                self.delete_invoke_config(name, qualifier).await?;
                Ok(no_content())
            }
            (&M::GET, ["2019-09-25", "functions", name, "event-invoke-config", "list"]) => {
                ok(self.list_invoke_configs(name)?)
            }
            (&M::PUT, ["2024-08-31", "functions", name, "recursion-config"]) => {
                ok(self.put_recursion(name, body).await?)
            }
            (&M::GET, ["2024-08-31", "functions", name, "recursion-config"]) => ok(self.get_recursion(name)?),
            (&M::POST, ["2021-10-31", "functions", name, "url"]) => {
                Ok(with_status(json_response(self.create_url(name, qualifier, body).await?), 201))
            }
            (&M::GET, ["2021-10-31", "functions", name, "url"]) => ok(self.get_url(name, qualifier)?),
            (&M::PUT, ["2021-10-31", "functions", name, "url"]) => {
                ok(self.update_url(name, qualifier, body).await?)
            }
            (&M::DELETE, ["2021-10-31", "functions", name, "url"]) => {
                self.delete_url(name, qualifier).await?;
                Ok(no_content())
            }
            (&M::GET, ["2021-10-31", "functions", name, "urls"]) => ok(self.list_urls(name)?),
            _ => {
                let message = match operations::operation_for(request.method.as_str(), &path) {
                    Some(operation) => {
                        format!("nimbus does not implement {operation} yet ({} {path})", request.method)
                    }
                    None => format!("Unknown operation {} {path}", request.method),
                };
                Err(AwsError::new(400, "UnknownOperationException", message))
            }
        }
    }
}

fn ok(value: Value) -> Result<ApiResponse, AwsError> {
    Ok(json_response(value))
}

fn with_status(mut response: ApiResponse, status: u16) -> ApiResponse {
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or_default();
    response
}

pub(crate) fn no_content() -> ApiResponse {
    with_status(ApiResponse::new(Body::new(Bytes::new())), 204)
}

/// Every value of a repeated query parameter (`tagKeys=a&tagKeys=b`).
fn query_all(request: &ApiRequest, name: &str) -> Vec<String> {
    let query = request.uri.query().unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
        .collect()
}

impl Lambda {
    /// A function named by the ARN of another region than the request is signed for. The
    /// request reached the ARN's region (the router sends it there); AWS does not reach across
    /// regions and says so, whatever the account. Unsigned requests (nimbus's own) pass.
    fn refuse_other_regions(&self, request: &ApiRequest, reference: &str) -> Result<(), AwsError> {
        if !reference.starts_with("arn:") {
            return Ok(());
        }
        let Some(scope) = nimbus_api::scope::scope_of(&request.headers, &request.uri) else {
            return Ok(());
        };
        if scope.region.is_empty() || scope.region == self.identity.region {
            return Ok(());
        }
        Err(AwsError::not_found(format!(
            "Functions from '{}' are not reachable in this region ('{}')",
            self.identity.region, scope.region
        )))
    }
}
