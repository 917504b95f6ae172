//! The API Gateway provider, in-process over a real store.

use super::*;

#[test]
fn properties_take_the_apis_spelling_but_user_maps_stay() {
    let value = json!({"CorsConfiguration": {"AllowOrigins": ["*"]}, "Variables": {"MyVar": "x"}});
    assert_eq!(
        camel(&value),
        json!({"corsConfiguration": {"allowOrigins": ["*"]}, "variables": {"MyVar": "x"}})
    );
}

fn request(kind: &str, properties: Value) -> ResourceRequest {
    ResourceRequest { tags: Vec::new(), ..ResourceRequest::example("stack", "Api", kind, properties) }
}

fn body(title: &str, path: &str) -> Value {
    json!({"swagger": "2.0", "info": {"title": title}, "paths": {path: {"get": {
        "x-amazon-apigateway-integration": {"type": "mock"}}}}})
}

#[tokio::test]
async fn a_rest_api_body_is_imported_replaced_on_update_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = crate::tests::gateway(dir.path());
    let created = gateway.create(request(REST_API, json!({"Body": body("one", "/a")}))).await.unwrap();
    let id = created.physical_id.clone();
    let api = gateway.cfn_api(Method::GET, &format!("/restapis/{id}"), None).await.unwrap();
    assert_eq!(api["name"], "one");
    assert_eq!(created.attributes["RootResourceId"], api["rootResourceId"]);
    let update = request(REST_API, json!({"Body": body("two", "/b"), "Name": "named"}));
    gateway.update(update, id.clone(), Map::new()).await.unwrap();
    let resources = gateway.cfn_api(Method::GET, &format!("/restapis/{id}/resources"), None).await.unwrap();
    let paths: Vec<&str> =
        resources["item"].as_array().unwrap().iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(paths.contains(&"/b") && !paths.contains(&"/a"), "{paths:?}");
    let api = gateway.cfn_api(Method::GET, &format!("/restapis/{id}"), None).await.unwrap();
    assert_eq!(api["name"], "named");
    gateway.delete(request(REST_API, json!({})), id.clone()).await.unwrap();
    // Gone already: deleting again is not an error.
    gateway.delete(request(REST_API, json!({})), id.clone()).await.unwrap();
    assert!(gateway.cfn_api(Method::GET, &format!("/restapis/{id}"), None).await.is_err());
}

#[tokio::test]
async fn domain_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = crate::tests::gateway(dir.path());
    let error = gateway.create(request("AWS::ApiGateway::BasePathMapping", json!({}))).await.unwrap_err();
    assert!(error.message.contains("AWS::ApiGateway::BasePathMapping is not supported"), "{error}");
    let account =
        gateway.create(request(ACCOUNT, json!({"CloudWatchRoleArn": "arn:aws:iam::000000000000:role/x"})));
    assert!(account.await.unwrap().physical_id.starts_with("stack-Api-"));
}

#[test]
fn patches_skip_absent_values() {
    let ops = replace_ops(&[("/name", json!("n")), ("/description", Value::Null)]);
    assert_eq!(ops, json!({"patchOperations": [{"op": "replace", "path": "/name", "value": "n"}]}));
}
