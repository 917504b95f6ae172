//! Job definitions: revisions, container properties (checked as AWS checks them), retry
//! strategies, timeouts, tags.

use serde_json::{json, Value};

use crate::compute::{paginate, valid_name};
use crate::{client, Batch};
use nimbus_api::AwsError;

pub const KIND: &str = "jobdef";

/// vCPUs and MiB of container properties: `resourceRequirements` or the legacy fields.
pub fn resources_of(container: &Value) -> (Option<f64>, Option<u64>) {
    let mut vcpus = container["vcpus"].as_f64();
    let mut memory = container["memory"].as_u64();
    for requirement in container["resourceRequirements"].as_array().into_iter().flatten() {
        let value = requirement["value"].as_str().unwrap_or_default();
        match requirement["type"].as_str() {
            Some("VCPU") => vcpus = value.parse().ok(),
            Some("MEMORY") => memory = value.parse().ok(),
            _ => {}
        }
    }
    (vcpus, memory)
}

/// Checks container properties (definition or job).
pub fn check_container(container: &Value, fargate: bool) -> Result<(), AwsError> {
    if container["privileged"] == json!(true) {
        return Err(client(
            "nimbus does not run privileged jobs: a job runs in a sandbox without the host's devices \
             and capabilities (containerProperties.privileged must be false)",
        ));
    }
    if container["image"].as_str().is_none_or(str::is_empty) {
        return Err(client(
            "Error executing request, Exception : Container properties must contain an image.",
        ));
    }
    let (vcpus, memory) = resources_of(container);
    match vcpus {
        Some(v) if fargate && ![0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0].contains(&v) => {
            return Err(client("Fargate jobs take 0.25, 0.5, 1, 2, 4, 8 or 16 vCPUs"));
        }
        Some(v) if !fargate && (v < 1.0 || v.fract() != 0.0) => {
            return Err(client("Error executing request, Exception : vCPUs must be a positive whole number, RequestId: nimbus"));
        }
        None => return Err(client("Error executing request, Exception : Resource vCPU unspecified.")),
        _ => {}
    }
    match memory {
        Some(m) if m >= 4 => {}
        Some(_) => return Err(client("Error executing request, Exception : memory must be at least 4 MiB")),
        None => return Err(client("Error executing request, Exception : Resource MEMORY unspecified.")),
    }
    for variable in container["environment"].as_array().into_iter().flatten() {
        if variable["name"].as_str().is_some_and(|n| n.starts_with("AWS_BATCH")) {
            return Err(client("Environment variable names beginning with AWS_BATCH are reserved"));
        }
    }
    Ok(())
}

/// Checks a retry strategy: 1–10 attempts, up to 5 `evaluateOnExit` rules.
pub fn check_retry(retry: &Value) -> Result<(), AwsError> {
    if retry.is_null() {
        return Ok(());
    }
    let attempts = retry["attempts"].as_i64();
    if let Some(n) = attempts {
        if !(1..=10).contains(&n) {
            return Err(client("Error executing request, Exception : Attempts must be between 1 and 10"));
        }
    }
    let rules = retry["evaluateOnExit"].as_array().cloned().unwrap_or_default();
    if rules.len() > 5 {
        return Err(client("Error executing request, Exception : evaluateOnExit can hold at most 5 entries"));
    }
    for rule in &rules {
        let action = rule["action"].as_str().unwrap_or_default().to_ascii_uppercase();
        if action != "RETRY" && action != "EXIT" {
            return Err(client(
                "Error executing request, Exception : evaluateOnExit action must be RETRY or EXIT",
            ));
        }
        if let Some(code) = rule["onExitCode"].as_str() {
            let digits = code.strip_suffix('*').unwrap_or(code);
            if code.len() > 512 || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(client(
                    "Error executing request, Exception : onExitCode may hold only digits and a trailing *",
                ));
            }
        }
    }
    Ok(())
}

pub fn check_timeout(timeout: &Value) -> Result<(), AwsError> {
    if let Some(seconds) = timeout["attemptDurationSeconds"].as_i64() {
        if seconds < 60 {
            return Err(client(
                "Error executing request, Exception : Timeout attemptDurationSeconds must be at least 60",
            ));
        }
    }
    Ok(())
}

