//! Launch templates with versions (`$Default`, `$Latest`, numbers): what RunInstances and Auto
//! Scaling groups launch from.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::new_id;
use crate::query::{invalid, Input};
use crate::Ec2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchTemplate {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub default_version: u32,
    /// `LaunchTemplateData` of each version, as parsed from the form.
    pub versions: Vec<Value>,
}

impl Ec2 {
    pub(crate) fn create_launch_template(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input.required("LaunchTemplateName")?.to_owned();
        let data = input
            .get("LaunchTemplateData")
            .cloned()
            .ok_or_else(|| crate::query::missing("LaunchTemplateData"))?;
        if self.store.all::<LaunchTemplate>("launch-template", Some(region))?.iter().any(|t| t.name == name) {
            return Err(AwsError::new(
                400,
                "InvalidLaunchTemplateName.AlreadyExistsException",
                "Launch template name already in use.",
            ));
        }
        let template = LaunchTemplate {
            id: new_id("lt"),
            name,
            created_ms: self.now(),
            default_version: 1,
            versions: vec![data],
        };
        self.store.put("launch-template", &template.id, region, &template, template.created_ms)?;
        Ok(json!({ "launchTemplate": self.template_xml(&template) }))
    }

    pub(crate) fn create_launch_template_version(
        &self,
        region: &str,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let mut template = self.template(region, input)?;
        let mut data = match input.str("SourceVersion") {
            Some(v) => self.template_version(&template, Some(v))?.clone(),
            None => json!({}),
        };
        if let (Value::Object(base), Some(Value::Object(new))) = (&mut data, input.get("LaunchTemplateData"))
        {
            for (k, v) in new {
                base.insert(k.clone(), v.clone());
            }
        }
        template.versions.push(data);
        self.store.put("launch-template", &template.id, region, &template, template.created_ms)?;
        let number = template.versions.len();
        Ok(json!({ "launchTemplateVersion": {
            "launchTemplateId": template.id, "launchTemplateName": template.name, "versionNumber": number,
            "defaultVersion": false, "createTime": crate::iso8601(self.now()),
        }}))
    }

    fn template_xml(&self, t: &LaunchTemplate) -> Value {
        json!({
            "launchTemplateId": t.id, "launchTemplateName": t.name, "createTime": crate::iso8601(t.created_ms),
            "createdBy": format!("arn:aws:iam::{}:root", self.identity.account),
            "defaultVersionNumber": t.default_version, "latestVersionNumber": t.versions.len(),
        })
    }

    pub(crate) fn describe_launch_templates(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("LaunchTemplateId");
        let names = input.strings("LaunchTemplateName");
        let set: Vec<Value> = self
            .store
            .all::<LaunchTemplate>("launch-template", Some(region))?
            .iter()
            .filter(|t| ids.is_empty() || ids.contains(&t.id))
            .filter(|t| names.is_empty() || names.contains(&t.name))
            .map(|t| self.template_xml(t))
            .collect();
        if (!ids.is_empty() || !names.is_empty()) && set.is_empty() {
            return Err(AwsError::new(
                400,
                "InvalidLaunchTemplateName.NotFoundException",
                "At least one of the launch templates specified in the request does not exist.",
            ));
        }
        Ok(json!({ "launchTemplates": set }))
    }

    pub(crate) fn delete_launch_template(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let template = self.template(region, input)?;
        self.store.delete("launch-template", &template.id)?;
        Ok(json!({ "launchTemplate": self.template_xml(&template) }))
    }

    /// The template named by `LaunchTemplateId` or `LaunchTemplateName` in `spec`.
    pub(crate) fn template(&self, region: &str, spec: &Value) -> Result<LaunchTemplate, AwsError> {
        let templates = self.store.all::<LaunchTemplate>("launch-template", Some(region))?;
        let found = match (spec.str("LaunchTemplateId"), spec.str("LaunchTemplateName")) {
            (Some(id), _) => templates.into_iter().find(|t| t.id == id),
            (None, Some(name)) => templates.into_iter().find(|t| t.name == name),
            (None, None) => return Err(invalid("A launch template ID or name must be specified.")),
        };
        found.ok_or_else(|| {
            AwsError::new(
                400,
                "InvalidLaunchTemplateId.NotFound",
                "The specified launch template, with template ID or name, does not exist.".to_owned(),
            )
        })
    }

    fn template_version<'t>(
        &self,
        template: &'t LaunchTemplate,
        version: Option<&str>,
    ) -> Result<&'t Value, AwsError> {
        let number = match version {
            None | Some("$Default") => template.default_version as usize,
            Some("$Latest") => template.versions.len(),
            Some(v) => {
                v.parse::<usize>().map_err(|_| invalid(format!("Invalid launch template version: {v}")))?
            }
        };
        template.versions.get(number.wrapping_sub(1)).ok_or_else(|| {
            AwsError::new(
                400,
                "InvalidLaunchTemplateId.VersionNotFound",
                format!("Could not find launch template version {number} for template {}.", template.id),
            )
        })
    }

    /// The launch's input with the launch template's data under it (the request's own values win).
    pub(crate) fn with_launch_template(&self, region: &str, input: Value) -> Result<Value, AwsError> {
        let Some(spec) = input.get("LaunchTemplate") else { return Ok(input) };
        let template = self.template(region, spec)?;
        let mut merged = self.template_version(&template, spec.str("Version"))?.clone();
        if let (Value::Object(base), Value::Object(own)) = (&mut merged, &input) {
            for (k, v) in own {
                base.insert(k.clone(), v.clone());
            }
        }
        Ok(merged)
    }
}
