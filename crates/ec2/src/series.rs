//! The meter as a series over time (`GET /_nimbus/ec2/meter/series[?since=<s>][&bucket=<s>]`):
//! what the meter charges per bucket of nimbus's clock, by service (EC2, Batch's compute
//! environments, Lambda from CloudWatch's figures) and by purchase option (on-demand, spot,
//! reserved). It is derived from the usage ledger each time it is asked, so it is as durable as the
//! ledger and agrees with `GET /_nimbus/ec2/meter` over the same window: a segment's seconds land
//! in the buckets they ran in, its 60-second minimum tops up the bucket it began in, and a spot
//! instance EC2 interrupted within its first hour costs nothing in any bucket.

use std::collections::BTreeMap;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::meter::billing_of;
use crate::model::Instance;
use crate::store::Segment;
use crate::whatif::{LAMBDA_GB_SECOND_ARM_USD, LAMBDA_GB_SECOND_X86_USD, LAMBDA_REQUEST_USD};
use crate::Ec2;

/// The tag Batch puts on a compute environment's instances.
const BATCH_TAG: &str = "aws:batch:compute-environment";
/// Bucket widths tried in turn when none is asked for: the first that gives at most
/// [`AUTO_BUCKETS`] buckets (an hour by minutes, a day by 15 minutes, a week by hours).
const WIDTHS_MS: [i64; 7] = [60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000, 604_800_000];
const AUTO_BUCKETS: i64 = 180;
/// The window when none is asked for reaches back at least this far.
const DEFAULT_MS: i64 = 3_600_000;
/// The widest bucket (a year).
const MAX_BUCKET_SECONDS: f64 = 31_536_000.0;
/// The most buckets one answer holds.
pub const MAX_BUCKETS: i64 = 2_000;
pub const MARKETS: [&str; 3] = ["on-demand", "spot", "reserved"];

/// The service an instance's time is charged to: Batch for a compute environment's instance.
pub fn service_of(instance: &Instance) -> &'static str {
    if instance.tags.iter().any(|(key, _)| key == BATCH_TAG) {
        "Batch"
    } else {
        "EC2"
    }
}

/// The bucket width for a window of `range_ms` when none is asked for.
pub fn auto_bucket(range_ms: i64) -> i64 {
    WIDTHS_MS.into_iter().find(|w| range_ms <= w * AUTO_BUCKETS).unwrap_or(WIDTHS_MS[6])
}

/// USD per bucket by service and by purchase option, over `[from, until)`; buckets are aligned to
/// multiples of their width on nimbus's clock (the first and last are cut by the window).
#[derive(Debug)]
pub struct Series {
    pub first_ms: i64,
    pub bucket_ms: i64,
    pub from_ms: i64,
    pub until_ms: i64,
    pub by_service: BTreeMap<String, Vec<f64>>,
    pub by_market: BTreeMap<String, Vec<f64>>,
}

impl Series {
    pub fn new(from_ms: i64, until_ms: i64, bucket_ms: i64) -> Series {
        let first_ms = from_ms.div_euclid(bucket_ms) * bucket_ms;
        let count = ((until_ms - first_ms + bucket_ms - 1) / bucket_ms).max(1) as usize;
        let zeros = || vec![0.0; count];
        Series {
            first_ms,
            bucket_ms,
            from_ms,
            until_ms,
            by_service: ["EC2", "Batch"].into_iter().map(|s| (s.to_owned(), zeros())).collect(),
            by_market: MARKETS.into_iter().map(|m| (m.to_owned(), zeros())).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_market["on-demand"].len()
    }

    /// The window's part of bucket `n`.
    pub fn bucket(&self, n: usize) -> (i64, i64) {
        let start = self.first_ms + n as i64 * self.bucket_ms;
        (start.max(self.from_ms), (start + self.bucket_ms).min(self.until_ms))
    }

    fn index(&self, at_ms: i64) -> usize {
        (((at_ms - self.first_ms) / self.bucket_ms).max(0) as usize).min(self.len() - 1)
    }

    fn charge(&mut self, service: &str, market: &str, n: usize, usd: f64) {
        let len = self.len();
        self.by_service.entry(service.to_owned()).or_insert_with(|| vec![0.0; len])[n] += usd;
        self.by_market.entry(market.to_owned()).or_insert_with(|| vec![0.0; len])[n] += usd;
    }

    /// Charges a segment of the ledger to the buckets it ran in, as the meter prices it.
    pub fn add(&mut self, segment: &Segment) {
        let billing = billing_of(segment, self.from_ms, self.until_ms);
        let market = segment.billing.split(':').next().unwrap_or(&segment.billing);
        if market == "spot" && segment.interrupted && billing.whole < 3600.0 {
            return;
        }
        let per_ms = segment.rate / 3_600_000.0;
        let start = segment.start_ms.max(self.from_ms);
        let end = segment.end_ms.unwrap_or(self.until_ms).min(self.until_ms);
        if end < start {
            return;
        }
        let mut n = self.index(start);
        while n < self.len() {
            let (bucket_start, bucket_end) = self.bucket(n);
            if bucket_start >= end {
                break;
            }
            let overlap = end.min(bucket_end) - start.max(bucket_start);
            if overlap > 0 {
                self.charge(&segment.service, market, n, overlap as f64 * per_ms);
            }
            n += 1;
        }
        // AWS's per-stretch minimum is charged where the stretch began.
        let top_up = billing.billed - billing.seconds;
        if top_up > 0.0 {
            let n = self.index(start);
            self.charge(&segment.service, market, n, top_up / 3600.0 * segment.rate);
        }
    }

    fn total(values: &BTreeMap<String, Vec<f64>>) -> f64 {
        values.values().flatten().sum()
    }
}

fn rounded(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| (v * 1e6).round() / 1e6).collect()
}

