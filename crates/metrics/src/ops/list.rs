//! `ListMetrics`: every metric and dimension combination with data in the retention period (or
//! the last three hours with `RecentlyActive=PT3H`), filtered, 500 per page.

use std::collections::BTreeSet;

use serde_json::Value;

use super::input;
use super::Context;
use crate::bucket::Architecture;
use crate::catalog::{Metric, Selection};
use crate::error::CwError;
use crate::out::Out;
use crate::store::RETENTION_MINUTES;

const PAGE: usize = 500;
const TOKEN_PREFIX: &str = "nimbus-lm-";

use crate::custom::Listed;

pub fn list_metrics(context: &Context<'_>, document: &Value) -> Result<Out, CwError> {
    let namespace = input::string(document, "Namespace", "Namespace")?;
    let metric_name = input::string(document, "MetricName", "MetricName")?;
    let filters = filters(document)?;
    let window = match input::string(document, "RecentlyActive", "RecentlyActive")?.as_deref() {
        None => RETENTION_MINUTES,
        Some("PT3H") => 180,
        Some(_) => return Err(CwError::invalid("The parameter RecentlyActive must be PT3H.")),
    };
    let offset = match input::string(document, "NextToken", "NextToken")? {
        None => 0,
        Some(token) => {
            token.strip_prefix(TOKEN_PREFIX).and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
                CwError::invalid("The parameter NextToken is not a token ListMetrics returned.")
            })?
        }
    };
    let matches = |(ns, name, dimensions): &Listed| {
        namespace.as_deref().is_none_or(|n| n == ns)
            && metric_name.as_deref().is_none_or(|n| n == name)
            && filters.iter().all(|(fname, fvalue)| {
                dimensions.iter().any(|(n, v)| n == fname && fvalue.as_deref().is_none_or(|fv| fv == v))
            })
    };
    let mut published = published(context, window);
    published.extend(context.store.custom.listed(context.now - window * 60));
    let all: Vec<Listed> = published.into_iter().filter(matches).collect();
    let page: Vec<Out> = all.iter().skip(offset).take(PAGE).map(metric).collect();
    let mut members = vec![("Metrics", Out::List(page))];
    if offset + PAGE < all.len() {
        members.push(("NextToken", Out::Str(format!("{TOKEN_PREFIX}{}", offset + PAGE))));
    }
    Ok(Out::Struct(members))
}

/// `Dimensions` of ListMetrics: names with optional values, at most 10.
fn filters(document: &Value) -> Result<Vec<(String, Option<String>)>, CwError> {
    let items = input::list(document, "Dimensions", "Dimensions")?;
    if items.len() > 10 {
        return Err(CwError::invalid("The collection Dimensions must not have a size greater than 10."));
    }
    let mut filters = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("Dimensions.member.{}", i + 1);
        let name = input::required_string(item, "Name", &format!("{at}.Name"))?;
        filters.push((name, input::string(item, "Value", &format!("{at}.Value"))?));
    }
    Ok(filters)
}

/// What was published in the last `window` minutes, sorted.
fn published(context: &Context<'_>, window: i64) -> BTreeSet<Listed> {
    let since = context.now.div_euclid(60) - window;
    let mut listed = BTreeSet::new();
    for view in context.store.views(|_, _| true, since..i64::MAX) {
        let (mut invoked, mut throttled, mut architectures) = (false, false, Vec::new());
        for bucket in view.buckets(since..i64::MAX) {
            invoked |= bucket.stats.invocations > 0;
            throttled |= bucket.stats.throttles > 0;
            for architecture in Architecture::ALL {
                if bucket.stats.billed(architecture).requests > 0 && !architectures.contains(&architecture) {
                    architectures.push(architecture);
                }
            }
        }
        for metric in Metric::ALL {
            let has_data = if metric == Metric::Throttles { invoked || throttled } else { invoked };
            if !has_data {
                continue;
            }
            for selection in Selection::published(metric, &view.function, &view.version, &architectures) {
                let dimensions = selection.dimensions().into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
                listed.insert((metric.namespace().to_owned(), metric.name().to_owned(), dimensions));
            }
        }
    }
    listed
}