impl Batch {
    pub(crate) fn register_job_definition(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["jobDefinitionName"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return Err(client("jobDefinitionName must be 1-128 letters, numbers, hyphens and underscores"));
        }
        let multinode = match input["type"].as_str() {
            Some("container") => false,
            Some("multinode") => true,
            _ => return Err(client("type must be container or multinode")),
        };
        if input.get("ecsProperties").is_some() || input.get("eksProperties").is_some() {
            return Err(client(
                "nimbus runs container job definitions only (no ecsProperties or eksProperties)",
            ));
        }
        let capabilities =
            input["platformCapabilities"].as_array().cloned().unwrap_or_else(|| vec![json!("EC2")]);
        let fargate = capabilities.iter().any(|c| c == "FARGATE");
        let container = &input["containerProperties"];
        if multinode {
            if fargate {
                return Err(client(
                    "Error executing request, Exception : Fargate doesn't support multi-node parallel jobs, RequestId: nimbus",
                ));
            }
            if !container.is_null() {
                return Err(client("Error executing request, Exception : containerProperties can't be specified for a multinode job definition; use nodeProperties, RequestId: nimbus"));
            }
            crate::multinode::check_node_properties(&input["nodeProperties"])?;
        } else {
            if input.get("nodeProperties").is_some() {
                return Err(client("Error executing request, Exception : nodeProperties can be specified only for a multinode job definition, RequestId: nimbus"));
            }
            check_container(container, fargate)?;
        }
        check_retry(&input["retryStrategy"])?;
        check_timeout(&input["timeout"])?;
        let existing: Vec<Value> = self.store.all(KIND)?;
        let revision = existing
            .iter()
            .filter(|d| {
                d["jobDefinitionName"] == json!(name)
                    && d["jobDefinitionArn"].as_str().and_then(|a| a.split(':').nth(3)) == Some(region)
            })
            .filter_map(|d| d["revision"].as_i64())
            .max()
            .unwrap_or(0)
            + 1;
        let arn = self.arn(region, "job-definition", &format!("{name}:{revision}"));
        let mut definition = json!({
            "jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision, "status": "ACTIVE",
            "type": if multinode { "multinode" } else { "container" },
            "parameters": input.get("parameters").cloned().unwrap_or_else(|| json!({})),
            "tags": input.get("tags").cloned().unwrap_or_else(|| json!({})),
            "propagateTags": input["propagateTags"].as_bool().unwrap_or(false),
            "platformCapabilities": capabilities, "containerOrchestrationType": "ECS",
        });
        if multinode {
            definition["nodeProperties"] = input["nodeProperties"].clone();
        } else {
            definition["containerProperties"] = container.clone();
        }
        for key in ["retryStrategy", "timeout", "schedulingPriority"] {
            if let Some(value) = input.get(key) {
                definition[key] = value.clone();
            }
        }
        self.store.put(KIND, &arn, &definition, self.now())?;
        Ok(json!({ "jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision }))
    }

    /// A definition by ARN, `name:revision`, or `name` (its latest ACTIVE revision).
    pub(crate) fn job_definition(&self, region: &str, reference: &str) -> Result<Option<Value>, AwsError> {
        if reference.starts_with("arn:") {
            return self.store.get(KIND, reference);
        }
        if reference.contains(':') {
            return self.store.get(KIND, &self.arn(region, "job-definition", reference));
        }
        let all: Vec<Value> = self.store.all(KIND)?;
        let prefix = self.arn(region, "job-definition", &format!("{reference}:"));
        Ok(all
            .into_iter()
            .filter(|d| {
                d["jobDefinitionArn"].as_str().is_some_and(|a| a.starts_with(&prefix))
                    && d["status"] == "ACTIVE"
            })
            .max_by_key(|d| d["revision"].as_i64()))
    }

    pub(crate) fn describe_job_definitions(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let mut all: Vec<Value> = self.store.all(KIND)?;
        all.retain(|d| d["jobDefinitionArn"].as_str().and_then(|a| a.split(':').nth(3)) == Some(region));
        if let Some(wanted) = input["jobDefinitions"].as_array() {
            let wanted: Vec<&str> = wanted.iter().filter_map(Value::as_str).collect();
            all.retain(|d| {
                let arn = d["jobDefinitionArn"].as_str().unwrap_or_default();
                let name = d["jobDefinitionName"].as_str().unwrap_or_default();
                let named = format!("{name}:{}", d["revision"]);
                wanted.iter().any(|w| *w == arn || *w == named || *w == name)
            });
        }
        if let Some(name) = input["jobDefinitionName"].as_str() {
            all.retain(|d| d["jobDefinitionName"] == json!(name));
        }
        if let Some(status) = input["status"].as_str() {
            all.retain(|d| d["status"] == json!(status));
        }
        let (page, next) = paginate(all, input)?;
        Ok(json!({ "jobDefinitions": page, "nextToken": next }))
    }

    pub(crate) fn deregister_job_definition(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let reference = input["jobDefinition"].as_str().unwrap_or_default();
        if !reference.starts_with("arn:") && !reference.contains(':') {
            return Err(client("jobDefinition must be an ARN or name:revision"));
        }
        let mut definition = self
            .job_definition(region, reference)?
            .ok_or_else(|| client(format!("Job definition {reference} does not exist")))?;
        definition["status"] = json!("INACTIVE");
        let arn = definition["jobDefinitionArn"].as_str().unwrap_or_default().to_owned();
        self.store.put(KIND, &arn, &definition, self.now())?;
        Ok(json!({}))
    }
}
