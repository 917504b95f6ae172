//! CloudWatch on the shared port: `Arc<Metrics>` is a [`nimbus_api::Service`].

use std::time::UNIX_EPOCH;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, Service, ServiceFuture};

use crate::ops::{self, Context};
use crate::wire;
use crate::Metrics;

impl Service for Metrics {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        wire::detect(method, uri, headers).is_some()
    }

    fn claims_body(&self, method: &Method, uri: &Uri, _headers: &HeaderMap, body: &[u8]) -> bool {
        wire::claims_body(method, uri, body)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        // The work is a few microseconds to a few milliseconds of arithmetic: done inline.
        let response = match wire::decode(&request) {
            Err((protocol, error)) => wire::error(protocol, &error, &request.request_id),
            Ok(call) => {
                let now = self.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
                let context = Context { store: &self.store, now };
                match ops::call(&context, &call.operation, &call.input) {
                    Ok(out) => wire::respond(call.wire, &call.operation, &out, &request.request_id),
                    Err(error) => wire::error(call.wire, &error, &request.request_id),
                }
            }
        };
        Box::pin(std::future::ready(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use nimbus_api::ApiResponse;
    use nimbus_functions::telemetry::{InvocationRecord, MetricsSink};
    use std::time::{Duration, SystemTime};

    fn request(method: Method, uri: &str, headers: &[(&'static str, &str)], body: Vec<u8>) -> ApiRequest {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (hyper::header::HeaderName::from_static(k), hyper::header::HeaderValue::from_str(v).unwrap())
            })
            .collect();
        ApiRequest {
            method,
            uri: uri.parse().unwrap(),
            headers,
            body: Bytes::from(body),
            request_id: "req-9".into(),
        }
    }

    async fn body(response: ApiResponse) -> Vec<u8> {
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    fn metrics() -> std::sync::Arc<Metrics> {
        let metrics = Metrics::in_memory();
        for error in [false, true, false] {
            metrics.invocation(&InvocationRecord {
                function: "fn",
                version: "$LATEST",
                duration: Duration::from_millis(12),
                billed_ms: 12,
                memory_mb: 128,
                architecture: "x86_64",
                error,
                concurrent: 1,
            });
        }
        metrics
    }

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[tokio::test]
    async fn json_get_metric_statistics_end_to_end() {
        let metrics = metrics();
        let input = serde_json::json!({"Namespace": "AWS/Lambda", "MetricName": "Errors", "StartTime": now() - 600,
            "EndTime": now() + 60, "Period": 3600, "Statistics": ["Sum", "SampleCount"],
            "Dimensions": [{"Name": "FunctionName", "Value": "fn"}]});
        let json = request(
            Method::POST,
            "/",
            &[("x-amz-target", "GraniteServiceVersion20100801.GetMetricStatistics")],
            input.to_string().into_bytes(),
        );
        assert!(metrics.claims(&json.method, &json.uri, &json.headers));
        let response = metrics.call(json).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.0");
        let out: serde_json::Value = serde_json::from_slice(&body(response).await).unwrap();
        assert_eq!(out["Datapoints"][0]["Sum"], 1.0);
        assert_eq!(out["Datapoints"][0]["SampleCount"], 3.0);
    }

    #[tokio::test]
    async fn query_list_metrics_and_errors_in_xml() {
        let metrics = metrics();
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let list = request(
            Method::POST,
            "/",
            &form,
            b"Action=ListMetrics&Version=2010-08-01&MetricName=Duration".to_vec(),
        );
        assert!(!metrics.claims(&list.method, &list.uri, &list.headers));
        assert!(metrics.claims_body(&list.method, &list.uri, &list.headers, &list.body));
        let response = metrics.call(list).await;
        assert_eq!(response.status(), 200);
        let xml = String::from_utf8(body(response).await).unwrap();
        assert!(xml.contains("<ListMetricsResult><Metrics><member><Namespace>AWS/Lambda</Namespace><MetricName>Duration</MetricName>"));
        assert!(xml.contains("<RequestId>req-9</RequestId>"));
        let bad =
            request(Method::POST, "/", &form, b"Action=GetMetricStatistics&Version=2010-08-01".to_vec());
        let response = metrics.call(bad).await;
        assert_eq!(response.status(), 400);
        let xml = String::from_utf8(body(response).await).unwrap();
        assert!(xml.contains("<Code>MissingParameter</Code>"), "{xml}");
    }

    #[tokio::test]
    async fn cbor_errors_name_the_query_code() {
        let metrics = metrics();
        let path = "/service/GraniteServiceVersion20100801/operation/GetMetricData";
        let response = metrics
            .call(request(Method::POST, path, &[("smithy-protocol", "rpc-v2-cbor")], vec![0xa0]))
            .await;
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["x-amzn-query-error"], "MissingParameter;Sender");
        assert_eq!(response.headers()["smithy-protocol"], "rpc-v2-cbor");
        let value: ciborium::Value = ciborium::from_reader(&body(response).await[..]).unwrap();
        let entries = value.into_map().unwrap();
        assert_eq!(
            entries[0].1.as_text(),
            Some("com.amazonaws.cloudwatch#MissingRequiredParameterException")
        );
    }
}
