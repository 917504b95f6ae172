use serde_json::json;

use super::*;
use crate::value::parse_item;

fn ctx(names: serde_json::Value, values: serde_json::Value) -> Ctx {
    let mut body = json!({"ConditionExpression": "x"});
    if names.as_object().is_some_and(|m| !m.is_empty()) {
        body["ExpressionAttributeNames"] = names;
    }
    if values.as_object().is_some_and(|m| !m.is_empty()) {
        body["ExpressionAttributeValues"] = values;
    }
    Ctx::from_request(body.as_object().unwrap()).unwrap()
}

fn item(value: serde_json::Value) -> crate::value::Item {
    parse_item(Some(&value), "item").unwrap()
}

#[test]
fn conditions_evaluate_as_dynamodb_does() {
    let it = item(
        json!({"a": {"N": "5"}, "s": {"S": "hello"}, "tags": {"SS": ["x", "y"]}, "m": {"M": {"k": {"L": [{"N": "1"}]}}}}),
    );
    let mut c = ctx(
        json!({"#s": "s"}),
        json!({":five": {"N": "5"}, ":lo": {"N": "1"}, ":hi": {"N": "9"}, ":p": {"S": "he"}, ":x": {"S": "x"}, ":t": {"S": "SS"}}),
    );
    let cases = [
        ("a = :five", true),
        ("a <> :five", false),
        ("a BETWEEN :lo AND :hi", true),
        ("begins_with(#s, :p)", true),
        ("contains(tags, :x)", true),
        ("attribute_type(tags, :t)", true),
        ("attribute_exists(m.k[0]) AND NOT attribute_exists(nope)", true),
        ("size(#s) > :five OR a < :lo", false),
        ("a IN (:lo, :five)", true),
        ("nope <> :five", true),
    ];
    for (text, expected) in cases {
        let cond =
            c.condition("ConditionExpression", text).unwrap_or_else(|e| panic!("{text}: {}", e.message));
        assert_eq!(eval(&cond, &it), expected, "{text}");
    }
}

#[test]
fn mistakes_get_aws_messages() {
    let mut c = ctx(json!({}), json!({":v": {"S": "x"}}));
    let e = c.condition("ConditionExpression", "status = :v").unwrap_err();
    assert_eq!(
        e.message,
        "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status"
    );
    let e = c.condition("ConditionExpression", "a = :nope").unwrap_err();
    assert!(e
        .message
        .contains("An expression attribute value used in expression is not defined; attribute value: :nope"));
    let e = c.condition("ConditionExpression", "a = ").unwrap_err();
    assert!(
        e.message.starts_with("Invalid ConditionExpression: Syntax error; token: \"<EOF>\""),
        "{}",
        e.message
    );
    let c2 = ctx(json!({"#unused": "x"}), json!({}));
    assert!(c2.check_unused().unwrap_err().message.contains("keys: {#unused}"));
}

#[test]
fn updates_apply_in_aws_order() {
    let it =
        item(json!({"pk": {"S": "k"}, "n": {"N": "1"}, "l": {"L": [{"S": "a"}]}, "s": {"SS": ["a", "b"]}}));
    let mut c = ctx(
        json!({}),
        json!({":one": {"N": "1"}, ":l": {"L": [{"S": "b"}]}, ":d": {"SS": ["a"]}, ":z": {"N": "0"}}),
    );
    let update = c
        .update("SET n = n + :one, l = list_append(l, :l), c = if_not_exists(c, :z) REMOVE gone ADD cnt :one DELETE s :d")
        .unwrap();
    let out = apply_update(&it, &update).unwrap();
    assert_eq!(out["n"].to_json(), json!({"N": "2"}));
    assert_eq!(out["l"].to_json(), json!({"L": [{"S": "a"}, {"S": "b"}]}));
    assert_eq!(out["c"].to_json(), json!({"N": "0"}));
    assert_eq!(out["cnt"].to_json(), json!({"N": "1"}));
    assert_eq!(out["s"].to_json(), json!({"SS": ["b"]}));
    let e = c.update("SET a = :one, a.b = :one").unwrap_err();
    assert!(e.message.contains("Two document paths overlap"), "{}", e.message);
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let mut c = ctx(json!({}), json!({":v": {"S": "x"}}));
    let deep = format!("{}a = :v{}", "(".repeat(2000), ")".repeat(2000));
    assert!(c.condition("ConditionExpression", &deep).is_err());
    let nots = format!("{}a = :v", "NOT ".repeat(1000));
    assert!(c.condition("ConditionExpression", &nots).is_err());
    let long = format!("a = :v{}", " AND a = :v".repeat(500));
    let e = c.condition("ConditionExpression", &long).unwrap_err();
    assert!(e.message.contains("Expression size has exceeded the maximum allowed size"), "{}", e.message);
    let fine = format!("{}a = :v{}", "(".repeat(10), ")".repeat(10));
    assert!(c.condition("ConditionExpression", &fine).is_ok());
}
