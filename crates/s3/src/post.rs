//! Browser POST uploads (`multipart/form-data` to the bucket, as `generate_presigned_post`
//! makes): the form's fields become the object's key, metadata and headers, and the policy
//! document's expiration and conditions are checked. Signatures are not (nimbus accepts any
//! credentials).

use base64::Engine;
use serde_json::Value;

use crate::context::{self, Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::store::ObjectRow;
use crate::xml::XmlWriter;
use crate::{checksum, objects, settings, subresources, Inner};

/// One form field: its name, the file name for the file field, its bytes.
struct Field {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from >= haystack.len() {
        return None;
    }
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn parse_form(body: &[u8], boundary: &str) -> S3Result<Vec<Field>> {
    let malformed = || {
        S3Error::new(
            400,
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        )
    };
    let delimiter = format!("--{boundary}");
    let mut fields = Vec::new();
    let mut at = find(body, delimiter.as_bytes(), 0).ok_or_else(malformed)? + delimiter.len();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(fields);
        }
        at += 2; // CRLF after the delimiter
        let headers_end = find(body, b"\r\n\r\n", at).ok_or_else(malformed)?;
        let headers = String::from_utf8_lossy(&body[at..headers_end]).into_owned();
        let data_start = headers_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), data_start).ok_or_else(malformed)?;
        let mut field = Field {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body[data_start..next].to_vec(),
        };
        for line in headers.split("\r\n") {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            if name.eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').map(str::trim) {
                    if let Some(v) = param.strip_prefix("name=") {
                        field.name = v.trim_matches('"').to_owned();
                    } else if let Some(v) = param.strip_prefix("filename=") {
                        field.filename = Some(v.trim_matches('"').to_owned());
                    }
                }
            } else if name.eq_ignore_ascii_case("content-type") {
                field.content_type = Some(value.trim().to_owned());
            }
        }
        fields.push(field);
        at = next + 2 + delimiter.len();
        if at > body.len() {
            return Err(malformed());
        }
    }
}

fn denied(message: &str) -> S3Error {
    S3Error::new(403, "AccessDenied", format!("Invalid according to Policy: {message}"))
}

