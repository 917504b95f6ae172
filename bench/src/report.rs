//! Figures, targets, the machine, and Markdown / JSON output.

use serde::Serialize;
use std::collections::BTreeMap;
use std::process::Command;

use crate::stats::median;

/// A budget from ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Target {
    /// `true`: the figure must be at most `value`; `false`: at least.
    pub at_most: bool,
    pub value: f64,
}

impl Target {
    pub fn le(value: f64) -> Option<Target> {
        Some(Target { at_most: true, value })
    }
    pub fn ge(value: f64) -> Option<Target> {
        Some(Target { at_most: false, value })
    }
    pub fn met(&self, v: f64) -> bool {
        if self.at_most {
            v <= self.value
        } else {
            v >= self.value
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Stable identifier, e.g. `warm.provided.p50_ms`.
    pub key: String,
    pub section: String,
    pub label: String,
    pub unit: String,
    /// Median over repeated runs (or the single run's value).
    pub value: f64,
    /// Every run's value, in order.
    pub runs: Vec<f64>,
    pub target: Option<Target>,
}

impl Metric {
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| t.met(self.value))
    }
}

/// The figures of one pass, in insertion order.
#[derive(Debug, Default)]
pub struct Figures {
    pub metrics: Vec<Metric>,
    pub notes: Vec<String>,
}

impl Figures {
    pub fn add(
        &mut self,
        key: impl Into<String>,
        section: &str,
        label: impl Into<String>,
        unit: &str,
        value: f64,
        target: Option<Target>,
    ) {
        self.metrics.push(Metric {
            key: key.into(),
            section: section.into(),
            label: label.into(),
            unit: unit.into(),
            value,
            runs: vec![value],
            target,
        });
    }

    pub fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        eprintln!("nimbus-bench: {s}");
        self.notes.push(s);
    }
}

