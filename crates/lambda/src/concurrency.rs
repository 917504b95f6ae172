//! Reserved concurrency (Put/Get/DeleteFunctionConcurrency), provisioned concurrency
//! (Put/Get/Delete/ListProvisionedConcurrencyConfig) and GetAccountSettings.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::registry::LATEST;
use crate::Lambda;

/// AWS keeps this many of the account's concurrency for functions without a reservation.
const UNRESERVED_MINIMUM: i64 = 100;

impl Lambda {
    pub(crate) async fn put_concurrency(&self, name: &str, body: &[u8]) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let input: Value = crate::functions::parse(body)?;
        let reserved = input["ReservedConcurrentExecutions"]
            .as_i64()
            .ok_or_else(|| AwsError::validation("1 validation error detected: Value null at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must not be null"))?;
        if reserved < 0 {
            return Err(crate::validate::constraint(
                reserved,
                "reservedConcurrentExecutions",
                "Member must have value greater than or equal to 0",
            ));
        }
        let others: i64 = self
            .registry
            .all()
            .iter()
            .filter(|f| f.name() != function.name())
            .filter_map(|f| f.resource("concurrency", "").and_then(Value::as_i64))
            .sum();
        if self.account_concurrency() - others - reserved < UNRESERVED_MINIMUM {
            return Err(AwsError::invalid_parameter(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MINIMUM}]."
            )));
        }
        self.registry.put_resource(function.name(), "concurrency", "", json!(reserved)).await?;
        self.registry.reserved_cell(function.name()).store(reserved, Ordering::Release);
        Ok(json!({ "ReservedConcurrentExecutions": reserved }))
    }

    pub(crate) fn get_concurrency(&self, name: &str) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        Ok(match function.resource("concurrency", "") {
            Some(reserved) => json!({ "ReservedConcurrentExecutions": reserved }),
            None => json!({}),
        })
    }

    pub(crate) async fn delete_concurrency(&self, name: &str) -> Result<(), AwsError> {
        let function = self.function(name)?;
        self.registry.delete_resource(function.name(), "concurrency", "").await?;
        self.registry.reserved_cell(function.name()).store(-1, Ordering::Release);
        Ok(())
    }

    pub(crate) fn account_settings(&self) -> Value {
        let functions = self.registry.all();
        let reserved: i64 =
            functions.iter().filter_map(|f| f.resource("concurrency", "").and_then(Value::as_i64)).sum();
        let code_size: u64 = functions
            .iter()
            .flat_map(|f| std::iter::once(&f.latest).chain(f.versions.values()))
            .map(|entry| entry.stored.configuration.code_size)
            .sum();
        json!({
            "AccountLimit": {
                "TotalCodeSize": 80_530_636_800u64,
                "CodeSizeUnzipped": 262_144_000,
                "CodeSizeZipped": 52_428_800,
                "ConcurrentExecutions": self.account_concurrency(),
                "UnreservedConcurrentExecutions": self.account_concurrency() - reserved,
            },
            "AccountUsage": { "TotalCodeSize": code_size, "FunctionCount": functions.len() },
        })
    }

    fn account_concurrency(&self) -> i64 {
        self.engine.max_concurrency() as i64
    }

    /// Starts `ProvisionedConcurrentExecutions` environments of a version (or an alias's
    /// version) in the background: `IN_PROGRESS`, then `READY` or `FAILED`.
    pub(crate) async fn put_provisioned(
        self: &Arc<Self>,
        name: &str,
        qualifier: Option<&str>,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let qualifier = self.provisioned_qualifier(qualifier)?;
        let target = self.find(name, Some(&qualifier))?;
        let input: Value = crate::functions::parse(body)?;
        let count = input["ProvisionedConcurrentExecutions"].as_i64().unwrap_or(0);
        if count < 1 {
            return Err(crate::validate::constraint(
                count,
                "provisionedConcurrentExecutions",
                "Member must have value greater than or equal to 1",
            ));
        }
        let config = json!({
            "RequestedProvisionedConcurrentExecutions": count,
            "AvailableProvisionedConcurrentExecutions": 0,
            "AllocatedProvisionedConcurrentExecutions": 0,
            "Status": "IN_PROGRESS",
            "LastModified": crate::functions::now(),
        });
        let function = target.function.name().to_owned();
        self.registry.put_resource(&function, "provisioned", &qualifier, config.clone()).await?;
        let lambda = self.clone();
        let spec = target.entry.spec.clone();
        tokio::spawn(async move {
            let outcome = lambda.engine.provision(&spec, count as usize).await;
            let mut done = config;
            match outcome {
                Ok(()) => {
                    done["Status"] = json!("READY");
                    done["AvailableProvisionedConcurrentExecutions"] = json!(count);
                    done["AllocatedProvisionedConcurrentExecutions"] = json!(count);
                }
                Err(error) => {
                    done["Status"] = json!("FAILED");
                    done["StatusReason"] = json!(error.to_string());
                }
            }
            let _ = lambda.registry.put_resource(&function, "provisioned", &qualifier, done).await;
        });
        self.get_provisioned(name, Some(&target.qualifier.unwrap_or_default()))
    }

    pub(crate) fn get_provisioned(&self, name: &str, qualifier: Option<&str>) -> Result<Value, AwsError> {
        let qualifier = self.provisioned_qualifier(qualifier)?;
        let function = self.function(name)?;
        function.resource("provisioned", &qualifier).cloned().ok_or_else(|| {
            AwsError::not_found("No Provisioned Concurrency Config found for this function")
                .with_code("ProvisionedConcurrencyConfigNotFoundException")
        })
    }

    pub(crate) async fn delete_provisioned(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), AwsError> {
        let qualifier = self.provisioned_qualifier(qualifier)?;
        let target = self.find(name, Some(&qualifier))?;
        self.registry.delete_resource(target.function.name(), "provisioned", &qualifier).await?;
        self.engine.unprovision(target.function.name(), &target.entry.stored.configuration.version);
        Ok(())
    }

    pub(crate) fn list_provisioned(&self, name: &str) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let configs: Vec<Value> = function
            .resources_of("provisioned")
            .map(|(qualifier, config)| {
                let mut config = config.clone();
                config["FunctionArn"] = json!(format!("{}:{qualifier}", self.function_arn(function.name())));
                config
            })
            .collect();
        Ok(json!({ "ProvisionedConcurrencyConfigs": configs }))
    }

    /// Starts the provisioned environments stored before a restart.
    pub(crate) fn restore_provisioned(self: &Arc<Self>) {
        for function in self.registry.all() {
            for (qualifier, config) in function.resources_of("provisioned") {
                let count = config["RequestedProvisionedConcurrentExecutions"].as_u64().unwrap_or(0) as usize;
                let Ok(target) = self.find(function.name(), Some(qualifier)) else { continue };
                let lambda = self.clone();
                tokio::spawn(async move {
                    let _ = lambda.engine.provision(&target.entry.spec, count).await;
                });
            }
        }
    }

    fn provisioned_qualifier(&self, qualifier: Option<&str>) -> Result<String, AwsError> {
        match qualifier {
            None | Some("") => {
                Err(AwsError::invalid_parameter("Qualifier is required for provisioned concurrency"))
            }
            Some(LATEST) => Err(AwsError::invalid_parameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            )),
            Some(q) => Ok(q.to_owned()),
        }
    }
}
