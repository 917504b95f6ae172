//! `GetMetricData`: many `MetricStat` queries over one time range, newest first unless asked
//! otherwise, paginated by `MaxDatapoints`. Metric math and Metrics Insights are refused.

use std::collections::HashSet;

use serde_json::Value;

use super::input;
use super::Context;
use crate::catalog::{Metric, Selection};
use crate::error::{CwError, ErrorKind};
use crate::out::Out;
use crate::query::{aggregate, Window};
use crate::stats::{value, Statistic};

const MAX_QUERIES: usize = 500;
const DEFAULT_MAX_DATAPOINTS: i64 = 100_800;
const TOKEN_PREFIX: &str = "nimbus-gmd-";

struct Series {
    id: String,
    label: String,
    points: Vec<(i64, f64)>,
}

pub fn get_metric_data(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let queries = input::list(document, "MetricDataQueries", "MetricDataQueries")?;
    if queries.is_empty() {
        return Err(CwError::missing("MetricDataQueries"));
    }
    if queries.len() > MAX_QUERIES {
        return Err(CwError::invalid(format!(
            "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
        )));
    }
    let (start, end) = input::time_range(document)?;
    let ascending = match input::string(document, "ScanBy", "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(_) => {
            return Err(CwError::invalid(
                "The parameter ScanBy must be TimestampDescending or TimestampAscending.",
            ))
        }
    };
    let max = input::integer(document, "MaxDatapoints", "MaxDatapoints")?.unwrap_or(DEFAULT_MAX_DATAPOINTS);
    if max < 1 {
        return Err(CwError::invalid("The parameter MaxDatapoints must be greater than 0."));
    }
    let offset = match input::string(document, "NextToken", "NextToken")? {
        None => 0,
        Some(token) => token.strip_prefix(TOKEN_PREFIX).and_then(|n| n.parse().ok()).ok_or_else(|| {
            CwError::new(ErrorKind::InvalidNextToken, "The NextToken is not one this operation returned.")
        })?,
    };
    let mut ids = HashSet::new();
    let mut all = Vec::new();
    let mut computed = std::collections::BTreeMap::new();
    let mut metric_ids = Vec::new();
    let mut expressions = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let path = format!("MetricDataQueries.member.{}", i + 1);
        if let (Some(expression), None) = (
            input::string(query, "Expression", &format!("{path}.Expression"))?,
            input::member(query, "MetricStat"),
        ) {
            let id = input::required_string(query, "Id", &format!("{path}.Id"))?;
            if !ids.insert(id.clone()) {
                return Err(CwError::invalid(format!(
                    "The value {id} for parameter {path}.Id is not unique."
                )));
            }
            expressions.push((i, id, expression, query, path));
            continue;
        }
        let (series, return_data) = run_query(context, query, &path, start, end, ascending)?;
        if !ids.insert(series.id.clone()) {
            return Err(CwError::invalid(format!(
                "The value {} for parameter {path}.Id is not unique.",
                series.id
            )));
        }
        computed.insert(series.id.clone(), series.points.iter().copied().collect());
        metric_ids.push(series.id.clone());
        if return_data {
            all.push((i, series));
        }
    }
    // Expressions in the order given: each may use the metrics and the expressions before it.
    for (i, id, expression, query, path) in expressions {
        let points = super::math::evaluate(&expression, &computed, &metric_ids)
            .map_err(|why| CwError::invalid(format!("Error in expression {id}: {why}")))?;
        let label = input::string(query, "Label", &format!("{path}.Label"))?.unwrap_or_else(|| id.clone());
        let mut ordered: Vec<(i64, f64)> = points.iter().map(|(t, x)| (*t, *x)).collect();
        if !ascending {
            ordered.reverse();
        }
        computed.insert(id.clone(), points);
        if input::boolean(query, "ReturnData", &format!("{path}.ReturnData"))?.unwrap_or(true) {
            all.push((i, Series { id, label, points: ordered }));
        }
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(page(all.into_iter().map(|(_, s)| s).collect(), offset, max as usize))
}

