//! Subscription filters (`PutSubscriptionFilter` …) and metric filters (`PutMetricFilter` …):
//! stored per log group and described with AWS's shapes. Log events are not yet delivered to
//! subscription destinations, nor counted into metrics.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use super::input::{self, Input};
use crate::errors::{catalog, invalid, missing};
use crate::Logs;

/// AWS allows two subscription filters per log group.
const MAX_SUBSCRIPTIONS: usize = 2;
const MAX_METRIC_FILTERS: usize = 100;

fn not_found(what: &str) -> AwsError {
    AwsError::new(400, "ResourceNotFoundException", format!("The specified {what} does not exist."))
}

fn filter_name(input: &Input) -> Result<&str, AwsError> {
    let name = input.required_str("filterName")?;
    if name.is_empty() || name.len() > 512 || name.contains(':') || name.contains('*') {
        return Err(crate::errors::constraint(
            name,
            "filterName",
            "Member must satisfy regular expression pattern: [^:*]*",
        ));
    }
    Ok(name)
}

fn pattern(input: &Input) -> Result<String, AwsError> {
    let pattern = input.str("filterPattern")?.ok_or_else(|| missing("filterPattern"))?;
    if pattern.len() > 1024 {
        return Err(invalid("filterPattern is longer than 1024 characters"));
    }
    // The pattern must be one the filter language reads, as FilterLogEvents checks it.
    crate::pattern::Pattern::parse(pattern)
        .map_err(|e| invalid(format!("Invalid filter pattern: {}", e.0)))?;
    Ok(pattern.to_owned())
}

impl Logs {
    pub(super) fn put_subscription_filter(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        self.storage.catalog.group(group).map_err(catalog)?;
        let name = filter_name(input)?;
        let pattern = pattern(input)?;
        let destination = input.required_str("destinationArn")?;
        if !destination.starts_with("arn:") {
            return Err(invalid(format!("Invalid destinationArn: {destination}")));
        }
        let distribution = input.str("distribution")?.unwrap_or("ByLogStream");
        if distribution != "ByLogStream" && distribution != "Random" {
            return Err(crate::errors::constraint(
                distribution,
                "distribution",
                "Member must satisfy enum value set: [Random, ByLogStream]",
            ));
        }
        let existing = self.storage.catalog.filters(Some(group), "subscription").map_err(catalog)?;
        if existing.len() >= MAX_SUBSCRIPTIONS && !existing.iter().any(|f| f["filterName"] == name) {
            return Err(AwsError::new(400, "LimitExceededException", "Resource limit exceeded."));
        }
        let mut doc = json!({
            "filterName": name, "logGroupName": group, "filterPattern": pattern, "destinationArn": destination,
            "distribution": distribution, "creationTime": self.storage.now(),
        });
        if let Some(role) = input.str("roleArn")? {
            doc["roleArn"] = json!(role);
        }
        self.storage.catalog.put_filter(group, "subscription", name, &doc).map_err(catalog)?;
        Ok(json!({}))
    }

    pub(super) fn describe_subscription_filters(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        self.storage.catalog.group(group).map_err(catalog)?;
        let prefix = input.str("filterNamePrefix")?.unwrap_or("");
        let filters: Vec<Value> = self
            .storage
            .catalog
            .filters(Some(group), "subscription")
            .map_err(catalog)?
            .into_iter()
            .filter(|f| f["filterName"].as_str().unwrap_or_default().starts_with(prefix))
            .collect();
        Ok(json!({ "subscriptionFilters": filters }))
    }

    pub(super) fn delete_subscription_filter(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        self.storage.catalog.group(group).map_err(catalog)?;
        let name = input.required_str("filterName")?;
        if !self.storage.catalog.delete_filters(group, Some("subscription"), Some(name)).map_err(catalog)? {
            return Err(not_found("subscription filter"));
        }
        Ok(json!({}))
    }

    pub(super) fn put_metric_filter(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        self.storage.catalog.group(group).map_err(catalog)?;
        let name = filter_name(input)?;
        let pattern = pattern(input)?;
        let transformations =
            input.list("metricTransformations")?.ok_or_else(|| missing("metricTransformations"))?;
        if transformations.len() != 1 {
            return Err(crate::errors::constraint(
                "[…]",
                "metricTransformations",
                "Member must have length less than or equal to 1",
            ));
        }
        for t in transformations {
            for field in ["metricName", "metricNamespace", "metricValue"] {
                if t.get(field).and_then(Value::as_str).is_none() {
                    return Err(missing(&format!("metricTransformations.1.member.{field}")));
                }
            }
        }
        let existing = self.storage.catalog.filters(Some(group), "metric").map_err(catalog)?;
        if existing.len() >= MAX_METRIC_FILTERS && !existing.iter().any(|f| f["filterName"] == name) {
            return Err(AwsError::new(400, "LimitExceededException", "Resource limit exceeded."));
        }
        let doc = json!({
            "filterName": name, "logGroupName": group, "filterPattern": pattern,
            "metricTransformations": transformations, "creationTime": self.storage.now(),
        });
        self.storage.catalog.put_filter(group, "metric", name, &doc).map_err(catalog)?;
        Ok(json!({}))
    }

