//! Lambda's input rules, with the error type and wording AWS uses for each.

use std::collections::BTreeMap;

use nimbus_api::AwsError;

/// Every runtime name botocore's Lambda model knows.
pub const RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "java8",
    "java8.al2",
    "java11",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "dotnet8",
    "nodejs4.3-edge",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "provided",
    "provided.al2",
    "nodejs18.x",
    "python3.10",
    "java17",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "python3.11",
    "nodejs20.x",
    "provided.al2023",
    "python3.12",
    "java21",
    "python3.13",
    "nodejs22.x",
    "nodejs24.x",
    "python3.14",
    "java25",
    "dotnet10",
    "ruby4.0",
];

/// Runtimes AWS no longer lets anyone create or update functions with.
const BLOCKED_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "python2.7",
    "python3.6",
    "python3.7",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "ruby2.5",
    "ruby2.7",
    "java8",
    "go1.x",
];

/// AWS's limit on the environment variables of a function, measured over their JSON.
const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// AWS's limit on a request carrying a zip directly (`CreateFunction`, `UpdateFunctionCode`,
/// `PublishLayerVersion`): 50 MB of zip as base64.
pub const MAX_CODE_REQUEST_BYTES: usize = 69_905_067;

/// Refuses a direct-upload request over [`MAX_CODE_REQUEST_BYTES`], in AWS's words.
pub fn code_request_size(body: &[u8], operation: &str) -> Result<(), AwsError> {
    if body.len() > MAX_CODE_REQUEST_BYTES {
        return Err(AwsError::too_large(format!(
            "Request must be smaller than {MAX_CODE_REQUEST_BYTES} bytes for the {operation} operation"
        )));
    }
    Ok(())
}

