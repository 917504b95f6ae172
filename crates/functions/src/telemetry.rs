//! Where the engine reports what environments print and how invocations went: the CloudWatch
//! Logs and metrics services implement these. Both are called on hot paths and must not block.

use std::time::Duration;

/// One log event: a line a function printed, or one of Lambda's START/END/REPORT lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub message: String,
}

pub trait LogSink: Send + Sync + 'static {
    /// Appends events to a stream of a group, creating both if needed. Must return at once
    /// (queue the work); may drop events under overload, counting them.
    fn append(&self, group: &str, stream: &str, events: Vec<LogEvent>);
}

/// One finished invocation, as the metrics see it.
#[derive(Debug, Clone)]
pub struct InvocationRecord<'a> {
    pub function: &'a str,
    /// `$LATEST` or a version number.
    pub version: &'a str,
    pub duration: Duration,
    /// AWS bills in 1 ms steps, rounding up.
    pub billed_ms: u64,
    pub memory_mb: u32,
    /// `x86_64` or `arm64`.
    pub architecture: &'a str,
    /// The function answered with an error (`X-Amz-Function-Error`).
    pub error: bool,
    /// Invocations of this function running at once, this one included.
    pub concurrent: usize,
}

pub trait MetricsSink: Send + Sync + 'static {
    fn invocation(&self, record: &InvocationRecord<'_>);
    /// An invocation refused with `TooManyRequestsException`.
    fn throttle(&self, function: &str, version: &str);
    /// Recent figures of a function (all versions), for `nimbus functions`.
    fn summary(&self, _function: &str) -> Option<MetricsSummary> {
        None
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MetricsSummary {
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}
