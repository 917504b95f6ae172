//! The Query protocol's form parameters (`Attributes.entry.1.key=…`, `Tags.member.1.Key=…`,
//! `MessageAttributes.entry.1.Value.DataType=…`) as one JSON value: `member` lists become
//! arrays, `entry` maps become objects keyed by their `key`/`Name`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Parameter names have a few dot-separated parts; deeper ones are refused, not recursed into.
const MAX_NAME_PARTS: usize = 16;

enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

/// Decodes a form component: `+` is a space, then `%XX` escapes.
fn decode(input: &str) -> String {
    crate::percent_decode(&input.replace('+', " "))
}

pub fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The action and its input, from the query string and the form body together.
pub fn parse(query: Option<&str>, body: &[u8]) -> Result<(String, Value), String> {
    let mut all = query.map(|q| pairs(q.as_bytes())).unwrap_or_default();
    all.extend(pairs(body));
    let mut root = BTreeMap::new();
    let mut action = String::new();
    for (key, value) in all {
        match key.as_str() {
            "Action" => action = value,
            "Version" => {}
            _ => {
                let path: Vec<&str> = key.splitn(MAX_NAME_PARTS + 1, '.').collect();
                if path.len() > MAX_NAME_PARTS {
                    return Err(format!("Parameter name {key:.64}… has too many parts"));
                }
                insert(&mut root, &path, value);
            }
        }
    }
    Ok((action, to_value(&Node::Branch(root))))
}

fn insert(branch: &mut BTreeMap<String, Node>, path: &[&str], value: String) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        branch.insert((*first).to_owned(), Node::Leaf(value));
        return;
    }
    let child = branch.entry((*first).to_owned()).or_insert_with(|| Node::Branch(BTreeMap::new()));
    if let Node::Branch(inner) = child {
        insert(inner, rest, value);
    }
}

fn indexed(children: &BTreeMap<String, Node>) -> Vec<&Node> {
    let mut items: Vec<(u64, &Node)> =
        children.iter().filter_map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, v))).collect();
    items.sort_by_key(|(i, _)| *i);
    items.into_iter().map(|(_, v)| v).collect()
}

fn to_value(node: &Node) -> Value {
    let children = match node {
        Node::Leaf(text) => return Value::String(text.clone()),
        Node::Branch(children) => children,
    };
    if children.len() == 1 {
        if let Some(Node::Branch(items)) = children.get("member") {
            return Value::Array(indexed(items).into_iter().map(to_value).collect());
        }
        if let Some(Node::Branch(entries)) = children.get("entry") {
            let mut map = Map::new();
            for entry in indexed(entries) {
                let Node::Branch(fields) = entry else { continue };
                let key = fields.get("key").or_else(|| fields.get("Name"));
                let Some(Node::Leaf(key)) = key else { continue };
                let value = fields.get("value").or_else(|| fields.get("Value")).map_or(Value::Null, to_value);
                map.insert(key.clone(), value);
            }
            return Value::Object(map);
        }
    }
    Value::Object(children.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_maps_become_json() {
        let body = "Action=PublishBatch&Version=2010-03-31&TopicArn=arn%3Ax\
            &PublishBatchRequestEntries.member.2.Id=b&PublishBatchRequestEntries.member.2.Message=two\
            &PublishBatchRequestEntries.member.1.Id=a&PublishBatchRequestEntries.member.1.Message=one+1\
            &PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Name=color\
            &PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.DataType=String\
            &PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.StringValue=red\
            &Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=d";
        let (action, input) = parse(None, body.as_bytes()).unwrap();
        assert_eq!(action, "PublishBatch");
        assert_eq!(input["TopicArn"], "arn:x");
        let entries = &input["PublishBatchRequestEntries"];
        assert_eq!(entries[0]["Message"], "one 1");
        assert_eq!(entries[0]["MessageAttributes"]["color"]["StringValue"], "red");
        assert_eq!(entries[1]["Id"], "b");
        assert_eq!(input["Attributes"]["DisplayName"], "d");
    }
}
