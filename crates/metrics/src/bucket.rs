//! One minute of one series (a function version): the counters every metric is computed from,
//! mergeable across versions, functions and minutes.

use serde::Serialize;

use crate::histogram::{Histogram, Packed};

/// The instruction set a function runs on, which sets its price per GB-second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::X86_64, Architecture::Arm64];

    /// Lambda's names; anything but `arm64` runs as `x86_64`, Lambda's default.
    pub fn parse(name: &str) -> Architecture {
        if name == "arm64" {
            Architecture::Arm64
        } else {
            Architecture::X86_64
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Billed compute of one architecture: requests and MB-milliseconds (billed ms × memory MB).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Billed {
    pub requests: u64,
    pub mb_ms: u64,
}

impl Billed {
    /// AWS's GB-seconds: billed seconds × memory in GiB (1024 MB).
    pub fn gb_seconds(&self) -> f64 {
        self.mb_ms as f64 / 1000.0 / 1024.0
    }
}

/// One event as recorded.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    Invocation {
        duration_us: u64,
        billed_ms: u64,
        memory_mb: u32,
        architecture: Architecture,
        error: bool,
        concurrent: u32,
    },
    Throttle,
}

/// Counters of a minute (or of any merge of minutes). Minimums and maximums mean something
/// only while `invocations > 0`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub duration_sum_us: u64,
    pub duration_min_us: u64,
    pub duration_max_us: u64,
    pub concurrency_sum: u64,
    pub concurrency_min: u32,
    pub concurrency_max: u32,
    pub billed: [Billed; 2],
}

impl Stats {
    pub fn add(&mut self, sample: &Sample) {
        let Sample::Invocation { duration_us, billed_ms, memory_mb, architecture, error, concurrent } =
            *sample
        else {
            self.throttles += 1;
            return;
        };
        let first = self.invocations == 0;
        self.invocations += 1;
        self.errors += u64::from(error);
        self.duration_sum_us += duration_us;
        self.duration_min_us = if first { duration_us } else { self.duration_min_us.min(duration_us) };
        self.duration_max_us = self.duration_max_us.max(duration_us);
        self.concurrency_sum += u64::from(concurrent);
        self.concurrency_min = if first { concurrent } else { self.concurrency_min.min(concurrent) };
        self.concurrency_max = self.concurrency_max.max(concurrent);
        let billed = &mut self.billed[architecture.slot()];
        billed.requests += 1;
        billed.mb_ms += billed_ms * u64::from(memory_mb);
    }

    pub fn merge(&mut self, other: &Stats) {
        if other.invocations > 0 {
            let first = self.invocations == 0;
            self.duration_min_us =
                if first { other.duration_min_us } else { self.duration_min_us.min(other.duration_min_us) };
            self.concurrency_min =
                if first { other.concurrency_min } else { self.concurrency_min.min(other.concurrency_min) };
            self.duration_max_us = self.duration_max_us.max(other.duration_max_us);
            self.concurrency_max = self.concurrency_max.max(other.concurrency_max);
        }
        self.invocations += other.invocations;
        self.errors += other.errors;
        self.throttles += other.throttles;
        self.duration_sum_us += other.duration_sum_us;
        self.concurrency_sum += other.concurrency_sum;
        for (mine, theirs) in self.billed.iter_mut().zip(&other.billed) {
            mine.requests += theirs.requests;
            mine.mb_ms += theirs.mb_ms;
        }
    }

    pub fn billed(&self, architecture: Architecture) -> Billed {
        self.billed[architecture.slot()]
    }
}

/// A sealed minute.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub stats: Stats,
    pub durations: Packed,
}

/// The minute being recorded.
#[derive(Clone)]
pub struct Live {
    pub minute: i64,
    pub stats: Stats,
    pub durations: Histogram,
}

impl Live {
    pub fn new(minute: i64) -> Live {
        Live { minute, stats: Stats::default(), durations: Histogram::default() }
    }

    pub fn add(&mut self, sample: &Sample) {
        self.stats.add(sample);
        if let Sample::Invocation { duration_us, .. } = sample {
            self.durations.record(*duration_us);
        }
    }

    /// Starts `minute` afresh, keeping the histogram's allocation.
    pub fn reset(&mut self, minute: i64) {
        self.minute = minute;
        self.stats = Stats::default();
        self.durations.clear();
    }

    pub fn seal(&self) -> Bucket {
        Bucket { minute: self.minute, stats: self.stats.clone(), durations: self.durations.pack() }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn invocation(ms: u64, error: bool, concurrent: u32) -> Sample {
        Sample::Invocation {
            duration_us: ms * 1000,
            billed_ms: ms,
            memory_mb: 512,
            architecture: Architecture::Arm64,
            error,
            concurrent,
        }
    }

    #[test]
    fn adding_and_merging_agree() {
        let samples =
            [invocation(10, false, 1), invocation(30, true, 3), Sample::Throttle, invocation(20, false, 2)];
        let mut all = Stats::default();
        samples.iter().for_each(|s| all.add(s));
        let (mut left, mut right) = (Stats::default(), Stats::default());
        samples[..2].iter().for_each(|s| left.add(s));
        samples[2..].iter().for_each(|s| right.add(s));
        let mut merged = Stats::default();
        merged.merge(&right);
        merged.merge(&left);
        assert_eq!(merged, all);
        assert_eq!((all.invocations, all.errors, all.throttles), (3, 1, 1));
        assert_eq!((all.duration_min_us, all.duration_max_us, all.duration_sum_us), (10_000, 30_000, 60_000));
        assert_eq!((all.concurrency_min, all.concurrency_max), (1, 3));
    }

    #[test]
    fn billed_gb_seconds_follow_aws_formula() {
        let mut stats = Stats::default();
        stats.add(&invocation(1000, false, 1));
        stats.add(&invocation(1000, false, 1));
        // 2 × 1 s × 0.5 GiB
        assert_eq!(stats.billed(Architecture::Arm64).gb_seconds(), 1.0);
        assert_eq!(stats.billed(Architecture::Arm64).requests, 2);
        assert_eq!(stats.billed(Architecture::X86_64), Billed::default());
        assert_eq!(Architecture::parse("arm64"), Architecture::Arm64);
        assert_eq!(Architecture::parse("x86_64"), Architecture::X86_64);
    }

    #[test]
    fn throttle_only_minute_keeps_minimums_unset() {
        let mut stats = Stats::default();
        stats.add(&Sample::Throttle);
        let mut other = Stats::default();
        other.add(&invocation(5, false, 4));
        stats.merge(&other);
        assert_eq!((stats.duration_min_us, stats.concurrency_min), (5000, 4));
    }
}
