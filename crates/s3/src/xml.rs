//! The XML S3 speaks: a small writer for responses and a tree parser (quick-xml) for the few
//! request bodies (CompleteMultipartUpload, Delete, NotificationConfiguration …).

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::{S3Error, S3Result};

pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

pub struct XmlWriter {
    out: String,
    first: bool,
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        XmlWriter { out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), first: true }
    }

    /// Opens an element; the document's root carries S3's namespace.
    pub fn open(&mut self, name: &str) {
        if std::mem::take(&mut self.first) && name != "Error" {
            self.out.push_str(&format!("<{name} xmlns=\"{NAMESPACE}\">"));
        } else {
            self.out.push_str(&format!("<{name}>"));
        }
    }

    pub fn close(&mut self, name: &str) {
        self.out.push_str(&format!("</{name}>"));
    }

    pub fn elem(&mut self, name: &str, value: &str) {
        self.first = false;
        self.out.push_str(&format!("<{name}>{}</{name}>", nimbus_api::xml::escape(value)));
    }

    /// Markup written as is (elements with attributes, such as ACL grantees).
    pub fn raw(&mut self, markup: &str) {
        self.first = false;
        self.out.push_str(markup);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Default for XmlWriter {
    fn default() -> Self {
        XmlWriter::new()
    }
}

/// One element of a parsed document: local name (namespace prefix dropped), text, children.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// How deeply elements may nest. S3's request documents are at most seven levels deep
/// (`LifecycleConfiguration/Rule/Filter/And/Tag/Key`); without a bound, a well-formed document
/// nested tens of thousands deep builds a tree whose (recursive) drop overflows the stack and
/// aborts the process. Deeper documents cannot match S3's schema, so they are `MalformedXML`.
pub const MAX_DEPTH: usize = 64;

/// Parses a whole document into its root element; anything malformed is `MalformedXML`.
pub fn parse(body: &[u8]) -> S3Result<Node> {
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|_| S3Error::malformed_xml())?;
        match event {
            Event::Start(start) => {
                if stack.len() == MAX_DEPTH {
                    return Err(S3Error::malformed_xml());
                }
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(Node { name, ..Node::default() });
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.local_name().as_ref()).into_owned();
                let node = Node { name, ..Node::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let mut node = stack.pop().ok_or_else(S3Error::malformed_xml)?;
                if !node.children.is_empty() {
                    node.text.clear(); // whitespace between elements; leaf text is kept verbatim
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|_| S3Error::malformed_xml())?;
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&text);
                }
            }
            Event::CData(data) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|_| S3Error::malformed_xml())? {
                    Some(ch) => ch.to_string(),
                    None => {
                        let name = reference.decode().map_err(|_| S3Error::malformed_xml())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(S3Error::malformed_xml)?
                            .to_owned()
                    }
                };
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err(S3Error::malformed_xml()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_documents_with_entities() {
        let body = br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Object><Key>a &amp; b&#x20;c</Key></Object><Quiet>true</Quiet></Delete>"#;
        let root = parse(body).unwrap();
        assert_eq!(root.name, "Delete");
        assert_eq!(root.child("Object").unwrap().child_text("Key"), Some("a & b c"));
        assert_eq!(root.child_text("Quiet"), Some("true"));
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert_eq!(parse(b"<Delete><Object>").unwrap_err().code, "MalformedXML");
        assert_eq!(parse(b"").unwrap_err().code, "MalformedXML");
        assert_eq!(parse(b"<a></b>").unwrap_err().code, "MalformedXML");
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(parse(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err().code, "MalformedXML");
        // Deep enough to overflow the stack if the tree were built (or dropped) before refusing.
        let hostile = format!("<Delete>{}", "<Object>".repeat(200_000));
        assert_eq!(parse(hostile.as_bytes()).unwrap_err().code, "MalformedXML");
        let closed = nested(200_000);
        assert_eq!(parse(closed.as_bytes()).unwrap_err().code, "MalformedXML");
    }

    #[test]
    fn writer_escapes_and_namespaces_the_root() {
        let mut xml = XmlWriter::new();
        xml.open("R");
        xml.elem("K", "<&>");
        xml.close("R");
        let out = xml.finish();
        assert!(out.ends_with(&format!("<R xmlns=\"{NAMESPACE}\"><K>&lt;&amp;&gt;</K></R>")), "{out}");
    }
}
