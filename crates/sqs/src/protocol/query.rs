//! The Query protocol: form parameters (`Attribute.1.Name=…`, flattened lists and maps, as the
//! query-era model names them) become the JSON protocol's input shape, and JSON-shaped output
//! becomes `<{Op}Response><{Op}Result>…` XML.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{ApiRequest, ApiResponse, Body};
use serde_json::{Map, Value};

use super::{xml_escape, XML_NAMESPACE};
use crate::error::SqsError;

const OPERATIONS: &[&str] = &[
    "AddPermission",
    "CancelMessageMoveTask",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "CreateQueue",
    "DeleteMessage",
    "DeleteMessageBatch",
    "DeleteQueue",
    "GetQueueAttributes",
    "GetQueueUrl",
    "ListDeadLetterSourceQueues",
    "ListMessageMoveTasks",
    "ListQueueTags",
    "ListQueues",
    "PurgeQueue",
    "ReceiveMessage",
    "RemovePermission",
    "SendMessage",
    "SendMessageBatch",
    "SetQueueAttributes",
    "StartMessageMoveTask",
    "TagQueue",
    "UntagQueue",
];

/// Flattened lists of the query-era model: member name → JSON member name.
const LISTS: &[(&str, &str)] = &[
    ("AttributeName", "AttributeNames"),
    ("MessageAttributeName", "MessageAttributeNames"),
    ("MessageSystemAttributeName", "MessageSystemAttributeNames"),
    ("TagKey", "TagKeys"),
    ("AWSAccountId", "AWSAccountIds"),
    ("ActionName", "Actions"),
    ("StringListValue", "StringListValues"),
    ("BinaryListValue", "BinaryListValues"),
];

fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| super::percent_decode_plus(s);
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Whether a form body (or query string) is an SQS Query request.
pub fn is_sqs_form(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"Action=") && !bytes.windows(8).any(|w| w == b"&Action=") {
        return false;
    }
    let pairs = form_pairs(bytes);
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    get("Version") == Some("2012-11-05") && get("Action").is_some_and(|a| OPERATIONS.contains(&a))
}

enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
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

/// Children of an indexed node, in index order.
fn indexed(node: &Node) -> Vec<&Node> {
    let Node::Branch(children) = node else { return Vec::new() };
    let mut items: Vec<(u64, &Node)> =
        children.iter().filter_map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, v))).collect();
    items.sort_by_key(|(i, _)| *i);
    items.into_iter().map(|(_, v)| v).collect()
}

fn leaf(node: Option<&Node>) -> Option<String> {
    match node {
        Some(Node::Leaf(s)) => Some(s.clone()),
        _ => None,
    }
}

fn to_value(node: &Node, operation: &str) -> Value {
    match node {
        Node::Leaf(s) => Value::String(s.clone()),
        Node::Branch(children) => {
            let mut out = Map::new();
            for (key, child) in children {
                let (name, value) = convert(key, child, operation);
                out.insert(name, value);
            }
            Value::Object(out)
        }
    }
}

fn convert(key: &str, node: &Node, operation: &str) -> (String, Value) {
    if let Some((_, json)) = LISTS.iter().find(|(query, _)| *query == key) {
        let items = indexed(node).into_iter().filter_map(|n| leaf(Some(n))).map(Value::String).collect();
        return ((*json).to_owned(), Value::Array(items));
    }
    if key.ends_with("BatchRequestEntry") {
        let entries = indexed(node).into_iter().map(|n| to_value(n, operation)).collect();
        return ("Entries".to_owned(), Value::Array(entries));
    }
    let map_name = match key {
        "Attribute" => Some("Attributes"),
        "MessageAttribute" => Some("MessageAttributes"),
        "MessageSystemAttribute" => Some("MessageSystemAttributes"),
        "Tag" if operation == "CreateQueue" => Some("tags"),
        "Tag" => Some("Tags"),
        _ => None,
    };
    if let Some(map_name) = map_name {
        let mut map = Map::new();
        for entry in indexed(node) {
            let Node::Branch(fields) = entry else { continue };
            let Some(name) = leaf(fields.get("Name")).or_else(|| leaf(fields.get("Key"))) else { continue };
            let value = fields.get("Value").map_or(Value::Null, |v| to_value(v, operation));
            map.insert(name, value);
        }
        return (map_name.to_owned(), Value::Object(map));
    }
    (key.to_owned(), to_value(node, operation))
}

