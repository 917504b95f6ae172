//! The lines Lambda writes around each invocation, in AWS's exact format, and the names it gives
//! log streams and trace ids.

use std::time::Duration;

use crate::InvokeResult;

/// `2026/11/26/[$LATEST]0123456789abcdef0123456789abcdef`, as AWS names environment streams.
pub fn stream_name(version: &str) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    let id = uuid::Uuid::new_v4().simple();
    format!("{:04}/{:02}/{:02}/[{version}]{id}", date.year(), u8::from(date.month()), date.day())
}

/// An X-Ray trace header: `Root=1-<8 hex seconds>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub fn trace_id() -> String {
    let seconds = time::OffsetDateTime::now_utc().unix_timestamp();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{seconds:08x}-{};Parent={};Sampled=0", &random[..24], &random[16..32])
}

pub fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}\n")
}

pub fn end_line(request_id: &str) -> String {
    format!("END RequestId: {request_id}\n")
}

/// The line AWS logs when an environment times out or its runtime dies mid-invocation.
pub fn failure_line(request_id: &str, result: &InvokeResult) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(&result.payload)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let message = message.strip_prefix(&format!("RequestId: {request_id} Error: ")).unwrap_or(&message);
    format!("{} {request_id} {message}\n", timestamp())
}

/// `2026-11-26T07:24:13.123Z`.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format).unwrap_or_default()
}

pub struct Report<'a> {
    pub request_id: &'a str,
    pub duration: Duration,
    pub memory_mb: u32,
    pub max_memory_mb: u64,
    /// Present on an environment's first invocation.
    pub init: Option<Duration>,
}

impl Report<'_> {
    /// AWS bills in 1 ms steps, rounding up.
    pub fn billed_ms(&self) -> u128 {
        self.duration.as_nanos().div_ceil(1_000_000).max(1)
    }

    pub fn line(&self) -> String {
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
            self.request_id,
            self.duration.as_secs_f64() * 1000.0,
            self.billed_ms(),
            self.memory_mb,
            self.max_memory_mb,
        );
        if let Some(init) = self.init {
            line.push_str(&format!("Init Duration: {:.2} ms\t", init.as_secs_f64() * 1000.0));
        }
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_matches_aws() {
        let report = Report {
            request_id: "r1",
            duration: Duration::from_micros(1_234),
            memory_mb: 128,
            max_memory_mb: 40,
            init: Some(Duration::from_micros(118_240)),
        };
        assert_eq!(
            report.line(),
            "REPORT RequestId: r1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 118.24 ms\t\n"
        );
    }

    #[test]
    fn stream_and_trace_names_have_aws_shapes() {
        let name = stream_name("$LATEST");
        assert_eq!(name.len(), "2026/11/26/[$LATEST]".len() + 32, "{name}");
        assert!(name.contains("/[$LATEST]"));
        let trace = trace_id();
        assert!(trace.starts_with("Root=1-") && trace.ends_with(";Sampled=0"), "{trace}");
    }
}