fn run_query(
    context: &Context<'_>,
    query: &Value,
    path: &str,
    start: i64,
    end: i64,
    ascending: bool,
) -> Result<(Series, bool), CwError> {
    let id = input::required_string(query, "Id", &format!("{path}.Id"))?;
    let valid_id = id.len() <= 255
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_id {
        return Err(CwError::invalid(format!(
            "The value {id} for parameter {path}.Id is not valid: it must start with a lowercase letter and hold only \
             letters, digits and underscores."
        )));
    }
    let return_data = input::boolean(query, "ReturnData", &format!("{path}.ReturnData"))?.unwrap_or(true);
    let expression = input::string(query, "Expression", &format!("{path}.Expression"))?;
    let stat = input::member(query, "MetricStat");
    let stat = match (stat, expression) {
        (Some(stat), None) => stat,
        (None, Some(expression)) => {
            return Err(CwError::invalid(format!(
                "nimbus does not evaluate metric math or Metrics Insights expressions ({path}.Expression = \
                 {expression:?}); ask for each metric with a MetricStat and combine the values yourself."
            )))
        }
        _ => {
            return Err(CwError::combination(format!(
                "Exactly one of {path}.MetricStat and {path}.Expression must be given."
            )))
        }
    };
    let at = format!("{path}.MetricStat");
    let metric = input::member(stat, "Metric").ok_or_else(|| CwError::missing(&format!("{at}.Metric")))?;
    let namespace = input::required_string(metric, "Namespace", &format!("{at}.Metric.Namespace"))?;
    let metric_name = input::required_string(metric, "MetricName", &format!("{at}.Metric.MetricName"))?;
    let dimensions = input::dimensions(metric, "Dimensions", &format!("{at}.Metric.Dimensions"))?;
    let period = input::period(stat, "Period", &format!("{at}.Period"))?;
    let stat_name = input::required_string(stat, "Stat", &format!("{at}.Stat"))?;
    let statistic = Statistic::parse(&stat_name).ok_or_else(|| {
        CwError::invalid(format!(
            "The value {stat_name} for parameter {at}.Stat is not supported: nimbus serves SampleCount, Average, Sum, \
             Minimum, Maximum and percentiles p0 to p100."
        ))
    })?;
    let unit = input::unit(stat, &format!("{at}.Unit"))?;
    let window = Window::new(start, end, period);
    if window.points() > DEFAULT_MAX_DATAPOINTS {
        return Err(CwError::combination(format!(
            "{path} asks for {} data points; at most {DEFAULT_MAX_DATAPOINTS} fit in a time range. Increase its Period.",
            window.points()
        )));
    }
    let label =
        input::string(query, "Label", &format!("{path}.Label"))?.unwrap_or_else(|| metric_name.clone());
    let found = Metric::find(&namespace, &metric_name).and_then(|metric| {
        let selection = Selection::from_dimensions(metric, &dimensions)?;
        unit.as_deref().is_none_or(|u| u == metric.unit()).then_some((metric, selection))
    });
    let mut points = Vec::new();
    if found.is_none() && !namespace.starts_with("AWS/") {
        let stat = statistic.name();
        let periods = context.store.custom.periods(
            &namespace,
            &metric_name,
            &dimensions,
            unit.as_deref(),
            window.start,
            end,
            period,
        );
        points.extend(periods.iter().filter_map(|(t, p)| Some((*t, p.statistic(stat)?))));
    }
    if let Some((metric, selection)) = found {
        let percentile = matches!(statistic, Statistic::Percentile(..));
        for (timestamp, agg) in aggregate(context.store, metric, &selection, &window, percentile) {
            if let Some(x) = value(metric, &selection, &agg, &statistic) {
                points.push((timestamp, x));
            }
        }
    }
    if !ascending {
        points.reverse();
    }
    Ok((Series { id, label, points }, return_data))
}