/// Parameter names have a few dot-separated parts (`Attribute.1.Name`); the tree built from
/// them is walked recursively, so a name of thousands of parts is refused rather than parsed.
pub const MAX_NAME_PARTS: usize = 16;

/// The operation and its JSON-shaped input.
pub fn parse(request: &ApiRequest) -> Result<(String, Value), SqsError> {
    let mut pairs = request.uri.query().map(|q| form_pairs(q.as_bytes())).unwrap_or_default();
    pairs.extend(form_pairs(&request.body));
    let mut root = BTreeMap::new();
    let mut operation = String::new();
    for (key, value) in pairs {
        match key.as_str() {
            "Action" => operation = value,
            "Version" => {}
            _ => {
                let path: Vec<&str> = key.splitn(MAX_NAME_PARTS + 1, '.').collect();
                if path.len() > MAX_NAME_PARTS {
                    let message =
                        format!("Parameter name {:.64}… has more than {MAX_NAME_PARTS} parts.", key);
                    return Err(SqsError::invalid(message));
                }
                insert(&mut root, &path, value)
            }
        }
    }
    let mut input = to_value(&Node::Branch(root), &operation);
    let path = request.uri.path().trim_matches('/');
    if input.get("QueueUrl").is_none() && path.split('/').count() == 2 {
        input["QueueUrl"] = Value::String(format!("http://{}/{path}", request.header("host").unwrap_or("")));
    }
    Ok((operation, input))
}

/// Entry element names of the batch results, per operation.
fn entry_name(operation: &str, key: &str) -> String {
    match key {
        "Successful" => format!("{}ResultEntry", operation),
        "Failed" => "BatchResultErrorEntry".to_owned(),
        "Results" => "ListMessageMoveTasksResultEntry".to_owned(),
        "Messages" => "Message".to_owned(),
        "QueueUrls" | "queueUrls" => "QueueUrl".to_owned(),
        _ => key.to_owned(),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => xml_escape(s),
        other => other.to_string(),
    }
}

fn render_value(operation: &str, key: &str, value: &Value, out: &mut String) {
    match (key, value) {
        ("Attributes" | "Tags" | "MessageAttributes", Value::Object(map)) => {
            let (element, name, value_element) = match key {
                "Attributes" => ("Attribute", "Name", "Value"),
                "Tags" => ("Tag", "Key", "Value"),
                _ => ("MessageAttribute", "Name", "Value"),
            };
            for (k, v) in map {
                out.push_str(&format!("<{element}><{name}>{}</{name}><{value_element}>", xml_escape(k)));
                match v {
                    Value::Object(fields) => render_fields(operation, fields, out),
                    other => out.push_str(&scalar(other)),
                }
                out.push_str(&format!("</{value_element}></{element}>"));
            }
        }
        ("StringListValues" | "BinaryListValues", Value::Array(items)) => {
            let element = key.trim_end_matches('s');
            for item in items {
                out.push_str(&format!("<{element}>{}</{element}>", scalar(item)));
            }
        }
        (_, Value::Array(items)) => {
            let element = entry_name(operation, key);
            for item in items {
                out.push_str(&format!("<{element}>"));
                match item {
                    Value::Object(fields) => render_fields(operation, fields, out),
                    other => out.push_str(&scalar(other)),
                }
                out.push_str(&format!("</{element}>"));
            }
        }
        (_, Value::Object(fields)) => {
            out.push_str(&format!("<{key}>"));
            render_fields(operation, fields, out);
            out.push_str(&format!("</{key}>"));
        }
        (_, Value::Null) => {}
        (_, other) => out.push_str(&format!("<{key}>{}</{key}>", scalar(other))),
    }
}

