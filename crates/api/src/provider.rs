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

/// What a provider reports after creating or updating a resource.
#[derive(Clone, Debug, Default)]
pub struct Provisioned {
    /// The value of `Ref` and the resource's `PhysicalResourceId`.
    pub physical_id: String,
    /// Values `Fn::GetAtt` can read (`Arn`, `QueueUrl` …).
    pub attributes: Map<String, Value>,
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
