//! Resource providers: how a service creates, updates and deletes its own CloudFormation resource
//! types. The stacks engine holds no service logic: it resolves a template to properties, orders
//! the work, and asks the provider of each type. A service implements [`ResourceProvider`] beside
//! its API (e.g. `crates/lambda/src/provider.rs`); the binary registers the providers in one place.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// One resource of a stack, its properties resolved (no intrinsic functions left).
#[derive(Clone, Debug)]
pub struct ResourceRequest {
    /// `AWS::Lambda::Function` …
    pub resource_type: String,
    pub logical_id: String,
    pub stack_name: String,
    /// The stack's ARN (`arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID`).
    pub stack_id: String,
    pub region: String,
    pub account: String,
    pub properties: Map<String, Value>,
    /// Tags the stack propagates to every resource (`aws:cloudformation:stack-name` and the
    /// stack's own tags), for types that take tags.
    pub tags: Vec<(String, String)>,
}

impl ResourceRequest {
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name).filter(|value| !value.is_null())
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        self.property(name).and_then(Value::as_str)
    }

    /// The name CloudFormation gives a resource whose template names none:
    /// `STACK-LOGICALID-RANDOM`, shortened to fit `max_len` (stack name first, then the logical
    /// id), lower case where the service wants it (S3 buckets).
    pub fn generated_name(&self, max_len: usize, lowercase: bool) -> String {
        generated_name(&self.stack_name, &self.logical_id, max_len, lowercase)
    }
}

impl ResourceRequest {
    /// A request as a stack in `us-east-1` of account `000000000000` would make it, tagged with
    /// the stack's name: what the providers' unit tests start from.
    pub fn example(stack: &str, logical_id: &str, resource_type: &str, properties: Value) -> ResourceRequest {
        ResourceRequest {
            resource_type: resource_type.to_owned(),
            logical_id: logical_id.to_owned(),
            stack_name: stack.to_owned(),
            stack_id: format!("arn:aws:cloudformation:us-east-1:000000000000:stack/{stack}/1"),
            region: "us-east-1".into(),
            account: "000000000000".into(),
            properties: properties.as_object().cloned().unwrap_or_default(),
            tags: vec![("aws:cloudformation:stack-name".into(), stack.to_owned())],
        }
    }
}

/// What a provider reports after creating or updating a resource.
#[derive(Clone, Debug, Default)]
pub struct Provisioned {
    /// The value of `Ref` and the resource's `PhysicalResourceId`.
    pub physical_id: String,
    /// Values `Fn::GetAtt` can read (`Arn`, `QueueUrl` …).
    pub attributes: Map<String, Value>,
}

/// Where a provider leaves a note for the stack's event (the attribute is not kept).
const NOTE: &str = "nimbus:note";

impl Provisioned {
    /// Done, with something the user should know (the resource's `*_COMPLETE` event says it).
    pub fn with_note(mut self, note: impl Into<String>) -> Provisioned {
        self.attributes.insert(NOTE.to_owned(), Value::String(note.into()));
        self
    }

    /// The note a provider left, taken out of the attributes.
    pub fn take_note(&mut self) -> Option<String> {
        match self.attributes.remove(NOTE) {
            Some(Value::String(note)) => Some(note),
            _ => None,
        }
    }
}

/// Why a provider could not do what was asked; the text becomes the resource's status reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
}

impl ProviderError {
    pub fn new(message: impl Into<String>) -> ProviderError {
        ProviderError { message: message.into() }
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

/// A service's resource types.
pub trait ResourceProvider: Send + Sync + 'static {
    /// The types this provider owns (`AWS::SQS::Queue` …).
    fn resource_types(&self) -> &'static [&'static str];

    /// Whether changing `property` of a resource of this type replaces it (a new physical
    /// resource, the old one deleted after the update succeeds) rather than updating it in place:
    /// the "Update requires: Replacement" of AWS's resource reference.
    fn replaces(&self, resource_type: &str, property: &str) -> bool;

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned>;

    /// Brings `physical_id` from `previous` properties to `request.properties`, in place.
    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned>;

    /// Deletes the resource; one already gone is not an error (deletes are retried).
    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()>;
}

/// Calls a service's own API in-process (its handlers, validation and error messages), as a
/// provider does to create or change its resources. A response status of 300 or more becomes a
/// [`ProviderError`] carrying the service's error message.
pub async fn call(
    service: &dyn crate::Service,
    method: hyper::Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<bytes::Bytes, ProviderError> {
    let uri: hyper::Uri = path_and_query
        .parse()
        .map_err(|_| ProviderError::new(format!("invalid request path {path_and_query}")))?;
    let mut map = hyper::HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    let request = crate::ApiRequest {
        method,
        uri,
        headers: map,
        body: bytes::Bytes::from(body),
        request_id: crate::new_request_id(),
    };
    let response = service.call(request).await;
    let status = response.status();
    let code = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    if status.as_u16() >= 300 {
        return Err(ProviderError::new(error_message(status.as_u16(), code.as_deref(), &bytes)));
    }
    Ok(bytes)
}

/// The message of an error document in any protocol's shape (JSON `message`, XML `<Message>`).
fn error_message(status: u16, header_code: Option<&str>, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) {
        let message = ["message", "Message", "errorMessage"].iter().find_map(|k| map.get(*k)?.as_str());
        let code = header_code.or_else(|| ["__type", "code"].iter().find_map(|k| map.get(*k)?.as_str()));
        if let Some(message) = message {
            return match code {
                Some(code) if code != "User" && code != "Service" => {
                    format!(
                        "{message} (Service: {}, Status Code: {status})",
                        code.rsplit('#').next().unwrap_or(code)
                    )
                }
                _ => message.to_owned(),
            };
        }
    }
    match (xml_field(&text, "Message"), xml_field(&text, "Code")) {
        (Some(message), Some(code)) => format!("{message} (Service: {code}, Status Code: {status})"),
        (Some(message), None) => message,
        _ => format!("the service answered {status}: {}", text.chars().take(200).collect::<String>()),
    }
}

