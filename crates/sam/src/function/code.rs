//! The function's code location, and the version and alias `AutoPublishAlias` publishes: the
//! version's logical id carries a hash of the code location (parameters resolved), environment
//! and memory size, so a change of any of them publishes a new version.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::hash;
use crate::model::{Cfn, Out};

/// `CodeUri` (an `s3://` URI or `{Bucket, Key, Version}`), `InlineCode` or `ImageUri` → `Code`.
pub(crate) fn code_dict(id: &str, props: &Map<String, Value>) -> Result<Map<String, Value>> {
    let get = |k: &str| props.get(k).filter(|v| !v.is_null());
    let package = get("PackageType").and_then(Value::as_str).unwrap_or("Zip");
    let mut code = Map::new();
    match package {
        "Zip" => {
            if let Some(inline) = get("InlineCode") {
                code.insert("ZipFile".into(), inline.clone());
            } else if let Some(uri) = get("CodeUri") {
                code = s3_location(id, uri, "CodeUri", ("S3Bucket", "S3Key", "S3ObjectVersion"))?;
            } else {
                return Err(ResourceError::new(id, "Only one of 'InlineCode' or 'CodeUri' can be set."));
            }
            if let Some(kms) = get("SourceKMSKeyArn") {
                code.insert("SourceKMSKeyArn".into(), kms.clone());
            }
        }
        "Image" => match get("ImageUri") {
            Some(uri) if uri.as_str() != Some("") => {
                code.insert("ImageUri".into(), uri.clone());
            }
            Some(_) => {
                return Err(ResourceError::new(
                    id,
                    "'ImageUri' requires that a image hosted at a registry be specified.",
                ))
            }
            None => return Err(ResourceError::new(id, "'ImageUri' must be set.")),
        },
        other => return Err(ResourceError::new(id, format!("invalid 'PackageType' : {other}"))),
    }
    Ok(code)
}

/// An S3 location (URI string or `{Bucket, Key, Version}`) as `{S3Bucket, S3Key, S3ObjectVersion}`
/// (or whatever names `keys` gives).
pub(crate) fn s3_location(
    id: &str,
    uri: &Value,
    property: &str,
    keys: (&str, &str, &str),
) -> Result<Map<String, Value>> {
    let (bucket, key, version) = match uri {
        Value::Object(map) => {
            let present = |k: &str| map.get(k).is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
            if !present("Bucket") || !present("Key") {
                return Err(ResourceError::new(
                    id,
                    format!("'{property}' requires Bucket and Key properties to be specified."),
                ));
            }
            (map["Bucket"].clone(), map["Key"].clone(), map.get("Version").cloned())
        }
        Value::String(s) => {
            if s.contains("{{resolve:") && s.contains('/') {
                return Err(ResourceError::new(
                    id,
                    format!(
                        "Unsupported dynamic reference detected in '{property}'. Please consider \
                         using alternative 'FunctionCode' object format."
                    ),
                ));
            }
            match parse_s3_uri(s) {
                Some((b, k, v)) => (json!(b), json!(k), v.map(Value::String)),
                None => {
                    return Err(ResourceError::new(
                        id,
                        format!(
                            "'{property}' is not a valid S3 Uri of the form 's3://bucket/key' with \
                             optional versionId query parameter."
                        ),
                    ))
                }
            }
        }
        _ => return Err(ResourceError::new(id, format!("'{property}' must be of type dict or string."))),
    };
    let mut out = Map::new();
    out.insert(keys.0.into(), bucket);
    out.insert(keys.1.into(), key);
    if let Some(v) = version {
        out.insert(keys.2.into(), v);
    }
    Ok(out)
}

/// `s3://bucket/key?versionId=v` → (bucket, key, version).
pub(crate) fn parse_s3_uri(uri: &str) -> Option<(String, String, Option<String>)> {
    let rest = uri.strip_prefix("s3://")?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let (bucket, path) = rest.split_once('/')?;
    if bucket.is_empty() || path.is_empty() {
        return None;
    }
    let versions: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("versionId="))
        .filter(|v| !v.is_empty())
        .collect();
    let version = (versions.len() == 1).then(|| versions[0].to_string());
    Some((bucket.to_string(), path.trim_start_matches('/').to_string(), version))
}

pub(crate) fn validate_package_type(id: &str, function: &Cfn) -> Result<()> {
    let get = |k: &str| function.props.get(k).filter(|v| truthy(v));
    let package = function.props.get("PackageType").and_then(Value::as_str).unwrap_or("Zip");
    let code = &function.props["Code"];
    match package {
        "Zip" => {
            if get("Runtime").is_none() || get("Handler").is_none() {
                return Err(ResourceError::new(
                    id,
                    "Runtime and Handler needs to be present when PackageType is of type `Zip`",
                ));
            }
            if code.get("ImageUri").is_some() || get("ImageConfig").is_some() {
                return Err(ResourceError::new(
                    id,
                    "ImageUri or ImageConfig cannot be present when PackageType is of type `Zip`",
                ));
            }
        }
        "Image" => {
            if get("Handler").is_some() || get("Runtime").is_some() || get("Layers").is_some() {
                return Err(ResourceError::new(
                    id,
                    "Runtime, Handler, Layers cannot be present when PackageType is of type `Image`",
                ));
            }
        }
        _ => {
            return Err(ResourceError::new(id, "PackageType needs to be `Zip` or `Image`"));
        }
    }
    Ok(())
}

pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

pub(crate) fn version(
    out: &Out,
    id: &str,
    props: &Map<String, Value>,
    function: &Cfn,
    sha: Option<&str>,
    attrs: &Map<String, Value>,
) -> Result<Cfn> {
    let get = |k: &str| props.get(k).filter(|v| !v.is_null());
    let prefix = format!("{id}Version");
    let data = if get("AutoPublishAliasAllProperties").and_then(Value::as_bool) == Some(true) {
        let mut all = function.props.clone();
        for layer in function.props.get("Layers").and_then(Value::as_array).into_iter().flatten() {
            let Some(layer_id) = crate::intrinsics::referenced_id(layer) else { continue };
            let Some(layer_props) = out.original.get(&layer_id).and_then(|r| r.get("Properties")) else {
                continue;
            };
            if layer_props.get("PublishLambdaVersion").and_then(Value::as_bool) == Some(true) {
                all.insert(layer_id, layer_props.clone());
            }
        }
        Value::Object(all)
    } else {
        let mut data = match out.params.resolve(&function.props["Code"]) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Some(Value::Object(env)) = function.props.get("Environment") {
            for (k, v) in env {
                data.insert(k.clone(), v.clone());
            }
        }
        if let Some(mem) = function.props.get("MemorySize").filter(|v| truthy(v)) {
            data.insert("MemorySize".into(), mem.clone());
        }
        if let Some(snap) = function.props.get("SnapStart") {
            if snap.get("ApplyOn").and_then(Value::as_str).unwrap_or("None") != "None" {
                data.insert("SnapStart".into(), snap.clone());
            }
        }
        Value::Object(data)
    };
    let logical_id = match sha {
        Some(sha) if !sha.is_empty() => format!("{prefix}{}", sha.chars().take(10).collect::<String>()),
        _ => hash::logical_id(&prefix, &data),
    };
    let mut attrs = attrs.clone();
    if !attrs.contains_key("DeletionPolicy") {
        let policy = match get("VersionDeletionPolicy") {
            Some(p) => p.clone(),
            None if get("CapacityProviderConfig").is_some() => json!("Delete"),
            None => json!("Retain"),
        };
        attrs.insert("DeletionPolicy".into(), policy);
    }
    let mut version = Cfn::with(logical_id, "AWS::Lambda::Version", &attrs);
    version.set("FunctionName", function.reference());
    version.set_opt("Description", get("VersionDescription"));
    if get("CapacityProviderConfig").is_some() {
        version.set_opt("FunctionScalingConfig", get("FunctionScalingConfig"));
    }
    Ok(version)
}

pub(crate) fn alias(
    id: &str,
    name: &str,
    props: &Map<String, Value>,
    function: &Cfn,
    version: &Cfn,
    attrs: &Map<String, Value>,
) -> Result<Cfn> {
    if name.is_empty() {
        return Err(ResourceError::new(id, "Alias name is required to create an alias"));
    }
    let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.chars().all(|c| c.is_ascii_digit());
    if !valid {
        return Err(ResourceError::new(
            id,
            format!(
                "AutoPublishAlias name ('{name}') must contain only alphanumeric characters, \
                 hyphens, or underscores matching (?!^[0-9]+$)([a-zA-Z0-9-_]+) pattern."
            ),
        ));
    }
    let suffix = name.replace('-', "D").replace('_', "U");
    let mut alias = Cfn::with(format!("{}Alias{suffix}", function.id), "AWS::Lambda::Alias", attrs);
    alias.set("Name", name);
    alias.set("FunctionName", function.reference());
    alias.set("FunctionVersion", json!({"Fn::GetAtt": [version.id, "Version"]}));
    if let Some(pc) = props.get("ProvisionedConcurrencyConfig").filter(|v| !v.is_null()) {
        alias.set("ProvisionedConcurrencyConfig", pc.clone());
    }
    Ok(alias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_parse_with_an_optional_version() {
        assert_eq!(parse_s3_uri("s3://b/k/x.zip"), Some(("b".into(), "k/x.zip".into(), None)));
        assert_eq!(
            parse_s3_uri("s3://b/k.zip?versionId=3"),
            Some(("b".into(), "k.zip".into(), Some("3".into())))
        );
        assert_eq!(parse_s3_uri("./src"), None);
        assert_eq!(parse_s3_uri("s3://bucket"), None);
    }
}
