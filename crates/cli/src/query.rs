//! AWS's Query protocol from the client side: a form posted, an XML answer read into JSON
//! (elements become keys, `<member>` lists become arrays, text stays text). The stack commands
//! speak CloudFormation this way, exactly as the aws CLI does.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};

use crate::http::{Client, Error};

/// CloudFormation's API version.
pub const CLOUDFORMATION: &str = "2010-05-15";

/// Calls `action` with `params` (already flattened: `Parameters.member.1.ParameterKey` …) and
/// returns the `<ActionResult>` element as JSON.
pub fn call(
    client: &Client,
    version: &str,
    action: &str,
    params: &[(String, String)],
) -> Result<Value, Error> {
    let mut form = format!("Action={action}&Version={version}");
    for (key, value) in params {
        form.push('&');
        form.push_str(&encode(key));
        form.push('=');
        form.push_str(&encode(value));
    }
    let reply = client.send(
        "POST",
        "/",
        &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
        form.as_bytes(),
    )?;
    let document = to_json(&reply.body)
        .map_err(|reason| Error::Unexpected { url: format!("{}/ ({action})", client.endpoint()), reason })?;
    if !(200..300).contains(&reply.status) {
        let error = &document["ErrorResponse"]["Error"];
        return Err(match error["Code"].as_str() {
            Some(code) => Error::Aws {
                error_type: code.to_owned(),
                message: error["Message"].as_str().unwrap_or_default().to_owned(),
            },
            None => Error::Status {
                url: format!("{}/ ({action})", client.endpoint()),
                status: reply.status,
                body: String::from_utf8_lossy(&reply.body).chars().take(200).collect(),
            },
        });
    }
    Ok(document[format!("{action}Response")][format!("{action}Result")].clone())
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// An XML document as JSON: an element of text is a string, an element of elements an object,
/// and an element holding only `<member>`s an array.
pub fn to_json(xml: &[u8]) -> Result<Value, String> {
    let mut reader = Reader::from_reader(xml);
    let mut stack = vec![Open::default()];
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|error| format!("not XML ({error})"))? {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(Open { name, ..Open::default() });
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.local_name().as_ref()).into_owned();
                attach(stack.last_mut().expect("the root stays"), name, Value::String(String::new()));
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|error| format!("bad text ({error})"))?;
                stack.last_mut().expect("the root stays").text.push_str(&text);
            }
            Event::GeneralRef(reference) => {
                let resolved =
                    match reference.resolve_char_ref().map_err(|error| format!("bad reference ({error})"))? {
                        Some(ch) => ch.to_string(),
                        None => {
                            let name =
                                reference.decode().map_err(|error| format!("bad reference ({error})"))?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown entity &{name};"))?
                                .to_owned()
                        }
                    };
                stack.last_mut().expect("the root stays").text.push_str(&resolved);
            }
            Event::CData(data) => {
                stack.last_mut().expect("the root stays").text.push_str(&String::from_utf8_lossy(&data));
            }
            Event::End(_) => {
                let Open { name, fields, members, text } = stack.pop().expect("balanced by the reader");
                let value = if !members.is_empty() {
                    Value::Array(members)
                } else if !fields.is_empty() {
                    Value::Object(fields)
                } else {
                    Value::String(text)
                };
                let parent = stack.last_mut().ok_or("unbalanced XML")?;
                attach(parent, name, value);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let root = stack.pop().ok_or("unbalanced XML")?;
    Ok(Value::Object(root.fields))
}

/// An element being read: its name, child elements, `<member>` children and text.
#[derive(Default)]
struct Open {
    name: String,
    fields: Map<String, Value>,
    members: Vec<Value>,
    text: String,
}

fn attach(parent: &mut Open, name: String, value: Value) {
    if name == "member" {
        parent.members.push(value);
    } else {
        parent.fields.insert(name, value);
    }
}

/// A list field that may be absent or empty (`<Outputs/>`).
pub fn list(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answers_read_as_json() {
        let xml = br#"<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <DescribeStacksResult><Stacks><member><StackName>app</StackName><StackStatus>CREATE_COMPLETE</StackStatus>
  <Outputs><member><OutputKey>Url</OutputKey><OutputValue>http://a?b=1&amp;c=2</OutputValue></member></Outputs>
  <Tags/></member></Stacks></DescribeStacksResult></DescribeStacksResponse>"#;
        let json = to_json(xml).unwrap();
        let stack = &json["DescribeStacksResponse"]["DescribeStacksResult"]["Stacks"][0];
        assert_eq!(stack["StackName"], "app");
        assert_eq!(stack["Outputs"][0]["OutputValue"], "http://a?b=1&c=2");
        assert!(list(&stack["Tags"]).is_empty());
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
