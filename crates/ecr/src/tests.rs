use http_body_util::BodyExt;
use hyper::HeaderMap;
use nimbus_api::{ApiRequest, Service};
use serde_json::Value;

async fn call(
    ecr: &super::Ecr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, HeaderMap, Vec<u8>) {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let request = ApiRequest {
        method: method.parse().unwrap(),
        uri: uri.parse().unwrap(),
        headers: map,
        body: body.into(),
        request_id: "r".into(),
    };
    let response = ecr.call(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn op(ecr: &super::Ecr, operation: &str, body: &str) -> (u16, Value) {
    let target = format!("AmazonEC2ContainerRegistry_V20150921.{operation}");
    let (status, _, body) =
        call(ecr, "POST", "/", &[("x-amz-target", &target)], body.as_bytes().to_vec()).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_through_the_distribution_api_and_reads_back_through_ecr() {
    let dir = tempfile::tempdir().unwrap();
    let database = nimbus_store::Database::sqlite(dir.path());
    let blobs = nimbus_store::Blobs::new(dir.path(), "local", false);
    let images = nimbus_images::Images::open(
        &database,
        &blobs,
        nimbus_images::Options::new("us-east-1", "000000000000"),
    )
    .unwrap();
    let ecr = super::Ecr::new(
        images,
        nimbus_api::Identity::default(),
        4566,
        std::sync::Arc::new(nimbus_api::clock::SystemClock),
    );

    let (status, body) = op(&ecr, "CreateRepository", r#"{"repositoryName":"app"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["repository"]["repositoryUri"], "000000000000.dkr.ecr.us-east-1.localhost:4566/app");
    let (_, body) = op(&ecr, "CreateRepository", r#"{"repositoryName":"app"}"#).await;
    assert_eq!(body["__type"], "RepositoryAlreadyExistsException");

    let (status, headers, _) = call(&ecr, "GET", "/v2/", &[], vec![]).await;
    assert_eq!((status, headers["docker-distribution-api-version"].to_str().unwrap()), (200, "registry/2.0"));
    let (status, _, body) = call(
        &ecr,
        "HEAD",
        "/v2/nope/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    // Chunked upload of the config, monolithic upload of a layer.
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]}}"#.to_vec();
    let config_digest = nimbus_images::digest::of(&config);
    let (status, headers, _) = call(&ecr, "POST", "/v2/app/blobs/uploads/", &[], vec![]).await;
    assert_eq!(status, 202);
    let location = headers["location"].to_str().unwrap().to_owned();
    let (status, headers, _) =
        call(&ecr, "PATCH", &location, &[("content-range", "0-9")], config[..10].to_vec()).await;
    assert_eq!((status, headers["range"].to_str().unwrap()), (202, "0-9"));
    let (status, _, body) =
        call(&ecr, "PATCH", &location, &[("content-range", "3-9")], config[..7].to_vec()).await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&body));
    let wrong = format!("{location}?digest=sha256:{}", "1".repeat(64));
    let (status, _, body) = call(&ecr, "PUT", &wrong, &[], config[10..].to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("DIGEST_INVALID"));
    let (_, headers, _) = call(&ecr, "POST", "/v2/app/blobs/uploads/", &[], vec![]).await;
    let location = headers["location"].to_str().unwrap().to_owned();
    let (status, headers, _) =
        call(&ecr, "PUT", &format!("{location}?digest={config_digest}"), &[], config.clone()).await;
    assert_eq!((status, headers["docker-content-digest"].to_str().unwrap()), (201, config_digest.as_str()));
    let layer = vec![0u8; 1024];
    let layer_digest = nimbus_images::digest::of(&layer);
    let (status, _, _) =
        call(&ecr, "POST", &format!("/v2/app/blobs/uploads/?digest={layer_digest}"), &[], layer.clone())
            .await;
    assert_eq!(status, 201);

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": nimbus_images::oci::OCI_MANIFEST,
        "config": {"mediaType": nimbus_images::oci::OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": nimbus_images::oci::OCI_LAYER, "digest": layer_digest, "size": 1024}],
    })
    .to_string();
    let (status, headers, _) = call(
        &ecr,
        "PUT",
        "/v2/app/manifests/v1",
        &[("content-type", nimbus_images::oci::OCI_MANIFEST)],
        manifest.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 201);
    let digest = headers["docker-content-digest"].to_str().unwrap().to_owned();
    let (status, headers, body) = call(&ecr, "GET", "/v2/app/manifests/v1", &[], vec![]).await;
    assert_eq!((status, body), (200, manifest.clone().into_bytes()));
    assert_eq!(headers["docker-content-digest"].to_str().unwrap(), digest);

    // Cross-repository mount.
    op(&ecr, "CreateRepository", r#"{"repositoryName":"other"}"#).await;
    let (status, _, _) =
        call(&ecr, "POST", &format!("/v2/other/blobs/uploads/?mount={layer_digest}&from=app"), &[], vec![])
            .await;
    assert_eq!(status, 201);
    let (status, _, _) = call(&ecr, "HEAD", &format!("/v2/other/blobs/{layer_digest}"), &[], vec![]).await;
    assert_eq!(status, 200);

    let (_, body) = op(&ecr, "DescribeImages", r#"{"repositoryName":"app"}"#).await;
    assert_eq!(body["imageDetails"][0]["imageTags"][0], "v1");
    assert_eq!(body["imageDetails"][0]["imageSizeInBytes"], 1024);
    let (_, body) = op(
        &ecr,
        "BatchGetImage",
        r#"{"repositoryName":"app","imageIds":[{"imageTag":"v1"},{"imageTag":"v9"}]}"#,
    )
    .await;
    assert_eq!(body["images"][0]["imageManifest"], manifest);
    assert_eq!(body["failures"][0]["failureCode"], "ImageNotFound");
    let (_, body) = op(&ecr, "DeleteRepository", r#"{"repositoryName":"app"}"#).await;
    assert_eq!(body["__type"], "RepositoryNotEmptyException");
    let (_, body) =
        op(&ecr, "BatchDeleteImage", r#"{"repositoryName":"app","imageIds":[{"imageTag":"v1"}]}"#).await;
    assert_eq!(body["imageIds"][0]["imageDigest"], digest.as_str());
    let (status, _, body) = call(&ecr, "GET", "/v2/app/manifests/v1", &[], vec![]).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN"));
}