    pub(super) fn describe_metric_filters(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input.str("logGroupName")?;
        if let Some(group) = group {
            self.storage.catalog.group(group).map_err(catalog)?;
        }
        let prefix = input.str("filterNamePrefix")?.unwrap_or("");
        let (metric, namespace) = (input.str("metricName")?, input.str("metricNamespace")?);
        if metric.is_some() != namespace.is_some() {
            return Err(invalid("metricName and metricNamespace must be given together."));
        }
        let has = |f: &Value, field: &str, want: Option<&str>| {
            want.is_none_or(|w| {
                f["metricTransformations"].as_array().is_some_and(|ts| ts.iter().any(|t| t[field] == w))
            })
        };
        let filters: Vec<Value> = self
            .storage
            .catalog
            .filters(group, "metric")
            .map_err(catalog)?
            .into_iter()
            .filter(|f| f["filterName"].as_str().unwrap_or_default().starts_with(prefix))
            .filter(|f| has(f, "metricName", metric) && has(f, "metricNamespace", namespace))
            .collect();
        Ok(json!({ "metricFilters": filters }))
    }

    pub(super) fn delete_metric_filter(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        self.storage.catalog.group(group).map_err(catalog)?;
        let name = input.required_str("filterName")?;
        if !self.storage.catalog.delete_filters(group, Some("metric"), Some(name)).map_err(catalog)? {
            return Err(not_found("metric filter"));
        }
        Ok(json!({}))
    }
}

/// Account-level documents (resource policies, destinations) live under this group name.
const ACCOUNT: &str = "";

impl Logs {
    pub(super) fn put_resource_policy(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input.str("policyName")?.ok_or_else(|| missing("policyName"))?;
        let document = input.str("policyDocument")?.ok_or_else(|| missing("policyDocument"))?;
        if serde_json::from_str::<Value>(document).map(|d| !d.is_object()).unwrap_or(true) {
            return Err(invalid("Invalid policy document: it must be a JSON object."));
        }
        let existing = self.storage.catalog.filters(Some(ACCOUNT), "policy").map_err(catalog)?;
        if existing.len() >= 10 && !existing.iter().any(|p| p["policyName"] == name) {
            return Err(AwsError::new(400, "LimitExceededException", "Resource limit exceeded."));
        }
        let policy =
            json!({ "policyName": name, "policyDocument": document, "lastUpdatedTime": self.storage.now() });
        self.storage.catalog.put_filter(ACCOUNT, "policy", name, &policy).map_err(catalog)?;
        Ok(json!({ "resourcePolicy": policy }))
    }

    pub(super) fn describe_resource_policies(&self, _input: &Input) -> Result<Value, AwsError> {
        let policies = self.storage.catalog.filters(Some(ACCOUNT), "policy").map_err(catalog)?;
        Ok(json!({ "resourcePolicies": policies }))
    }

    pub(super) fn delete_resource_policy(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input.str("policyName")?.ok_or_else(|| missing("policyName"))?;
        if !self.storage.catalog.delete_filters(ACCOUNT, Some("policy"), Some(name)).map_err(catalog)? {
            return Err(AwsError::new(
                400,
                "ResourceNotFoundException",
                "Policy with name [".to_owned() + name + "] does not exist",
            ));
        }
        Ok(json!({}))
    }

    pub(super) fn put_destination(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input.required_str("destinationName")?;
        let target = input.required_str("targetArn")?;
        let role = input.required_str("roleArn")?;
        let previous = self.storage.catalog.filters(Some(ACCOUNT), "destination").map_err(catalog)?;
        let previous = previous.into_iter().find(|d| d["destinationName"] == name);
        let destination = json!({
            "destinationName": name, "targetArn": target, "roleArn": role,
            "accessPolicy": previous.as_ref().map_or(Value::Null, |d| d["accessPolicy"].clone()),
            "arn": format!("arn:aws:logs:{}:{}:destination:{name}", self.identity.region, self.identity.account),
            "creationTime": previous.as_ref().map_or(json!(self.storage.now()), |d| d["creationTime"].clone()),
        });
        self.storage.catalog.put_filter(ACCOUNT, "destination", name, &destination).map_err(catalog)?;
        Ok(json!({ "destination": destination }))
    }

    pub(super) fn put_destination_policy(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input.required_str("destinationName")?;
        let policy = input.required_str("accessPolicy")?;
        let destinations = self.storage.catalog.filters(Some(ACCOUNT), "destination").map_err(catalog)?;
        let mut destination = destinations
            .into_iter()
            .find(|d| d["destinationName"] == name)
            .ok_or_else(|| not_found("destination"))?;
        destination["accessPolicy"] = json!(policy);
        self.storage.catalog.put_filter(ACCOUNT, "destination", name, &destination).map_err(catalog)?;
        Ok(json!({}))
    }

    pub(super) fn describe_destinations(&self, input: &Input) -> Result<Value, AwsError> {
        let prefix = input.str("DestinationNamePrefix")?.unwrap_or("");
        let destinations: Vec<Value> = self
            .storage
            .catalog
            .filters(Some(ACCOUNT), "destination")
            .map_err(catalog)?
            .into_iter()
            .filter(|d| d["destinationName"].as_str().unwrap_or_default().starts_with(prefix))
            .collect();
        Ok(json!({ "destinations": destinations }))
    }

    pub(super) fn delete_destination(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input.required_str("destinationName")?;
        if !self.storage.catalog.delete_filters(ACCOUNT, Some("destination"), Some(name)).map_err(catalog)? {
            return Err(not_found("destination"));
        }
        Ok(json!({}))
    }
}
