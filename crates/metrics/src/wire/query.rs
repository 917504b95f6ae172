//! The Query protocol (`Action=GetMetricStatistics&Version=2010-08-01&…`, form-encoded, answered
//! in XML): older SDKs and the aws CLI v2. Lists are `Name.member.N`, timestamps ISO 8601.

use std::collections::BTreeMap;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::Value;

use crate::error::CwError;
use crate::out::Out;

pub const CONTENT_TYPE: &str = "text/xml";
pub const VERSION: &str = "2010-08-01";
const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// A decoded request: `Action`, `Version` and the other parameters as a document.
#[derive(Debug)]
pub struct Form {
    pub action: Option<String>,
    pub version: Option<String>,
    pub document: Value,
}

enum Node {
    Leaf(String),
    Tree(BTreeMap<String, Node>),
    List(BTreeMap<u32, Node>),
}

/// How many `.`-separated parts a parameter name may have. CloudWatch's deepest names have
/// nine (`MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name`); the
/// document is built, converted and dropped recursively, so a name with tens of thousands of
/// parts would overflow the stack and abort the process.
pub const MAX_NAME_PARTS: usize = 64;

/// Parameters from the URI's query and the form body alike.
pub fn decode(query: Option<&str>, body: &[u8]) -> Result<Form, CwError> {
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes()).chain(form_urlencoded::parse(body));
    let (mut action, mut version, mut root) = (None, None, BTreeMap::new());
    for (key, value) in pairs {
        match &*key {
            "Action" => action = Some(value.into_owned()),
            "Version" => version = Some(value.into_owned()),
            _ => {
                let path: Vec<&str> = key.splitn(MAX_NAME_PARTS + 1, '.').collect();
                if path.len() > MAX_NAME_PARTS {
                    let message = format!("A parameter name has more than {MAX_NAME_PARTS} parts.");
                    return Err(CwError::invalid(message));
                }
                insert(&mut root, &path, value.into_owned())
            }
        }
    }
    Ok(Form { action, version, document: to_json(Node::Tree(root)) })
}

