//! Metric alarms: `PutMetricAlarm`,
//! `DescribeAlarms`, `DescribeAlarmsForMetric`, `SetAlarmState`, `DeleteAlarms`,
//! `Enable/DisableAlarmActions`. Alarms on custom metrics are evaluated (the last
//! `EvaluationPeriods` periods against the threshold) when described and by the evaluator every
//! few seconds; a change of state takes the alarm's actions (SNS topics, Lambda functions).

use serde_json::{json, Value};

use super::input;
use super::put::number;
use super::Context;
use crate::error::{CwError, ErrorKind};
use crate::out::Out;

// -------------------------------------------------------------------------------------------------
// Alarms

/// Members of `MetricAlarm` in the model's order, and how each is written.
const ALARM_MEMBERS: &[(&str, Kind)] = &[
    ("AlarmName", Kind::Str),
    ("AlarmArn", Kind::Str),
    ("AlarmDescription", Kind::Str),
    ("AlarmConfigurationUpdatedTimestamp", Kind::Time),
    ("ActionsEnabled", Kind::Bool),
    ("OKActions", Kind::Strs),
    ("AlarmActions", Kind::Strs),
    ("InsufficientDataActions", Kind::Strs),
    ("StateValue", Kind::Str),
    ("StateReason", Kind::Str),
    ("StateReasonData", Kind::Str),
    ("StateUpdatedTimestamp", Kind::Time),
    ("MetricName", Kind::Str),
    ("Namespace", Kind::Str),
    ("Statistic", Kind::Str),
    ("ExtendedStatistic", Kind::Str),
    ("Dimensions", Kind::Dimensions),
    ("Period", Kind::Int),
    ("Unit", Kind::Str),
    ("EvaluationPeriods", Kind::Int),
    ("DatapointsToAlarm", Kind::Int),
    ("Threshold", Kind::Double),
    ("ComparisonOperator", Kind::Str),
    ("TreatMissingData", Kind::Str),
    ("EvaluateLowSampleCountPercentile", Kind::Str),
    ("StateTransitionedTimestamp", Kind::Time),
    ("AlarmRule", Kind::Str),
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Strs,
    Time,
    Bool,
    Int,
    Double,
    Dimensions,
}

fn render(alarm: &Value) -> Out {
    let mut members = Vec::new();
    for (name, kind) in ALARM_MEMBERS {
        let Some(value) = alarm.get(*name).filter(|v| !v.is_null()) else { continue };
        let out = match kind {
            Kind::Str => Out::str(value.as_str().unwrap_or_default()),
            Kind::Strs => Out::List(
                value.as_array().into_iter().flatten().filter_map(Value::as_str).map(Out::str).collect(),
            ),
            Kind::Time => Out::Time(value.as_i64().unwrap_or_default()),
            Kind::Bool => Out::Bool(value.as_bool().unwrap_or(true)),
            Kind::Int => Out::Int(value.as_i64().unwrap_or_default()),
            Kind::Double => Out::Double(value.as_f64().unwrap_or_default()),
            Kind::Dimensions => Out::List(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        Out::Struct(vec![
                            ("Name", Out::str(d[0].as_str().unwrap_or_default())),
                            ("Value", Out::str(d[1].as_str().unwrap_or_default())),
                        ])
                    })
                    .collect(),
            ),
        };
        members.push((*name, out));
    }
    Out::Struct(members)
}

const STATES: [&str; 3] = ["OK", "ALARM", "INSUFFICIENT_DATA"];

const COMPARISONS: [&str; 7] = [
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
];

