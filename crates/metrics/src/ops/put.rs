//! `PutMetricData` into custom namespaces: values, `Values`/`Counts`, statistic sets, dimensions,
//! units, timestamps within AWS's window.

use serde_json::Value;

use super::input;
use super::Context;
use crate::custom::Point;
use crate::error::{CwError, ErrorKind};
use crate::out::Out;

pub(super) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn put_metric_data(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let namespace = input::required_string(document, "Namespace", "Namespace")?;
    if namespace.starts_with("AWS/") || namespace.is_empty() || namespace.len() > 255 {
        return Err(CwError::invalid(format!("The value {namespace} for parameter Namespace is invalid.")));
    }
    let data = input::list(document, "MetricData", "MetricData")?;
    if data.is_empty() {
        return Err(CwError::missing("MetricData"));
    }
    if data.len() > 1000 {
        return Err(CwError::invalid("The collection MetricData must not have a size greater than 1000."));
    }
    let mut points = Vec::new();
    for (i, datum) in data.iter().enumerate() {
        let at = format!("MetricData.member.{}", i + 1);
        let name = input::required_string(datum, "MetricName", &format!("{at}.MetricName"))?;
        let dimensions = input::dimensions(datum, "Dimensions", &format!("{at}.Dimensions"))?;
        let unit = input::unit(datum, &format!("{at}.Unit"))?;
        let timestamp =
            input::timestamp(datum, "Timestamp", &format!("{at}.Timestamp"))?.unwrap_or(context.now);
        if timestamp < context.now - 14 * 86_400 || timestamp > context.now + 2 * 3600 {
            return Err(CwError::invalid(format!(
                "The parameter {at}.Timestamp must specify a time no more than two weeks in the past or two hours in the future."
            )));
        }
        let value = input::member(datum, "Value").map(|v| {
            number(v).ok_or_else(|| CwError::invalid(format!("The parameter {at}.Value must be a number.")))
        });
        let values = input::list(datum, "Values", &format!("{at}.Values"))?;
        let counts = input::list(datum, "Counts", &format!("{at}.Counts"))?;
        let set = input::member(datum, "StatisticValues");
        let point = match (value, values.is_empty(), set) {
            (Some(value), true, None) => {
                let value = value?;
                Point { count: 1.0, sum: value, min: value, max: value }
            }
            (None, false, None) => {
                if !counts.is_empty() && counts.len() != values.len() {
                    return Err(CwError::invalid(format!(
                        "The parameters {at}.Values and {at}.Counts must be of the same size."
                    )));
                }
                let mut point = Point { count: 0.0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY };
                for (j, value) in values.iter().enumerate() {
                    let value = number(value).ok_or_else(|| {
                        CwError::invalid(format!("The parameter {at}.Values must hold numbers."))
                    })?;
                    let count = counts.get(j).and_then(number).unwrap_or(1.0);
                    point.merge(&Point { count, sum: value * count, min: value, max: value });
                }
                point
            }
            (None, true, Some(set)) => {
                let field = |name: &str| {
                    input::member(set, name)
                        .and_then(number)
                        .ok_or_else(|| CwError::missing(&format!("{at}.StatisticValues.{name}")))
                };
                Point {
                    count: field("SampleCount")?,
                    sum: field("Sum")?,
                    min: field("Minimum")?,
                    max: field("Maximum")?,
                }
            }
            (None, true, None) => return Err(CwError::missing(&format!("{at}.Value"))),
            _ => {
                return Err(CwError::combination(format!(
                    "The parameters {at}.Value, {at}.Values and {at}.StatisticValues are mutually exclusive."
                )))
            }
        };
        points.push((name, dimensions, unit, timestamp, point));
    }
    for (name, dimensions, unit, timestamp, point) in points {
        if !context.store.custom.record(&namespace, &name, dimensions, unit.as_deref(), timestamp, point) {
            return Err(CwError::new(
                ErrorKind::InvalidParameterCombination,
                "nimbus keeps at most 10000 custom metric series.",
            ));
        }
    }
    Ok(Out::Struct(Vec::new()))
}
