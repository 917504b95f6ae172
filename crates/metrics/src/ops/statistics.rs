//! `GetMetricStatistics`: one metric, standard statistics and percentiles per period.

use serde_json::Value;

use super::input;
use super::Context;
use crate::catalog::{Metric, Selection};
use crate::error::CwError;
use crate::out::Out;
use crate::query::{aggregate, div_ceil, Window};
use crate::stats::{value, Statistic};

/// CloudWatch's limit on data points per call.
const MAX_DATAPOINTS: i64 = 1440;

pub fn get_metric_statistics(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let namespace = input::required_string(document, "Namespace", "Namespace")?;
    let metric_name = input::required_string(document, "MetricName", "MetricName")?;
    let dimensions = input::dimensions(document, "Dimensions", "Dimensions")?;
    let (start, end) = input::time_range(document)?;
    let period = input::period(document, "Period", "Period")?;
    let unit = input::unit(document, "Unit")?;
    let statistics = statistics(document)?;
    let window = Window::new(start, end, period);
    let points = div_ceil(end - window.start, period);
    if points > MAX_DATAPOINTS {
        return Err(CwError::combination(format!(
            "You have requested up to {points} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. You may reduce \
             the datapoints requested by increasing Period, or decreasing the time range."
        )));
    }
    let found = Metric::find(&namespace, &metric_name).and_then(|metric| {
        let selection = Selection::from_dimensions(metric, &dimensions)?;
        unit.as_deref().is_none_or(|u| u == metric.unit()).then_some((metric, selection))
    });
    let datapoints = match found {
        Some((metric, selection)) => datapoints(context, metric, &selection, &window, &statistics),
        None => custom_datapoints(
            context,
            &namespace,
            &metric_name,
            &dimensions,
            unit.as_deref(),
            &Window { start, end, period },
            end,
            &statistics,
        ),
    };
    Ok(Out::Struct(vec![("Label", Out::Str(metric_name)), ("Datapoints", Out::List(datapoints))]))
}

/// `Statistics` and `ExtendedStatistics`; at least one of them.
fn statistics(document: &Value) -> Result<Vec<Statistic>, CwError> {
    let standard = input::list(document, "Statistics", "Statistics")?;
    let extended = input::list(document, "ExtendedStatistics", "ExtendedStatistics")?;
    if standard.is_empty() && extended.is_empty() {
        return Err(CwError::combination("Must specify either Statistics or ExtendedStatistics."));
    }
    if standard.len() > 5 || extended.len() > 10 {
        return Err(CwError::invalid("At most 5 Statistics and 10 ExtendedStatistics may be requested."));
    }
    let mut all = Vec::new();
    for (i, name) in standard.iter().enumerate() {
        let statistic = name.as_str().and_then(Statistic::standard).ok_or_else(|| {
            CwError::invalid(format!(
                "The parameter Statistics.member.{} must be a value in the set [ {} ].",
                i + 1,
                Statistic::STANDARD.join(", ")
            ))
        })?;
        all.push(statistic);
    }
    for name in extended {
        let statistic = name.as_str().and_then(Statistic::percentile).ok_or_else(|| {
            CwError::invalid(format!(
                "The value {} for parameter ExtendedStatistics is not supported: nimbus serves percentiles p0 to p100.",
                name.as_str().unwrap_or_default()
            ))
        })?;
        all.push(statistic);
    }
    Ok(all)
}

fn datapoints(
    context: &Context<'_>,
    metric: Metric,
    selection: &Selection,
    window: &Window,
    statistics: &[Statistic],
) -> Vec<Out> {
    let percentiles = statistics.iter().any(|s| matches!(s, Statistic::Percentile(..)));
    let periods = aggregate(context.store, metric, selection, window, percentiles);
    let mut datapoints = Vec::new();
    for (timestamp, agg) in periods {
        let mut members = vec![("Timestamp", Out::Time(timestamp))];
        let mut extended = Vec::new();
        // The model's member order, which Query XML keeps.
        for name in ["SampleCount", "Average", "Sum", "Minimum", "Maximum"] {
            let Some(statistic) = statistics.iter().find(|s| s.name() == name) else { continue };
            if let Some(x) = value(metric, selection, &agg, statistic) {
                members.push((statistic_member(statistic), Out::Double(x)));
            }
        }
        for statistic in statistics.iter().filter(|s| matches!(s, Statistic::Percentile(..))) {
            if let Some(x) = value(metric, selection, &agg, statistic) {
                extended.push((statistic.name().to_owned(), Out::Double(x)));
            }
        }
        if members.len() == 1 && extended.is_empty() {
            continue; // no samples of this metric in the period
        }
        members.push(("Unit", Out::str(metric.unit())));
        if !extended.is_empty() {
            members.push(("ExtendedStatistics", Out::Map(extended)));
        }
        datapoints.push(Out::Struct(members));
    }
    datapoints
}

/// A custom namespace's data points: the standard statistics (percentiles need the raw values,
/// which nimbus does not keep for custom metrics).
#[allow(clippy::too_many_arguments)]
fn custom_datapoints(
    context: &Context<'_>,
    namespace: &str,
    name: &str,
    dimensions: &[(String, String)],
    unit: Option<&str>,
    window: &Window,
    end: i64,
    statistics: &[Statistic],
) -> Vec<Out> {
    let stored_unit =
        context.store.custom.unit_of(namespace, name, dimensions).unwrap_or_else(|| "None".into());
    let periods =
        context.store.custom.periods(namespace, name, dimensions, unit, window.start, end, window.period);
    periods
        .into_iter()
        .map(|(timestamp, point)| {
            let mut members = vec![("Timestamp", Out::Time(timestamp))];
            for name in ["SampleCount", "Average", "Sum", "Minimum", "Maximum"] {
                if statistics.iter().any(|s| s.name() == name) {
                    if let Some(x) = point.statistic(name) {
                        members.push((
                            statistic_member(&Statistic::standard(name).unwrap_or(Statistic::Sum)),
                            Out::Double(x),
                        ));
                    }
                }
            }
            members.push(("Unit", Out::str(stored_unit.clone())));
            Out::Struct(members)
        })
        .collect()
}

