//! Custom metrics (`PutMetricData` into any namespace but `AWS/…`) and metric alarms
//! (`PutMetricAlarm`, `DescribeAlarms` …). Data points are kept per second (high resolution
//! when asked, otherwise summed per second too) for 15 days, bounded per series and in number
//! of series, and saved with the Lambda figures' snapshot (`<snapshot>.custom.json`).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nimbus_store::BlobArea;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Series kept at most; PutMetricData beyond refuses new ones.
const MAX_SERIES: usize = 10_000;
/// Seconds kept per series; the oldest go first.
const MAX_POINTS: usize = 20_160;
const RETENTION_S: i64 = 15 * 86_400;

/// Namespace, metric name, dimensions.
pub type Listed = (String, String, Vec<(String, String)>);

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Point {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Point {
    pub fn merge(&mut self, other: &Point) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// A standard statistic's value.
    pub fn statistic(&self, name: &str) -> Option<f64> {
        match name {
            "SampleCount" => Some(self.count),
            "Sum" => Some(self.sum),
            "Minimum" => Some(self.min),
            "Maximum" => Some(self.max),
            "Average" => (self.count > 0.0).then(|| self.sum / self.count),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    pub namespace: String,
    pub name: String,
    /// Sorted by name.
    pub dimensions: Vec<(String, String)>,
    pub unit: Option<String>,
    points: BTreeMap<i64, Point>,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    series: BTreeMap<String, Series>,
    alarms: BTreeMap<String, Value>,
    #[serde(default)]
    dashboards: BTreeMap<String, Value>,
    /// Alarm history, oldest first, the last [`MAX_HISTORY`] items.
    #[serde(default)]
    history: std::collections::VecDeque<Value>,
}

const MAX_HISTORY: usize = 1000;

/// Where alarm actions go (SNS topics, Lambda functions); the integrator implements it.
pub trait AlarmSink: Send + Sync + 'static {
    /// `notification` is the alarm's state change as AWS sends it to SNS (and, wrapped, to Lambda).
    fn notify(&self, action_arn: &str, subject: &str, notification: &Value) -> Result<(), String>;
    /// An Auto Scaling policy action of `alarm` (in ALARM): `metric` is the latest data point,
    /// `threshold` the alarm's threshold.
    fn scale(
        &self,
        policy_arn: &str,
        alarm: &str,
        metric: Option<f64>,
        threshold: Option<f64>,
    ) -> Result<(), String> {
        let _ = (alarm, metric, threshold);
        Err(format!("nimbus does not take Auto Scaling actions here ({policy_arn})"))
    }
}

#[derive(Default)]
pub struct Custom {
    pub sink: std::sync::OnceLock<std::sync::Arc<dyn AlarmSink>>,
    /// nimbus's region and account.
    pub identity: std::sync::OnceLock<(String, String)>,
    /// nimbus's clock (virtual in tests); the system's until set.
    pub clock: std::sync::OnceLock<std::sync::Arc<dyn nimbus_api::clock::Clock>>,
    state: Mutex<State>,
    /// Where alarms are saved as soon as they change (data points go with the snapshot).
    file: Mutex<Option<(BlobArea, String)>>,
}

fn key(namespace: &str, name: &str, dimensions: &[(String, String)]) -> String {
    let mut key = format!("{namespace}\u{1}{name}");
    for (n, v) in dimensions {
        key.push_str(&format!("\u{1}{n}\u{2}{v}"));
    }
    key
}

impl Custom {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a point; false when the series would be one too many.
    pub fn record(
        &self,
        namespace: &str,
        name: &str,
        mut dimensions: Vec<(String, String)>,
        unit: Option<&str>,
        at_s: i64,
        point: Point,
    ) -> bool {
        dimensions.sort();
        let key = key(namespace, name, &dimensions);
        let mut state = self.lock();
        if !state.series.contains_key(&key) && state.series.len() >= MAX_SERIES {
            return false;
        }
        let series = state.series.entry(key).or_insert_with(|| Series {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions,
            unit: None,
            points: BTreeMap::new(),
        });
        if let Some(unit) = unit {
            series.unit = Some(unit.to_owned());
        }
        series.points.entry(at_s).and_modify(|p| p.merge(&point)).or_insert(point);
        while series.points.len() > MAX_POINTS {
            series.points.pop_first();
        }
        true
    }

    /// Points of the series with exactly these dimensions, merged per period from `start`.
    #[allow(clippy::too_many_arguments)]
    pub fn periods(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(String, String)],
        unit: Option<&str>,
        start: i64,
        end: i64,
        period: i64,
    ) -> Vec<(i64, Point)> {
        let mut dimensions = dimensions.to_vec();
        dimensions.sort();
        let state = self.lock();
        let Some(series) = state.series.get(&key(namespace, name, &dimensions)) else { return Vec::new() };
        if unit.is_some_and(|u| series.unit.as_deref().unwrap_or("None") != u) {
            return Vec::new();
        }
        let mut periods: BTreeMap<i64, Point> = BTreeMap::new();
        for (at, point) in series.points.range(start..end) {
            let slot = start + (at - start).div_euclid(period.max(1)) * period.max(1);
            periods.entry(slot).and_modify(|p| p.merge(point)).or_insert(*point);
        }
        periods.into_iter().collect()
    }

    /// Every series with a point at or after `since`.
    pub fn listed(&self, since: i64) -> Vec<Listed> {
        let state = self.lock();
        let active = state.series.values().filter(|s| s.points.range(since..).next().is_some());
        active.map(|s| (s.namespace.clone(), s.name.clone(), s.dimensions.clone())).collect()
    }

    pub fn unit_of(&self, namespace: &str, name: &str, dimensions: &[(String, String)]) -> Option<String> {
        let mut dimensions = dimensions.to_vec();
        dimensions.sort();
        self.lock().series.get(&key(namespace, name, &dimensions)).and_then(|s| s.unit.clone())
    }

    pub fn sweep(&self, now_s: i64) {
        let mut state = self.lock();
        for series in state.series.values_mut() {
            series.points = series.points.split_off(&(now_s - RETENTION_S));
        }
        state.series.retain(|_, s| !s.points.is_empty());
    }

    pub fn has_alarms(&self) -> bool {
        !self.lock().alarms.is_empty()
    }

    pub fn alarms(&self) -> BTreeMap<String, Value> {
        self.lock().alarms.clone()
    }

    pub fn put_alarm(&self, name: &str, alarm: Value) {
        self.lock().alarms.insert(name.to_owned(), alarm);
        self.save_now();
    }

    /// Replaces the alarm `name` with its evaluation only if it is still `before`: an alarm
    /// deleted or changed meanwhile (by a request) is left as that request left it.
    pub fn update_alarm(&self, name: &str, before: &Value, alarm: Value) -> bool {
        {
            let mut state = self.lock();
            match state.alarms.get_mut(name) {
                Some(stored) if stored == before => *stored = alarm,
                _ => return false,
            }
        }
        self.save_now();
        true
    }

    pub fn delete_alarm(&self, name: &str) -> bool {
        let removed = self.lock().alarms.remove(name).is_some();
        self.save_now();
        removed
    }

    pub fn record_history(&self, item: Value) {
        let mut state = self.lock();
        state.history.push_back(item);
        while state.history.len() > MAX_HISTORY {
            state.history.pop_front();
        }
    }

    pub fn history(&self) -> Vec<Value> {
        self.lock().history.iter().cloned().collect()
    }

    pub fn dashboards(&self) -> BTreeMap<String, Value> {
        self.lock().dashboards.clone()
    }

    pub fn put_dashboard(&self, name: &str, dashboard: Value) {
        self.lock().dashboards.insert(name.to_owned(), dashboard);
        self.save_now();
    }

    pub fn delete_dashboard(&self, name: &str) -> bool {
        let removed = self.lock().dashboards.remove(name).is_some();
        self.save_now();
        removed
    }

    /// Saves to `name` in `area` from now on whenever an alarm changes.
    pub fn persist_to(&self, area: BlobArea, name: String) {
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = Some((area, name));
    }

    fn save_now(&self) {
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some((area, name)) = file {
            if let Err(error) = self.save(&area, &name) {
                eprintln!("nimbus: cannot save CloudWatch alarms: {error}");
            }
        }
    }

    pub fn save(&self, area: &BlobArea, name: &str) -> io::Result<()> {
        let text = serde_json::to_vec(&*self.lock()).map_err(io::Error::other)?;
        area.write_with(name, |file| io::Write::write_all(file, &text))
    }

    pub fn load(&self, path: &std::path::Path) -> io::Result<()> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let state: State =
            serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        *self.lock() = state;
        Ok(())
    }
}