pub(super) fn strings(document: &Value, name: &str) -> Result<Vec<String>, CwError> {
    Ok(input::list(document, name, name)?.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

pub fn put_metric_alarm(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let name = input::required_string(document, "AlarmName", "AlarmName")?;
    if input::member(document, "Metrics").is_some() {
        return Err(CwError::invalid("nimbus stores alarms on one metric (MetricName, Namespace, Statistic); metric math alarms are not served."));
    }
    let comparison = input::required_string(document, "ComparisonOperator", "ComparisonOperator")?;
    if !COMPARISONS.contains(&comparison.as_str()) {
        return Err(CwError::not_in_enum(&comparison, "ComparisonOperator", &COMPARISONS));
    }
    let evaluation_periods = input::integer(document, "EvaluationPeriods", "EvaluationPeriods")?
        .ok_or_else(|| CwError::missing("EvaluationPeriods"))?;
    if evaluation_periods < 1 {
        return Err(CwError::invalid("The parameter EvaluationPeriods must be greater than or equal to 1."));
    }
    let statistic = input::string(document, "Statistic", "Statistic")?;
    let extended = input::string(document, "ExtendedStatistic", "ExtendedStatistic")?;
    if statistic.is_some() == extended.is_some() {
        return Err(CwError::combination("Exactly one of Statistic and ExtendedStatistic must be given."));
    }
    let metric_name = input::required_string(document, "MetricName", "MetricName")?;
    let namespace = input::required_string(document, "Namespace", "Namespace")?;
    let period = input::period(document, "Period", "Period")?;
    let threshold =
        input::member(document, "Threshold").and_then(number).ok_or_else(|| CwError::missing("Threshold"))?;
    let dimensions = input::dimensions(document, "Dimensions", "Dimensions")?;
    let previous = context.store.custom.alarms().remove(&name);
    let now = context.now;
    let mut alarm = json!({
        "AlarmName": name,
        "AlarmArn": format!("arn:aws:cloudwatch:{}:{}:alarm:{name}", identity(context).0, identity(context).1),
        "AlarmConfigurationUpdatedTimestamp": now,
        "ActionsEnabled": input::boolean(document, "ActionsEnabled", "ActionsEnabled")?.unwrap_or(true),
        "OKActions": strings(document, "OKActions")?,
        "AlarmActions": strings(document, "AlarmActions")?,
        "InsufficientDataActions": strings(document, "InsufficientDataActions")?,
        "StateValue": "INSUFFICIENT_DATA",
        "StateReason": "Unchecked: Initial alarm creation",
        "StateUpdatedTimestamp": now,
        "StateTransitionedTimestamp": now,
        "MetricName": metric_name,
        "Namespace": namespace,
        "Statistic": statistic,
        "ExtendedStatistic": extended,
        "Dimensions": dimensions,
        "Period": period,
        "Unit": input::unit(document, "Unit")?,
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": input::integer(document, "DatapointsToAlarm", "DatapointsToAlarm")?,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": input::string(document, "TreatMissingData", "TreatMissingData")?,
        "AlarmDescription": input::string(document, "AlarmDescription", "AlarmDescription")?,
        "Tags": input::list(document, "Tags", "Tags")?.to_vec(),
    });
    if let Some(previous) = previous {
        if alarm["Tags"].as_array().is_some_and(Vec::is_empty) {
            alarm["Tags"] = previous["Tags"].clone();
        }
        for field in ["StateValue", "StateReason", "StateUpdatedTimestamp", "StateTransitionedTimestamp"] {
            alarm[field] = previous[field].clone();
        }
    }
    context.store.custom.put_alarm(&name, alarm);
    Ok(Out::Struct(Vec::new()))
}

/// nimbus's region and account (set by the integrator), for ARNs and notifications.
pub(super) fn identity(context: &Context<'_>) -> (String, String) {
    context
        .store
        .custom
        .identity
        .get()
        .cloned()
        .unwrap_or_else(|| ("us-east-1".into(), "000000000000".into()))
}

/// The state the alarm's last `EvaluationPeriods` periods put it in (custom metrics only).
fn evaluate(context: &Context<'_>, alarm: &mut Value) {
    let period = alarm["Period"].as_i64().unwrap_or(60).max(1);
    let updated = alarm["StateUpdatedTimestamp"].as_i64().unwrap_or(0);
    if context.now - updated < period {
        return; // evaluated (or set) within the current period
    }
    let Some(statistic) = alarm["Statistic"].as_str().map(str::to_owned) else { return };
    let periods = alarm["EvaluationPeriods"].as_i64().unwrap_or(1).max(1);
    let needed = alarm["DatapointsToAlarm"].as_i64().unwrap_or(periods);
    let dimensions: Vec<(String, String)> =
        serde_json::from_value(alarm["Dimensions"].clone()).unwrap_or_default();
    let end = context.now - context.now.rem_euclid(period);
    let start = end - periods * period;
    let points = context.store.custom.periods(
        alarm["Namespace"].as_str().unwrap_or_default(),
        alarm["MetricName"].as_str().unwrap_or_default(),
        &dimensions,
        alarm["Unit"].as_str(),
        start,
        end,
        period,
    );
    let threshold = alarm["Threshold"].as_f64().unwrap_or_default();
    let breaches = |x: f64| match alarm["ComparisonOperator"].as_str().unwrap_or_default() {
        "GreaterThanOrEqualToThreshold" => x >= threshold,
        "GreaterThanThreshold" => x > threshold,
        "LessThanThreshold" => x < threshold,
        "LessThanOrEqualToThreshold" => x <= threshold,
        _ => false,
    };
    let values: Vec<f64> = points.iter().filter_map(|(_, p)| p.statistic(&statistic)).collect();
    let breaching = values.iter().filter(|x| breaches(**x)).count() as i64;
    let (state, reason) = if values.is_empty() {
        match alarm["TreatMissingData"].as_str() {
            Some("breaching") => ("ALARM", "Missing data treated as breaching".to_owned()),
            Some("notBreaching") => ("OK", "Missing data treated as not breaching".to_owned()),
            _ => (
                "INSUFFICIENT_DATA",
                "Insufficient Data: no datapoints were received for the evaluation periods.".to_owned(),
            ),
        }
    } else if breaching >= needed {
        ("ALARM", format!("Threshold Crossed: {breaching} out of the last {periods} datapoints were breaching the threshold ({threshold})."))
    } else {
        ("OK", format!("Threshold Crossed: {breaching} out of the last {periods} datapoints were breaching the threshold ({threshold})."))
    };
    if alarm["StateValue"] != state {
        alarm["StateTransitionedTimestamp"] = json!(context.now);
    }
    // AWS's reason data: the evaluated data points, newest first.
    alarm["StateReasonData"] = json!(json!({
        "version": "1.0",
        "queryDate": crate::out::Out::iso8601(context.now),
        "statistic": statistic,
        "period": period,
        "recentDatapoints": values.iter().rev().collect::<Vec<_>>(),
        "threshold": threshold,
    })
    .to_string());
    alarm["StateValue"] = json!(state);
    alarm["StateReason"] = json!(reason);
    alarm["StateUpdatedTimestamp"] = json!(context.now);
}

/// Every alarm, evaluated now; state changes take the alarms' actions.
pub fn evaluated(context: &Context<'_>) -> Vec<Value> {
    let mut alarms = Vec::new();
    let all = context.store.custom.alarms();
    let (composites, metric_alarms): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|(_, a)| a["Composite"] == true);
    let mut states = std::collections::BTreeMap::new();
    for (name, mut alarm) in metric_alarms.into_iter().chain(composites) {
        let before = alarm.clone();
        if alarm["Composite"] == true {
            super::composite::evaluate(&mut alarm, &states, context.now);
        } else {
            evaluate(context, &mut alarm);
        }
        states.insert(name.clone(), alarm["StateValue"].as_str().unwrap_or_default().to_owned());
        if alarm != before {
            if !context.store.custom.update_alarm(&name, &before, alarm.clone()) {
                continue; // deleted or changed while this evaluation ran
            }
            if alarm["StateValue"] != before["StateValue"] {
                take_actions(context, &before, &alarm);
            } else if alarm["StateValue"] == "ALARM" {
                // Auto Scaling actions run again each period the alarm stays in ALARM (the
                // policy's cooldown or warm-up paces them), as on AWS.
                scale(context, &alarm);
            }
        }
        alarms.push(alarm);
    }
    alarms
}

fn region_name(region: &str) -> &'static str {
    match region {
        "us-east-1" => "US East (N. Virginia)",
        "us-west-2" => "US West (Oregon)",
        "eu-west-1" => "EU (Ireland)",
        "eu-central-1" => "EU (Frankfurt)",
        _ => "US East (N. Virginia)",
    }
}

