//! Lambda's `FunctionConfiguration` as stored and as returned, and the request shapes nimbus reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What nimbus persists per function version: the configuration plus the tags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredFunction {
    pub configuration: FunctionConfiguration,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// For the 250 MB limit on code and layers together.
    #[serde(default)]
    pub code_unzipped_size: u64,
    /// A container image function's image (`PackageType: Image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::images::StoredImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    /// Empty (and not shown) for container image functions, as on AWS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentResponse>,
    pub tracing_config: TracingConfig,
    pub revision_id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason_code: Option<String>,
    pub last_update_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason_code: Option<String>,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
    pub snap_start: Value,
    pub logging_config: LoggingConfig,
    /// Accepted and returned as given; nimbus does not act on them yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<Value>,
    #[serde(rename = "KMSKeyArn", skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_system_configs: Vec<FileSystemConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_config_response: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct LayerReference {
    pub arn: String,
    pub code_size: u64,
}

/// A shared file system mounted into every environment (EFS on AWS; a durable directory of the
/// data directory in nimbus, one per access point).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct FileSystemConfig {
    pub arn: String,
    pub local_mount_path: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentResponse {
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    pub mode: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    pub size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfig {
    pub log_format: String,
    pub log_group: String,
}

/// `Code` of `CreateFunction` and the body of `UpdateFunctionCode` share these members.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
}

/// The configuration members `CreateFunction` and `UpdateFunctionConfiguration` share.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigInput {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentResponse>,
    pub ephemeral_storage: Option<EphemeralStorageInput>,
    pub tracing_config: Option<TracingConfig>,
    pub dead_letter_config: Option<Value>,
    pub vpc_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub logging_config: Option<Value>,
    pub file_system_configs: Option<Vec<FileSystemConfig>>,
    pub layers: Option<Vec<String>>,
    pub revision_id: Option<String>,
    /// Container image functions' `EntryPoint`, `Command`, `WorkingDirectory` overrides.
    pub image_config: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorageInput {
    pub size: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionInput {
    pub function_name: Option<String>,
    #[serde(default)]
    pub code: CodeInput,
    #[serde(flatten)]
    pub config: ConfigInput,
    pub package_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeInput {
    #[serde(flatten)]
    pub code: CodeInput,
    pub architectures: Option<Vec<String>>,
    pub revision_id: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}
