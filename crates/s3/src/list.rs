//! ListObjectsV2 and ListObjects (v1): prefix, delimiter with CommonPrefixes, continuation
//! token / marker, StartAfter, MaxKeys, and `encoding-type=url` (which botocore and the aws CLI
//! always ask for).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use crate::buckets;
use crate::context::{self, Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::events::encode_key;
use crate::store::ObjectRow;
use crate::xml::XmlWriter;
use crate::Inner;

/// One page of a listing, in key order.
#[derive(Default)]
pub struct Page {
    pub contents: Vec<ObjectRow>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix on the page: where the next page starts.
    pub last: Option<String>,
}

/// Collects up to `max` keys and common prefixes after `after`.
pub fn page(
    s3: &Inner,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    after: &str,
    max: usize,
) -> S3Result<Page> {
    let mut page = Page::default();
    // Resuming after a common prefix skips everything under it.
    let mut skip = (!delimiter.is_empty() && after.starts_with(prefix) && after.ends_with(delimiter))
        .then(|| after.to_owned());
    let mut cursor = after.to_owned();
    'batches: loop {
        let batch = s3.db.objects_after(bucket, &cursor, prefix, 1000)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            cursor.clone_from(&row.key);
            if !row.key.starts_with(prefix) {
                break 'batches;
            }
            if skip.as_deref().is_some_and(|s| row.key.starts_with(s)) {
                continue;
            }
            let common = (!delimiter.is_empty())
                .then(|| row.key[prefix.len()..].find(delimiter))
                .flatten()
                .map(|at| row.key[..prefix.len() + at + delimiter.len()].to_owned());
            if page.prefixes.len() + page.contents.len() >= max {
                page.truncated = true;
                break 'batches;
            }
            match common {
                Some(common) => {
                    // Jump past every key under this prefix in the next query.
                    cursor = format!("{common}\u{10FFFF}");
                    page.last = Some(common.clone());
                    page.prefixes.push(common.clone());
                    skip = Some(common);
                    continue 'batches;
                }
                None => {
                    page.last = Some(row.key.clone());
                    page.contents.push(row);
                }
            }
        }
    }
    Ok(page)
}

fn max_keys(ctx: &Ctx) -> S3Result<usize> {
    let max = ctx.number("max-keys")?.unwrap_or(1000);
    if max < 0 {
        return Err(S3Error::invalid_argument(
            "Argument maxKeys must be an integer between 0 and 2147483647",
        )
        .with("ArgumentName", "maxKeys"));
    }
    Ok((max as usize).min(1000))
}

pub fn list_v2(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let prefix = ctx.param("prefix").unwrap_or("").to_owned();
    let delimiter = ctx.param("delimiter").unwrap_or("").to_owned();
    let start_after = ctx.param("start-after").unwrap_or("").to_owned();
    let token = ctx.param("continuation-token").map(str::to_owned);
    let after = match &token {
        Some(token) => decode_token(token)?,
        None => start_after.clone(),
    };
    let max = max_keys(ctx)?;
    let page = page(s3, ctx.bucket(), &prefix, &delimiter, &after, max)?;
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };

    let mut xml = XmlWriter::new();
    xml.open("ListBucketResult");
    xml.elem("Name", ctx.bucket());
    xml.elem("Prefix", &enc(&prefix));
    if !delimiter.is_empty() {
        xml.elem("Delimiter", &enc(&delimiter));
    }
    xml.elem("MaxKeys", &max.to_string());
    if url {
        xml.elem("EncodingType", "url");
    }
    xml.elem("KeyCount", &(page.contents.len() + page.prefixes.len()).to_string());
    xml.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    if let Some(token) = &token {
        xml.elem("ContinuationToken", token);
    }
    if let (true, Some(last)) = (page.truncated, &page.last) {
        xml.elem("NextContinuationToken", &B64.encode(last));
    }
    if !start_after.is_empty() {
        xml.elem("StartAfter", &enc(&start_after));
    }
    write_entries(&mut xml, &page, ctx.param("fetch-owner") == Some("true"), &s3.account, &enc);
    xml.close("ListBucketResult");
    Ok(Reply::xml(xml.finish()))
}

pub fn list_v1(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let prefix = ctx.param("prefix").unwrap_or("").to_owned();
    let delimiter = ctx.param("delimiter").unwrap_or("").to_owned();
    let marker = ctx.param("marker").unwrap_or("").to_owned();
    let max = max_keys(ctx)?;
    let page = page(s3, ctx.bucket(), &prefix, &delimiter, &marker, max)?;
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };

    let mut xml = XmlWriter::new();
    xml.open("ListBucketResult");
    xml.elem("Name", ctx.bucket());
    xml.elem("Prefix", &enc(&prefix));
    xml.elem("Marker", &enc(&marker));
    if !delimiter.is_empty() {
        xml.elem("Delimiter", &enc(&delimiter));
    }
    xml.elem("MaxKeys", &max.to_string());
    if url {
        xml.elem("EncodingType", "url");
    }
    xml.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    if let (true, Some(last)) = (page.truncated, &page.last) {
        xml.elem("NextMarker", &enc(last));
    }
    write_entries(&mut xml, &page, true, &s3.account, &enc);
    xml.close("ListBucketResult");
    Ok(Reply::xml(xml.finish()))
}

