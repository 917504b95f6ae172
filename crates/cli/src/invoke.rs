//! `nimbus invoke NAME`: Lambda's Invoke, with the log tail and the function's error shown.

use std::process::ExitCode;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{Client, Error};
use crate::style::{Console, Paint};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// Function name or ARN.
    pub name: String,
    /// The event: inline JSON, `@path` to read a file, or `@-` to read stdin.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Version or alias to invoke.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// Queue the event and return at once (invocation type `Event`).
    #[arg(long = "async")]
    pub asynchronous: bool,
    #[command(flatten)]
    pub common: Common,
}

/// What Invoke answered, with the log tail decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invocation {
    pub status: u16,
    pub request_id: Option<String>,
    pub executed_version: Option<String>,
    /// `X-Amz-Function-Error`, e.g. `Unhandled`.
    pub function_error: Option<String>,
    pub log_tail: Option<String>,
    pub payload: Vec<u8>,
}

/// What a command prints on each stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
}

/// The request body `--payload` stands for.
pub fn read_payload(argument: &str) -> Result<Vec<u8>, Error> {
    match argument.strip_prefix('@') {
        Some("-") => {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)
                .map_err(|error| Error::Usage(format!("cannot read the payload from stdin: {error}")))?;
            Ok(buffer)
        }
        Some(path) => {
            std::fs::read(path).map_err(|error| Error::Usage(format!("cannot read {path}: {error}")))
        }
        None => Ok(argument.as_bytes().to_vec()),
    }
}

pub fn call(client: &Client, args: &InvokeArgs, payload: &[u8]) -> Result<Invocation, Error> {
    let mut path = format!("/2015-03-31/functions/{}/invocations", args.name);
    if let Some(qualifier) = &args.qualifier {
        path.push_str(&format!("?Qualifier={qualifier}"));
    }
    let invocation_type = if args.asynchronous { "Event" } else { "RequestResponse" };
    let headers = [
        ("X-Amz-Invocation-Type", invocation_type),
        ("X-Amz-Log-Type", "Tail"),
        ("Content-Type", "application/json"),
    ];
    let reply = client.post(&path, &headers, payload)?;
    let text = |name: &str| reply.header(name).map(str::to_string);
    let log_tail = reply
        .header("X-Amz-Log-Result")
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    Ok(Invocation {
        status: reply.status,
        request_id: text("x-amzn-RequestId"),
        executed_version: text("X-Amz-Executed-Version"),
        function_error: text("X-Amz-Function-Error"),
        log_tail,
        payload: reply.body,
    })
}

pub fn run(args: &InvokeArgs, client: &Client, console: &Console) -> Result<ExitCode, Error> {
    let payload = read_payload(&args.payload)?;
    let invocation = call(client, args, &payload)?;
    let rendered = if args.common.json {
        Rendered { stdout: crate::pretty(&to_json(&invocation)), stderr: String::new() }
    } else {
        render(&args.name, &invocation, console)
    };
    crate::write_stderr(&rendered.stderr)?;
    crate::write_stdout(&rendered.stdout)?;
    Ok(if invocation.function_error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Log tail (dimmed) and error summary (red) on stderr, the payload on stdout: pretty JSON
/// when a person reads it, otherwise the bytes as the function returned them.
pub fn render(name: &str, invocation: &Invocation, console: &Console) -> Rendered {
    let mut rendered = Rendered::default();
    for line in invocation.log_tail.as_deref().unwrap_or("").lines() {
        rendered.stderr.push_str(&console.stderr.paint(line, Paint::Dim));
        rendered.stderr.push('\n');
    }
    if invocation.status == 202 {
        let id = invocation.request_id.as_deref().map(|id| format!(" (request {id})")).unwrap_or_default();
        rendered.stdout = format!("queued an asynchronous invocation of {name}{id}\n");
        return rendered;
    }
    let text = String::from_utf8_lossy(&invocation.payload);
    let pretty = if console.stdout_is_terminal { crate::json::indent(&text) } else { None };
    let mut body = pretty.unwrap_or_else(|| text.into_owned());
    if let Some(kind) = &invocation.function_error {
        body = console.stdout.paint(&body, Paint::Red);
        let parsed: Value = serde_json::from_slice(&invocation.payload).unwrap_or(Value::Null);
        let field = |key: &str| parsed.get(key).and_then(Value::as_str);
        let summary = match (field("errorType"), field("errorMessage")) {
            (Some(error_type), Some(message)) => format!("{error_type}: {message} ({kind})"),
            (Some(error_type), None) => format!("{error_type} ({kind})"),
            _ => format!("the function failed ({kind})"),
        };
        rendered.stderr.push_str(&format!("{} {}\n", console.stderr.paint("error:", Paint::Red), summary));
    }
    rendered.stdout = body + "\n";
    rendered
}

/// `--json`: the Invoke answer as one object; a JSON payload is embedded, anything else a string.
pub fn to_json(invocation: &Invocation) -> Value {
    let payload = serde_json::from_slice(&invocation.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&invocation.payload).into_owned()));
    json!({
        "statusCode": invocation.status,
        "requestId": invocation.request_id,
        "executedVersion": invocation.executed_version,
        "functionError": invocation.function_error,
        "logResult": invocation.log_tail,
        "payload": payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_inline_or_read_from_a_file() {
        assert_eq!(read_payload(r#"{"a":1}"#).unwrap(), br#"{"a":1}"#);
        let path = std::env::temp_dir().join(format!("nimbus-cli-payload-{}.json", std::process::id()));
        std::fs::write(&path, b"[1,2]").unwrap();
        assert_eq!(read_payload(&format!("@{}", path.display())).unwrap(), b"[1,2]");
        std::fs::remove_file(&path).unwrap();
        let missing = read_payload("@/nonexistent/event.json").unwrap_err().to_string();
        assert!(missing.starts_with("cannot read /nonexistent/event.json: "), "{missing}");
    }
}