/// AWS's wording for a constraint violation caught by its request validation.
pub fn constraint(value: impl std::fmt::Display, member: &str, constraint: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

pub fn range(value: i64, member: &str, min: i64, max: i64) -> Result<u32, AwsError> {
    if value < min {
        return Err(constraint(
            value,
            member,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(constraint(
            value,
            member,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(value as u32)
}

pub fn function_name(name: &str) -> Result<(), AwsError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(constraint(
            name,
            "functionName",
            "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
        ))
    }
}

/// A runtime name AWS knows (layers may name retired ones).
pub fn runtime_name(runtime: &str) -> Result<(), AwsError> {
    if !RUNTIMES.contains(&runtime) {
        return Err(constraint(
            runtime,
            "runtime",
            &format!("Member must satisfy enum value set: [{}]", RUNTIMES.join(", ")),
        ));
    }
    Ok(())
}

/// A runtime functions may be created or updated with.
pub fn runtime(runtime: &str) -> Result<(), AwsError> {
    runtime_name(runtime)?;
    if BLOCKED_RUNTIMES.contains(&runtime) {
        return Err(AwsError::invalid_parameter(format!(
            "The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        )));
    }
    Ok(())
}

/// `arn:aws:iam::123456789012:role/name`: any role is accepted as long as it is shaped like one.
pub fn role(role: &str) -> Result<(), AwsError> {
    let shaped = role
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .and_then(|(_, rest)| rest.split_once(":role/"))
        .is_some_and(|(account, name)| nimbus_api::scope::is_account_id(account) && !name.is_empty());
    if shaped {
        Ok(())
    } else {
        Err(constraint(
            role,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        ))
    }
}

pub fn environment(variables: &BTreeMap<String, String>) -> Result<(), AwsError> {
    let reserved: Vec<&str> = variables
        .keys()
        .map(String::as_str)
        .filter(|key| nimbus_functions::env::RESERVED_KEYS.contains(key))
        .collect();
    if !reserved.is_empty() {
        return Err(AwsError::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    for key in variables.keys() {
        let mut bytes = key.bytes();
        let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(constraint(
                key,
                "environment.variables",
                "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+",
            ));
        }
    }
    let measured = serde_json::to_string(variables).unwrap_or_default();
    if measured.len() > MAX_ENVIRONMENT_BYTES {
        return Err(AwsError::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

pub fn architectures(architectures: &[String]) -> Result<String, AwsError> {
    match architectures {
        [one] if one == "x86_64" || one == "arm64" => Ok(one.clone()),
        [_] => Err(constraint(
            format!("[{}]", architectures.join(", ")),
            "architectures",
            "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
        )),
        _ => Err(constraint(
            format!("[{}]", architectures.join(", ")),
            "architectures",
            "Member must have length less than or equal to 1",
        )),
    }
}

/// `arn:aws:elasticfilesystem:<region>:<account>:access-point/fsap-<17 hex>` → the access point id.
pub fn access_point_id(arn: &str) -> Option<&str> {
    let (prefix, id) = arn.split_once(":access-point/")?;
    let valid = prefix.starts_with("arn:aws")
        && prefix.contains(":elasticfilesystem:")
        && id
            .strip_prefix("fsap-")
            .is_some_and(|hex| hex.len() == 17 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    valid.then_some(id)
}

pub fn file_systems(configs: &[crate::model::FileSystemConfig]) -> Result<(), AwsError> {
    if configs.len() > 1 {
        return Err(constraint(
            configs.len(),
            "fileSystemConfigs",
            "Member must have length less than or equal to 1",
        ));
    }
    for config in configs {
        if access_point_id(&config.arn).is_none() {
            return Err(constraint(
                &config.arn,
                "fileSystemConfigs.1.member.arn",
                "Member must satisfy regular expression pattern: arn:aws[a-zA-Z-]*:elasticfilesystem:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}:\\d{12}:access-point/fsap-[a-f0-9]{17}",
            ));
        }
        let name = config.local_mount_path.strip_prefix("/mnt/").unwrap_or_default();
        let valid = !name.is_empty()
            && config.local_mount_path.len() <= 160
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(constraint(
                &config.local_mount_path,
                "fileSystemConfigs.1.member.localMountPath",
                "Member must satisfy regular expression pattern: ^/mnt/[a-zA-Z0-9-_.]+$",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_use_aws_wording() {
        let error = range(20000, "memorySize", 128, 10240).unwrap_err();
        assert_eq!(error.code, "ValidationException");
        assert_eq!(
            error.message,
            "1 validation error detected: Value '20000' at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to 10240"
        );
        assert_eq!(range(128, "memorySize", 128, 10240).unwrap(), 128);
        assert!(code_request_size(&vec![b' '; MAX_CODE_REQUEST_BYTES], "PublishLayerVersion").is_ok());
        let error =
            code_request_size(&vec![b' '; MAX_CODE_REQUEST_BYTES + 1], "PublishLayerVersion").unwrap_err();
        assert_eq!((error.status.as_u16(), error.code), (413, "RequestEntityTooLargeException"));
        assert_eq!(
            error.message,
            "Request must be smaller than 69905067 bytes for the PublishLayerVersion operation"
        );
    }

    #[test]
    fn runtimes_roles_and_names() {
        assert!(runtime("python3.12").is_ok());
        assert_eq!(runtime("cobol").unwrap_err().code, "ValidationException");
        assert_eq!(runtime("python2.7").unwrap_err().code, "InvalidParameterValueException");
        assert!(role("arn:aws:iam::000000000000:role/lambda").is_ok());
        assert!(role("lambda-role").is_err());
        assert!(function_name("my-fn_1").is_ok());
        assert!(function_name("bad name").is_err());
        assert!(function_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn file_systems_need_an_access_point_and_a_mount_under_mnt() {
        use crate::model::FileSystemConfig;
        let arn = "arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/fsap-0123456789abcdef0";
        assert_eq!(access_point_id(arn), Some("fsap-0123456789abcdef0"));
        let good = FileSystemConfig { arn: arn.into(), local_mount_path: "/mnt/shared".into() };
        assert!(file_systems(std::slice::from_ref(&good)).is_ok());
        let outside = FileSystemConfig { local_mount_path: "/var/x".into(), ..good.clone() };
        assert!(file_systems(&[outside]).is_err());
        let bad_arn = FileSystemConfig { arn: "arn:aws:s3:::bucket".into(), ..good };
        assert!(file_systems(&[bad_arn]).is_err());
    }

    #[test]
    fn environment_rules() {
        let mut vars = BTreeMap::new();
        vars.insert("GOOD".to_string(), "1".to_string());
        assert!(environment(&vars).is_ok());
        vars.insert("AWS_REGION".to_string(), "x".to_string());
        assert!(environment(&vars).unwrap_err().message.contains("AWS_REGION"));
        vars.remove("AWS_REGION");
        vars.insert("BIG".to_string(), "x".repeat(5000));
        assert!(environment(&vars).unwrap_err().message.contains("exceeded the 4KB limit"));
    }
}
