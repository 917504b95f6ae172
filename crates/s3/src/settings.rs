//! Per-object settings kept with each version (storage class, server-side encryption, canned
//! ACL, website redirect, object lock, tags), read from a PUT's headers and written back as
//! response headers; the checks they imply (object lock, SSE-C keys).

use crate::context::{self, Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::store::{BucketRow, ObjectRow, Pairs};
use crate::xml;
use crate::Inner;

const STORAGE_CLASSES: [&str; 10] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];

pub const CANNED_ACLS: [&str; 8] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

pub(crate) fn bad_header(name: &str, value: &str) -> S3Error {
    S3Error::invalid_argument(format!("Invalid value for header {name}"))
        .with("ArgumentName", name.to_owned())
        .with("ArgumentValue", value)
}

/// The settings a PUT, copy or multipart upload asks for through its headers.
pub fn object_settings(s3: &Inner, ctx: &Ctx, bucket: &BucketRow) -> S3Result<Pairs> {
    let mut extra = Pairs::new();
    // The bucket's default encryption and object lock, in one read.
    let configs = s3.db.configs(&bucket.name, &["encryption", "object-lock"])?;
    let config = |name: &str| configs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if let Some(class) = ctx.header("x-amz-storage-class") {
        if !STORAGE_CLASSES.contains(&class) {
            return Err(S3Error::new(
                400,
                "InvalidStorageClass",
                "The storage class you specified is not valid",
            )
            .with("StorageClassRequested", class));
        }
        extra.push(("storage-class".into(), class.to_owned()));
    }
    let (mut sse, mut kms) = (
        ctx.header("x-amz-server-side-encryption").map(str::to_owned),
        ctx.header("x-amz-server-side-encryption-aws-kms-key-id").map(str::to_owned),
    );
    if let Some(value) = &sse {
        if !["AES256", "aws:kms", "aws:kms:dsse"].contains(&value.as_str()) {
            return Err(bad_header("x-amz-server-side-encryption", value));
        }
    } else if let Some(config) = config("encryption") {
        // The bucket's default encryption.
        let rule = xml::parse(config.as_bytes()).ok();
        let default = rule
            .as_ref()
            .and_then(|r| r.child("Rule"))
            .and_then(|r| r.child("ApplyServerSideEncryptionByDefault"));
        sse = default.and_then(|d| d.child_text("SSEAlgorithm")).map(str::to_owned);
        kms = kms.or_else(|| default.and_then(|d| d.child_text("KMSMasterKeyID")).map(str::to_owned));
    }
    let sse = sse.unwrap_or_else(|| "AES256".into());
    if sse.starts_with("aws:kms") {
        let key = kms.unwrap_or_else(|| format!("arn:aws:kms:{}:{}:alias/aws/s3", s3.region, s3.account));
        extra.push(("kms-key".into(), key));
    }
    extra.push(("sse".into(), sse));
    if let (Some(algorithm), Some(key)) = (
        ctx.header("x-amz-server-side-encryption-customer-algorithm"),
        ctx.header("x-amz-server-side-encryption-customer-key"),
    ) {
        extra.push(("sse-c".into(), algorithm.to_owned()));
        let md5 = ctx.header("x-amz-server-side-encryption-customer-key-md5").unwrap_or_default();
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD.decode(key).unwrap_or_default();
        let expected = base64::engine::general_purpose::STANDARD.encode(crate::checksum::md5_bytes(&raw));
        if raw.len() != 32 || md5 != expected {
            return Err(S3Error::invalid_argument(
                "The calculated MD5 hash of the key did not match the hash that was provided.",
            ));
        }
        extra.push(("sse-c-md5".into(), md5.to_owned()));
    }
    if let Some(location) = ctx.header("x-amz-website-redirect-location") {
        extra.push(("website-redirect".into(), location.to_owned()));
    }
    if let Some(acl) = ctx.header("x-amz-acl") {
        if !CANNED_ACLS.contains(&acl) {
            return Err(bad_header("x-amz-acl", acl));
        }
        extra.push(("acl".into(), acl.to_owned()));
    }
    let lock = [
        ("x-amz-object-lock-mode", "lock-mode"),
        ("x-amz-object-lock-retain-until-date", "lock-until"),
        ("x-amz-object-lock-legal-hold", "legal-hold"),
    ];
    for (header, name) in lock {
        if let Some(value) = ctx.header(header) {
            extra.push((name.into(), value.to_owned()));
        }
    }
    let lock_config = config("object-lock");
    if extra.iter().any(|(n, _)| n.starts_with("lock") || n == "legal-hold")
        && !lock_config.is_some_and(|c| c.contains("Enabled"))
    {
        return Err(S3Error::invalid_request("Bucket is missing Object Lock Configuration"));
    }
    if !extra.iter().any(|(n, _)| n == "lock-mode") {
        if let Some((mode, until)) = lock_config.and_then(default_retention) {
            extra.push(("lock-mode".into(), mode));
            extra.push(("lock-until".into(), context::iso8601(until)));
        }
    }
    Ok(extra)
}

