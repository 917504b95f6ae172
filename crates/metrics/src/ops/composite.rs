//! Composite alarms: `PutCompositeAlarm` with an `AlarmRule` over other alarms' states
//! (`ALARM(name)`, `OK(name)`, `INSUFFICIENT_DATA(name)`, `TRUE`, `FALSE`, `AND`, `OR`, `NOT`,
//! parentheses), in `ALARM` while the rule holds and `OK` otherwise.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::input;
use super::Context;
use crate::error::CwError;

/// The rule's value given every alarm's state; an error names what it cannot read.
pub fn holds(rule: &str, states: &BTreeMap<String, String>) -> Result<bool, String> {
    let tokens = tokenize(rule)?;
    let mut at = 0;
    let value = or(&tokens, &mut at, states)?;
    if at != tokens.len() {
        return Err(format!("unexpected {:?} in the alarm rule", tokens[at]));
    }
    Ok(value)
}

fn tokenize(rule: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = rule.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            tokens.push(c.to_string());
            i += 1;
        } else if c == '"' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            tokens.push(format!("\"{}", chars[start..i.min(chars.len())].iter().collect::<String>()));
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '(' && chars[i] != ')' {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    Ok(tokens)
}

fn or(tokens: &[String], at: &mut usize, states: &BTreeMap<String, String>) -> Result<bool, String> {
    let mut value = and(tokens, at, states)?;
    while tokens.get(*at).is_some_and(|t| t == "OR") {
        *at += 1;
        value |= and(tokens, at, states)?;
    }
    Ok(value)
}

fn and(tokens: &[String], at: &mut usize, states: &BTreeMap<String, String>) -> Result<bool, String> {
    let mut value = not(tokens, at, states)?;
    while tokens.get(*at).is_some_and(|t| t == "AND") {
        *at += 1;
        value &= not(tokens, at, states)?;
    }
    Ok(value)
}

fn not(tokens: &[String], at: &mut usize, states: &BTreeMap<String, String>) -> Result<bool, String> {
    if tokens.get(*at).is_some_and(|t| t == "NOT") {
        *at += 1;
        return Ok(!not(tokens, at, states)?);
    }
    let token = tokens.get(*at).cloned().ok_or("the alarm rule ends too early")?;
    *at += 1;
    match token.as_str() {
        "TRUE" => Ok(true),
        "FALSE" => Ok(false),
        "(" => {
            let value = or(tokens, at, states)?;
            if tokens.get(*at).map(String::as_str) != Some(")") {
                return Err("missing ) in the alarm rule".into());
            }
            *at += 1;
            Ok(value)
        }
        state @ ("ALARM" | "OK" | "INSUFFICIENT_DATA") => {
            if tokens.get(*at).map(String::as_str) != Some("(") {
                return Err(format!("{state} takes an alarm name in parentheses"));
            }
            let name = tokens.get(*at + 1).ok_or("the alarm rule ends too early")?;
            if tokens.get(*at + 2).map(String::as_str) != Some(")") {
                return Err(format!("missing ) after {state}("));
            }
            *at += 3;
            let name = name.trim_start_matches('"');
            let name = name.rsplit(":alarm:").next().unwrap_or(name);
            let current = states
                .get(name)
                .ok_or_else(|| format!("the alarm rule names {name}, which does not exist"))?;
            Ok(current == state)
        }
        other => Err(format!("unexpected {other} in the alarm rule")),
    }
}

pub fn put_composite_alarm(
    context: &Context<'_>,
    document: &Value,
    region: &str,
    account: &str,
) -> Result<(), CwError> {
    let name = input::required_string(document, "AlarmName", "AlarmName")?;
    let rule = input::required_string(document, "AlarmRule", "AlarmRule")?;
    let alarms = context.store.custom.alarms();
    let states: BTreeMap<String, String> = alarms
        .iter()
        .filter(|(n, _)| **n != name)
        .map(|(n, a)| (n.clone(), a["StateValue"].as_str().unwrap_or_default().to_owned()))
        .collect();
    holds(&rule, &states).map_err(CwError::invalid)?;
    let strings = |field: &str| -> Result<Vec<String>, CwError> {
        Ok(input::list(document, field, field)?.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    };
    let previous = alarms.get(&name);
    let now = context.now;
    let mut alarm = json!({
        "Composite": true,
        "AlarmName": name,
        "AlarmArn": format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}"),
        "AlarmRule": rule,
        "AlarmDescription": input::string(document, "AlarmDescription", "AlarmDescription")?,
        "ActionsEnabled": input::boolean(document, "ActionsEnabled", "ActionsEnabled")?.unwrap_or(true),
        "AlarmActions": strings("AlarmActions")?,
        "OKActions": strings("OKActions")?,
        "InsufficientDataActions": strings("InsufficientDataActions")?,
        "AlarmConfigurationUpdatedTimestamp": now,
        "StateValue": "INSUFFICIENT_DATA",
        "StateReason": "Unchecked: Initial alarm creation",
        "StateUpdatedTimestamp": now,
        "StateTransitionedTimestamp": now,
        "Tags": input::list(document, "Tags", "Tags")?.to_vec(),
    });
    if let Some(previous) = previous {
        for field in ["StateValue", "StateReason", "StateUpdatedTimestamp", "StateTransitionedTimestamp"] {
            alarm[field] = previous[field].clone();
        }
    }
    context.store.custom.put_alarm(&name, alarm);
    Ok(())
}

/// The composite alarm's state from the others'.
pub fn evaluate(alarm: &mut Value, states: &BTreeMap<String, String>, now: i64) {
    let rule = alarm["AlarmRule"].as_str().unwrap_or_default();
    let (state, reason) = match holds(rule, states) {
        Ok(true) => ("ALARM", "The alarm rule evaluated to TRUE".to_owned()),
        Ok(false) => ("OK", "The alarm rule evaluated to FALSE".to_owned()),
        Err(why) => ("INSUFFICIENT_DATA", why),
    };
    if alarm["StateValue"] != state {
        alarm["StateTransitionedTimestamp"] = json!(now);
        alarm["StateValue"] = json!(state);
        alarm["StateReason"] = json!(reason);
        alarm["StateUpdatedTimestamp"] = json!(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_the_other_alarms_states() {
        let states =
            BTreeMap::from([("cpu".to_owned(), "ALARM".to_owned()), ("mem".to_owned(), "OK".to_owned())]);
        assert!(holds("ALARM(cpu) AND OK(mem)", &states).unwrap());
        assert!(!holds("ALARM(cpu) AND NOT OK(\"mem\")", &states).unwrap());
        assert!(holds("(ALARM(mem) OR TRUE) AND ALARM(arn:aws:cloudwatch:us-east-1:1:alarm:cpu)", &states)
            .unwrap());
        assert!(holds("ALARM(disk)", &states).is_err());
    }
}
