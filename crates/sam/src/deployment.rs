//! DeploymentPreference (stub).
use crate::error::Result;
use crate::model::{Cfn, Out};
use serde_json::{Map, Value};

#[derive(Default)]
pub(crate) struct Preferences {}

pub(crate) fn add(
    _out: &mut Out,
    _id: &str,
    _resource: &Value,
    _props: &Map<String, Value>,
    _alias: &mut Cfn,
) -> Result<()> {
    Ok(())
}
pub(crate) fn add_without_alias(
    _out: &mut Out,
    _id: &str,
    _resource: &Value,
    _props: &Map<String, Value>,
) -> Result<()> {
    Ok(())
}
pub(crate) fn finish(_out: &mut Out) -> Result<()> {
    Ok(())
}