/// A history item for a state change (`DescribeAlarmHistory`).
fn record_transition(context: &Context<'_>, before: &Value, alarm: &Value) {
    let (old, new) =
        (before["StateValue"].as_str().unwrap_or_default(), alarm["StateValue"].as_str().unwrap_or_default());
    let data = json!({
        "version": "1.0",
        "oldState": { "stateValue": old },
        "newState": { "stateValue": new, "stateReason": alarm["StateReason"] },
    });
    context.store.custom.record_history(json!({
        "AlarmName": alarm["AlarmName"],
        "AlarmType": if alarm["Composite"] == true { "CompositeAlarm" } else { "MetricAlarm" },
        "Timestamp": context.now,
        "HistoryItemType": "StateUpdate",
        "HistorySummary": format!("Alarm updated from {old} to {new}"),
        "HistoryData": data.to_string(),
    }));
}

pub fn describe_alarm_history(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let name = input::string(document, "AlarmName", "AlarmName")?;
    let kind = input::string(document, "HistoryItemType", "HistoryItemType")?;
    let start = input::timestamp(document, "StartDate", "StartDate")?.unwrap_or(i64::MIN);
    let end = input::timestamp(document, "EndDate", "EndDate")?.unwrap_or(i64::MAX);
    let max = input::integer(document, "MaxRecords", "MaxRecords")?.unwrap_or(100).clamp(1, 100) as usize;
    let ascending = input::string(document, "ScanBy", "ScanBy")?.as_deref() == Some("TimestampAscending");
    let mut items: Vec<Value> = context
        .store
        .custom
        .history()
        .into_iter()
        .filter(|h| name.as_deref().is_none_or(|n| h["AlarmName"] == n))
        .filter(|h| kind.as_deref().is_none_or(|k| h["HistoryItemType"] == k))
        .filter(|h| h["Timestamp"].as_i64().is_some_and(|t| (start..=end).contains(&t)))
        .collect();
    if !ascending {
        items.reverse();
    }
    let rendered = items
        .iter()
        .take(max)
        .map(|h| {
            Out::Struct(vec![
                ("AlarmName", Out::str(h["AlarmName"].as_str().unwrap_or_default())),
                ("AlarmType", Out::str(h["AlarmType"].as_str().unwrap_or_default())),
                ("Timestamp", Out::Time(h["Timestamp"].as_i64().unwrap_or_default())),
                ("HistoryItemType", Out::str(h["HistoryItemType"].as_str().unwrap_or_default())),
                ("HistorySummary", Out::str(h["HistorySummary"].as_str().unwrap_or_default())),
                ("HistoryData", Out::str(h["HistoryData"].as_str().unwrap_or_default())),
            ])
        })
        .collect();
    Ok(Out::Struct(vec![("AlarmHistoryItems", Out::List(rendered))]))
}

