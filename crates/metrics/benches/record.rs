//! What recording an invocation costs on the invoke path: `cargo bench -p nimbus-metrics`.
//! One thread, then several threads on one function (all contending for its series: the worst
//! case, threads that do nothing but record) and on a function each. Printed: the time a call
//! takes as its thread sees it, and wall time divided by all calls (the throughput's inverse).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nimbus_functions::telemetry::{InvocationRecord, MetricsSink};
use nimbus_metrics::Metrics;

const PER_THREAD: u32 = 1_000_000;

fn record(metrics: &Metrics, function: &str, i: u32) {
    metrics.invocation(&InvocationRecord {
        function,
        version: "$LATEST",
        duration: Duration::from_micros(u64::from(i % 5000) + 100),
        billed_ms: u64::from(i % 5) + 1,
        memory_mb: 128,
        architecture: "x86_64",
        error: i.is_multiple_of(50),
        concurrent: 1 + (i % 8) as usize,
    });
}

/// Nanoseconds per call as a thread sees it, and wall time per call over all threads.
fn run(threads: usize, shared_function: bool) -> (f64, f64) {
    let metrics = Metrics::in_memory();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let metrics = Arc::clone(&metrics);
            let function = if shared_function { "shared".to_owned() } else { format!("function-{t}") };
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    record(&metrics, &function, i);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let elapsed = started.elapsed();
    let function = if shared_function { "shared" } else { "function-0" };
    assert!(metrics.summary(function).invocations > 0);
    let per_thread = elapsed.as_nanos() as f64 / f64::from(PER_THREAD);
    (per_thread, per_thread / threads as f64)
}

fn show(label: &str, (per_thread, overall): (f64, f64)) {
    println!("  {label:<30} {per_thread:>8.1} {overall:>8.1}");
}

fn main() {
    println!("record one invocation, ns    {:>13} {:>8}", "per thread", "overall");
    show("1 thread", run(1, true));
    for threads in [2, 8] {
        show(&format!("{threads} threads, one function"), run(threads, true));
        show(&format!("{threads} threads, a function each"), run(threads, false));
    }
}