fn statistic_member(statistic: &Statistic) -> &'static str {
    match statistic {
        Statistic::SampleCount => "SampleCount",
        Statistic::Average => "Average",
        Statistic::Sum => "Sum",
        Statistic::Minimum => "Minimum",
        _ => "Maximum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;
    use crate::bucket::Sample;
    use crate::error::ErrorKind;
    use crate::store::Store;
    use serde_json::json;

    fn store() -> Store {
        let store = Store::default();
        for (minute, ms, error) in [(0, 100, false), (0, 300, true), (1, 200, false)] {
            store.record("f", "1", minute, &invocation(ms, error, 1));
        }
        store.record("f", "1", 1, &Sample::Throttle);
        store.record("f", "1", 5, &invocation(50, false, 1));
        store.record("g", "$LATEST", 0, &invocation(1000, false, 1));
        store
    }

    fn run(document: Value) -> Result<Out, CwError> {
        let store = store();
        get_metric_statistics(&Context { store: &store, now: 600 }, &document)
    }

    fn request(metric: &str, statistics: Value, dims: Value) -> Value {
        json!({"Namespace": "AWS/Lambda", "MetricName": metric, "StartTime": 0, "EndTime": 600, "Period": 300,
            "Statistics": statistics, "Dimensions": dims})
    }

    fn points(out: &Out) -> Vec<Value> {
        let json = crate::wire::json::encode(out);
        json["Datapoints"].as_array().unwrap().clone()
    }

    #[test]
    fn sums_per_period_for_a_function() {
        let out = run(request(
            "Invocations",
            json!(["Sum", "SampleCount"]),
            json!([{"Name": "FunctionName", "Value": "f"}]),
        ))
        .unwrap();
        let points = points(&out);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0], json!({"Timestamp": 0, "SampleCount": 3.0, "Sum": 3.0, "Unit": "Count"}));
        assert_eq!(points[1]["Sum"], 1.0);
    }

    #[test]
    fn account_totals_and_versions() {
        let all = points(&run(request("Invocations", json!(["Sum"]), json!([]))).unwrap());
        assert_eq!(all[0]["Sum"], 4.0);
        let version = json!([{"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:1"}]);
        let errors = points(&run(request("Errors", json!(["Sum", "Average"]), version)).unwrap());
        assert_eq!(errors[0]["Sum"], 1.0);
        assert_eq!(errors[0]["Average"], 1.0 / 3.0);
        let throttles = points(&run(request("Throttles", json!(["Sum"]), json!([]))).unwrap());
        assert_eq!(throttles[0]["Sum"], 1.0);
    }

    #[test]
    fn duration_with_percentiles() {
        let mut document = request(
            "Duration",
            json!(["Minimum", "Maximum", "Average"]),
            json!([{"Name": "FunctionName", "Value": "f"}]),
        );
        document["ExtendedStatistics"] = json!(["p50", "p99"]);
        let points = points(&run(document).unwrap());
        assert_eq!(points[0]["Minimum"], 100.0);
        assert_eq!(points[0]["Maximum"], 300.0);
        assert_eq!(points[0]["Average"], 200.0);
        assert_eq!(points[0]["Unit"], "Milliseconds");
        let p50 = points[0]["ExtendedStatistics"]["p50"].as_f64().unwrap();
        assert!((p50 - 200.0).abs() < 8.0, "{p50}");
        assert_eq!(points[0]["ExtendedStatistics"]["p99"], 300.0);
    }

    #[test]
    fn unknown_metrics_dimensions_and_units_have_no_data() {
        assert!(points(&run(request("Nope", json!(["Sum"]), json!([]))).unwrap()).is_empty());
        let other = json!([{"Name": "FunctionName", "Value": "nope"}]);
        assert!(points(&run(request("Invocations", json!(["Sum"]), other)).unwrap()).is_empty());
        let mut document = request("Invocations", json!(["Sum"]), json!([]));
        document["Unit"] = json!("Seconds");
        assert!(points(&run(document).unwrap()).is_empty());
    }

    #[test]
    fn validation_errors() {
        let kind = |document| run(document).unwrap_err().kind;
        assert_eq!(
            kind(request("Invocations", json!([]), json!([]))),
            ErrorKind::InvalidParameterCombination
        );
        assert_eq!(
            kind(request("Invocations", json!(["Median"]), json!([]))),
            ErrorKind::InvalidParameterValue
        );
        let mut too_many = request("Invocations", json!(["Sum"]), json!([]));
        too_many["Period"] = json!(60);
        too_many["EndTime"] = json!(60 * 1441);
        assert_eq!(kind(too_many), ErrorKind::InvalidParameterCombination);
        let mut no_namespace = request("Invocations", json!(["Sum"]), json!([]));
        no_namespace.as_object_mut().unwrap().remove("Namespace");
        assert_eq!(run(no_namespace).unwrap_err(), CwError::missing("Namespace"));
        let mut bad_unit = request("Invocations", json!(["Sum"]), json!([]));
        bad_unit["Unit"] = json!("Parsecs");
        assert_eq!(kind(bad_unit), ErrorKind::Validation);
        let mut bad_percentile = request("Duration", json!([]), json!([]));
        bad_percentile["ExtendedStatistics"] = json!(["p101"]);
        assert_eq!(kind(bad_percentile), ErrorKind::InvalidParameterValue);
    }
}