fn render_fields(operation: &str, fields: &Map<String, Value>, out: &mut String) {
    for (key, value) in fields {
        render_value(operation, key, value, out);
    }
}

pub fn render(operation: &str, output: &Value, request_id: &str) -> ApiResponse {
    let mut body = format!("<?xml version=\"1.0\"?><{operation}Response xmlns=\"{XML_NAMESPACE}\">");
    if let Value::Object(fields) = output {
        if !fields.is_empty() || has_result(operation) {
            body.push_str(&format!("<{operation}Result>"));
            render_fields(operation, fields, &mut body);
            body.push_str(&format!("</{operation}Result>"));
        }
    }
    body.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{operation}Response>",
        xml_escape(request_id)
    ));
    let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

fn has_result(operation: &str) -> bool {
    !matches!(
        operation,
        "AddPermission"
            | "ChangeMessageVisibility"
            | "DeleteMessage"
            | "DeleteQueue"
            | "PurgeQueue"
            | "RemovePermission"
            | "SetQueueAttributes"
            | "TagQueue"
            | "UntagQueue"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, body: &str) -> ApiRequest {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("host", "localhost:4566".parse().unwrap());
        ApiRequest {
            method: hyper::Method::POST,
            uri: uri.parse().unwrap(),
            headers,
            body: body.to_owned().into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn recognizes_sqs_forms_only() {
        assert!(is_sqs_form(b"Action=ListQueues&Version=2012-11-05"));
        assert!(!is_sqs_form(b"Action=ListQueues&Version=2010-05-08"));
        assert!(!is_sqs_form(b"Action=DescribeInstances&Version=2012-11-05"));
        assert!(!is_sqs_form(b"{\"json\":1}"));
    }

    #[test]
    fn flattened_members_become_json_shapes() {
        let body = "Action=SendMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F0%2Fq\
            &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two\
            &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one+1\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=color\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=red";
        let (operation, input) = parse(&request("/", body)).unwrap();
        assert_eq!(operation, "SendMessageBatch");
        assert_eq!(input["QueueUrl"], "http://h/0/q");
        assert_eq!(input["Entries"][0]["Id"], "a");
        assert_eq!(input["Entries"][0]["MessageBody"], "one 1");
        assert_eq!(input["Entries"][0]["MessageAttributes"]["color"]["StringValue"], "red");
        assert_eq!(input["Entries"][1]["Id"], "b");
    }

    #[test]
    fn queue_url_from_path_and_lists() {
        let body = "Action=ReceiveMessage&Version=2012-11-05&AttributeName.1=All&MessageAttributeName.1=x";
        let (_, input) = parse(&request("/000000000000/jobs", body)).unwrap();
        assert_eq!(input["QueueUrl"], "http://localhost:4566/000000000000/jobs");
        assert_eq!(input["AttributeNames"], serde_json::json!(["All"]));
        assert_eq!(input["MessageAttributeNames"], serde_json::json!(["x"]));
    }

    #[tokio::test]
    async fn renders_flattened_xml() {
        use http_body_util::BodyExt;
        let output = serde_json::json!({"Messages": [{"Body": "a<b", "Attributes": {"SentTimestamp": "1"}}]});
        let response = render("ReceiveMessage", &output, "rid");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("<Attributes>"));
        assert!(text.contains(
            "<Message><Body>a&lt;b</Body><Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute></Message>"
        ));
        assert!(text.contains("<RequestId>rid</RequestId>"));
    }

    #[test]
    fn names_of_too_many_parts_are_refused_not_recursed_into() {
        let name = |parts: usize| vec!["Attribute"; parts - 1].join(".") + ".Name";
        let ok = format!("Action=CreateQueue&QueueName=q&{}=x", name(MAX_NAME_PARTS));
        assert!(parse(&request("/", &ok)).is_ok());
        let deep = format!("Action=CreateQueue&QueueName=q&{}=x", name(50_000));
        let error = parse(&request("/", &deep)).unwrap_err();
        assert_eq!(error.code, "InvalidParameterValue");
    }
}
