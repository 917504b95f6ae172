//! CodeDeploy's resource types for CloudFormation: `Application`, `DeploymentGroup` and
//! `DeploymentConfig` (the kinds SAM's `DeploymentPreference` emits, and a custom traffic
//! routing), kept for the deployments an alias update runs.

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use serde_json::{Map, Value};

use crate::CodeDeploy;

pub const RESOURCE_TYPES: &[&str] = &[
    "AWS::CodeDeploy::Application",
    "AWS::CodeDeploy::DeploymentGroup",
    "AWS::CodeDeploy::DeploymentConfig",
];

fn db(e: nimbus_store::DbError) -> ProviderError {
    ProviderError::new(e.to_string())
}

impl CodeDeploy {
    fn provision(
        &self,
        request: &ResourceRequest,
        physical: Option<String>,
    ) -> Result<Provisioned, ProviderError> {
        let name = |key: &str, max: usize| {
            physical
                .clone()
                .or_else(|| request.string(key).map(str::to_owned))
                .unwrap_or_else(|| request.generated_name(max, false))
        };
        match request.resource_type.as_str() {
            "AWS::CodeDeploy::Application" => {
                let name = name("ApplicationName", 100);
                let platform = request.string("ComputePlatform").unwrap_or("Server");
                self.store.put_application(&name, platform).map_err(db)?;
                Ok(Provisioned { physical_id: name, attributes: Map::new() })
            }
            "AWS::CodeDeploy::DeploymentGroup" => {
                let application = request
                    .string("ApplicationName")
                    .ok_or_else(|| ProviderError::new("Property ApplicationName cannot be empty."))?
                    .to_owned();
                if !self.store.has_application(&application).map_err(db)? {
                    return Err(ProviderError::new(format!("No application found for name: {application}")));
                }
                let config =
                    request.string("DeploymentConfigName").unwrap_or("CodeDeployDefault.LambdaAllAtOnce");
                if crate::Routing::predefined(config).is_none()
                    && config.starts_with("CodeDeployDefault.Lambda")
                    && self.store.config(config).map_err(db)?.is_none()
                {
                    return Err(ProviderError::new(format!(
                        "No deployment configuration found for name: {config}"
                    )));
                }
                let name = name("DeploymentGroupName", 100);
                self.store
                    .put_group(&application, &name, &Value::Object(request.properties.clone()))
                    .map_err(db)?;
                Ok(Provisioned { physical_id: name, attributes: Map::new() })
            }
            _ => {
                let name = name("DeploymentConfigName", 100);
                let routing = request.property("TrafficRoutingConfig").cloned().unwrap_or_default();
                crate::Routing::from_config(&routing).map_err(ProviderError::new)?;
                self.store.put_config(&name, &routing).map_err(db)?;
                Ok(Provisioned { physical_id: name, attributes: Map::new() })
            }
        }
    }
}

impl ResourceProvider for CodeDeploy {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            "AWS::CodeDeploy::Application" => matches!(property, "ApplicationName" | "ComputePlatform"),
            "AWS::CodeDeploy::DeploymentGroup" => {
                matches!(property, "ApplicationName" | "DeploymentGroupName")
            }
            _ => true,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { tokio::task::block_in_place(|| self.provision(&request, None)) })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { tokio::task::block_in_place(|| self.provision(&request, Some(physical_id))) })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            tokio::task::block_in_place(|| match request.resource_type.as_str() {
                "AWS::CodeDeploy::Application" => self.store.delete_application(&physical_id).map_err(db),
                "AWS::CodeDeploy::DeploymentGroup" => {
                    let application = request.string("ApplicationName").unwrap_or_default();
                    self.store.delete_group(application, &physical_id).map_err(db)
                }
                _ => self.store.delete_config(&physical_id).map_err(db),
            })
        })
    }
}
