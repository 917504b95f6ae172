//! CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
//! UpdateFunctionConfiguration and DeleteFunction.

use base64::Engine as _;
use nimbus_api::AwsError;
use nimbus_store::code::{CodeError, CodePackage, MAX_UNZIPPED_BYTES};
use serde_json::{json, Value};

use crate::layers::MAX_LAYERS_PER_FUNCTION;
use crate::model::*;
use crate::registry::{Entry, LATEST};
use crate::{validate, Lambda};

impl Lambda {
    pub(crate) async fn create_function(&self, body: &[u8]) -> Result<(u16, Value), AwsError> {
        validate::code_request_size(body, "CreateFunction")?;
        let input: CreateFunctionInput = parse(body)?;
        let name = input.function_name.as_deref().ok_or_else(|| missing("FunctionName"))?;
        let name = self.function_name_of(name)?;
        if self.registry.get(&name).is_some() {
            return Err(AwsError::conflict(format!("Function already exist: {name}")));
        }
        let image_uri = match (input.package_type.as_deref().unwrap_or("Zip"), input.code.image_uri.clone()) {
            ("Zip", None) => None,
            ("Image", Some(uri)) => Some(uri),
            ("Zip", Some(_)) => {
                return Err(AwsError::invalid_parameter(
                    "Please don't provide ImageUri when creating a function with packageType Zip.",
                ))
            }
            ("Image", None) => {
                return Err(AwsError::invalid_parameter(
                    "Please provide ImageUri when creating a function with packageType Image.",
                ))
            }
            (other, _) => {
                return Err(validate::constraint(
                    other,
                    "packageType",
                    "Member must satisfy enum value set: [Image, Zip]",
                ))
            }
        };
        let runtime = match &image_uri {
            Some(_) => String::new(),
            None => input.config.runtime.clone().ok_or_else(|| {
                AwsError::invalid_parameter("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
            })?,
        };
        let role = input.config.role.clone().ok_or_else(|| missing("Role"))?;
        let architecture =
            validate::architectures(input.architectures.as_deref().unwrap_or(&["x86_64".to_string()]))?;
        let mut config = FunctionConfiguration {
            function_arn: self.function_arn(&name),
            function_name: name,
            runtime,
            role,
            handler: String::new(),
            code_size: 0,
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            last_modified: String::new(),
            code_sha256: String::new(),
            version: LATEST.into(),
            environment: None,
            tracing_config: TracingConfig { mode: "PassThrough".into() },
            revision_id: String::new(),
            state: "Active".into(),
            state_reason: None,
            state_reason_code: None,
            last_update_status: "Successful".into(),
            last_update_status_reason: None,
            last_update_status_reason_code: None,
            package_type: "Zip".into(),
            architectures: vec![architecture],
            ephemeral_storage: EphemeralStorage { size: 512 },
            snap_start: json!({"ApplyOn": "None", "OptimizationStatus": "Off"}),
            logging_config: LoggingConfig { log_format: "Text".into(), log_group: String::new() },
            dead_letter_config: None,
            vpc_config: None,
            kms_key_arn: None,
            file_system_configs: Vec::new(),
            layers: Vec::new(),
            image_config_response: None,
        };
        config.logging_config.log_group = format!("/aws/lambda/{}", config.function_name);
        let mut input_config = input.config;
        let layers = input_config.layers.take();
        let image_config = input_config.image_config.take();
        apply_config(&mut config, input_config)?;
        self.apply_layers(&mut config, layers)?;
        let (code_hex, code_unzipped_size, image) = match image_uri {
            Some(uri) => {
                let image_config = crate::images::image_config(image_config.as_ref())?;
                let (hex, image) = self.resolve_image(&mut config, uri, image_config)?;
                (hex, 0, Some(image))
            }
            None => {
                self.check_host_runtime(&config.runtime).await?;
                let package = self.store_code(&input.code).await?;
                set_code(&mut config, &package);
                self.check_total_size(&config, package.unzipped_size)?;
                (package.sha256_hex, package.unzipped_size, None)
            }
        };
        touch(&mut config);
        let stored = StoredFunction { configuration: config, tags: input.tags, code_unzipped_size, image };
        let entry = self.registry.insert(self.registry.entry(stored, code_hex)).await?;
        // What AWS answers while it prepares the function; nimbus has already finished.
        let mut shown = entry.stored.configuration.clone();
        shown.state = "Pending".into();
        shown.state_reason = Some("The function is being created.".into());
        shown.state_reason_code = Some("Creating".into());
        Ok((201, to_value(&shown)))
    }

    pub(crate) fn get_function(&self, name: &str, qualifier: Option<&str>) -> Result<Value, AwsError> {
        let target = self.find(name, qualifier)?;
        let location = format!("{}/_nimbus/code/{}.zip", self.endpoint_url, target.entry.code_hex);
        let code = match &target.entry.stored.image {
            Some(image) => json!({
                "RepositoryType": "ECR",
                "ImageUri": image.image_uri,
                "ResolvedImageUri": image.resolved_image_uri,
            }),
            None => json!({ "RepositoryType": "S3", "Location": location }),
        };
        let mut out = json!({
            "Configuration": to_value(&target.entry.stored.configuration),
            "Code": code,
        });
        let tags = &target.function.latest.stored.tags;
        if !tags.is_empty() {
            out["Tags"] = json!(tags);
        }
        if let Some(reserved) = target.function.resource("concurrency", "") {
            out["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
        }
        Ok(out)
    }

    pub(crate) fn get_configuration(&self, name: &str, qualifier: Option<&str>) -> Result<Value, AwsError> {
        Ok(to_value(&self.find(name, qualifier)?.entry.stored.configuration))
    }

    pub(crate) fn list_functions(
        &self,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<Value, AwsError> {
        let limit = match max_items {
            None => 50,
            Some(text) => {
                let value: i64 = text
                    .parse()
                    .map_err(|_| AwsError::invalid_parameter(format!("Invalid MaxItems: {text}")))?;
                validate::range(value, "maxItems", 1, 10000)? as usize
            }
        };
        // AWS returns at most 50 functions per response, whatever MaxItems says.
        let limit = limit.min(50);
        let (page, more) = self.registry.page(marker, limit);
        let functions: Vec<Value> = page.iter().map(|f| to_value(&f.latest.stored.configuration)).collect();
        let mut out = json!({ "Functions": functions });
        if more {
            if let Some(last) = page.last() {
                out["NextMarker"] = json!(last.name());
            }
        }
        Ok(out)
    }

    pub(crate) async fn update_code(&self, name: &str, body: &[u8]) -> Result<Value, AwsError> {
        validate::code_request_size(body, "UpdateFunctionCode")?;
        let entry = self.function(name)?.latest.clone();
        let input: UpdateCodeInput = parse(body)?;
        check_revision(&entry, input.revision_id.as_deref())?;
        if input.code.zip_file.is_none() && input.code.s3_bucket.is_none() && input.code.image_uri.is_none() {
            return Err(AwsError::invalid_parameter("Please provide a source for function code."));
        }
        let mut config = entry.stored.configuration.clone();
        if let Some(architectures) = &input.architectures {
            config.architectures = vec![validate::architectures(architectures)?];
        }
        if let Some(stored) = &entry.stored.image {
            let uri = input.code.image_uri.clone().ok_or_else(|| {
                AwsError::invalid_parameter(
                    "Please provide ImageUri when updating a function with packageType Image.",
                )
            })?;
            let (hex, image) = self.resolve_image(&mut config, uri, stored.image_config.clone())?;
            if input.dry_run {
                return Ok(to_value(&config));
            }
            return self.commit_update(&entry, config, hex, 0, Some(image)).await;
        }
        if input.code.image_uri.is_some() {
            return Err(AwsError::invalid_parameter(
                "Please don't provide ImageUri when updating a function with packageType Zip.",
            ));
        }
        let package = self.store_code(&input.code).await?;
        set_code(&mut config, &package);
        self.check_total_size(&config, package.unzipped_size)?;
        if input.dry_run {
            return Ok(to_value(&config));
        }
        self.commit_update(&entry, config, package.sha256_hex, package.unzipped_size, None).await
    }

    /// Resolves a function's image for its architecture: the configuration's `CodeSha256` is the
    /// image's digest, `ImageConfigResponse` the overrides; returns the digest's hex and what
    /// the function stores of its image.
    fn resolve_image(
        &self,
        config: &mut FunctionConfiguration,
        uri: String,
        image_config: Option<Value>,
    ) -> Result<(String, crate::images::StoredImage), AwsError> {
        let architecture = config.architectures.first().cloned().unwrap_or_else(|| "x86_64".into());
        let resolved = crate::images::resolve(&self.registry.images, &uri, &architecture)?;
        let hex = resolved.digest.trim_start_matches("sha256:").to_owned();
        config.package_type = "Image".into();
        config.code_sha256 = hex.clone();
        config.code_size = 0;
        config.image_config_response = image_config.clone().map(|c| json!({ "ImageConfig": c }));
        let stored = crate::images::StoredImage {
            image_uri: uri,
            resolved_image_uri: resolved.resolved_uri,
            image_config,
        };
        Ok((hex, stored))
    }

    pub(crate) async fn update_configuration(&self, name: &str, body: &[u8]) -> Result<Value, AwsError> {
        let entry = self.function(name)?.latest.clone();
        let mut input: ConfigInput = parse(body)?;
        check_revision(&entry, input.revision_id.as_deref())?;
        let mut config = entry.stored.configuration.clone();
        let runtime_changed = input.runtime.as_ref().is_some_and(|r| *r != config.runtime);
        let layers = input.layers.take();
        let mut image = entry.stored.image.clone();
        if let (Some(given), Some(stored)) = (input.image_config.take(), image.as_mut()) {
            stored.image_config = crate::images::image_config(Some(&given))?
                .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()));
            config.image_config_response = stored.image_config.clone().map(|c| json!({ "ImageConfig": c }));
        }
        apply_config(&mut config, input)?;
        self.apply_layers(&mut config, layers)?;
        self.check_total_size(&config, entry.stored.code_unzipped_size)?;
        if runtime_changed {
            self.check_host_runtime(&config.runtime).await?;
        }
        self.commit_update(&entry, config, entry.code_hex.clone(), entry.stored.code_unzipped_size, image)
            .await
    }

    /// Resolves `Layers` (up to five existing layer versions, in order). A layer version of
    /// another account that nimbus does not hold (AWS's Powertools, say) is kept: the function
    /// runs without it, saying so in its log, until `nimbus layers import` brings it.
    fn apply_layers(
        &self,
        config: &mut FunctionConfiguration,
        arns: Option<Vec<String>>,
    ) -> Result<(), AwsError> {
        let Some(arns) = arns else { return Ok(()) };
        if arns.len() > MAX_LAYERS_PER_FUNCTION {
            return Err(validate::constraint(
                format!("[{}]", arns.join(", ")),
                "layers",
                "Member must have length less than or equal to 5",
            ));
        }
        config.layers = arns
            .iter()
            .map(|arn| {
                if self.layers.is_missing_foreign(arn) {
                    return Ok(LayerReference { arn: arn.clone(), code_size: 0 });
                }
                let layer = self.layers.by_arn(arn).ok_or_else(|| {
                    AwsError::invalid_parameter(format!("Layer version {arn} does not exist."))
                })?;
                Ok(LayerReference { arn: arn.clone(), code_size: layer.version.code_size })
            })
            .collect::<Result<_, AwsError>>()?;
        Ok(())
    }

    /// AWS's 250 MB limit applies to the function's code and all its layers unzipped together.
    fn check_total_size(&self, config: &FunctionConfiguration, code_unzipped: u64) -> Result<(), AwsError> {
        let layers: u64 = config
            .layers
            .iter()
            .filter_map(|l| self.layers.by_arn(&l.arn))
            .map(|layer| layer.version.unzipped_size)
            .sum();
        let total = code_unzipped + layers;
        if total > MAX_UNZIPPED_BYTES {
            return Err(AwsError::invalid_parameter(format!(
                "Function code combined with layers exceeds the maximum allowed size of {MAX_UNZIPPED_BYTES} bytes. The actual size is {total} bytes."
            )));
        }
        Ok(())
    }

    async fn commit_update(
        &self,
        entry: &Entry,
        mut config: FunctionConfiguration,
        code_hex: String,
        code_unzipped_size: u64,
        image: Option<crate::images::StoredImage>,
    ) -> Result<Value, AwsError> {
        touch(&mut config);
        let tags = entry.stored.tags.clone();
        let stored = StoredFunction { configuration: config, tags, code_unzipped_size, image };
        let updated = self.registry.save_version(self.registry.entry(stored, code_hex), false).await?;
        self.engine.retire(&updated.stored.configuration.function_name);
        // AWS answers while the update is still being applied; nimbus has already applied it.
        let mut shown = updated.stored.configuration.clone();
        shown.last_update_status = "InProgress".into();
        shown.last_update_status_reason = Some("The function is being created.".into());
        shown.last_update_status_reason_code = Some("Creating".into());
        Ok(to_value(&shown))
    }

    /// Deletes the function, or with a version as qualifier that version only.
    pub(crate) async fn delete_function(&self, name: &str, qualifier: Option<&str>) -> Result<(), AwsError> {
        let (_, suffix) = crate::split_reference(name);
        let function = self.function(name)?;
        match qualifier.or(suffix) {
            None => {
                self.registry.remove(&function).await?;
                self.engine.retire(function.name());
                Ok(())
            }
            Some(LATEST) => Err(AwsError::invalid_parameter(
                "$LATEST version cannot be deleted without deleting the function.",
            )),
            Some(version) => self.delete_version(&function, version).await,
        }
    }

    /// The zip of a `Code` / `Content` member: inline (`ZipFile`, base64) or an object in
    /// nimbus's S3 (`S3Bucket`, `S3Key`, `S3ObjectVersion`).
    pub(crate) async fn code_bytes(&self, code: &CodeInput) -> Result<Vec<u8>, AwsError> {
        let invalid_zip = || {
            AwsError::invalid_parameter(
                "Could not unzip uploaded file. Please check your file, then try to upload again.",
            )
        };
        if let Some(encoded) = code.zip_file.as_deref() {
            return base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| invalid_zip());
        }
        let (Some(bucket), Some(key)) = (code.s3_bucket.clone(), code.s3_key.clone()) else {
            return Err(AwsError::invalid_parameter("Please provide a source for function code."));
        };
        let objects =
            self.objects.get().cloned().ok_or_else(|| AwsError::invalid_parameter("nimbus serves no S3"))?;
        let version = code.s3_object_version.clone();
        let read = tokio::task::spawn_blocking(move || objects.read(&bucket, &key, version.as_deref()))
            .await
            .map_err(|e| AwsError::service(e.to_string()))?;
        read.map_err(|why| {
            AwsError::invalid_parameter(format!(
                "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: {why}"
            ))
        })
    }

