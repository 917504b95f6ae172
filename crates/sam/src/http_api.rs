//! HttpApi (stub).
use crate::error::Result;
use crate::events::{Event, Target};
use crate::model::{Cfn, Out};
use serde_json::{Map, Value};
pub(crate) fn add_implicit_http_api(_sam: &mut Map<String, Value>, _errors: &mut Vec<String>) {}
pub(crate) fn translate(_out: &mut Out, _id: &str, _resource: &Value) -> Result<()> {
    Ok(())
}
pub(crate) fn event(_out: &mut Out, _event: &Event<'_>, _target: &Target) -> Result<Vec<Cfn>> {
    Ok(vec![])
}
