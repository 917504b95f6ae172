//! CloudWatch's operations over the store, one file each, reading their input from the JSON
//! document every protocol decodes to (Query's values arrive as strings, hence the leniency).

mod composite;
pub(crate) mod custom;
mod dashboards;
mod data;
mod input;
mod list;
mod math;
mod put;
mod statistics;

use crate::error::{CwError, ErrorKind};
use crate::out::Out;
use crate::store::Store;

/// What an operation needs besides its input.
pub struct Context<'a> {
    pub store: &'a Store,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// CloudWatch operations nimbus knows of but does not serve.
const UNSERVED: &[&str] = &[
    "GetMetricWidgetImage",
    "PutAnomalyDetector",
    "DescribeAnomalyDetectors",
    "DeleteAnomalyDetector",
    "PutInsightRule",
    "DescribeInsightRules",
    "GetInsightRuleReport",
    "PutMetricStream",
    "ListMetricStreams",
];

pub fn call(context: &Context<'_>, operation: &str, input: &serde_json::Value) -> Result<Out, CwError> {
    match operation {
        "GetMetricStatistics" => statistics::get_metric_statistics(context, input),
        "GetMetricData" => data::get_metric_data(context, input),
        "ListMetrics" => list::list_metrics(context, input),
        "PutMetricData" => put::put_metric_data(context, input),
        "PutMetricAlarm" => custom::put_metric_alarm(context, input),
        "PutCompositeAlarm" => custom::put_composite_alarm(context, input),
        "DescribeAlarmHistory" => custom::describe_alarm_history(context, input),
        "DescribeAlarms" => custom::describe_alarms(context, input),
        "DescribeAlarmsForMetric" => custom::describe_alarms_for_metric(context, input),
        "DeleteAlarms" => custom::delete_alarms(context, input),
        "SetAlarmState" => custom::set_alarm_state(context, input),
        "EnableAlarmActions" => custom::alarm_actions(context, input, true),
        "DisableAlarmActions" => custom::alarm_actions(context, input, false),
        "PutDashboard" => dashboards::put_dashboard(context, input),
        "GetDashboard" => dashboards::get_dashboard(context, input),
        "ListDashboards" => dashboards::list_dashboards(context, input),
        "DeleteDashboards" => dashboards::delete_dashboards(context, input),
        "ListTagsForResource" => dashboards::list_tags(context, input),
        "TagResource" => dashboards::tag_resource(context, input),
        "UntagResource" => dashboards::untag_resource(context, input),
        _ if UNSERVED.contains(&operation) => Err(CwError::new(
            ErrorKind::InvalidAction,
            format!("nimbus serves metrics and metric alarms of CloudWatch, not {operation}."),
        )),
        _ => Err(CwError::new(
            ErrorKind::InvalidAction,
            format!("Could not find operation {operation} for version 2010-08-01."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unserved_and_unknown_operations_say_so() {
        let store = Store::default();
        let context = Context { store: &store, now: 0 };
        let error = call(&context, "PutAnomalyDetector", &serde_json::json!({})).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidAction);
        assert!(error.message.contains("not PutAnomalyDetector"));
        let error = call(&context, "Frobnicate", &serde_json::json!({})).unwrap_err();
        assert!(error.message.contains("Could not find operation Frobnicate"));
    }
}