/// The alarm's actions for its new state, with AWS's SNS notification.
fn take_actions(context: &Context<'_>, before: &Value, alarm: &Value) {
    record_transition(context, before, alarm);
    let Some(sink) = context.store.custom.sink.get() else { return };
    if alarm["ActionsEnabled"] == false {
        return;
    }
    let state = alarm["StateValue"].as_str().unwrap_or_default();
    let list = match state {
        "ALARM" => "AlarmActions",
        "OK" => "OKActions",
        _ => "InsufficientDataActions",
    };
    let actions: Vec<String> =
        alarm[list].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    if actions.is_empty() {
        return;
    }
    let dimensions: Vec<Value> = alarm["Dimensions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| json!({"name": d[0], "value": d[1]}))
        .collect();
    let notification = json!({
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm["AlarmDescription"],
        "AWSAccountId": identity(context).1,
        "AlarmConfigurationUpdatedTimestamp": crate::out::Out::iso8601(alarm["AlarmConfigurationUpdatedTimestamp"].as_i64().unwrap_or_default()),
        "NewStateValue": state,
        "NewStateReason": alarm["StateReason"],
        "StateChangeTime": crate::out::Out::iso8601(context.now),
        "Region": region_name(&identity(context).0),
        "AlarmArn": alarm["AlarmArn"],
        "OldStateValue": before["StateValue"],
        "OKActions": alarm["OKActions"],
        "AlarmActions": alarm["AlarmActions"],
        "InsufficientDataActions": alarm["InsufficientDataActions"],
        "Trigger": {
            "MetricName": alarm["MetricName"],
            "Namespace": alarm["Namespace"],
            "StatisticType": "Statistic",
            "Statistic": alarm["Statistic"].as_str().unwrap_or_default().to_ascii_uppercase(),
            "Unit": alarm["Unit"],
            "Dimensions": dimensions,
            "Period": alarm["Period"],
            "EvaluationPeriods": alarm["EvaluationPeriods"],
            "DatapointsToAlarm": alarm["DatapointsToAlarm"],
            "ComparisonOperator": alarm["ComparisonOperator"],
            "Threshold": alarm["Threshold"],
            "TreatMissingData": alarm["TreatMissingData"],
        },
    });
    let subject = format!(
        "{state}: \"{}\" in {}",
        alarm["AlarmName"].as_str().unwrap_or_default(),
        region_name(&identity(context).0)
    );
    for action in actions {
        if action.starts_with("arn:aws:autoscaling:") {
            continue; // below
        }
        if let Err(why) = sink.notify(&action, &subject, &notification) {
            eprintln!("nimbus: alarm action {action} not taken: {why}");
        }
    }
    scale(context, alarm);
}

/// The alarm's Auto Scaling actions (in ALARM): each policy gets the latest data point.
fn scale(context: &Context<'_>, alarm: &Value) {
    let Some(sink) = context.store.custom.sink.get() else { return };
    if alarm["ActionsEnabled"] == false || alarm["StateValue"] != "ALARM" {
        return;
    }
    let reason: Value =
        serde_json::from_str(alarm["StateReasonData"].as_str().unwrap_or_default()).unwrap_or_default();
    let latest = reason["recentDatapoints"].get(0).and_then(Value::as_f64);
    let threshold = alarm["Threshold"].as_f64();
    let name = alarm["AlarmName"].as_str().unwrap_or_default();
    let policies = alarm["AlarmActions"].as_array().into_iter().flatten().filter_map(Value::as_str);
    for policy in policies.filter(|a| a.starts_with("arn:aws:autoscaling:")) {
        if let Err(why) = sink.scale(policy, name, latest, threshold) {
            eprintln!("nimbus: alarm action {policy} not taken: {why}");
        }
    }
}

pub fn describe_alarms(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let names = strings(document, "AlarmNames")?;
    let prefix = input::string(document, "AlarmNamePrefix", "AlarmNamePrefix")?;
    let state = input::string(document, "StateValue", "StateValue")?;
    if let Some(state) = state.as_deref().filter(|s| !STATES.contains(s)) {
        return Err(CwError::not_in_enum(state, "StateValue", &STATES));
    }
    let action = input::string(document, "ActionPrefix", "ActionPrefix")?;
    let types = strings(document, "AlarmTypes")?;
    let metric_alarms = types.is_empty() || types.iter().any(|t| t == "MetricAlarm");
    let composite_alarms = types.iter().any(|t| t == "CompositeAlarm");
    let alarms: Vec<Value> = evaluated(context)
        .into_iter()
        .filter(|a| if a["Composite"] == true { composite_alarms } else { metric_alarms })
        .filter(|a| names.is_empty() || names.iter().any(|n| a["AlarmName"] == n.as_str()))
        .filter(|a| {
            prefix.as_deref().is_none_or(|p| a["AlarmName"].as_str().unwrap_or_default().starts_with(p))
        })
        .filter(|a| state.as_deref().is_none_or(|s| a["StateValue"] == s))
        .filter(|a| {
            action.as_deref().is_none_or(|p| {
                a["AlarmActions"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x.as_str().unwrap_or_default().starts_with(p)))
            })
        })
        .collect();
    let (composites, metrics): (Vec<Value>, Vec<Value>) =
        alarms.into_iter().partition(|a| a["Composite"] == true);
    Ok(Out::Struct(vec![
        ("CompositeAlarms", Out::List(composites.iter().map(render).collect())),
        ("MetricAlarms", Out::List(metrics.iter().map(render).collect())),
    ]))
}