fn metric((namespace, name, dimensions): &Listed) -> Out {
    let dimension =
        |(n, v): &(String, String)| Out::Struct(vec![("Name", Out::str(n)), ("Value", Out::str(v))]);
    Out::Struct(vec![
        ("Namespace", Out::str(namespace)),
        ("MetricName", Out::str(name)),
        ("Dimensions", Out::List(dimensions.iter().map(dimension).collect())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;
    use crate::bucket::Sample;
    use crate::error::ErrorKind;
    use crate::store::Store;
    use serde_json::json;

    fn run(store: &Store, document: Value) -> Result<Vec<Value>, CwError> {
        let out = list_metrics(&Context { store, now: 3600 }, &document)?;
        Ok(crate::wire::json::encode(&out)["Metrics"].as_array().unwrap().clone())
    }

    fn store() -> Store {
        let store = Store::default();
        store.record("f", "1", 59, &invocation(10, false, 1));
        store.record("t", "$LATEST", 10, &Sample::Throttle);
        store
    }

    #[test]
    fn lists_what_aws_would_publish() {
        let all = run(&store(), json!({})).unwrap();
        let names = |ns: &str, metric: &str| {
            all.iter()
                .filter(|m| m["Namespace"] == ns && m["MetricName"] == metric)
                .map(|m| m["Dimensions"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("AWS/Lambda", "Invocations"),
            vec![
                json!([]),
                json!([{"Name": "FunctionName", "Value": "f"}]),
                json!([{"Name": "FunctionName", "Value": "f"}, {"Name": "Resource", "Value": "f:1"}])
            ]
        );
        assert_eq!(names("AWS/Lambda", "ConcurrentExecutions").len(), 2);
        assert_eq!(names("AWS/Lambda", "Throttles").len(), 5, "f's and t's, and the account's");
        assert_eq!(names("Nimbus/Lambda", "BilledGBSeconds").len(), 4);
        assert!(names("Nimbus/Lambda", "BilledGBSeconds")
            .contains(&json!([{"Name": "Architecture", "Value": "arm64"}])));
    }

    #[test]
    fn filters_by_namespace_name_and_dimensions() {
        let store = store();
        let only = run(
            &store,
            json!({"Namespace": "AWS/Lambda", "MetricName": "Duration",
            "Dimensions": [{"Name": "FunctionName", "Value": "f"}]}),
        )
        .unwrap();
        assert_eq!(only.len(), 2);
        let with_resource = run(&store, json!({"Dimensions": [{"Name": "Resource"}]})).unwrap();
        assert!(with_resource.iter().all(|m| m["Dimensions"].as_array().unwrap().len() == 2));
        assert_eq!(run(&store, json!({"Namespace": "AWS/EC2"})).unwrap().len(), 0);
    }

    #[test]
    fn recently_active_keeps_the_last_three_hours() {
        let store = Store::default();
        store.record("old", "1", -1000, &invocation(10, false, 1));
        store.record("new", "1", 50, &invocation(10, false, 1));
        let recent = run(
            &store,
            json!({"RecentlyActive": "PT3H", "MetricName": "Invocations",
            "Dimensions": [{"Name": "FunctionName"}]}),
        )
        .unwrap();
        assert_eq!(recent.len(), 2, "{recent:?}");
        assert!(recent.iter().all(|m| m["Dimensions"][0]["Value"] == "new"));
        assert_eq!(
            run(&store, json!({"RecentlyActive": "P1D"})).unwrap_err().kind,
            ErrorKind::InvalidParameterValue
        );
    }

    #[test]
    fn pages_of_five_hundred() {
        let store = Store::default();
        for i in 0..200 {
            store.record(&format!("f{i:03}"), "1", 59, &invocation(10, false, 1));
        }
        let context = Context { store: &store, now: 3600 };
        let first = crate::wire::json::encode(&list_metrics(&context, &json!({})).unwrap());
        assert_eq!(first["Metrics"].as_array().unwrap().len(), 500);
        let token = first["NextToken"].as_str().unwrap();
        let next = crate::wire::json::encode(&list_metrics(&context, &json!({"NextToken": token})).unwrap());
        assert!(!next["Metrics"].as_array().unwrap().is_empty());
        assert_eq!(
            list_metrics(&context, &json!({"NextToken": "zz"})).unwrap_err().kind,
            ErrorKind::InvalidParameterValue
        );
    }
}
