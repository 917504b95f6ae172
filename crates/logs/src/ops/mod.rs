//! The operations, one file per resource: groups (and their retention), tags, streams,
//! `PutLogEvents`, `GetLogEvents` and `FilterLogEvents`, `StartLiveTail` (`live`).

mod filter;
mod get;
mod groups;
pub mod input;
pub(crate) mod live;
mod put;
mod queries;
mod streams;
mod subscriptions;
mod tags;

use nimbus_api::AwsError;
use serde_json::Value;

use crate::clock::DAY_MS;
use crate::errors::invalid;
use crate::store::catalog::Group;
use crate::Logs;
use input::Input;

impl Logs {
    pub(crate) async fn dispatch(&self, operation: &str, body: &[u8]) -> Result<Value, AwsError> {
        let input = Input::parse(body)?;
        match operation {
            "CreateLogGroup" => self.create_log_group(&input),
            "DeleteLogGroup" => self.delete_log_group(&input),
            "DescribeLogGroups" => self.describe_log_groups(&input),
            "PutRetentionPolicy" => self.put_retention_policy(&input),
            "DeleteRetentionPolicy" => self.delete_retention_policy(&input),
            "ListTagsLogGroup" => self.list_tags_log_group(&input),
            "TagLogGroup" => self.tag_log_group(&input),
            "UntagLogGroup" => self.untag_log_group(&input),
            "ListTagsForResource" => self.list_tags_for_resource(&input),
            "TagResource" => self.tag_resource(&input),
            "UntagResource" => self.untag_resource(&input),
            "CreateLogStream" => self.create_log_stream(&input),
            "DeleteLogStream" => self.delete_log_stream(&input),
            "DescribeLogStreams" => self.describe_log_streams(&input),
            "PutLogEvents" => self.put_log_events(&input).await,
            "GetLogEvents" => self.get_log_events(&input).await,
            "FilterLogEvents" => self.filter_log_events(&input).await,
            "StartQuery" => self.start_query(&input).await,
            "CreateExportTask" => self.create_export_task(&input).await,
            "DescribeExportTasks" => self.describe_export_tasks(&input),
            "CancelExportTask" => self.cancel_export_task(&input),
            "GetQueryResults" => self.get_query_results(&input),
            "StopQuery" => self.stop_query(&input),
            "DescribeQueries" => self.describe_queries(&input),
            "PutResourcePolicy" => self.put_resource_policy(&input),
            "DescribeResourcePolicies" => self.describe_resource_policies(&input),
            "DeleteResourcePolicy" => self.delete_resource_policy(&input),
            "PutDestination" => self.put_destination(&input),
            "PutDestinationPolicy" => self.put_destination_policy(&input),
            "DescribeDestinations" => self.describe_destinations(&input),
            "DeleteDestination" => self.delete_destination(&input),
            "PutSubscriptionFilter" => self.put_subscription_filter(&input),
            "DescribeSubscriptionFilters" => self.describe_subscription_filters(&input),
            "DeleteSubscriptionFilter" => self.delete_subscription_filter(&input),
            "PutMetricFilter" => self.put_metric_filter(&input),
            "DescribeMetricFilters" => self.describe_metric_filters(&input),
            "DeleteMetricFilter" => self.delete_metric_filter(&input),
            _ => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("nimbus does not implement the CloudWatch Logs operation {operation} yet"),
            )),
        }
    }

    /// The group named by `logGroupName` or `logGroupIdentifier` (a name or an ARN), one of which
    /// must be given.
    fn target_group(&self, input: &Input) -> Result<Group, AwsError> {
        let name = match (input.str("logGroupName")?, input.str("logGroupIdentifier")?) {
            (Some(_), Some(_)) => {
                return Err(invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters."))
            }
            (Some(name), None) => input::group_name(name, "logGroupName")?.to_owned(),
            (None, Some(identifier)) => self.name_of_identifier(identifier)?,
            (None, None) => return Err(invalid("Either logGroupName or logGroupIdentifier must be given.")),
        };
        self.storage.catalog.group(&name).map_err(crate::errors::catalog)
    }

    /// `name`, `arn:aws:logs:<region>:<account>:log-group:name` or the same ending in `:*`.
    fn name_of_identifier(&self, identifier: &str) -> Result<String, AwsError> {
        let name = match identifier.strip_prefix("arn:") {
            Some(_) => {
                let (_, name) = identifier
                    .split_once(":log-group:")
                    .ok_or_else(|| invalid(format!("Invalid log group ARN: {identifier}")))?;
                name.strip_suffix(":*").unwrap_or(name)
            }
            None => identifier,
        };
        Ok(input::group_name(name, "logGroupIdentifier")?.to_owned())
    }

    /// The earliest event time retention still keeps in `group`.
    fn retention_cutoff(&self, group: &Group) -> i64 {
        group.retention_days.map_or(i64::MIN, |days| self.storage.now() - days * DAY_MS)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Calls operations in process, as the server would.

    use std::sync::Arc;

    use nimbus_store::{Blobs, Database};
    use serde_json::Value;

    use crate::clock::ManualClock;
    use crate::Logs;

    pub const NOW: i64 = 1_700_000_000_000;

    pub fn logs(dir: &std::path::Path) -> (Arc<Logs>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(NOW));
        let (database, blobs) = (Database::sqlite(dir), Blobs::new(dir, "test", false));
        let logs = crate::open_with_clock(&database, &blobs, Default::default(), clock.clone()).unwrap();
        (logs, clock)
    }

    pub async fn call(logs: &Logs, operation: &str, body: Value) -> Result<Value, (String, String)> {
        logs.dispatch(operation, body.to_string().as_bytes())
            .await
            .map_err(|e| (e.code.to_owned(), e.message))
    }

    pub async fn ok(logs: &Logs, operation: &str, body: Value) -> Value {
        call(logs, operation, body).await.unwrap_or_else(|e| panic!("{operation}: {e:?}"))
    }

    pub async fn code(logs: &Logs, operation: &str, body: Value) -> String {
        call(logs, operation, body).await.expect_err(operation).0
    }
}