/// The policy's expiration and conditions against the form (field names compare case-blind).
fn check_policy(policy: &str, bucket: &str, form: &[(String, String)], size: usize) -> S3Result<()> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(policy.trim()).map_err(|_| {
        S3Error::invalid_argument("Invalid Policy: Invalid Base64 Encoding").with("ArgumentName", "policy")
    })?;
    let policy: Value = serde_json::from_slice(&bytes).map_err(|_| {
        S3Error::invalid_argument("Invalid Policy: Invalid JSON.").with("ArgumentName", "policy")
    })?;
    let expiration = policy["expiration"].as_str().and_then(context::parse_iso8601);
    match expiration {
        Some(at) if at < context::now_ms() => return Err(denied("Policy expired.")),
        None => return Err(S3Error::invalid_argument("Invalid Policy: Policy missing expiration.")),
        _ => {}
    }
    let value_of = |name: &str| -> String {
        let name = name.trim_start_matches('$');
        if name.eq_ignore_ascii_case("bucket") {
            return bucket.to_owned();
        }
        form.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    for condition in policy["conditions"].as_array().into_iter().flatten() {
        let failed = |what: &str| denied(&format!("Policy Condition failed: {what}"));
        match condition {
            Value::Object(map) => {
                for (name, want) in map {
                    if value_of(name) != want.as_str().unwrap_or_default() {
                        return Err(failed(&format!(
                            "[\"eq\", \"${name}\", \"{}\"]",
                            want.as_str().unwrap_or_default()
                        )));
                    }
                }
            }
            Value::Array(items) => {
                let op = items.first().and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
                let text = |i: usize| items.get(i).and_then(Value::as_str).unwrap_or_default();
                match op.as_str() {
                    "eq" if value_of(text(1)) != text(2) => return Err(failed(&condition.to_string())),
                    "starts-with" if !value_of(text(1)).starts_with(text(2)) => {
                        return Err(failed(&condition.to_string()))
                    }
                    "content-length-range" => {
                        let (min, max) = (
                            items.get(1).and_then(Value::as_u64).unwrap_or(0),
                            items.get(2).and_then(Value::as_u64).unwrap_or(u64::MAX),
                        );
                        if (size as u64) < min || (size as u64) > max {
                            let code = if (size as u64) > max { "EntityTooLarge" } else { "EntityTooSmall" };
                            let message = if (size as u64) > max {
                                "Your proposed upload exceeds the maximum allowed size"
                            } else {
                                "Your proposed upload is smaller than the minimum allowed size"
                            };
                            return Err(S3Error::new(400, code, message));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn is_post_upload(ctx: &Ctx) -> bool {
    ctx.query.is_empty()
        && ctx
            .header("content-type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
}

pub fn upload(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let content_type = ctx.header("content-type").unwrap_or_default().to_owned();
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .ok_or_else(|| {
            S3Error::new(
                400,
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        })?;
    let fields = parse_form(&ctx.request.body, &boundary)?;
    let file = fields.iter().find(|f| f.name == "file").ok_or_else(|| {
        S3Error::invalid_argument("POST requires exactly one file upload per request.")
            .with("ArgumentName", "file")
    })?;
    let form: Vec<(String, String)> = fields
        .iter()
        .filter(|f| f.name != "file")
        .map(|f| (f.name.clone(), String::from_utf8_lossy(&f.data).into_owned()))
        .collect();
    let get = |name: &str| form.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut key = get("key").ok_or_else(|| {
        S3Error::invalid_argument("Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.")
            .with("ArgumentName", "key")
    })?;
    if let Some(filename) = &file.filename {
        key = key.replace("${filename}", filename);
    }
    if let Some(policy) = get("policy") {
        check_policy(&policy, ctx.bucket(), &form, file.data.len())?;
    }
    if file.data.len() as u64 > objects::MAX_PUT_BYTES {
        return Err(S3Error::new(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        ));
    }
    let mut headers = Vec::new();
    let stored = ["content-type", "cache-control", "content-disposition", "content-encoding", "expires"];
    for name in stored {
        if let Some(value) =
            get(name).or_else(|| (name == "content-type").then(|| file.content_type.clone()).flatten())
        {
            headers.push((name.to_owned(), value));
        }
    }
    if !headers.iter().any(|(n, _)| n == "content-type") {
        headers.insert(0, ("content-type".into(), "binary/octet-stream".into()));
    }
    let metadata = form
        .iter()
        .filter_map(|(n, v)| {
            Some((n.to_ascii_lowercase().strip_prefix("x-amz-meta-")?.to_owned(), v.clone()))
        })
        .collect();
    let mut extra =
        vec![("sse".to_owned(), get("x-amz-server-side-encryption").unwrap_or_else(|| "AES256".into()))];
    if let Some(class) = get("x-amz-storage-class") {
        extra.push(("storage-class".into(), class));
    }
    if let Some(acl) = get("acl") {
        extra.push(("acl".into(), acl));
    }
    let tags = get("tagging")
        .and_then(|t| crate::xml::parse(t.as_bytes()).ok())
        .map(|node| subresources::parse_tags(&node))
        .unwrap_or_default();
    let row = ObjectRow {
        bucket: ctx.bucket().to_owned(),
        key: key.clone(),
        size: file.data.len() as u64,
        etag: checksum::md5_hex(&file.data),
        modified_ms: context::now_ms(),
        headers,
        metadata,
        checksum: Some(checksum::default_checksum(&file.data)),
        parts: 0,
        file: s3.files.write(&file.data)?,
        version_id: objects::new_version_id(&bucket),
        tags,
        extra,
    };
    objects::commit(s3, &row)?;
    ctx.events.push(objects::created("ObjectCreated:Post", &row));
    let etag = format!("\"{}\"", row.etag);
    let location = format!("/{}/{}", row.bucket, crate::events::encode_key(&key));
    if let Some(redirect) = get("success_action_redirect").filter(|r| !r.is_empty()) {
        let separator = if redirect.contains('?') { '&' } else { '?' };
        let target = format!(
            "{redirect}{separator}bucket={}&key={}&etag={}",
            crate::events::encode_key(&row.bucket),
            crate::events::encode_key(&key),
            crate::events::encode_key(&etag)
        );
        return Ok(Reply::empty(303).header("location", target).header("etag", etag));
    }
    let reply = match get("success_action_status").as_deref() {
        Some("201") => {
            let mut xml = XmlWriter::new();
            xml.open("PostResponse");
            xml.elem("Location", &location);
            xml.elem("Bucket", &row.bucket);
            xml.elem("Key", &key);
            xml.elem("ETag", &etag);
            xml.close("PostResponse");
            let mut reply = Reply::xml(xml.finish());
            reply.status = 201;
            reply
        }
        Some("200") => Reply::empty(200),
        _ => Reply::empty(204),
    };
    Ok(settings::write_headers(reply.header("etag", etag).header("location", location), &bucket, &row))
}