    async fn check_host_runtime(&self, runtime: &str) -> Result<(), AwsError> {
        self.engine.check_runtime(runtime).await.map_err(|why| {
            AwsError::invalid_parameter(format!(
                "The runtime {runtime} cannot run on this nimbus host: {why}"
            ))
        })
    }

    async fn store_code(&self, code: &CodeInput) -> Result<CodePackage, AwsError> {
        if code.image_uri.is_some() {
            return Err(AwsError::invalid_parameter(
                "nimbus runs Zip packages only; container images are not supported",
            ));
        }
        let zip = self.code_bytes(code).await?;
        let store = self.registry.code.clone();
        match tokio::task::spawn_blocking(move || store.put_zip(&zip)).await {
            Ok(Ok(package)) => Ok(package),
            Ok(Err(CodeError::Io(error))) => Err(AwsError::service(error.to_string())),
            Ok(Err(error)) => Err(AwsError::invalid_parameter(error.to_string())),
            Err(join) => Err(AwsError::service(join.to_string())),
        }
    }
}

/// Applies the configuration members present in `input`, validating each as AWS does.
fn apply_config(config: &mut FunctionConfiguration, input: ConfigInput) -> Result<(), AwsError> {
    if let Some(runtime) = input.runtime {
        validate::runtime(&runtime)?;
        config.runtime = runtime;
    }
    if let Some(role) = input.role {
        validate::role(&role)?;
        config.role = role;
    }
    if let Some(handler) = input.handler {
        if handler.len() > 128 || handler.chars().any(char::is_whitespace) {
            return Err(validate::constraint(
                &handler,
                "handler",
                "Member must satisfy regular expression pattern: [^\\s]+",
            ));
        }
        config.handler = handler;
    }
    if let Some(description) = input.description {
        if description.chars().count() > 256 {
            return Err(validate::constraint(
                &description,
                "description",
                "Member must have length less than or equal to 256",
            ));
        }
        config.description = description;
    }
    if let Some(timeout) = input.timeout {
        config.timeout = validate::range(timeout, "timeout", 1, 900)?;
    }
    if let Some(memory) = input.memory_size {
        config.memory_size = validate::range(memory, "memorySize", 128, 10240)?;
    }
    if let Some(size) = input.ephemeral_storage.and_then(|e| e.size) {
        config.ephemeral_storage.size = validate::range(size, "ephemeralStorage.size", 512, 10240)?;
    }
    if let Some(environment) = input.environment {
        validate::environment(&environment.variables)?;
        config.environment = (!environment.variables.is_empty()).then_some(environment);
    }
    if let Some(tracing) = input.tracing_config {
        if tracing.mode != "Active" && tracing.mode != "PassThrough" {
            return Err(validate::constraint(
                &tracing.mode,
                "tracingConfig.mode",
                "Member must satisfy enum value set: [Active, PassThrough]",
            ));
        }
        config.tracing_config = tracing;
    }
    if let Some(logging) = input.logging_config {
        if let Some(format) = logging.get("LogFormat").and_then(Value::as_str) {
            config.logging_config.log_format = format.to_owned();
        }
        if let Some(group) = logging.get("LogGroup").and_then(Value::as_str) {
            config.logging_config.log_group = group.to_owned();
        }
    }
    if input.dead_letter_config.is_some() {
        config.dead_letter_config = input.dead_letter_config;
    }
    if input.vpc_config.is_some() {
        config.vpc_config = input.vpc_config;
    }
    if let Some(configs) = input.file_system_configs {
        validate::file_systems(&configs)?;
        config.file_system_configs = configs;
    }
    if input.kms_key_arn.is_some() {
        config.kms_key_arn = input.kms_key_arn;
    }
    Ok(())
}

