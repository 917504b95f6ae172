//! Objects: PutObject, GetObject / HeadObject (ranges, conditionals, `response-*` overrides),
//! DeleteObject, DeleteObjects and CopyObject.

use crate::checksum::{self, md5_hex};
use crate::context::{self, Ctx, ObjectEvent, Reply};
use crate::error::{S3Error, S3Result};
use crate::store::{BucketRow, Listed, ObjectRow, Pairs};
use crate::xml::{self, XmlWriter};
use crate::{payload, range, settings, Inner};

/// Largest single PUT AWS accepts (5 GiB).
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// System headers stored with an object and returned by GET/HEAD.
const STORED_HEADERS: [&str; 6] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

pub fn put(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    check_size(ctx, MAX_PUT_BYTES)?;
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    check_write_conditions(s3, ctx)?;
    let extra = settings::object_settings(s3, ctx, &bucket)?;
    let tags = settings::header_tags(ctx)?;
    let payload = payload::read(&ctx.request)?;
    let explicit = payload.checksum.clone();
    let checksum = payload.checksum.unwrap_or_else(|| checksum::default_checksum(&payload.data));
    let row = ObjectRow {
        bucket: ctx.bucket().to_owned(),
        key: ctx.key().to_owned(),
        size: payload.data.len() as u64,
        etag: md5_hex(&payload.data),
        modified_ms: context::now_ms(),
        headers: request_headers(ctx),
        metadata: request_metadata(ctx),
        checksum: Some(checksum),
        parts: 0,
        file: s3.files.write(&payload.data)?,
        version_id: new_version_id(&bucket),
        tags,
        extra,
    };
    commit(s3, &row)?;
    ctx.events.push(created("ObjectCreated:Put", &row));
    let mut reply = Reply::empty(200).header("etag", format!("\"{}\"", row.etag));
    reply = settings::write_headers(reply, &bucket, &row);
    if let Some(checksum) = explicit.or(row.checksum) {
        reply = reply
            .header(&checksum.header_name(), checksum.value)
            .header("x-amz-checksum-type", "FULL_OBJECT");
    }
    Ok(reply)
}

/// Commits a durable file's row; on failure the file is removed again.
pub fn commit(s3: &Inner, row: &ObjectRow) -> S3Result<()> {
    match s3.db.put_object(row) {
        Ok(old) => {
            old.iter().for_each(|f| s3.files.remove(f));
            Ok(())
        }
        Err(error) => {
            s3.files.remove(&row.file);
            Err(error)
        }
    }
}

/// A new version's id: `null` unless the bucket's versioning is enabled.
pub fn new_version_id(bucket: &BucketRow) -> String {
    match bucket.versioning.as_deref() {
        Some("Enabled") => format!("{}", uuid::Uuid::new_v4().simple()),
        _ => "null".to_owned(),
    }
}

/// `If-None-Match: *` and `If-Match` on a write: the current object must be absent / match.
pub fn check_write_conditions(s3: &Inner, ctx: &Ctx) -> S3Result<()> {
    let (none_match, if_match) = (ctx.header("if-none-match"), ctx.header("if-match"));
    if none_match.is_none() && if_match.is_none() {
        return Ok(());
    }
    let current = s3.db.object(ctx.bucket(), ctx.key())?;
    if none_match.is_some_and(|h| h.trim() == "*") && current.is_some() {
        return Err(precondition_failed("If-None-Match"));
    }
    if let Some(header) = if_match {
        let Some(current) = current else { return Err(S3Error::no_such_key(ctx.key())) };
        if !header.split(',').any(|t| t.trim() == "*" || t.trim().trim_matches('"') == current.etag) {
            return Err(precondition_failed("If-Match"));
        }
    }
    Ok(())
}

/// The object (or version) a GET, HEAD or sub-resource request names: `NoSuchKey` /
/// `NoSuchVersion`, and AWS's answers for delete markers.
pub fn find(s3: &Inner, ctx: &Ctx) -> S3Result<ObjectRow> {
    let (bucket, key) = (ctx.bucket(), ctx.key());
    match ctx.param("versionId") {
        Some(version) => match s3.db.object_version(bucket, key, version)? {
            Some(Listed { marker: true, row, .. }) => Err(S3Error::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )
            .with("Method", ctx.request.method.as_str())
            .with("ResourceType", "DeleteMarker")
            .with_header("x-amz-delete-marker", "true")
            .with_header("x-amz-version-id", row.version_id)
            .with_header("allow", "DELETE")),
            Some(listed) => Ok(listed.row),
            None if version != "null" && !valid_version_id(version) => {
                Err(S3Error::invalid_argument("Invalid version id specified")
                    .with("ArgumentName", "versionId")
                    .with("ArgumentValue", version))
            }
            None => Err(S3Error::no_such_version(key, version)),
        },
        None => match s3.db.object(bucket, key)? {
            Some(row) => Ok(row),
            None => match s3.db.latest_marker(bucket, key)? {
                Some(marker) => Err(S3Error::no_such_key(key)
                    .with_header("x-amz-delete-marker", "true")
                    .with_header("x-amz-version-id", marker)),
                None => Err(S3Error::no_such_key(key)),
            },
        },
    }
}

