//! StateMachine (stub).
use crate::error::Result;
use crate::model::Out;
use serde_json::Value;
pub(crate) fn translate(_out: &mut Out, _id: &str, _resource: &Value) -> Result<()> {
    Ok(())
}