fn sums(values: &BTreeMap<String, Vec<f64>>) -> Value {
    values.iter().map(|(name, list)| (name.clone(), json!(rounded(&[list.iter().sum()])[0]))).collect()
}

fn columns(values: &BTreeMap<String, Vec<f64>>) -> Value {
    values.iter().map(|(name, list)| (name.clone(), json!(rounded(list)))).collect()
}

impl Ec2 {
    /// The meter over the last `since_seconds` (since the first segment, or the last hour if that
    /// is longer, when None), per bucket of `bucket_seconds` (chosen from the window when None).
    pub fn meter_series(
        &self,
        since_seconds: Option<f64>,
        bucket_seconds: Option<f64>,
    ) -> Result<Value, AwsError> {
        let now = self.now();
        let since = since_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| now.saturating_sub((s * 1000.0) as i64).max(0));
        let segments = self.store.segments(since.unwrap_or(0), None)?;
        // Everything: since the first stretch, and at least the last hour (functions' recent work).
        let from = since
            .unwrap_or_else(|| segments.iter().map(|s| s.start_ms).fold(now - DEFAULT_MS, i64::min).max(0));
        let bucket_ms = match bucket_seconds {
            None => auto_bucket(now - from),
            Some(s) if (1.0..=MAX_BUCKET_SECONDS).contains(&s) => (s * 1000.0) as i64,
            Some(_) => {
                let why = format!("bucket must be a number of seconds from 1 to {MAX_BUCKET_SECONDS}");
                return Err(AwsError::new(400, "InvalidParameter", why));
            }
        };
        if (now - from) / bucket_ms >= MAX_BUCKETS {
            return Err(AwsError::new(
                400,
                "InvalidParameter",
                format!(
                    "{} s buckets over {} s make more than {MAX_BUCKETS}: ask for wider buckets",
                    bucket_ms / 1000,
                    (now - from) / 1000
                ),
            ));
        }
        let mut series = Series::new(from, now, bucket_ms);
        for segment in &segments {
            series.add(segment);
        }
        let instances_usd = Series::total(&series.by_market);
        let lambda_note = self.lambda_series(&mut series);
        let lambda_usd = series.by_service.get("Lambda").map_or(0.0, |l| l.iter().sum());
        let starts: Vec<String> = (0..series.len()).map(|n| crate::iso8601(series.bucket(n).0)).collect();
        let round = |v: f64| (v * 1e6).round() / 1e6;
        Ok(json!({
            "since": crate::iso8601(from),
            "until": crate::iso8601(now),
            "bucket_seconds": bucket_ms as f64 / 1000.0,
            "currency": "USD",
            "buckets": starts,
            "by_service": columns(&series.by_service),
            "by_market": columns(&series.by_market),
            "totals": {
                "by_service": sums(&series.by_service),
                "by_market": sums(&series.by_market),
                "instances_usd": round(instances_usd),
                "lambda_usd": round(lambda_usd),
                "total_usd": round(instances_usd + lambda_usd),
            },
            "lambda": lambda_note.map_or(json!({ "known": true }), |why| json!({ "known": false, "why": why })),
        }))
    }

    /// Lambda's billed requests and GB-seconds per bucket, priced as the what-if prices them
    /// (as metered); the reason when CloudWatch's figures are not at hand.
    fn lambda_series(&self, series: &mut Series) -> Option<String> {
        let Some(source) = self.function_usage.get() else {
            return Some("nimbus's CloudWatch figures are not wired to the meter".to_owned());
        };
        let mut usd = vec![0.0; series.len()];
        for (n, slot) in usd.iter_mut().enumerate() {
            // Figures are kept per minute: a minute is counted in the bucket it begins in (the
            // first bucket also takes the minute the window begins in, as the what-if does).
            let (start, end) = series.bucket(n);
            let start = if n == 0 { start } else { (start + 59_999).div_euclid(60_000) * 60_000 };
            match source.usage(start, end.max(start)) {
                Ok(list) => {
                    *slot = list
                        .iter()
                        .map(|f| {
                            let per_gb_second = if f.architecture == "arm64" {
                                LAMBDA_GB_SECOND_ARM_USD
                            } else {
                                LAMBDA_GB_SECOND_X86_USD
                            };
                            f.requests as f64 * LAMBDA_REQUEST_USD + f.gb_seconds * per_gb_second
                        })
                        .sum()
                }
                Err(why) => return Some(why),
            }
        }
        series.by_service.insert("Lambda".to_owned(), usd);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn segment(billing: &str, rate: f64, start_ms: i64, end_ms: Option<i64>) -> Segment {
        Segment {
            instance_id: "i-1".into(),
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            arch: "x86_64".into(),
            billing: billing.into(),
            rate,
            start_ms,
            end_ms,
            interrupted: false,
            service: "EC2".into(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn buckets_are_aligned_on_the_clock_and_chosen_from_the_window() {
        assert_eq!(auto_bucket(3_600_000), MINUTE);
        assert_eq!(auto_bucket(86_400_000), 15 * MINUTE);
        assert_eq!(auto_bucket(7 * 86_400_000), 3_600_000);
        let series = Series::new(90_000, 10 * MINUTE + 1, MINUTE);
        assert_eq!(series.first_ms, MINUTE);
        assert_eq!(series.len(), 10);
        assert_eq!(series.bucket(0), (90_000, 2 * MINUTE));
        assert_eq!(series.bucket(9), (10 * MINUTE, 10 * MINUTE + 1));
    }

    #[test]
    fn a_stretch_is_split_across_the_buckets_it_ran_in() {
        // $3.60 an hour is $0.001 a second: 30 s in the first minute, 60 in the next, 15 in the third.
        let mut series = Series::new(0, 10 * MINUTE, MINUTE);
        series.add(&segment("on-demand", 3.6, 30_000, Some(135_000)));
        let od = &series.by_market["on-demand"];
        assert!(close(od[0], 0.030) && close(od[1], 0.060) && close(od[2], 0.015), "{od:?}");
        assert!(od[3..].iter().all(|v| *v == 0.0));
        assert!(close(series.by_service["EC2"].iter().sum(), 0.105));
    }

    #[test]
    fn the_minimum_tops_up_the_bucket_a_short_stretch_began_in() {
        let mut series = Series::new(0, 10 * MINUTE, MINUTE);
        series.add(&segment("on-demand", 3.6, 50_000, Some(70_000)));
        let od = &series.by_market["on-demand"];
        assert!(close(od[0], 0.010 + 0.040) && close(od[1], 0.010), "{od:?}");
    }

    #[test]
    fn a_spot_instance_interrupted_mid_bucket_costs_nothing_in_its_first_hour() {
        let mut series = Series::new(0, 180 * MINUTE, MINUTE);
        let mut interrupted = segment("spot", 3.6, 30_000, Some(5 * MINUTE + 20_000));
        interrupted.interrupted = true;
        series.add(&interrupted);
        assert!(series.by_market["spot"].iter().all(|v| *v == 0.0));
        // Interrupted after its first hour, mid-minute: charged up to the interruption, no further.
        let mut late = segment("spot", 3.6, 0, Some(70 * MINUTE + 15_000));
        late.interrupted = true;
        series.add(&late);
        let spot = &series.by_market["spot"];
        assert!(close(spot[69], 0.060) && close(spot[70], 0.015) && spot[71] == 0.0, "{:?}", &spot[68..72]);
        // Still running: charged as it runs (the meter cannot know yet).
        let mut running = Series::new(0, 10 * MINUTE, MINUTE);
        running.add(&segment("spot", 3.6, 0, None));
        assert!(close(running.by_market["spot"].iter().sum(), 0.6));
    }

    #[test]
    fn reserved_coverage_is_one_purchase_option_whatever_the_reservation() {
        let mut series = Series::new(0, 10 * MINUTE, MINUTE);
        series.add(&segment("reserved:4b2a-1", 1.8, 0, Some(2 * MINUTE)));
        series.add(&segment("reserved:9c3d-2", 3.6, MINUTE, Some(2 * MINUTE)));
        let reserved = &series.by_market["reserved"];
        assert!(close(reserved[0], 0.030) && close(reserved[1], 0.030 + 0.060), "{reserved:?}");
        assert_eq!(series.by_market.len(), 3, "no market per reservation");
        assert!(series.by_market["on-demand"].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn services_are_kept_apart_and_the_window_cuts_stretches() {
        let mut series = Series::new(2 * MINUTE, 4 * MINUTE, MINUTE);
        let mut batch = segment("on-demand", 3.6, 0, None);
        batch.service = "Batch".into();
        series.add(&batch);
        series.add(&segment("spot", 3.6, 3 * MINUTE, Some(3 * MINUTE + 30_000)));
        // Batch: only the window's two minutes, no minimum (the stretch began before the window).
        assert!(close(series.by_service["Batch"].iter().sum(), 0.120));
        // EC2: 30 s billed as 60.
        assert!(close(series.by_service["EC2"][1], 0.060), "{:?}", series.by_service["EC2"]);
    }
}
