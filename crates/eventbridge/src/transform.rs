//! What a rule's target receives: the whole event, a constant `Input`, the part `InputPath`
//! selects, or an `InputTransformer`'s template filled from the event.

use nimbus_api::AwsError;
use serde_json::Value;

use crate::input::validation;

/// The value at a JSONPath such as `$.detail.items[0].id` (`$` alone is the whole document);
/// None when the path does not lead anywhere.
pub fn select<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.trim().strip_prefix('$')?;
    let mut current = document;
    for step in rest.split('.').skip(usize::from(rest.starts_with('.'))) {
        if step.is_empty() {
            return if rest.is_empty() { Some(current) } else { None };
        }
        let (name, indexes) = match step.find('[') {
            Some(at) => (&step[..at], &step[at..]),
            None => (step, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            current = current.get(index)?;
        }
    }
    Some(current)
}

pub fn check_path(path: &str, member: &str) -> Result<(), AwsError> {
    if path.trim().starts_with('$') {
        Ok(())
    } else {
        Err(validation(format!("{member} {path} is not a valid JsonPath.")))
    }
}

/// The rule and event facts a template may name besides its paths.
pub struct Reserved<'a> {
    pub rule_arn: &'a str,
    pub rule_name: &'a str,
    pub ingestion_time: &'a str,
}

/// Fills `template` from `event`: each `<name>` becomes the value `paths[name]` selects — inside a
/// JSON string its text, elsewhere its JSON (a string with its quotes), as AWS fills templates.
pub fn fill(
    template: &str,
    paths: &serde_json::Map<String, Value>,
    event: &Value,
    reserved: &Reserved<'_>,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(end) = rest.find('>') {
                let name = &rest[1..end];
                if let Some(value) = variable(name, paths, event, reserved) {
                    push_value(&mut out, &value, in_string);
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        if in_string && escaped {
            escaped = false;
        } else if in_string && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = !in_string;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn variable(
    name: &str,
    paths: &serde_json::Map<String, Value>,
    event: &Value,
    reserved: &Reserved<'_>,
) -> Option<Value> {
    match name {
        "aws.events.rule-arn" => Some(Value::String(reserved.rule_arn.to_owned())),
        "aws.events.rule-name" => Some(Value::String(reserved.rule_name.to_owned())),
        "aws.events.event.ingestion-time" => Some(Value::String(reserved.ingestion_time.to_owned())),
        "aws.events.event" | "aws.events.event.json" => Some(event.clone()),
        _ => {
            let path = paths.get(name)?.as_str()?;
            Some(select(event, path).cloned().unwrap_or(Value::Null))
        }
    }
}

fn push_value(out: &mut String, value: &Value, in_string: bool) {
    match (value, in_string) {
        (Value::String(text), true) => {
            let quoted = Value::String(text.clone()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        (other, true) => {
            let quoted = Value::String(other.to_string()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        (other, false) => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event() -> Value {
        json!({"id": "e1", "detail": {"instance-id": "i-0123456789", "state": "RUNNING", "n": 3, "items": [{"id": "a"}]}})
    }

    const RESERVED: Reserved<'static> =
        Reserved { rule_arn: "arn:aws:events:us-east-1:0:rule/r", rule_name: "r", ingestion_time: "t" };

    #[test]
    fn paths_select_members_and_indexes() {
        let event = event();
        assert_eq!(select(&event, "$"), Some(&event));
        assert_eq!(select(&event, "$.detail.state"), Some(&json!("RUNNING")));
        assert_eq!(select(&event, "$.detail.items[0].id"), Some(&json!("a")));
        assert_eq!(select(&event, "$.detail.missing"), None);
        assert_eq!(select(&event, "detail"), None);
    }

    #[test]
    fn templates_fill_as_aws_documents() {
        // The examples of AWS's "Transforming target input" page.
        let paths = json!({"instance": "$.detail.instance-id", "state": "$.detail.state", "n": "$.detail.n"});
        let paths = paths.as_object().unwrap();
        let event = event();
        assert_eq!(
            fill(r#"{"instance": <instance>, "state": [9, <state>, true]}"#, paths, &event, &RESERVED),
            r#"{"instance": "i-0123456789", "state": [9, "RUNNING", true]}"#
        );
        assert_eq!(
            fill(r#""<instance> is in state <state>""#, paths, &event, &RESERVED),
            r#""i-0123456789 is in state RUNNING""#
        );
        assert_eq!(
            fill(r#"{"count": <n>, "rule": "<aws.events.rule-name>"}"#, paths, &event, &RESERVED),
            r#"{"count": 3, "rule": "r"}"#
        );
        assert_eq!(fill("a <unknown> b", paths, &event, &RESERVED), "a <unknown> b");
    }
}
