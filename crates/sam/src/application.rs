//! `AWS::Serverless::Application` → a nested `AWS::CloudFormation::Stack`. `Location` is a URL
//! (as `sam package` leaves it) or a Serverless Application Repository `{ApplicationId,
//! SemanticVersion}`, which nimbus cannot fetch (no SAR): that is refused with a clear reason.

use serde_json::Value;

use crate::error::{ResourceError, Result};
use crate::model::{check_known, check_tags, passthrough_attrs, properties, tag_list, Cfn, Out};

const KNOWN: &[&str] =
    &["Location", "TemplateUrl", "Parameters", "NotificationARNs", "Tags", "TimeoutInMinutes"];

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let mut props = properties(resource);
    props.retain(|_, v| !v.is_null());
    check_known(id, "AWS::Serverless::Application", &props, KNOWN)?;
    let Some(location) = props.get("Location").cloned() else {
        return Err(ResourceError::new(id, "Missing required property 'Location'."));
    };
    check_tags(id, props.get("Tags"))?;
    // The translator's application plugin turns a URL Location into TemplateUrl; a SAR
    // application would need the repository.
    let url = match &location {
        Value::String(url) => Value::String(url.clone()),
        Value::Object(map) if map.contains_key("ApplicationId") => {
            return Err(ResourceError::new(
                id,
                "Serverless Application Repository applications are not available in nimbus; \
                 give Location as the URL of a template (sam package uploads it).",
            ))
        }
        Value::Object(_) => {
            return Err(ResourceError::new(id, "Resource is missing the required [ApplicationId] property."))
        }
        _ => return Err(ResourceError::new(id, "Property 'Location' should be a string or a map.")),
    };
    let mut stack = Cfn::with(id, "AWS::CloudFormation::Stack", &passthrough_attrs(resource));
    if let Some(d) = resource.get("DependsOn") {
        stack.attrs.insert("DependsOn".into(), d.clone());
    }
    stack.set_opt("Parameters", props.get("Parameters"));
    stack.set_opt("NotificationARNs", props.get("NotificationARNs"));
    stack.set("Tags", Value::Array(tag_list(props.get("Tags"), true)));
    stack.set_opt("TimeoutInMinutes", props.get("TimeoutInMinutes"));
    stack.set("TemplateURL", url);
    out.add(id, vec![stack])
}