fn set_code(config: &mut FunctionConfiguration, package: &CodePackage) {
    config.code_sha256 = package.sha256_base64.clone();
    config.code_size = package.size;
}

/// A new revision and modification time, as every successful change gets.
fn touch(config: &mut FunctionConfiguration) {
    config.revision_id = uuid::Uuid::new_v4().hyphenated().to_string();
    config.last_modified = now();
}

/// Lambda's timestamp format: `2026-11-26T07:24:13.123+0000`.
pub(crate) fn now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

/// `MaxItems` of Lambda's list operations: 1–10,000, yet never more than 50 per page (AWS).
pub(crate) fn page_size(max_items: Option<&str>) -> Result<usize, AwsError> {
    let limit = match max_items {
        None => 50,
        Some(text) => {
            let value: i64 =
                text.parse().map_err(|_| AwsError::invalid_parameter(format!("Invalid MaxItems: {text}")))?;
            validate::range(value, "maxItems", 1, 10000)? as usize
        }
    };
    Ok(limit.min(50))
}

pub(crate) fn check_revision(entry: &Entry, revision: Option<&str>) -> Result<(), AwsError> {
    match revision {
        Some(revision) if revision != entry.stored.configuration.revision_id => Err(AwsError::new(
            412,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| {
        AwsError::new(
            400,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {e}"),
        )
    })
}

fn missing(member: &str) -> AwsError {
    AwsError::validation(format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(member)))
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn to_value(config: &FunctionConfiguration) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}
