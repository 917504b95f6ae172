//! Dashboards (`Put/Get/List/DeleteDashboards`, stored) and the tags of alarms
//! (`Tag/Untag/ListTagsForResource`).

use serde_json::{json, Value};

use super::custom::{identity, strings};
use super::input;
use super::Context;
use crate::error::{CwError, ErrorKind};
use crate::out::Out;

fn dashboard_missing(name: &str) -> CwError {
    CwError::new(ErrorKind::ResourceNotFound, format!("Dashboard {name} does not exist"))
}

pub fn put_dashboard(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let name = input::required_string(document, "DashboardName", "DashboardName")?;
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(CwError::invalid("The value for field DashboardName contains invalid characters. It can only contain alphanumerics, dash (-) and underscore (_)."));
    }
    let body = input::required_string(document, "DashboardBody", "DashboardBody")?;
    if serde_json::from_str::<Value>(&body).map(|b| !b.is_object()).unwrap_or(true) {
        return Err(CwError::invalid("The field DashboardBody must be a valid JSON object"));
    }
    let dashboard = json!({
        "DashboardName": name,
        "DashboardArn": format!("arn:aws:cloudwatch::{}:dashboard/{name}", identity(context).1),
        "DashboardBody": body,
        "LastModified": context.now,
        "Size": body.len(),
    });
    context.store.custom.put_dashboard(&name, dashboard);
    Ok(Out::Struct(vec![("DashboardValidationMessages", Out::List(Vec::new()))]))
}

pub fn get_dashboard(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let name = input::required_string(document, "DashboardName", "DashboardName")?;
    let dashboard =
        context.store.custom.dashboards().remove(&name).ok_or_else(|| dashboard_missing(&name))?;
    Ok(Out::Struct(vec![
        ("DashboardArn", Out::str(dashboard["DashboardArn"].as_str().unwrap_or_default())),
        ("DashboardBody", Out::str(dashboard["DashboardBody"].as_str().unwrap_or_default())),
        ("DashboardName", Out::str(name)),
    ]))
}

pub fn list_dashboards(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let prefix = input::string(document, "DashboardNamePrefix", "DashboardNamePrefix")?.unwrap_or_default();
    let entries = context
        .store
        .custom
        .dashboards()
        .into_iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, d)| {
            Out::Struct(vec![
                ("DashboardName", Out::str(name)),
                ("DashboardArn", Out::str(d["DashboardArn"].as_str().unwrap_or_default())),
                ("LastModified", Out::Time(d["LastModified"].as_i64().unwrap_or_default())),
                ("Size", Out::Int(d["Size"].as_i64().unwrap_or_default())),
            ])
        })
        .collect();
    Ok(Out::Struct(vec![("DashboardEntries", Out::List(entries))]))
}

pub fn delete_dashboards(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let names = strings(document, "DashboardNames")?;
    let known = context.store.custom.dashboards();
    if let Some(missing) = names.iter().find(|n| !known.contains_key(*n)) {
        return Err(dashboard_missing(missing));
    }
    for name in &names {
        context.store.custom.delete_dashboard(name);
    }
    Ok(Out::Struct(Vec::new()))
}

/// The alarm an ARN names (tags live on alarms).
fn alarm_by_arn(context: &Context<'_>, arn: &str) -> Result<(String, Value), CwError> {
    context.store.custom.alarms().into_iter().find(|(_, a)| a["AlarmArn"] == arn).ok_or_else(|| {
        CwError::new(ErrorKind::ResourceNotFound, format!("The resource {arn} does not exist."))
    })
}

fn tag_list(tags: &Value) -> Vec<(String, String)> {
    tags.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((t["Key"].as_str()?.to_owned(), t["Value"].as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

pub fn list_tags(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let arn = input::required_string(document, "ResourceARN", "ResourceARN")?;
    let (_, alarm) = alarm_by_arn(context, &arn)?;
    let tags = tag_list(&alarm["Tags"])
        .into_iter()
        .map(|(k, v)| Out::Struct(vec![("Key", Out::str(k)), ("Value", Out::str(v))]))
        .collect();
    Ok(Out::Struct(vec![("Tags", Out::List(tags))]))
}

pub fn tag_resource(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let arn = input::required_string(document, "ResourceARN", "ResourceARN")?;
    let (name, mut alarm) = alarm_by_arn(context, &arn)?;
    let mut tags = tag_list(&alarm["Tags"]);
    for (key, value) in tag_list(&Value::Array(input::list(document, "Tags", "Tags")?.to_vec())) {
        tags.retain(|(k, _)| *k != key);
        tags.push((key, value));
    }
    alarm["Tags"] = tags.into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
    context.store.custom.put_alarm(&name, alarm);
    Ok(Out::Struct(Vec::new()))
}

pub fn untag_resource(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let arn = input::required_string(document, "ResourceARN", "ResourceARN")?;
    let (name, mut alarm) = alarm_by_arn(context, &arn)?;
    let keys = strings(document, "TagKeys")?;
    let tags: Vec<Value> = tag_list(&alarm["Tags"])
        .into_iter()
        .filter(|(k, _)| !keys.contains(k))
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    alarm["Tags"] = Value::Array(tags);
    context.store.custom.put_alarm(&name, alarm);
    Ok(Out::Struct(Vec::new()))
}
