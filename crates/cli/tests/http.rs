//! The requests the commands make and how answers and failures are read, against a fake nimbus
//! served in process on a loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::mpsc;

use nimbus_cli::invoke::{self, InvokeArgs};
use nimbus_cli::{exit_code, functions, logs, status, Client, Common, Error};

/// Serves one canned answer per connection, in order; sends each request's text back.
fn fake(answers: &[&str]) -> (Client, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let answers: Vec<String> = answers.iter().map(|a| a.to_string()).collect();
    let (sender, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for answer in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let (mut head, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            sender.send(head + &String::from_utf8_lossy(&body)).unwrap();
            let (head, body) = answer.split_once("\n\n").unwrap_or((&answer, ""));
            let head = head.replace('\n', "\r\n");
            let reply =
                format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
        }
    });
    (Client::new(&endpoint), requests)
}

fn invoke_args(qualifier: Option<&str>, asynchronous: bool) -> InvokeArgs {
    InvokeArgs {
        name: "etl".into(),
        payload: "{}".into(),
        qualifier: qualifier.map(str::to_string),
        asynchronous,
        common: Common { endpoint: String::new(), json: false },
    }
}

#[test]
fn invoke_sends_lambda_headers_and_reads_tail_and_error() {
    let (client, requests) = fake(&[
        "HTTP/1.1 200 OK\nX-Amz-Function-Error: Unhandled\nX-Amz-Executed-Version: 3\nX-Amz-Log-Result: aGVsbG8K\n\n{\"errorType\":\"E\"}",
    ]);
    let invocation = invoke::call(&client, &invoke_args(Some("prod"), false), br#"{"k":1}"#).unwrap();
    let request = requests.recv().unwrap();
    assert!(
        request.starts_with("POST /2015-03-31/functions/etl/invocations?Qualifier=prod HTTP/1.1\r\n"),
        "{request}"
    );
    let lower = request.to_ascii_lowercase();
    assert!(lower.contains("x-amz-invocation-type: requestresponse\r\n"), "{request}");
    assert!(lower.contains("x-amz-log-type: tail\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\n{\"k\":1}"), "{request}");
    assert_eq!(invocation.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(invocation.executed_version.as_deref(), Some("3"));
    assert_eq!(invocation.log_tail.as_deref(), Some("hello\n"));
    assert_eq!(invocation.payload, br#"{"errorType":"E"}"#);
}

#[test]
fn async_invoke_asks_for_an_event() {
    let (client, requests) = fake(&["HTTP/1.1 202 Accepted\nx-amzn-RequestId: r-1"]);
    let invocation = invoke::call(&client, &invoke_args(None, true), b"{}").unwrap();
    assert!(requests.recv().unwrap().to_ascii_lowercase().contains("x-amz-invocation-type: event\r\n"));
    assert_eq!((invocation.status, invocation.request_id.as_deref()), (202, Some("r-1")));
}

#[test]
fn aws_errors_keep_their_type_and_message() {
    let (client, _requests) = fake(&[
        "HTTP/1.1 404 Not Found\nx-amzn-ErrorType: ResourceNotFoundException\n\n{\"Type\":\"User\",\"message\":\"Function not found: etl\"}",
    ]);
    let error = invoke::call(&client, &invoke_args(None, false), b"{}").unwrap_err();
    assert_eq!(error.to_string(), "ResourceNotFoundException: Function not found: etl");
    assert_eq!(exit_code(&error), ExitCode::FAILURE);
}

#[test]
fn logs_use_json_1_1_filter_log_events() {
    let page = r#"{"events":[{"logStreamName":"s","timestamp":5,"message":"hi\n","ingestionTime":6,"eventId":"e1"}],"nextToken":"n"}"#;
    let (client, requests) = fake(&[&format!("HTTP/1.1 200 OK\n\n{page}")]);
    let tail = logs::Tail::new("etl", 0, None);
    let page = logs::fetch_page(&client, &tail.request()).unwrap();
    let request = requests.recv().unwrap();
    let lower = request.to_ascii_lowercase();
    assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
    assert!(lower.contains("x-amz-target: logs_20140328.filterlogevents\r\n"), "{request}");
    assert!(lower.contains("content-type: application/x-amz-json-1.1\r\n"), "{request}");
    assert!(request.ends_with(r#"{"logGroupName":"/aws/lambda/etl","startTime":0}"#), "{request}");
    assert_eq!(page.next_token.as_deref(), Some("n"));
    assert_eq!(page.events[0].event_id.as_deref(), Some("e1"));
}

#[test]
fn functions_and_status_read_the_nimbus_endpoints() {
    let (client, requests) = fake(&[
        "HTTP/1.1 200 OK\n\n{\"functions\":[{\"name\":\"etl\",\"memory\":128,\"p50_ms\":null}]}",
        "HTTP/1.1 200 OK\n\n{\"status\":\"ready\",\"services\":[\"lambda\"],\"environments\":{\"environments\":2}}",
    ]);
    let (_, rows) = functions::fetch(&client).unwrap();
    assert!(requests.recv().unwrap().starts_with("GET /_nimbus/functions HTTP/1.1\r\n"));
    assert_eq!((rows[0].name.as_str(), rows[0].memory, rows[0].p50_ms), ("etl", Some(128), None));
    let (raw, health) = status::fetch(&client).unwrap();
    assert!(requests.recv().unwrap().starts_with("GET /_nimbus/health HTTP/1.1\r\n"));
    assert_eq!(health.services, vec!["lambda"]);
    assert_eq!(raw["environments"]["environments"], 2);
}

#[test]
fn a_nimbus_without_the_endpoint_says_so() {
    let (client, _requests) = fake(&["HTTP/1.1 404 Not Found\n\nno route"]);
    let error = functions::fetch(&client).unwrap_err().to_string();
    assert!(error.ends_with("/_nimbus/functions answered HTTP 404: no route"), "{error}");
}

#[test]
fn nothing_listening_means_not_running() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let error = status::fetch(&Client::new(&format!("{endpoint}/"))).unwrap_err();
    assert!(matches!(&error, Error::NotRunning { endpoint: e } if *e == endpoint), "{error:?}");
    assert_eq!(exit_code(&error), ExitCode::from(2));
}
