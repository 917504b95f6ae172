//! The server in process: real sockets, fake services.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

struct Fake(&'static str);

impl Service for Fake {
    fn name(&self) -> &'static str {
        self.0
    }
    fn claims(&self, _: &Method, _: &Uri, _: &HeaderMap) -> bool {
        self.0 == "s3"
    }
    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            match request.uri.path() {
                "/panic" => panic!("a handler bug"),
                "/slow" => tokio::time::sleep(Duration::from_millis(600)).await,
                _ => {}
            }
            json_response(serde_json::json!({ "service": self.0, "body": request.body.len() }))
        })
    }
}

async fn start(limits: Limits) -> std::net::SocketAddr {
    let services: Vec<Arc<dyn Service>> = vec![Arc::new(Fake("sqs")), Arc::new(Fake("s3"))];
    let api = Api::new(services, Arc::new(|| serde_json::json!({ "status": "ready" }))).with_limits(limits);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { api.serve(listener, std::future::pending(), Duration::ZERO).await });
    address
}

/// Sends `request` as is and reads the response until the server closes.
async fn exchange(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n{headers}connection: close\r\n\r\n")
}

const SIGNED_S3: &str = "authorization: AWS4-HMAC-SHA256 Credential=k/20250101/us-east-1/s3/aws4_request, \
                         SignedHeaders=host, Signature=x\r\n";

#[tokio::test]
async fn a_panicking_handler_answers_500_in_its_services_shape_and_nimbus_serves_on() {
    let address = start(Limits::default()).await;
    let s3 = exchange(address, &get("/panic", SIGNED_S3)).await;
    assert!(s3.starts_with("HTTP/1.1 500"), "{s3}");
    assert!(s3.contains("<Error><Code>InternalError</Code>"), "{s3}");
    let sqs = "x-amz-target: AmazonSQS.ListQueues\r\n";
    let json = exchange(address, &get("/panic", sqs)).await;
    assert!(json.starts_with("HTTP/1.1 500") && json.contains(r#""__type":"InternalFailure""#), "{json}");
    let fine = exchange(address, &get("/_nimbus/health", "")).await;
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
}

#[tokio::test]
async fn unserved_services_and_unknown_actions_go_where_they_are_named() {
    let address = start(Limits::default()).await;
    let kinesis = exchange(address, &get("/", "x-amz-target: Kinesis_20131202.ListStreams\r\n")).await;
    assert!(kinesis.starts_with("HTTP/1.1 400"), "{kinesis}");
    assert!(kinesis.contains("x-amzn-errortype: UnknownServiceException"), "{kinesis}");
    assert!(kinesis.contains("nimbus does not serve the Amazon Kinesis API"), "{kinesis}");
    let body = "Action=Bogus&Version=2012-11-05";
    let form = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let sqs = exchange(address, &form).await;
    assert!(sqs.contains(r#""service":"sqs""#), "an unsigned SQS form reaches SQS: {sqs}");
    let sns = form.replace("2012-11-05", "2010-03-31");
    let sns = exchange(address, &sns).await;
    assert!(sns.contains("<ErrorResponse><Error><Type>Sender</Type><Code>UnknownServiceException"), "{sns}");
    assert!(sns.contains("Amazon Simple Notification Service"), "{sns}");
    let bucket = exchange(address, &get("/bucket/key", "")).await;
    assert!(bucket.contains(r#""service":"s3""#), "anonymous S3 is the fallback: {bucket}");
    let lambda = exchange(address, &get("/2015-03-31/bogus", "")).await;
    assert!(lambda.contains("AWS Lambda") && !lambda.contains(r#""service":"s3""#), "{lambda}");
}

#[tokio::test]
async fn malformed_chunked_encoding_is_a_bad_request() {
    let address = start(Limits::default()).await;
    let request = "POST /bucket/key HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
                   connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    let response = exchange(address, request).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("<Code>IncompleteBody</Code>"), "{response}");
}

#[tokio::test]
async fn unfinished_heads_time_out_but_requests_in_flight_do_not() {
    let limits = Limits { header_read_timeout: Duration::from_millis(200), ..Limits::default() };
    let address = start(limits).await;
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /bucket HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the unfinished head is closed after the timeout");
    // Three times the timeout in flight, and answered.
    let long = exchange(address, &get("/slow", SIGNED_S3)).await;
    assert!(long.starts_with("HTTP/1.1 200"), "{long}");
}

#[tokio::test]
async fn health_answers_past_the_cap_of_slow_connections() {
    let limits = Limits { max_connections: 8, ..Limits::default() };
    let address = start(limits).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost:").await;
        slow.push(stream);
    }
    let health = exchange(address, &get("/_nimbus/health", "")).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}