fn insert(tree: &mut BTreeMap<String, Node>, path: &[&str], value: String) {
    let Some((key, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        tree.insert(key.to_string(), Node::Leaf(value));
        return;
    }
    if let ["member", index, rest @ ..] = rest {
        if let Ok(index) = index.parse::<u32>() {
            let list = tree.entry(key.to_string()).or_insert_with(|| Node::List(BTreeMap::new()));
            if let Node::List(items) = list {
                if rest.is_empty() {
                    items.insert(index, Node::Leaf(value));
                } else if let Node::Tree(item) =
                    items.entry(index).or_insert_with(|| Node::Tree(BTreeMap::new()))
                {
                    insert(item, rest, value);
                }
            }
            return;
        }
    }
    if let Node::Tree(child) = tree.entry(key.to_string()).or_insert_with(|| Node::Tree(BTreeMap::new())) {
        insert(child, rest, value);
    }
}

fn to_json(node: Node) -> Value {
    match node {
        Node::Leaf(value) => Value::String(value),
        Node::Tree(members) => members.into_iter().map(|(k, v)| (k, to_json(v))).collect(),
        Node::List(items) => Value::Array(items.into_values().map(to_json).collect()),
    }
}

/// `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…</ResponseMetadata></OpResponse>`.
pub fn encode(operation: &str, out: &Out, request_id: &str) -> Vec<u8> {
    let mut xml = Xml::new();
    let response = format!("{operation}Response");
    xml.open(&response, Some(XMLNS));
    xml.element(&format!("{operation}Result"), out);
    xml.open("ResponseMetadata", None);
    xml.text("RequestId", request_id);
    xml.close("ResponseMetadata");
    xml.close(&response);
    xml.finish()
}

/// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
pub fn error(error: &CwError, request_id: &str) -> Vec<u8> {
    let mut xml = Xml::new();
    xml.open("ErrorResponse", Some(XMLNS));
    xml.open("Error", None);
    xml.text("Type", error.kind.fault());
    xml.text("Code", error.kind.code());
    xml.text("Message", &error.message);
    xml.close("Error");
    xml.text("RequestId", request_id);
    xml.close("ErrorResponse");
    xml.finish()
}

struct Xml(Writer<Vec<u8>>);

impl Xml {
    fn new() -> Xml {
        let mut writer = Writer::new(Vec::new());
        // Writing to a Vec cannot fail: the results below are ignored for that reason.
        let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        Xml(writer)
    }

    fn open(&mut self, name: &str, xmlns: Option<&str>) {
        let mut start = BytesStart::new(name);
        if let Some(xmlns) = xmlns {
            start.push_attribute(("xmlns", xmlns));
        }
        let _ = self.0.write_event(Event::Start(start));
    }

    fn close(&mut self, name: &str) {
        let _ = self.0.write_event(Event::End(BytesEnd::new(name)));
    }

    fn text(&mut self, name: &str, text: &str) {
        self.open(name, None);
        // Escaped here (not by quick-xml) so forbidden characters become U+FFFD.
        let _ = self.0.write_event(Event::Text(BytesText::from_escaped(nimbus_api::xml::escape(text))));
        self.close(name);
    }

    fn element(&mut self, name: &str, out: &Out) {
        match out {
            Out::Str(s) => self.text(name, s),
            Out::Int(n) => self.text(name, &n.to_string()),
            Out::Bool(b) => self.text(name, if *b { "true" } else { "false" }),
            Out::Double(x) => self.text(name, &x.to_string()),
            Out::Time(seconds) => self.text(name, &Out::iso8601(*seconds)),
            Out::List(items) => {
                self.open(name, None);
                items.iter().for_each(|item| self.element("member", item));
                self.close(name);
            }
            Out::Struct(members) => {
                self.open(name, None);
                members.iter().for_each(|(member, value)| self.element(member, value));
                self.close(name);
            }
            Out::Map(entries) => {
                self.open(name, None);
                for (key, value) in entries {
                    self.open("entry", None);
                    self.text("key", key);
                    self.element("value", value);
                    self.close("entry");
                }
                self.close(name);
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn nested_members_become_lists_of_structures() {
        let body = "Action=GetMetricData&Version=2010-08-01&StartTime=2024-01-01T00%3A00%3A00Z\
            &MetricDataQueries.member.2.Id=b&MetricDataQueries.member.1.Id=a\
            &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=FunctionName\
            &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value=my%20fn\
            &MetricDataQueries.member.1.MetricStat.Period=60&Statistics.member.1=Sum&Statistics.member.2=Maximum";
        let form = decode(None, body.as_bytes()).unwrap();
        assert_eq!(form.action.as_deref(), Some("GetMetricData"));
        assert_eq!(form.version.as_deref(), Some("2010-08-01"));
        assert_eq!(
            form.document,
            json!({
                "StartTime": "2024-01-01T00:00:00Z",
                "MetricDataQueries": [
                    {"Id": "a", "MetricStat": {"Metric": {"Dimensions": [{"Name": "FunctionName", "Value": "my fn"}]}, "Period": "60"}},
                    {"Id": "b"}
                ],
                "Statistics": ["Sum", "Maximum"]
            })
        );
    }

    #[test]
    fn parameter_names_nest_a_bounded_depth() {
        let name = |parts: usize| vec!["A"; parts].join(".");
        assert!(decode(None, format!("{}=x", name(MAX_NAME_PARTS)).as_bytes()).is_ok());
        let error = decode(None, format!("{}=x", name(MAX_NAME_PARTS + 1)).as_bytes()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidParameterValue);
        // Deep enough to overflow the stack if the document were built.
        assert!(decode(None, format!("{}=x", name(200_000)).as_bytes()).is_err());
    }

    #[test]
    fn uri_query_parameters_count_too() {
        let form = decode(Some("Action=ListMetrics&Version=2010-08-01&Namespace=AWS%2FLambda"), b"").unwrap();
        assert_eq!(form.action.as_deref(), Some("ListMetrics"));
        assert_eq!(form.document, json!({"Namespace": "AWS/Lambda"}));
    }

    #[test]
    fn responses_wrap_results_with_members_entries_and_request_id() {
        let out = Out::Struct(vec![
            ("Label", Out::str("Duration & more")),
            (
                "Datapoints",
                Out::List(vec![Out::Struct(vec![
                    ("Timestamp", Out::Time(60)),
                    ("Sum", Out::Double(1.5)),
                    ("ExtendedStatistics", Out::Map(vec![("p99".into(), Out::Double(3.0))])),
                ])]),
            ),
        ]);
        let xml = String::from_utf8(encode("GetMetricStatistics", &out, "req-1")).unwrap();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <GetMetricStatisticsResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">\
             <GetMetricStatisticsResult><Label>Duration &amp; more</Label><Datapoints><member>\
             <Timestamp>1970-01-01T00:01:00Z</Timestamp><Sum>1.5</Sum><ExtendedStatistics>\
             <entry><key>p99</key><value>3</value></entry></ExtendedStatistics></member></Datapoints>\
             </GetMetricStatisticsResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>\
             </GetMetricStatisticsResponse>"
        );
    }

    #[test]
    fn errors_carry_type_code_message_and_request_id() {
        let xml = String::from_utf8(error(&CwError::new(ErrorKind::MissingParameter, "x <y>"), "r")).unwrap();
        assert!(xml.contains(
            "<Error><Type>Sender</Type><Code>MissingParameter</Code><Message>x &lt;y&gt;</Message></Error><RequestId>r</RequestId>"
        ));
    }
}