fn write_entries(xml: &mut XmlWriter, page: &Page, owner: bool, account: &str, enc: &dyn Fn(&str) -> String) {
    for object in &page.contents {
        xml.open("Contents");
        xml.elem("Key", &enc(&object.key));
        xml.elem("LastModified", &context::iso8601(object.modified_ms));
        xml.elem("ETag", &format!("\"{}\"", object.etag));
        if let Some(checksum) = &object.checksum {
            xml.elem("ChecksumAlgorithm", &checksum.algorithm);
            xml.elem("ChecksumType", if object.parts > 0 { "COMPOSITE" } else { "FULL_OBJECT" });
        }
        xml.elem("Size", &object.size.to_string());
        if owner {
            buckets::owner(xml, account);
        }
        xml.elem("StorageClass", object.extra("storage-class").unwrap_or("STANDARD"));
        xml.close("Contents");
    }
    for prefix in &page.prefixes {
        xml.open("CommonPrefixes");
        xml.elem("Prefix", &enc(prefix));
        xml.close("CommonPrefixes");
    }
}

/// `encoding-type=url` in listings: spaces as `%20` (event records write them as `+`).
fn url_encode(text: &str) -> String {
    encode_key(text).replace('+', "%20")
}

fn decode_token(token: &str) -> S3Result<String> {
    B64.decode(token).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(|| {
        S3Error::invalid_argument("The continuation token provided is incorrect")
            .with("ArgumentName", "continuation-token")
    })
}

/// ListObjectVersions: every version and delete marker, key order then newest first, with
/// prefix / delimiter / key-marker / version-id-marker / max-keys as S3 pages them.
pub fn list_versions(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = ctx.bucket().to_owned();
    s3.db.require_bucket(&bucket)?;
    let prefix = ctx.param("prefix").unwrap_or("").to_owned();
    let delimiter = ctx.param("delimiter").unwrap_or("").to_owned();
    let key_marker = ctx.param("key-marker").unwrap_or("").to_owned();
    let version_marker = ctx.param("version-id-marker").unwrap_or("").to_owned();
    if !version_marker.is_empty() && key_marker.is_empty() {
        let message = "A version-id marker cannot be specified without a key marker.";
        return Err(S3Error::invalid_argument(message)
            .with("ArgumentName", "version-id-marker")
            .with("ArgumentValue", version_marker.clone()));
    }
    let max = max_keys(ctx)?;
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };

    // Where to resume: after the marker version, or after every version of the key marker.
    let (mut cursor, mut ord) = (key_marker.clone(), i64::MIN);
    let mut previous_key = None;
    if !version_marker.is_empty() {
        if let Some(found) = s3.db.object_version(&bucket, &key_marker, &version_marker)? {
            ord = found.ord;
            previous_key = Some(key_marker.clone());
        }
    } else if !delimiter.is_empty() && key_marker.starts_with(&prefix) && key_marker.ends_with(&delimiter) {
        cursor = format!("{key_marker}\u{10FFFF}");
    }
    let mut entries = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, Option<String>)> = None;
    'batches: loop {
        let batch = s3.db.versions_after(&bucket, &cursor, ord, &prefix, 1000)?;
        if batch.is_empty() {
            break;
        }
        for listed in batch {
            cursor.clone_from(&listed.row.key);
            ord = listed.ord;
            if !listed.row.key.starts_with(&prefix) {
                break 'batches;
            }
            let common = (!delimiter.is_empty())
                .then(|| listed.row.key[prefix.len()..].find(&delimiter))
                .flatten()
                .map(|at| listed.row.key[..prefix.len() + at + delimiter.len()].to_owned());
            if entries.len() + prefixes.len() >= max {
                truncated = true;
                break 'batches;
            }
            if let Some(common) = common {
                cursor = format!("{common}\u{10FFFF}");
                ord = i64::MIN;
                last = Some((common.clone(), None));
                prefixes.push(common);
                continue 'batches;
            }
            let latest = previous_key.as_deref() != Some(listed.row.key.as_str());
            previous_key = Some(listed.row.key.clone());
            last = Some((listed.row.key.clone(), Some(listed.row.version_id.clone())));
            entries.push((listed, latest));
        }
    }

    let mut xml = XmlWriter::new();
    xml.open("ListVersionsResult");
    xml.elem("Name", &bucket);
    xml.elem("Prefix", &enc(&prefix));
    xml.elem("KeyMarker", &enc(&key_marker));
    xml.elem("VersionIdMarker", &version_marker);
    if let (true, Some((key, version))) = (truncated, &last) {
        xml.elem("NextKeyMarker", &enc(key));
        if let Some(version) = version {
            xml.elem("NextVersionIdMarker", version);
        }
    }
    xml.elem("MaxKeys", &max.to_string());
    if !delimiter.is_empty() {
        xml.elem("Delimiter", &enc(&delimiter));
    }
    if url {
        xml.elem("EncodingType", "url");
    }
    xml.elem("IsTruncated", if truncated { "true" } else { "false" });
    for (listed, latest) in &entries {
        let row = &listed.row;
        let element = if listed.marker { "DeleteMarker" } else { "Version" };
        xml.open(element);
        xml.elem("Key", &enc(&row.key));
        xml.elem("VersionId", &row.version_id);
        xml.elem("IsLatest", if *latest { "true" } else { "false" });
        xml.elem("LastModified", &context::iso8601(row.modified_ms));
        if !listed.marker {
            xml.elem("ETag", &format!("\"{}\"", row.etag));
            if let Some(checksum) = &row.checksum {
                xml.elem("ChecksumAlgorithm", &checksum.algorithm);
                xml.elem("ChecksumType", if row.parts > 0 { "COMPOSITE" } else { "FULL_OBJECT" });
            }
            xml.elem("Size", &row.size.to_string());
            xml.elem("StorageClass", row.extra("storage-class").unwrap_or("STANDARD"));
        }
        buckets::owner(&mut xml, &s3.account);
        xml.close(element);
    }
    for prefix in &prefixes {
        xml.open("CommonPrefixes");
        xml.elem("Prefix", &enc(prefix));
        xml.close("CommonPrefixes");
    }
    xml.close("ListVersionsResult");
    Ok(Reply::xml(xml.finish()))
}