pub fn describe_alarms_for_metric(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let namespace = input::required_string(document, "Namespace", "Namespace")?;
    let metric_name = input::required_string(document, "MetricName", "MetricName")?;
    let alarms = evaluated(context)
        .into_iter()
        .filter(|a| a["Namespace"] == namespace.as_str() && a["MetricName"] == metric_name.as_str())
        .map(|a| render(&a))
        .collect();
    Ok(Out::Struct(vec![("MetricAlarms", Out::List(alarms))]))
}

fn not_found(name: &str) -> CwError {
    CwError::new(ErrorKind::ResourceNotFound, format!("Alarm {name} not found"))
}

pub fn delete_alarms(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let names = strings(document, "AlarmNames")?;
    let known = context.store.custom.alarms();
    if let Some(missing) = names.iter().find(|n| !known.contains_key(*n)) {
        return Err(not_found(missing));
    }
    names.iter().for_each(|n| {
        context.store.custom.delete_alarm(n);
    });
    Ok(Out::Struct(Vec::new()))
}

pub fn set_alarm_state(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let name = input::required_string(document, "AlarmName", "AlarmName")?;
    let state = input::required_string(document, "StateValue", "StateValue")?;
    if !["OK", "ALARM", "INSUFFICIENT_DATA"].contains(&state.as_str()) {
        return Err(CwError::not_in_enum(&state, "StateValue", &STATES));
    }
    let reason = input::required_string(document, "StateReason", "StateReason")?;
    let mut alarm = context.store.custom.alarms().remove(&name).ok_or_else(|| not_found(&name))?;
    let before = alarm.clone();
    if alarm["StateValue"] != state.as_str() {
        alarm["StateTransitionedTimestamp"] = json!(context.now);
    }
    alarm["StateValue"] = json!(state);
    alarm["StateReason"] = json!(reason);
    alarm["StateUpdatedTimestamp"] = json!(context.now);
    context.store.custom.put_alarm(&name, alarm.clone());
    if before["StateValue"] != alarm["StateValue"] {
        take_actions(context, &before, &alarm);
    }
    Ok(Out::Struct(Vec::new()))
}