/// The text of the first `<name>…</name>` element of an XML document (unescaped).
pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A property as text, whatever JSON scalar the template gave (`"5"`, `5`, `true`).
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A property as JSON text: documents given as objects (`PolicyDocument`) or as strings.
pub fn document(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `[{Key, Value}]` tags as a map.
pub fn tag_map(tags: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(Value::Array(items)) = tags {
        for tag in items {
            if let Some(key) = tag.get("Key").and_then(Value::as_str) {
                out.insert(key.to_owned(), Value::String(tag.get("Value").map(text).unwrap_or_default()));
            }
        }
    }
    out
}

/// Numbers written as strings (YAML, parameters) become numbers for the named properties.
pub fn numbers(properties: &mut Map<String, Value>, names: &[&str]) {
    for name in names {
        if let Some(Value::String(s)) = properties.get(*name) {
            if let Ok(n) = s.parse::<i64>() {
                properties.insert((*name).to_owned(), Value::from(n));
            }
        }
    }
}

/// Booleans written as strings become booleans for the named properties.
pub fn booleans(properties: &mut Map<String, Value>, names: &[&str]) {
    for name in names {
        if let Some(Value::String(s)) = properties.get(*name) {
            properties.insert((*name).to_owned(), Value::Bool(s.eq_ignore_ascii_case("true")));
        }
    }
}

/// A CloudFormation property tree in a JSON API's spelling: `PascalCase` keys become
/// `camelCase` (`MinvCpus` → `minvCpus`), except inside the properties named in `keep` (maps of
/// the user's own keys: `Tags`, `Variables` …), which are copied as written.
pub fn camel_keys(value: &Value, keep: &[&str]) -> Value {
    recase_keys(value, keep, false)
}

/// [`camel_keys`] both ways: `upper` turns a JSON API's `camelCase` answer back into
/// `PascalCase` (as Step Functions' optimized integrations answer).
pub fn recase_keys(value: &Value, keep: &[&str], upper: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| {
                    let v =
                        if keep.contains(&key.as_str()) { v.clone() } else { recase_keys(v, keep, upper) };
                    let mut chars = key.chars();
                    let key = match chars.next() {
                        Some(first) if upper => first.to_ascii_uppercase().to_string() + chars.as_str(),
                        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                        None => String::new(),
                    };
                    (key, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| recase_keys(v, keep, upper)).collect()),
        other => other.clone(),
    }
}

/// See [`ResourceRequest::generated_name`].
pub fn generated_name(stack: &str, logical_id: &str, max_len: usize, lowercase: bool) -> String {
    const SUFFIX_LEN: usize = 13;
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(SUFFIX_LEN)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    // Two dashes and the suffix are always kept; the rest is shared, the logical id first.
    let room = max_len.saturating_sub(SUFFIX_LEN + 2);
    // A short stack name leaves the logical id the rest; a long one leaves it half.
    let logical_keep = logical_id.len().min((room / 2).max(room.saturating_sub(stack.len())));
    let logical: String = logical_id.chars().take(logical_keep).collect();
    let stack: String = stack.chars().take(room - logical.len()).collect();
    let name = format!("{stack}-{logical}-{suffix}");
    if lowercase {
        name.to_ascii_lowercase()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_keys_leave_user_maps_alone() {
        let value = serde_json::json!({"ComputeResources": {"MinvCpus": 0}, "Tags": {"Team": "x"}, "L": [{"Name": "a"}]});
        assert_eq!(
            camel_keys(&value, &["Tags"]),
            serde_json::json!({"computeResources": {"minvCpus": 0}, "tags": {"Team": "x"}, "l": [{"name": "a"}]})
        );
    }

    #[test]
    fn generated_names_fit_and_keep_both_parts() {
        let name = generated_name("my-stack", "Queue", 80, false);
        assert!(name.starts_with("my-stack-Queue-"), "{name}");
        assert_eq!(name.len(), "my-stack-Queue-".len() + 13);
        let long = generated_name(&"s".repeat(100), &"L".repeat(100), 63, true);
        assert_eq!(long.len(), 63, "{long}");
        assert!(long.contains("-lll") && long.starts_with("sss"), "{long}");
        assert_eq!(long, long.to_ascii_lowercase());
    }
}
