//! The control planes over a real store, without HTTP: calls go through `Service::call`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use nimbus_api::{ApiRequest, Identity, Service};
use serde_json::{json, Value};

use crate::{ApiGateway, FunctionUrl, Functions, InvokeFuture, Invoked};

struct Echo;

impl Functions for Echo {
    fn invoke<'a>(&'a self, _function: &'a str, payload: Bytes, _request_id: &'a str) -> InvokeFuture<'a> {
        Box::pin(async move {
            let event: Value = serde_json::from_slice(&payload).unwrap_or_default();
            let body = json!({ "statusCode": 200, "body": event.to_string() });
            Ok(Invoked { payload: Bytes::from(body.to_string()), function_error: false })
        })
    }

    fn url(&self, _url_id: &str) -> Option<FunctionUrl> {
        None
    }
}

pub(crate) fn gateway(dir: &std::path::Path) -> Arc<ApiGateway> {
    let database = nimbus_store::Database::sqlite(dir);
    ApiGateway::open(&database, Identity::default(), Arc::new(Echo)).unwrap()
}

async fn call(
    gateway: &ApiGateway,
    method: Method,
    uri: &str,
    body: Value,
    host: Option<&str>,
) -> (u16, Value) {
    let mut headers = hyper::HeaderMap::new();
    if let Some(host) = host {
        headers.insert(hyper::header::HOST, host.parse().unwrap());
    }
    let request = ApiRequest {
        method,
        uri: uri.parse().unwrap(),
        headers,
        body: if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) },
        request_id: "req-1".into(),
    };
    let response = gateway.call(request).await;
    let status = response.status().as_u16();
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_deployed_serves_proxy_events_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    let (status, api) = call(&gw, Method::POST, "/restapis", json!({ "name": "pets" }), None).await;
    assert_eq!(status, 201);
    let id = api["id"].as_str().unwrap().to_owned();
    let root = api["rootResourceId"].as_str().unwrap().to_owned();
    let (_, proxy) = call(
        &gw,
        Method::POST,
        &format!("/restapis/{id}/resources/{root}"),
        json!({ "pathPart": "{proxy+}" }),
        None,
    )
    .await;
    let proxy_id = proxy["id"].as_str().unwrap().to_owned();
    let method_path = format!("/restapis/{id}/resources/{proxy_id}/methods/ANY");
    let (status, _) =
        call(&gw, Method::PUT, &method_path, json!({ "authorizationType": "NONE" }), None).await;
    assert_eq!(status, 201);
    let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:${stageVariables.fn}/invocations";
    let integration = json!({ "type": "AWS_PROXY", "httpMethod": "POST", "uri": uri });
    call(&gw, Method::PUT, &format!("{method_path}/integration"), integration, None).await;
    let deploy = json!({ "stageName": "prod", "variables": { "fn": "echo" } });
    let (status, _) = call(&gw, Method::POST, &format!("/restapis/{id}/deployments"), deploy, None).await;
    assert_eq!(status, 201);
    drop(gw);

    let gw = gateway(dir.path());
    let (status, event) =
        call(&gw, Method::GET, &format!("/_aws/execute-api/{id}/prod/a/b?x=1&x=2"), Value::Null, None).await;
    assert_eq!(status, 200);
    assert_eq!(event["resource"], "/{proxy+}");
    assert_eq!(event["pathParameters"]["proxy"], "a/b");
    assert_eq!(event["multiValueQueryStringParameters"]["x"], json!(["1", "2"]));
    assert_eq!(event["queryStringParameters"]["x"], "2");
    assert_eq!(event["stageVariables"]["fn"], "echo");
    assert_eq!(event["requestContext"]["path"], "/prod/a/b");
    let (status, body) =
        call(&gw, Method::GET, "/prod/", Value::Null, Some(&format!("{id}.execute-api.localhost:4566")))
            .await;
    assert_eq!((status, body), (403, json!({ "message": "Missing Authentication Token" })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_quick_create_routes_default_stage() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    let (status, api) = call(&gw, Method::POST, "/v2/apis", json!({ "name": "q", "protocolType": "HTTP", "target": "arn:aws:lambda:us-east-1:000000000000:function:echo" }), None).await;
    assert_eq!(status, 201);
    let id = api["apiId"].as_str().unwrap();
    let (status, event) =
        call(&gw, Method::POST, &format!("/_aws/execute-api/{id}/hello?a=1&a=2"), json!({ "k": 1 }), None)
            .await;
    assert_eq!(status, 200);
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/hello");
    assert_eq!(event["queryStringParameters"]["a"], "1,2");
    assert_eq!(event["requestContext"]["stage"], "$default");
}

const SWAGGER: &str = r#"
swagger: "2.0"
info: {title: sam-api}
securityDefinitions:
  api_key: {type: apiKey, name: x-api-key, in: header}
  tok:
    type: apiKey
    name: Authorization
    in: header
    x-amazon-apigateway-authtype: custom
    x-amazon-apigateway-authorizer:
      type: token
      authorizerUri: arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:auth/invocations
      authorizerResultTtlInSeconds: 60
paths:
  /orders/{id}:
    get:
      security: [{api_key: []}, {tok: []}]
      responses: {"200": {description: ok}}
      x-amazon-apigateway-integration:
        type: aws_proxy
        httpMethod: POST
        uri: arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:orders/invocations
  /:
    x-amazon-apigateway-any-method:
      x-amazon-apigateway-integration: {type: mock, requestTemplates: {application/json: '{"statusCode": 200}'}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_import_brings_methods_keys_and_authorizers() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    let request = ApiRequest {
        method: Method::POST,
        uri: "/restapis?mode=import".parse().unwrap(),
        headers: hyper::HeaderMap::new(),
        body: Bytes::from_static(SWAGGER.as_bytes()),
        request_id: "r".into(),
    };
    let response = gw.call(request).await;
    assert_eq!(response.status(), 201);
    use http_body_util::BodyExt;
    let api: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(api["name"], "sam-api");
    let id = api["id"].as_str().unwrap();
    let (_, resources) =
        call(&gw, Method::GET, &format!("/restapis/{id}/resources"), Value::Null, None).await;
    let items = resources["item"].as_array().unwrap();
    let orders = items.iter().find(|r| r["path"] == "/orders/{id}").unwrap();
    let get = &orders["resourceMethods"]["GET"];
    assert_eq!(get["apiKeyRequired"], true);
    assert_eq!(get["authorizationType"], "CUSTOM");
    assert_eq!(get["methodIntegration"]["type"], "AWS_PROXY");
    assert!(items.iter().any(|r| r["path"] == "/orders"), "parents are made too");
    let root = items.iter().find(|r| r["path"] == "/").unwrap();
    assert_eq!(root["resourceMethods"]["ANY"]["methodIntegration"]["type"], "MOCK");
    let (_, authorizers) =
        call(&gw, Method::GET, &format!("/restapis/{id}/authorizers"), Value::Null, None).await;
    let authorizer = &authorizers["item"][0];
    assert_eq!(
        (authorizer["type"].as_str(), authorizer["identitySource"].as_str()),
        (Some("TOKEN"), Some("method.request.header.Authorization"))
    );
    assert_eq!(get["authorizerId"], authorizer["id"]);
}
