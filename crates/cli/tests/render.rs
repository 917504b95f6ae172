//! Snapshots of what the commands print, in colourless mode (`tests/snapshots/`).
//! After an intended change: `INSTA_UPDATE=always cargo test -p nimbus-cli`, then review the diff.

use nimbus_cli::functions::{self, FunctionRow};
use nimbus_cli::invoke::{self, Invocation};
use nimbus_cli::logs::{self, LogEvent};
use nimbus_cli::status::{self, Environments, Health};
use nimbus_cli::{render_error, Console, Error, Style};

fn row(name: &str) -> FunctionRow {
    FunctionRow {
        name: name.into(),
        region: Some("us-east-1".into()),
        runtime: Some("python3.12".into()),
        memory: Some(128),
        state: Some("Active".into()),
        warm: Some(1),
        busy: Some(0),
        invocations: Some(10),
        errors: Some(1),
        p50_ms: Some(0.42),
    }
}

#[test]
fn functions_table() {
    let rows = vec![
        FunctionRow {
            runtime: Some("nodejs22.x".into()),
            memory: Some(1024),
            warm: Some(3),
            busy: Some(2),
            invocations: Some(12_345),
            errors: Some(0),
            p50_ms: Some(1250.0),
            ..row("resize-images")
        },
        row("etl-orders"),
        FunctionRow { name: "fresh".into(), state: Some("Pending".into()), ..FunctionRow::default() },
    ];
    insta::assert_snapshot!(functions::render(&rows, &Style::PLAIN));
}

#[test]
fn functions_empty() {
    insta::assert_snapshot!(functions::render(&[], &Style::PLAIN));
}

fn both(rendered: invoke::Rendered) -> String {
    format!("--- stdout\n{}--- stderr\n{}", rendered.stdout, rendered.stderr)
}

#[test]
fn invoke_success_with_log_tail() {
    let invocation = Invocation {
        status: 200,
        request_id: Some("5c8d2bd1-0000-4000-8000-000000000001".into()),
        executed_version: Some("$LATEST".into()),
        function_error: None,
        log_tail: Some(
            "START RequestId: 5c8d2bd1-0000-4000-8000-000000000001 Version: $LATEST\nhello from the handler\n\
             END RequestId: 5c8d2bd1-0000-4000-8000-000000000001\n"
                .into(),
        ),
        payload: br#"{"ok":true,"items":[1,2]}"#.to_vec(),
    };
    insta::assert_snapshot!(
        "invoke_success_piped",
        both(invoke::render("etl", &invocation, &Console::PLAIN))
    );
    let terminal = Console { stdout_is_terminal: true, ..Console::PLAIN };
    insta::assert_snapshot!("invoke_success_terminal", both(invoke::render("etl", &invocation, &terminal)));
    insta::assert_snapshot!(
        "invoke_success_json",
        serde_json::to_string_pretty(&invoke::to_json(&invocation)).unwrap()
    );
}

#[test]
fn invoke_function_error() {
    let invocation = Invocation {
        status: 200,
        function_error: Some("Unhandled".into()),
        payload:
            br#"{"errorMessage": "division by zero", "errorType": "ZeroDivisionError", "stackTrace": []}"#
                .to_vec(),
        ..Invocation::default()
    };
    insta::assert_snapshot!(both(invoke::render("etl", &invocation, &Console::PLAIN)));
}

#[test]
fn invoke_async() {
    let invocation = Invocation { status: 202, request_id: Some("req-1".into()), ..Invocation::default() };
    insta::assert_snapshot!(both(invoke::render("etl", &invocation, &Console::PLAIN)));
}

#[test]
fn logs_lines() {
    // 2024-03-01T13:05:09.250Z and the same day's last second.
    let events = [
        LogEvent {
            timestamp: 1_709_298_309_250,
            message: "START RequestId: r1 Version: $LATEST\n".into(),
            ..LogEvent::default()
        },
        LogEvent {
            timestamp: 1_709_298_309_251,
            message: "processing 3 orders  \n".into(),
            ..LogEvent::default()
        },
        LogEvent {
            timestamp: 1_709_337_599_999,
            message: "REPORT RequestId: r1\tDuration: 1.20 ms".into(),
            ..LogEvent::default()
        },
    ];
    let text: String = events.iter().map(|event| logs::render_event(event, &Style::PLAIN)).collect();
    insta::assert_snapshot!(text);
}

#[test]
fn status_report() {
    let health = Health {
        status: Some("ready".into()),
        version: Some("0.1.0".into()),
        services: vec!["lambda".into(), "logs".into()],
        isolation: Some("namespaces+cgroups".into()),
        network: Some("own".into()),
        environments: Some(Environments { environments: Some(3), busy: Some(1), memory_mb: Some(384) }),
        ..Health::default()
    };
    insta::assert_snapshot!("status_report", status::render(&health, "http://127.0.0.1:4566", &Style::PLAIN));
    insta::assert_snapshot!(
        "status_unknowns",
        status::render(&Health::default(), "http://127.0.0.1:4566", &Style::PLAIN)
    );
}

#[test]
fn errors() {
    let not_running = Error::NotRunning { endpoint: "http://127.0.0.1:4566".into() };
    insta::assert_snapshot!("error_not_running", render_error(&not_running, &Style::PLAIN));
    let aws = Error::Aws {
        error_type: "ResourceNotFoundException".into(),
        message: "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope".into(),
    };
    insta::assert_snapshot!("error_aws", render_error(&aws, &Style::PLAIN));
    let no_group = Error::NoLogGroup { group: "/aws/lambda/nope".into() };
    insta::assert_snapshot!("error_no_log_group", render_error(&no_group, &Style::PLAIN));
}

#[test]
fn colour_only_when_asked() {
    let colored = functions::render(&[row("f")], &Style::COLOR);
    assert!(
        colored.contains("\x1b[1mNAME\x1b[0m") && colored.contains("\x1b[32mActive\x1b[0m"),
        "{colored:?}"
    );
    assert!(!functions::render(&[row("f")], &Style::PLAIN).contains('\x1b'));
}