/// Merges repeated passes: each metric's value becomes the median of its runs.
pub fn aggregate(passes: Vec<Figures>) -> Figures {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: BTreeMap<String, Metric> = BTreeMap::new();
    let mut notes = Vec::new();
    for (i, pass) in passes.into_iter().enumerate() {
        for m in pass.metrics {
            match by_key.get_mut(&m.key) {
                Some(acc) => acc.runs.push(m.value),
                None => {
                    order.push(m.key.clone());
                    by_key.insert(m.key.clone(), m);
                }
            }
        }
        for n in pass.notes {
            notes.push(format!("pass {}: {n}", i + 1));
        }
    }
    let metrics = order
        .into_iter()
        .filter_map(|k| by_key.remove(&k))
        .map(|mut m| {
            m.value = median(&m.runs);
            m
        })
        .collect();
    Figures { metrics, notes }
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    pub date_utc: String,
    pub nimbus_commit: String,
    pub python: String,
    pub node: String,
    /// `/proc/loadavg` when the run started (1, 5, 15 minutes).
    pub loadavg_start: String,
    /// `/proc/loadavg` when the run ended (filled in by the caller).
    pub loadavg_end: String,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cmd_out(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    pub fn detect(root: &std::path::Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_total_mib = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        let root = root.to_string_lossy();
        let mut commit = cmd_out("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
        if cmd_out("git", &["-C", &root, "status", "--porcelain", "--untracked-files=no"])
            .lines()
            .any(|l| !l.trim().is_empty())
        {
            commit.push_str(" (with uncommitted changes)");
        }
        Machine {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu_model,
            mem_total_mib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            date_utc: cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
            nimbus_commit: commit,
            python: cmd_out("python3", &["-c", "import sys;print(sys.version.split()[0])"]),
            node: cmd_out("node", &["--version"]),
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
        }
    }
}

/// Formats a figure with sensible precision.
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 1000.0 {
        // Thousands separator for throughput figures.
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_target(t: &Target, unit: &str) -> String {
    format!("{} {} {unit}", if t.at_most { "≤" } else { "≥" }, fmt_num(t.value))
}

/// The whole report as Markdown.
pub fn markdown(machine: &Machine, figures: &Figures, passes: usize, config: &str) -> String {
    let mut s = String::new();
    s.push_str("## nimbus benchmark\n\n");
    s.push_str(&format!(
        "Machine: {} × {} ({} MiB RAM), kernel {}, {}. nimbus {}; python {}, node {}.\n\n",
        machine.nproc,
        machine.cpu_model,
        machine.mem_total_mib,
        machine.kernel,
        machine.date_utc,
        machine.nimbus_commit,
        machine.python,
        machine.node
    ));
    s.push_str(&format!(
        "Load average (1/5/15 min) at start {}, at end {}.\n\n",
        machine.loadavg_start, machine.loadavg_end
    ));
    s.push_str(&format!("Settings: {config}.\n\n"));
    if passes > 1 {
        s.push_str(&format!(
            "Each figure is the median over {passes} passes; the range shows the passes' spread.\n\n"
        ));
    }
    let mut section = String::new();
    for m in &figures.metrics {
        if m.section != section {
            section = m.section.clone();
            s.push_str(&format!("\n### {section}\n\n"));
            if passes > 1 {
                s.push_str(
                    "| figure | measured | range over passes | target | |\n|---|---:|---:|---:|:-:|\n",
                );
            } else {
                s.push_str("| figure | measured | target | |\n|---|---:|---:|:-:|\n");
            }
        }
        let measured = format!("{} {}", fmt_num(m.value), m.unit);
        let target = m.target.as_ref().map(|t| fmt_target(t, &m.unit)).unwrap_or_default();
        let verdict = match m.met() {
            Some(true) => "✅",
            Some(false) => "❌",
            None => "",
        };
        if passes > 1 {
            let lo = m.runs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = m.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            s.push_str(&format!(
                "| {} | {measured} | {}–{} | {target} | {verdict} |\n",
                m.label,
                fmt_num(lo),
                fmt_num(hi)
            ));
        } else {
            s.push_str(&format!("| {} | {measured} | {target} | {verdict} |\n", m.label));
        }
    }
    if !figures.notes.is_empty() {
        s.push_str("\n### Notes\n\n");
        for n in &figures.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

#[derive(Serialize)]
struct JsonReport<'a> {
    machine: &'a Machine,
    passes: usize,
    config: &'a str,
    metrics: &'a [Metric],
    notes: &'a [String],
}

pub fn json(machine: &Machine, figures: &Figures, passes: usize, config: &str) -> String {
    // NaN is not JSON; serde_json writes it as null.
    serde_json::to_string_pretty(&JsonReport {
        machine,
        passes,
        config,
        metrics: &figures.metrics,
        notes: &figures.notes,
    })
    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert!(Target::le(1.0).unwrap().met(1.0));
        assert!(!Target::le(1.0).unwrap().met(1.1));
        assert!(Target::ge(5000.0).unwrap().met(6000.0));
        assert!(!Target::ge(5000.0).unwrap().met(4999.0));
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(0.1234), "0.123");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12345.6), "12,346");
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(f64::NAN), "–");
    }

    #[test]
    fn aggregates_medians_in_order() {
        let pass = |a: f64, b: f64| {
            let mut f = Figures::default();
            f.add("b", "s", "B", "ms", b, Target::le(1.0));
            f.add("a", "s", "A", "ms", a, None);
            f
        };
        let agg = aggregate(vec![pass(1.0, 3.0), pass(2.0, 1.0), pass(9.0, 2.0)]);
        let keys: Vec<&str> = agg.metrics.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(agg.metrics[0].value, 2.0);
        assert_eq!(agg.metrics[0].runs, vec![3.0, 1.0, 2.0]);
        assert_eq!(agg.metrics[1].value, 2.0);
        assert_eq!(agg.metrics[0].met(), Some(false));
    }

    #[test]
    fn markdown_has_table_and_verdicts() {
        let mut f = Figures::default();
        f.add("x", "Warm", "p50", "ms", 0.2, Target::le(0.3));
        f.add("y", "Warm", "p99", "ms", 2.0, Target::le(1.0));
        f.note("noisy");
        let m = Machine::detect(std::path::Path::new("."));
        let md = markdown(&m, &f, 1, "test");
        assert!(md.contains("| p50 | 0.200 ms | ≤ 0.300 ms | ✅ |"), "{md}");
        assert!(md.contains("| p99 | 2.00 ms | ≤ 1.00 ms | ❌ |"), "{md}");
        assert!(md.contains("- noisy"));
        let j: serde_json::Value = serde_json::from_str(&json(&m, &f, 1, "test")).unwrap();
        assert_eq!(j["metrics"][0]["key"], "x");
    }
}
