//! AddLayerVersionPermission, GetLayerVersionPolicy and RemoveLayerVersionPermission: who may use
//! a layer version. Stored and returned as AWS shapes them; nimbus does not evaluate them.
//! They are kept as resources of a pseudo-function `layer:<name>:<version>`.

use nimbus_api::AwsError;
use nimbus_store::ResourceRow;
use serde_json::{json, Value};

use crate::Lambda;

impl Lambda {
    pub(crate) async fn add_layer_permission(
        &self,
        name: &str,
        number: &str,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let arn = self.layer_version_arn(name, number)?;
        let input: Value = crate::functions::parse(body)?;
        let sid = input["StatementId"].as_str().unwrap_or_default().to_owned();
        let (action, principal) =
            (input["Action"].as_str().unwrap_or_default(), input["Principal"].as_str().unwrap_or_default());
        if sid.is_empty() || action.is_empty() || principal.is_empty() {
            return Err(AwsError::invalid_parameter("StatementId, Action and Principal are required"));
        }
        let mut statements = self.layer_statements(name, number);
        if statements.iter().any(|s| s["Sid"] == sid) {
            return Err(AwsError::conflict(
                "The statement id (sid) provided already exists. Please explicitly specify a new one.",
            ));
        }
        let principal = if principal == "*" {
            json!("*")
        } else {
            json!({ "AWS": format!("arn:aws:iam::{principal}:root") })
        };
        let mut statement = json!({ "Sid": sid, "Effect": "Allow", "Principal": principal, "Action": action, "Resource": arn });
        if let Some(org) = input["OrganizationId"].as_str() {
            statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
        }
        statements.push(statement.clone());
        let revision = uuid::Uuid::new_v4().hyphenated().to_string();
        self.save_layer_policy(name, number, json!({ "Statement": statements, "RevisionId": revision }))
            .await?;
        Ok(json!({ "Statement": statement.to_string(), "RevisionId": revision }))
    }

    pub(crate) fn get_layer_policy(&self, name: &str, number: &str) -> Result<Value, AwsError> {
        self.layer_version_arn(name, number)?;
        let policy =
            self.layer_policies.read().unwrap_or_else(|p| p.into_inner()).get(&key(name, number)).cloned();
        let policy =
            policy.ok_or_else(|| AwsError::not_found("No policy is associated with the given resource."))?;
        let document = json!({ "Version": "2012-10-17", "Id": "default", "Statement": policy["Statement"] });
        Ok(json!({ "Policy": document.to_string(), "RevisionId": policy["RevisionId"] }))
    }

    pub(crate) async fn remove_layer_permission(
        &self,
        name: &str,
        number: &str,
        sid: &str,
    ) -> Result<(), AwsError> {
        self.layer_version_arn(name, number)?;
        let mut statements = self.layer_statements(name, number);
        let before = statements.len();
        statements.retain(|s| s["Sid"] != sid);
        if statements.len() == before {
            return Err(AwsError::not_found("Statement not found."));
        }
        let revision = uuid::Uuid::new_v4().hyphenated().to_string();
        self.save_layer_policy(name, number, json!({ "Statement": statements, "RevisionId": revision })).await
    }

    fn layer_version_arn(&self, name: &str, number: &str) -> Result<String, AwsError> {
        let arn = format!(
            "arn:aws:lambda:{}:{}:layer:{name}:{number}",
            self.identity.region, self.identity.account
        );
        match self.layers.by_arn(&arn) {
            Some(_) => Ok(arn),
            None => Err(AwsError::not_found(format!(
                "The resource you requested does not exist. (Layer version {arn})"
            ))),
        }
    }

    fn layer_statements(&self, name: &str, number: &str) -> Vec<Value> {
        let policies = self.layer_policies.read().unwrap_or_else(|p| p.into_inner());
        policies.get(&key(name, number)).and_then(|p| p["Statement"].as_array().cloned()).unwrap_or_default()
    }

    async fn save_layer_policy(&self, name: &str, number: &str, policy: Value) -> Result<(), AwsError> {
        let row = ResourceRow {
            function: key(name, number),
            kind: "layer-policy".into(),
            name: String::new(),
            config: policy.to_string(),
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.put_resource(&row))
            .await
            .map_err(|e| AwsError::service(e.to_string()))?
            .map_err(|e| AwsError::service(e.to_string()))?;
        self.layer_policies.write().unwrap_or_else(|p| p.into_inner()).insert(key(name, number), policy);
        Ok(())
    }
}

/// The pseudo-function name a layer version's policy is stored under.
pub(crate) fn key(name: &str, number: &str) -> String {
    format!("layer:{name}:{number}")
}