/// The data points from `offset`, at most `max` of them, across the series in order.
fn page(all: Vec<Series>, offset: usize, max: usize) -> Out {
    let total: usize = all.iter().map(|s| s.points.len()).sum();
    let end = offset.saturating_add(max).min(total);
    let mut base = 0;
    let mut results = Vec::new();
    for series in all {
        let (from, to) =
            (offset.clamp(base, base + series.points.len()), end.clamp(base, base + series.points.len()));
        let complete = to == base + series.points.len();
        let shown = &series.points[from - base..to - base];
        base += series.points.len();
        results.push(Out::Struct(vec![
            ("Id", Out::Str(series.id)),
            ("Label", Out::Str(series.label)),
            ("Timestamps", Out::List(shown.iter().map(|&(t, _)| Out::Time(t)).collect())),
            ("Values", Out::List(shown.iter().map(|&(_, x)| Out::Double(x)).collect())),
            ("StatusCode", Out::str(if complete { "Complete" } else { "PartialData" })),
            ("Messages", Out::List(Vec::new())),
        ]));
    }
    let mut members = vec![("MetricDataResults", Out::List(results))];
    if end < total {
        members.push(("NextToken", Out::Str(format!("{TOKEN_PREFIX}{end}"))));
    }
    members.push(("Messages", Out::List(Vec::new())));
    Out::Struct(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;
    use crate::store::Store;
    use serde_json::json;

    fn store() -> Store {
        let store = Store::default();
        for (minute, ms, error) in [(0, 100, false), (1, 300, true), (2, 200, false)] {
            store.record("f", "1", minute, &invocation(ms, error, 1));
        }
        store
    }

    fn stat(id: &str, metric: &str, stat: &str) -> Value {
        json!({"Id": id, "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": "f"}]}, "Period": 60, "Stat": stat}})
    }

    fn run(document: Value) -> Result<Value, CwError> {
        let store = store();
        get_metric_data(&Context { store: &store, now: 600 }, &document)
            .map(|out| crate::wire::json::encode(&out))
    }

    #[test]
    fn metric_stats_newest_first_by_default() {
        let out = run(json!({"StartTime": 0, "EndTime": 600,
            "MetricDataQueries": [stat("inv", "Invocations", "Sum"), stat("p", "Duration", "p99")]}))
        .unwrap();
        let results = &out["MetricDataResults"];
        assert_eq!(results[0]["Id"], "inv");
        assert_eq!(results[0]["Label"], "Invocations");
        assert_eq!(results[0]["Timestamps"], json!([120, 60, 0]));
        assert_eq!(results[0]["Values"], json!([1.0, 1.0, 1.0]));
        assert_eq!(results[0]["StatusCode"], "Complete");
        assert_eq!(results[1]["Values"], json!([200.0, 300.0, 100.0]));
        assert!(out.get("NextToken").is_none());
    }

    #[test]
    fn ascending_labels_and_hidden_queries() {
        let mut errors = stat("e", "Errors", "Sum");
        errors["Label"] = json!("failures");
        let mut hidden = stat("h", "Invocations", "Sum");
        hidden["ReturnData"] = json!(false);
        let out = run(json!({"StartTime": 0, "EndTime": 600, "ScanBy": "TimestampAscending",
            "MetricDataQueries": [errors, hidden]}))
        .unwrap();
        let results = out["MetricDataResults"].as_array().unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["Label"], "failures");
        assert_eq!(results[0]["Values"], json!([0.0, 1.0, 0.0]));
    }

    #[test]
    fn pages_by_max_datapoints() {
        let queries = json!([stat("a", "Invocations", "Sum"), stat("b", "Invocations", "Sum")]);
        let first =
            run(json!({"StartTime": 0, "EndTime": 600, "MaxDatapoints": 4, "MetricDataQueries": queries}))
                .unwrap();
        assert_eq!(first["MetricDataResults"][0]["Values"].as_array().unwrap().len(), 3);
        assert_eq!(first["MetricDataResults"][1]["Values"].as_array().unwrap().len(), 1);
        assert_eq!(first["MetricDataResults"][1]["StatusCode"], "PartialData");
        let token = first["NextToken"].as_str().unwrap();
        let second =
            run(json!({"StartTime": 0, "EndTime": 600, "MaxDatapoints": 4, "MetricDataQueries": queries,
            "NextToken": token}))
            .unwrap();
        assert_eq!(second["MetricDataResults"][0]["Values"], json!([]));
        assert_eq!(second["MetricDataResults"][1]["Values"].as_array().unwrap().len(), 2);
        assert!(second.get("NextToken").is_none());
    }

    #[test]
    fn refusals() {
        let kind = |document| run(document).unwrap_err().kind;
        let expression = json!({"Id": "e", "Expression": "m1 / m2"});
        assert_eq!(
            kind(json!({"StartTime": 0, "EndTime": 60, "MetricDataQueries": [expression]})),
            ErrorKind::InvalidParameterValue
        );
        let bad_id = stat("Bad", "Invocations", "Sum");
        assert_eq!(
            kind(json!({"StartTime": 0, "EndTime": 60, "MetricDataQueries": [bad_id]})),
            ErrorKind::InvalidParameterValue
        );
        let twice = json!([stat("a", "Invocations", "Sum"), stat("a", "Errors", "Sum")]);
        assert_eq!(
            kind(json!({"StartTime": 0, "EndTime": 60, "MetricDataQueries": twice})),
            ErrorKind::InvalidParameterValue
        );
        let bad_stat = stat("a", "Invocations", "tm99");
        assert_eq!(
            kind(json!({"StartTime": 0, "EndTime": 60, "MetricDataQueries": [bad_stat]})),
            ErrorKind::InvalidParameterValue
        );
        let neither = json!({"Id": "a"});
        assert_eq!(
            kind(json!({"StartTime": 0, "EndTime": 60, "MetricDataQueries": [neither]})),
            ErrorKind::InvalidParameterCombination
        );
        assert_eq!(kind(json!({"StartTime": 0, "EndTime": 60})), ErrorKind::MissingParameter);
        let token = json!({"StartTime": 0, "EndTime": 60, "MetricDataQueries": [stat("a", "Invocations", "Sum")], "NextToken": "x"});
        assert_eq!(kind(token), ErrorKind::InvalidNextToken);
    }
}
