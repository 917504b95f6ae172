//! Percentiles and summaries.

use serde::Serialize;

/// The `p`-th percentile (0..=100) of sorted data, interpolating linearly between the two
/// nearest ranks (the method numpy uses by default). `NaN` for empty data.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            let frac = rank - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// The median of unsorted data.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// Summary of a sample (values in whatever unit they were given, typically ms).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let mean = if n == 0 { f64::NAN } else { v.iter().sum::<f64>() / n as f64 };
        Summary {
            n,
            min: v.first().copied().unwrap_or(f64::NAN),
            mean,
            p50: percentile(&v, 50.0),
            p90: percentile(&v, 90.0),
            p99: percentile(&v, 99.0),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Nanoseconds to milliseconds.
pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn percentile_interpolates() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!(close(percentile(&v, 50.0), 50.5));
        assert!(close(percentile(&v, 90.0), 90.1));
        assert!(close(percentile(&v, 99.0), 99.01));
        assert!(close(percentile(&v, 0.0), 1.0));
        assert!(close(percentile(&v, 100.0), 100.0));
        assert!(close(percentile(&v, 150.0), 100.0));
    }

    #[test]
    fn percentile_edge_cases() {
        assert!(percentile(&[], 50.0).is_nan());
        assert!(close(percentile(&[7.0], 99.0), 7.0));
        assert!(close(percentile(&[1.0, 2.0], 50.0), 1.5));
        assert!(close(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0));
    }

    #[test]
    fn median_ignores_order_and_nan() {
        assert!(close(median(&[3.0, 1.0, 2.0]), 2.0));
        assert!(close(median(&[4.0, f64::NAN, 1.0, 3.0, 2.0]), 2.5));
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn summary() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(s.n, 5);
        assert!(close(s.min, 1.0));
        assert!(close(s.max, 5.0));
        assert!(close(s.mean, 3.0));
        assert!(close(s.p50, 3.0));
        assert!(close(s.p90, 4.6));
        let e = Summary::of(&[]);
        assert_eq!(e.n, 0);
        assert!(e.p50.is_nan());
    }

    #[test]
    fn ns_conversion() {
        assert!(close(ns_to_ms(1_500_000), 1.5));
    }
}