fn valid_version_id(version: &str) -> bool {
    version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn created(name: &'static str, row: &ObjectRow) -> ObjectEvent {
    ObjectEvent { name, key: row.key.clone(), size: Some(row.size), etag: Some(row.etag.clone()) }
}

pub fn check_size(ctx: &Ctx, limit: u64) -> S3Result<()> {
    let declared = ctx.header("x-amz-decoded-content-length").or_else(|| ctx.header("content-length"));
    if declared.and_then(|d| d.trim().parse::<u64>().ok()).is_some_and(|size| size > limit) {
        let message = "Your proposed upload exceeds the maximum allowed size";
        return Err(S3Error::new(400, "EntityTooLarge", message).with("MaxSizeAllowed", limit.to_string()));
    }
    Ok(())
}

pub fn request_headers(ctx: &Ctx) -> Pairs {
    let mut headers = Pairs::new();
    for name in STORED_HEADERS {
        let Some(value) = ctx.header(name) else { continue };
        let value = if name == "content-encoding" {
            // aws-chunked is transport framing, not part of the object's encoding.
            let kept: Vec<&str> = value.split(',').map(str::trim).filter(|e| *e != "aws-chunked").collect();
            kept.join(",")
        } else {
            value.to_owned()
        };
        if !value.is_empty() {
            headers.push((name.to_owned(), value));
        }
    }
    if !headers.iter().any(|(n, _)| n == "content-type") {
        headers.insert(0, ("content-type".into(), "binary/octet-stream".into()));
    }
    headers
}

pub fn request_metadata(ctx: &Ctx) -> Pairs {
    let headers = ctx.request.headers.iter();
    headers
        .filter_map(|(name, value)| {
            let suffix = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((suffix.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

pub fn get(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let object = find(s3, ctx)?;
    settings::check_customer_key(ctx, &object)?;
    if let Some(reply) = check_conditions(ctx, &object)? {
        return Ok(reply);
    }
    let mut range = range::parse(ctx.header("range"), object.size)?;
    let mut reply = Reply::empty(if range.is_some() { 206 } else { 200 });
    if let Some(part) = ctx.number("partNumber")? {
        let count = object.parts.max(1) as i64;
        if part < 1 || part > count {
            let message = "The requested partnumber is not satisfiable";
            return Err(
                S3Error::new(416, "InvalidPartNumber", message).with("PartNumberRequested", part.to_string())
            );
        }
        if object.parts > 0 {
            reply = reply.header("x-amz-mp-parts-count", object.parts.to_string());
        }
        if count > 1 {
            // Part sizes are not kept; every part but the last is taken as equal.
            let size = object.size.div_ceil(count as u64);
            let start = size * (part as u64 - 1);
            let end = (start + size).min(object.size).saturating_sub(1);
            range = Some(range::ByteRange { start, end });
            reply.status = 206;
        }
    }
    reply = settings::write_headers(reply, &bucket, &object);
    if !object.tags.is_empty() {
        reply = reply.header("x-amz-tagging-count", object.tags.len().to_string());
    }
    for (name, value) in &object.headers {
        let override_param = format!("response-{name}");
        reply = reply.header(name, ctx.param(&override_param).unwrap_or(value));
    }
    for (name, value) in &object.metadata {
        reply = reply.header(&format!("x-amz-meta-{name}"), value.clone());
    }
    reply = reply
        .header("etag", format!("\"{}\"", object.etag))
        .header("last-modified", context::http_date(object.modified_ms))
        .header("accept-ranges", "bytes");
    let length = match range {
        Some(range) => {
            reply = reply.header("content-range", range.content_range(object.size));
            range.len()
        }
        None => object.size,
    };
    let checksum_mode = ctx.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("enabled"));
    if let (true, None, Some(checksum)) = (checksum_mode, range, &object.checksum) {
        reply = reply.header(&checksum.header_name(), checksum.value.clone());
        let kind = if object.parts > 0 { "COMPOSITE" } else { "FULL_OBJECT" };
        reply = reply.header("x-amz-checksum-type", kind);
    }
    reply = reply.header("content-length", length.to_string());
    if ctx.request.method == hyper::Method::HEAD {
        return Ok(reply);
    }
    let data = s3.files.read(&object.file, range).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => S3Error::no_such_key(ctx.key()),
        _ => S3Error::internal(error),
    })?;
    Ok(reply.with_body(data))
}

/// `If-Match` / `If-None-Match` / `If-(Un)Modified-Since`: a 304 reply or a 412 error.
fn check_conditions(ctx: &Ctx, object: &ObjectRow) -> S3Result<Option<Reply>> {
    let matches = |header: &str| {
        header.split(',').any(|t| t.trim() == "*" || t.trim().trim_matches('"') == object.etag)
    };
    let since = |header: &str| {
        httpdate::parse_http_date(header)
            .ok()
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
    };
    let modified_s = object.modified_ms / 1000;
    if let Some(header) = ctx.header("if-match") {
        if !matches(header) {
            return Err(precondition_failed("If-Match"));
        }
    } else if let Some(at) = ctx.header("if-unmodified-since").and_then(since) {
        if modified_s > at / 1000 {
            return Err(precondition_failed("If-Unmodified-Since"));
        }
    }
    let not_modified = || {
        Reply::empty(304)
            .header("etag", format!("\"{}\"", object.etag))
            .header("last-modified", context::http_date(object.modified_ms))
    };
    if let Some(header) = ctx.header("if-none-match") {
        if matches(header) {
            return Ok(Some(not_modified()));
        }
    } else if let Some(at) = ctx.header("if-modified-since").and_then(since) {
        if modified_s <= at / 1000 {
            return Ok(Some(not_modified()));
        }
    }
    Ok(None)
}

fn precondition_failed(condition: &str) -> S3Error {
    S3Error::new(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        .with("Condition", condition)
}

pub fn delete(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let version = ctx.param("versionId").map(str::to_owned);
    let bypass =
        ctx.header("x-amz-bypass-governance-retention").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let removed = remove(s3, ctx, &bucket, ctx.key().to_owned(), version.as_deref(), bypass)?;
    let mut reply = Reply::empty(204);
    if let Some(removed) = removed {
        if removed.marker {
            reply = reply.header("x-amz-delete-marker", "true");
        }
        if bucket.versioning.is_some() {
            reply = reply.header("x-amz-version-id", removed.row.version_id);
        }
    }
    Ok(reply)
}

/// Deletes the current object (a delete marker in a versioned bucket) or one version.
fn remove(
    s3: &Inner,
    ctx: &mut Ctx,
    bucket: &BucketRow,
    key: String,
    version: Option<&str>,
    bypass: bool,
) -> S3Result<Option<Listed>> {
    let now = context::now_ms();
    let deletion = match (version, bucket.versioning.as_deref()) {
        (Some(version), _) => {
            let guard = |row: &ObjectRow| settings::check_lock(row, now, bypass);
            s3.db.delete_version(ctx.bucket(), &key, version, &guard)?
        }
        (None, Some(status)) => {
            let marker = if status == "Enabled" {
                format!("{}", uuid::Uuid::new_v4().simple())
            } else {
                "null".into()
            };
            s3.db.delete_current(ctx.bucket(), &key, &marker, now)?
        }
        (None, None) => {
            let removed = s3.db.delete_object(ctx.bucket(), &key)?;
            let files = removed.iter().map(|o| o.file.clone()).collect();
            let removed = removed.map(|row| Listed { row, marker: false, ord: 0 });
            crate::store::Deletion { files, removed }
        }
    };
    deletion.files.iter().for_each(|f| s3.files.remove(f));
    if let Some(removed) = &deletion.removed {
        let name = if removed.marker && version.is_none() {
            "ObjectRemoved:DeleteMarkerCreated"
        } else {
            "ObjectRemoved:Delete"
        };
        ctx.events.push(ObjectEvent { name, key, size: None, etag: None });
    }
    Ok(deletion.removed)
}

pub fn delete_many(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let bypass =
        ctx.header("x-amz-bypass-governance-retention").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let body = payload::read(&ctx.request)?.data;
    let root = xml::parse(&body)?;
    if root.name != "Delete" {
        return Err(S3Error::malformed_xml());
    }
    let quiet = root.child_text("Quiet").is_some_and(|q| q.eq_ignore_ascii_case("true"));
    let keys: Vec<(String, Option<String>)> = root
        .children("Object")
        .filter_map(|o| Some((o.child_text("Key")?.to_owned(), o.child_text("VersionId").map(str::to_owned))))
        .collect();
    if keys.is_empty() || keys.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    let mut xml = XmlWriter::new();
    xml.open("DeleteResult");
    for (key, version) in keys {
        match remove(s3, ctx, &bucket, key.clone(), version.as_deref(), bypass) {
            Ok(_) if quiet => {}
            Ok(removed) => {
                xml.open("Deleted");
                xml.elem("Key", &key);
                if let Some(version) = &version {
                    xml.elem("VersionId", version);
                }
                match removed {
                    Some(removed) if removed.marker => {
                        xml.elem("DeleteMarker", "true");
                        xml.elem("DeleteMarkerVersionId", &removed.row.version_id);
                    }
                    _ => {}
                }
                xml.close("Deleted");
            }
            Err(error) => {
                xml.open("Error");
                xml.elem("Key", &key);
                if let Some(version) = &version {
                    xml.elem("VersionId", version);
                }
                xml.elem("Code", error.code);
                xml.elem("Message", &error.message);
                xml.close("Error");
            }
        }
    }
    xml.close("DeleteResult");
    Ok(Reply::xml(xml.finish()))
}

/// `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded, optional `?versionId=`).
pub fn copy_source(ctx: &Ctx) -> S3Result<(String, String, Option<String>)> {
    let raw = ctx.header("x-amz-copy-source").unwrap_or_default();
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let version = context::parse_query(query).into_iter().find(|(n, _)| n == "versionId").map(|(_, v)| v);
    let decoded = nimbus_api::percent_decode(path.trim_start_matches('/'));
    let invalid = || {
        S3Error::invalid_argument("Invalid copy source object key").with("ArgumentName", "x-amz-copy-source")
    };
    let (bucket, key) =
        decoded.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()).ok_or_else(invalid)?;
    Ok((bucket.to_owned(), key.to_owned(), version))
}

pub fn copy(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let (source_bucket, source_key, source_version) = copy_source(ctx)?;
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    s3.db.require_bucket(&source_bucket)?;
    check_write_conditions(s3, ctx)?;
    let source = source_object(s3, &source_bucket, &source_key, source_version.as_deref())?;
    let mut extra = settings::object_settings(s3, ctx, &bucket)?;
    if ctx.header("x-amz-storage-class").is_none() {
        if let Some(class) = source.extra("storage-class") {
            extra.push(("storage-class".into(), class.to_owned()));
        }
    }
    let tags = match ctx.header("x-amz-tagging-directive") {
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => settings::header_tags(ctx)?,
        _ => source.tags.clone(),
    };
    let replace = ctx.header("x-amz-metadata-directive").is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    let changes_settings =
        ["x-amz-storage-class", "x-amz-server-side-encryption", "x-amz-website-redirect-location"]
            .iter()
            .any(|h| ctx.header(h).is_some());
    if !replace && !changes_settings && source_bucket == ctx.bucket() && source_key == ctx.key() {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing \
             the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let (headers, metadata) = if replace {
        (request_headers(ctx), request_metadata(ctx))
    } else {
        (source.headers, source.metadata)
    };
    let file = s3.files.duplicate(&source.file).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => S3Error::no_such_key(&source_key),
        _ => S3Error::internal(error),
    })?;
    let row = ObjectRow {
        bucket: ctx.bucket().to_owned(),
        key: ctx.key().to_owned(),
        size: source.size,
        etag: source.etag,
        modified_ms: context::now_ms(),
        headers,
        metadata,
        checksum: source.checksum.filter(|_| source.parts == 0),
        parts: source.parts,
        file,
        version_id: new_version_id(&bucket),
        tags,
        extra,
    };
    commit(s3, &row)?;
    ctx.events.push(created("ObjectCreated:Copy", &row));
    let mut xml = XmlWriter::new();
    xml.open("CopyObjectResult");
    xml.elem("LastModified", &context::iso8601(row.modified_ms));
    xml.elem("ETag", &format!("\"{}\"", row.etag));
    if let Some(checksum) = &row.checksum {
        xml.elem(&format!("Checksum{}", checksum.algorithm), &checksum.value);
    }
    xml.close("CopyObjectResult");
    let mut reply = settings::write_headers(Reply::xml(xml.finish()), &bucket, &row);
    if source.version_id != "null" {
        reply = reply.header("x-amz-copy-source-version-id", source.version_id);
    }
    Ok(reply)
}

/// A copy's (or UploadPartCopy's) source: the current object or the named version.
pub fn source_object(s3: &Inner, bucket: &str, key: &str, version: Option<&str>) -> S3Result<ObjectRow> {
    match version {
        Some(version) => match s3.db.object_version(bucket, key, version)? {
            Some(Listed { marker: false, row, .. }) => Ok(row),
            Some(_) => Err(S3Error::invalid_request(
                "The source of a copy request may not specifically refer to a delete marker by version id.",
            )),
            None => Err(S3Error::no_such_version(key, version)),
        },
        None => s3.db.object(bucket, key)?.ok_or_else(|| S3Error::no_such_key(key)),
    }
}