pub(crate) fn lock_enabled(s3: &Inner, bucket: &str) -> S3Result<bool> {
    Ok(s3.db.config(bucket, "object-lock")?.is_some_and(|c| c.contains("Enabled")))
}

/// The bucket's default retention (its object lock document), as (mode, retain-until) from now.
fn default_retention(config: &str) -> Option<(String, i64)> {
    let root = xml::parse(config.as_bytes()).ok()?;
    let retention = root.child("Rule")?.child("DefaultRetention")?;
    let mode = retention.child_text("Mode")?;
    let days = retention.child_text("Days").and_then(|d| d.parse::<i64>().ok());
    let years = retention.child_text("Years").and_then(|d| d.parse::<i64>().ok());
    let days = days.or(years.map(|y| y * 365))?;
    Some((mode.to_owned(), context::now_ms() + days * 86_400_000))
}

/// An SSE-C object is read only with its key: the same key (by MD5) as it was written with.
pub fn check_customer_key(ctx: &Ctx, row: &ObjectRow) -> S3Result<()> {
    let Some(stored) = row.extra("sse-c-md5") else { return Ok(()) };
    let Some(key) = ctx.header("x-amz-server-side-encryption-customer-key") else {
        let message =
            "The object was stored using a form of Server Side Encryption. The correct parameters must be \
                       provided to retrieve the object.";
        return Err(S3Error::invalid_request(message));
    };
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(key).unwrap_or_default();
    let md5 = base64::engine::general_purpose::STANDARD.encode(crate::checksum::md5_bytes(&raw));
    if ctx.header("x-amz-server-side-encryption-customer-key-md5").is_some_and(|m| m != md5) {
        return Err(S3Error::invalid_argument(
            "The calculated MD5 hash of the key did not match the hash that was provided.",
        ));
    }
    if md5 != stored {
        return Err(S3Error::new(403, "AccessDenied", "Access Denied"));
    }
    Ok(())
}

/// Object lock against deleting a version: retention not yet over, or a legal hold.
pub fn check_lock(row: &ObjectRow, now_ms: i64, bypass: bool) -> S3Result<()> {
    let denied =
        || S3Error::new(403, "AccessDenied", "Access Denied because object protected by object lock.");
    if row.extra("legal-hold") == Some("ON") {
        return Err(denied());
    }
    let until = row.extra("lock-until").and_then(context::parse_iso8601);
    match (row.extra("lock-mode"), until) {
        (Some("COMPLIANCE"), Some(until)) if until > now_ms => Err(denied()),
        (Some("GOVERNANCE"), Some(until)) if until > now_ms && !bypass => Err(denied()),
        _ => Ok(()),
    }
}

/// `x-amz-tagging: k1=v1&k2=v2`.
pub fn header_tags(ctx: &Ctx) -> S3Result<Pairs> {
    let tags = ctx.header("x-amz-tagging").map(context::parse_query).unwrap_or_default();
    check_tags(&tags)?;
    Ok(tags)
}

pub(crate) fn check_tags(tags: &Pairs) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(S3Error::new(400, "BadRequest", "Object tags cannot be greater than 10"));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(S3Error::invalid_tag("Cannot provide multiple Tags with the same key")
                .with("TagKey", key.clone()));
        }
        if key.is_empty() || key.chars().count() > 128 {
            return Err(
                S3Error::invalid_tag("The TagKey you have provided is invalid").with("TagKey", key.clone())
            );
        }
        if value.chars().count() > 256 {
            return Err(
                S3Error::invalid_tag("The TagValue you have provided is invalid").with("TagKey", key.clone())
            );
        }
    }
    Ok(())
}

/// Headers describing a version on PUT / GET / HEAD / copy replies.
pub fn write_headers(mut reply: Reply, bucket: &BucketRow, row: &ObjectRow) -> Reply {
    if bucket.versioning.is_some() || row.version_id != "null" {
        reply = reply.header("x-amz-version-id", row.version_id.clone());
    }
    let headers = [
        ("sse", "x-amz-server-side-encryption"),
        ("kms-key", "x-amz-server-side-encryption-aws-kms-key-id"),
        ("sse-c", "x-amz-server-side-encryption-customer-algorithm"),
        ("sse-c-md5", "x-amz-server-side-encryption-customer-key-md5"),
        ("website-redirect", "x-amz-website-redirect-location"),
        ("lock-mode", "x-amz-object-lock-mode"),
        ("lock-until", "x-amz-object-lock-retain-until-date"),
        ("legal-hold", "x-amz-object-lock-legal-hold"),
    ];
    for (name, header) in headers {
        if let Some(value) = row.extra(name) {
            if name == "sse" && row.extra("sse-c").is_some() {
                continue;
            }
            reply = reply.header(header, value.to_owned());
        }
    }
    if row.extra("sse").is_none() {
        reply = reply.header("x-amz-server-side-encryption", "AES256");
    }
    if let Some(class) = row.extra("storage-class").filter(|c| *c != "STANDARD") {
        reply = reply.header("x-amz-storage-class", class.to_owned());
    }
    if let Some(restore) = row.extra("restore") {
        reply = reply.header("x-amz-restore", restore.to_owned());
    }
    reply
}
