use nimbus_store::Database;
use serde_json::json;

use super::*;

fn core() -> (Core, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Database::sqlite(dir.path())).unwrap();
    (Core { store, account: "123456789012".into() }, dir)
}

fn request(key: &str) -> ApiRequest {
    let mut request = ApiRequest {
        method: Method::POST,
        uri: Uri::from_static("/"),
        headers: HeaderMap::new(),
        body: bytes::Bytes::new(),
        request_id: "r".into(),
    };
    let auth =
        format!("AWS4-HMAC-SHA256 Credential={key}/20240101/us-east-1/sts/aws4_request, SignedHeaders=host");
    request.headers.insert("authorization", auth.parse().unwrap());
    request
}

#[test]
fn roles_store_and_assumed_sessions_identify_their_caller() {
    let (core, _dir) = core();
    let call = |action: &str, input: serde_json::Value, key: &str| {
        let handler = iam::handler(action).or_else(|| sts::handler(action)).unwrap();
        handler(&core, &request(key), &input)
    };
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let created = call("CreateRole", json!({"RoleName": "r", "AssumeRolePolicyDocument": policy}), "k")
        .unwrap()
        .unwrap();
    assert_eq!(created["Role"]["Arn"], "arn:aws:iam::123456789012:role/r");
    let again = call("CreateRole", json!({"RoleName": "r", "AssumeRolePolicyDocument": policy}), "k");
    assert_eq!(again.unwrap_err().code, "EntityAlreadyExists");
    let bad = call("CreateRole", json!({"RoleName": "x", "AssumeRolePolicyDocument": "{"}), "k");
    assert_eq!(bad.unwrap_err().code, "MalformedPolicyDocument");

    let assumed = call(
        "AssumeRole",
        json!({"RoleArn": "arn:aws:iam::123456789012:role/r", "RoleSessionName": "s1"}),
        "k",
    )
    .unwrap()
    .unwrap();
    let key = assumed["Credentials"]["AccessKeyId"].as_str().unwrap().to_owned();
    let who = call("GetCallerIdentity", json!({}), &key).unwrap().unwrap();
    assert_eq!(who["Arn"], "arn:aws:sts::123456789012:assumed-role/r/s1");
    let root = call("GetCallerIdentity", json!({}), "test").unwrap().unwrap();
    assert_eq!(root["Arn"], "arn:aws:iam::123456789012:root");
    let other = call("GetCallerIdentity", json!({}), "000000000042").unwrap().unwrap();
    assert_eq!(other["Account"], "000000000042");
}
