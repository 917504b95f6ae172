//! CloudWatch statistics of a period's aggregate. Lambda publishes one sample per invocation:
//! `Invocations` 1, `Errors` 0 or 1 (so its Average is the error rate), `Duration` in ms,
//! `ConcurrentExecutions` the function's concurrency then; `Throttles` one sample per request,
//! 1 when refused, 0 when run.

use crate::bucket::{Billed, Stats};
use crate::catalog::{Metric, Selection};
use crate::query::Agg;

#[derive(Debug, Clone, PartialEq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// `pNN`: the percentile and the name it was asked by (`p99`, `p99.9`).
    Percentile(f64, String),
}

impl Statistic {
    pub const STANDARD: [&'static str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

    pub fn standard(name: &str) -> Option<Statistic> {
        Some(match name {
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => return None,
        })
    }

    /// `p0` … `p100` with up to two decimals, as CloudWatch accepts them.
    pub fn percentile(name: &str) -> Option<Statistic> {
        let number = name.strip_prefix('p')?;
        let (whole, decimals) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 3 || decimals.len() > 2 || !digits(whole) || !digits(decimals) {
            return None;
        }
        if number.ends_with('.') {
            return None;
        }
        let p: f64 = number.parse().ok()?;
        (0.0..=100.0).contains(&p).then(|| Statistic::Percentile(p, name.to_owned()))
    }

    /// A `Stat` of `GetMetricData`: a standard statistic or a percentile.
    pub fn parse(name: &str) -> Option<Statistic> {
        Statistic::standard(name).or_else(|| Statistic::percentile(name))
    }

    pub fn name(&self) -> &str {
        match self {
            Statistic::SampleCount => "SampleCount",
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
            Statistic::Percentile(_, name) => name,
        }
    }
}

/// Samples of `metric` in a period; a period with none has no data point.
pub fn sample_count(metric: Metric, selection: &Selection, stats: &Stats) -> u64 {
    match metric {
        Metric::Throttles => stats.invocations + stats.throttles,
        Metric::BilledGbSeconds => billed(selection, stats).requests,
        _ => stats.invocations,
    }
}

fn billed(selection: &Selection, stats: &Stats) -> Billed {
    match selection.architecture {
        Some(architecture) => stats.billed(architecture),
        None => stats.billed.iter().fold(Billed::default(), |total, b| Billed {
            requests: total.requests + b.requests,
            mb_ms: total.mb_ms + b.mb_ms,
        }),
    }
}

/// The statistic's value, `None` when the period has no samples or nimbus does not keep what
/// it needs (percentiles of concurrency and of GB-seconds, their minimum and maximum).
pub fn value(metric: Metric, selection: &Selection, agg: &Agg, statistic: &Statistic) -> Option<f64> {
    let stats = &agg.stats;
    let n = sample_count(metric, selection, stats);
    if n == 0 {
        return None;
    }
    let count = n as f64;
    match metric {
        Metric::Invocations => {
            Some(if *statistic == Statistic::SampleCount || *statistic == Statistic::Sum {
                count
            } else {
                1.0
            })
        }
        Metric::Errors => ones_and_zeros(stats.errors, n, statistic),
        Metric::Throttles => ones_and_zeros(stats.throttles, n, statistic),
        Metric::Duration => {
            let ms = |us: u64| us as f64 / 1000.0;
            Some(match statistic {
                Statistic::SampleCount => count,
                Statistic::Sum => ms(stats.duration_sum_us),
                Statistic::Average => ms(stats.duration_sum_us) / count,
                Statistic::Minimum => ms(stats.duration_min_us),
                Statistic::Maximum => ms(stats.duration_max_us),
                Statistic::Percentile(p, _) => {
                    let (min, max) = (stats.duration_min_us, stats.duration_max_us);
                    agg.durations.as_ref()?.percentile(*p, min, max)? / 1000.0
                }
            })
        }
        Metric::ConcurrentExecutions => match statistic {
            Statistic::SampleCount => Some(count),
            Statistic::Sum => Some(stats.concurrency_sum as f64),
            Statistic::Average => Some(stats.concurrency_sum as f64 / count),
            Statistic::Minimum => Some(f64::from(stats.concurrency_min)),
            Statistic::Maximum => Some(f64::from(stats.concurrency_max)),
            Statistic::Percentile(..) => None,
        },
        Metric::BilledGbSeconds => {
            let gb_seconds = billed(selection, stats).gb_seconds();
            match statistic {
                Statistic::SampleCount => Some(count),
                Statistic::Sum => Some(gb_seconds),
                Statistic::Average => Some(gb_seconds / count),
                _ => None,
            }
        }
    }
}

/// Statistics of `n` samples of which `ones` are 1 and the rest 0.
fn ones_and_zeros(ones: u64, n: u64, statistic: &Statistic) -> Option<f64> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    Some(match statistic {
        Statistic::SampleCount => n as f64,
        Statistic::Sum => ones as f64,
        Statistic::Average => ones as f64 / n as f64,
        Statistic::Minimum => flag(ones == n),
        Statistic::Maximum => flag(ones > 0),
        Statistic::Percentile(p, _) => {
            let rank = ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n);
            flag(rank > n - ones)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;
    use crate::bucket::{Architecture, Sample};
    use crate::histogram::Histogram;

    fn agg(samples: &[Sample]) -> Agg {
        let mut agg = Agg { durations: Some(Histogram::default()), ..Agg::default() };
        for sample in samples {
            agg.stats.add(sample);
            if let Sample::Invocation { duration_us, .. } = sample {
                agg.durations.as_mut().unwrap().record(*duration_us);
            }
        }
        agg
    }

    fn all(metric: Metric, agg: &Agg) -> Vec<Option<f64>> {
        let stats = ["SampleCount", "Sum", "Average", "Minimum", "Maximum", "p50", "p99"];
        stats
            .iter()
            .map(|s| value(metric, &Selection::default(), agg, &Statistic::parse(s).unwrap()))
            .collect()
    }

    #[test]
    fn percentile_names_follow_cloudwatch() {
        for ok in ["p0", "p50", "p99", "p99.9", "p99.99", "p100", "p0.0"] {
            assert!(Statistic::percentile(ok).is_some(), "{ok}");
        }
        for bad in ["p", "p100.1", "p101", "p99.999", "p-1", "P99", "p99.", "tm99", "p.5", "pNaN"] {
            assert!(Statistic::percentile(bad).is_none(), "{bad}");
        }
        assert_eq!(Statistic::parse("Average"), Some(Statistic::Average));
        assert_eq!(Statistic::parse("p99.9").unwrap().name(), "p99.9");
    }

    #[test]
    fn counters_are_one_sample_per_invocation() {
        let samples = [
            invocation(100, false, 1),
            invocation(200, true, 2),
            invocation(300, false, 1),
            Sample::Throttle,
        ];
        let agg = agg(&samples);
        let v = |xs: &[f64]| xs.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        assert_eq!(all(Metric::Invocations, &agg), v(&[3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0]));
        assert_eq!(all(Metric::Errors, &agg), v(&[3.0, 1.0, 1.0 / 3.0, 0.0, 1.0, 0.0, 1.0]));
        assert_eq!(all(Metric::Throttles, &agg), v(&[4.0, 1.0, 0.25, 0.0, 1.0, 0.0, 1.0]));
        assert_eq!(&all(Metric::Duration, &agg)[..5], &v(&[3.0, 600.0, 200.0, 100.0, 300.0])[..]);
        let p50 = all(Metric::Duration, &agg)[5].unwrap();
        assert!((p50 - 200.0).abs() < 200.0 * 0.04, "{p50}");
        assert_eq!(all(Metric::Duration, &agg)[6], Some(300.0));
        assert_eq!(all(Metric::ConcurrentExecutions, &agg)[..5], v(&[3.0, 4.0, 4.0 / 3.0, 1.0, 2.0])[..]);
        assert_eq!(all(Metric::ConcurrentExecutions, &agg)[5], None);
    }

    #[test]
    fn throttled_only_periods_have_throttles_but_no_invocations() {
        let agg = agg(&[Sample::Throttle, Sample::Throttle]);
        assert_eq!(all(Metric::Invocations, &agg), vec![None; 7]);
        assert_eq!(value(Metric::Throttles, &Selection::default(), &agg, &Statistic::Sum), Some(2.0));
    }

    #[test]
    fn gb_seconds_by_architecture() {
        let agg = agg(&[invocation(1000, false, 1), invocation(1000, false, 1)]);
        let arm = Selection { architecture: Some(Architecture::Arm64), ..Selection::default() };
        let x86 = Selection { architecture: Some(Architecture::X86_64), ..Selection::default() };
        assert_eq!(value(Metric::BilledGbSeconds, &arm, &agg, &Statistic::Sum), Some(1.0));
        assert_eq!(value(Metric::BilledGbSeconds, &arm, &agg, &Statistic::Average), Some(0.5));
        assert_eq!(value(Metric::BilledGbSeconds, &Selection::default(), &agg, &Statistic::Sum), Some(1.0));
        assert_eq!(value(Metric::BilledGbSeconds, &x86, &agg, &Statistic::Sum), None);
        assert_eq!(value(Metric::BilledGbSeconds, &arm, &agg, &Statistic::Maximum), None);
    }
}