pub fn alarm_actions(context: &Context<'_>, document: &Value, enabled: bool) -> Result<Out, CwError> {
    for name in strings(document, "AlarmNames")? {
        if let Some(mut alarm) = context.store.custom.alarms().remove(&name) {
            alarm["ActionsEnabled"] = json!(enabled);
            context.store.custom.put_alarm(&name, alarm);
        }
    }
    Ok(Out::Struct(Vec::new()))
}

pub fn put_composite_alarm(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let (region, account) = identity(context);
    super::composite::put_composite_alarm(context, document, &region, &account)?;
    Ok(Out::Struct(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::super::put::put_metric_data;
    use super::*;
    use crate::store::Store;

    #[test]
    fn alarms_evaluate_their_periods() {
        let store = Store::default();
        let at = |now: i64| Context { store: &store, now };
        let alarm = json!({"AlarmName": "a", "Namespace": "App", "MetricName": "Errors", "Statistic": "Sum",
            "Period": 60, "EvaluationPeriods": 2, "DatapointsToAlarm": 1, "Threshold": 5,
            "ComparisonOperator": "GreaterThanThreshold"});
        put_metric_alarm(&at(6000), &alarm).unwrap();
        let data = json!({"Namespace": "App", "MetricData": [{"MetricName": "Errors", "Value": 9, "Timestamp": 6010}]});
        put_metric_data(&at(6010), &data).unwrap();
        assert_eq!(evaluated(&at(6030))[0]["StateValue"], "INSUFFICIENT_DATA", "within the first period");
        assert_eq!(evaluated(&at(6130))[0]["StateValue"], "ALARM");
        assert_eq!(evaluated(&at(6400))[0]["StateValue"], "INSUFFICIENT_DATA", "no data since");
    }
}
