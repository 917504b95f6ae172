//! Multipart uploads: Create, UploadPart (and UploadPartCopy), ListParts, Complete, Abort and
//! ListMultipartUploads. Parts are durable files of their own; Complete concatenates them into
//! a new durable file and swaps the upload for the object in one transaction.

use crate::buckets;
use crate::checksum::{self, md5_hex};
use crate::context::{self, Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::objects::{self, copy_source, request_headers, request_metadata};
use crate::range::ByteRange;
use crate::store::{ObjectRow, PartRow, UploadRow};
use crate::xml::{self, XmlWriter};
use crate::{payload, settings, Inner};

const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i64 = 10_000;

pub fn create(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let mut headers = request_headers(ctx);
    // Settings and tags ride with the upload's headers until it completes.
    let extra = settings::object_settings(s3, ctx, &bucket)?;
    headers.extend(extra.into_iter().map(|(n, v)| (format!("{EXTRA}{n}"), v)));
    headers.extend(settings::header_tags(ctx)?.into_iter().map(|(n, v)| (format!("{TAG}{n}"), v)));
    let algorithm = ctx.header("x-amz-checksum-algorithm").map(str::to_ascii_uppercase);
    let upload = UploadRow {
        id: format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
        bucket: ctx.bucket().to_owned(),
        key: ctx.key().to_owned(),
        initiated_ms: context::now_ms(),
        headers,
        metadata: request_metadata(ctx),
        algorithm: algorithm.clone(),
    };
    s3.db.create_upload(&upload)?;
    let mut xml = XmlWriter::new();
    xml.open("InitiateMultipartUploadResult");
    xml.elem("Bucket", &upload.bucket);
    xml.elem("Key", &upload.key);
    xml.elem("UploadId", &upload.id);
    xml.close("InitiateMultipartUploadResult");
    let mut reply = Reply::xml(xml.finish());
    if let Some(algorithm) = algorithm {
        reply = reply.header("x-amz-checksum-algorithm", algorithm);
    }
    Ok(reply)
}

const EXTRA: &str = "nimbus-extra:";
const TAG: &str = "nimbus-tag:";

fn part_number(ctx: &Ctx) -> S3Result<u32> {
    match ctx.number("partNumber")? {
        Some(n) if (1..=MAX_PART_NUMBER).contains(&n) => Ok(n as u32),
        _ => Err(S3Error::invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
            .with("ArgumentName", "partNumber")
            .with("ArgumentValue", ctx.param("partNumber").unwrap_or_default())),
    }
}

pub fn upload_part(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let number = part_number(ctx)?;
    let upload_id = ctx.param("uploadId").unwrap_or_default().to_owned();
    s3.db.require_bucket(ctx.bucket())?;
    s3.db.upload(ctx.bucket(), ctx.key(), &upload_id)?;
    if ctx.header("x-amz-copy-source").is_some() {
        return upload_part_copy(s3, ctx, &upload_id, number);
    }
    objects::check_size(ctx, objects::MAX_PUT_BYTES)?;
    let payload = payload::read(&ctx.request)?;
    let part = store_part(s3, &upload_id, number, &payload.data, payload.checksum.clone())?;
    let mut reply = Reply::empty(200).header("etag", format!("\"{}\"", part.etag));
    if let Some(checksum) = payload.checksum {
        reply = reply.header(&checksum.header_name(), checksum.value);
    }
    Ok(reply)
}

fn store_part(
    s3: &Inner,
    upload_id: &str,
    number: u32,
    data: &[u8],
    checksum: Option<checksum::Checksum>,
) -> S3Result<PartRow> {
    let part = PartRow {
        number,
        size: data.len() as u64,
        etag: md5_hex(data),
        modified_ms: context::now_ms(),
        checksum,
        file: s3.files.write(data)?,
    };
    match s3.db.put_part(upload_id, &part) {
        Ok(old) => old.iter().for_each(|f| s3.files.remove(f)),
        Err(error) => {
            s3.files.remove(&part.file);
            return Err(error);
        }
    }
    Ok(part)
}

fn upload_part_copy(s3: &Inner, ctx: &mut Ctx, upload_id: &str, number: u32) -> S3Result<Reply> {
    let (bucket, key, version) = copy_source(ctx)?;
    s3.db.require_bucket(&bucket)?;
    let source = objects::source_object(s3, &bucket, &key, version.as_deref())?;
    let range = match ctx.header("x-amz-copy-source-range") {
        None => None,
        Some(header) => {
            let parsed = header
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| Some(ByteRange { start: a.parse().ok()?, end: b.parse().ok()? }));
            match parsed {
                Some(range) if range.start <= range.end && range.end < source.size => Some(range),
                _ => {
                    let message = "The x-amz-copy-source-range value must be of the form bytes=first-last where \
                                   first and last are the zero-based offsets of the first and last bytes to copy";
                    return Err(
                        S3Error::invalid_argument(message).with("ArgumentName", "x-amz-copy-source-range")
                    );
                }
            }
        }
    };
    let data = s3.files.read(&source.file, range).map_err(|_| S3Error::no_such_key(&key))?;
    let part = store_part(s3, upload_id, number, &data, None)?;
    let mut xml = XmlWriter::new();
    xml.open("CopyPartResult");
    xml.elem("LastModified", &context::iso8601(part.modified_ms));
    xml.elem("ETag", &format!("\"{}\"", part.etag));
    xml.close("CopyPartResult");
    Ok(Reply::xml(xml.finish()))
}

pub fn list_parts(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let upload = s3.db.upload(ctx.bucket(), ctx.key(), ctx.param("uploadId").unwrap_or_default())?;
    let max = ctx.number("max-parts")?.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = ctx.number("part-number-marker")?.unwrap_or(0);
    let parts: Vec<PartRow> =
        s3.db.parts(&upload.id)?.into_iter().filter(|p| i64::from(p.number) > marker).collect();
    let truncated = parts.len() > max;
    let shown = &parts[..parts.len().min(max)];

    let mut xml = XmlWriter::new();
    xml.open("ListPartsResult");
    xml.elem("Bucket", &upload.bucket);
    xml.elem("Key", &upload.key);
    xml.elem("UploadId", &upload.id);
    xml.elem("PartNumberMarker", &marker.to_string());
    if let Some(last) = shown.last() {
        xml.elem("NextPartNumberMarker", &last.number.to_string());
    }
    xml.elem("MaxParts", &max.to_string());
    xml.elem("IsTruncated", if truncated { "true" } else { "false" });
    for part in shown {
        xml.open("Part");
        xml.elem("PartNumber", &part.number.to_string());
        xml.elem("LastModified", &context::iso8601(part.modified_ms));
        xml.elem("ETag", &format!("\"{}\"", part.etag));
        xml.elem("Size", &part.size.to_string());
        if let Some(checksum) = &part.checksum {
            xml.elem(&format!("Checksum{}", checksum.algorithm), &checksum.value);
        }
        xml.close("Part");
    }
    initiator_and_owner(&mut xml, &s3.account);
    xml.elem("StorageClass", "STANDARD");
    if let Some(algorithm) = &upload.algorithm {
        xml.elem("ChecksumAlgorithm", algorithm);
    }
    xml.close("ListPartsResult");
    Ok(Reply::xml(xml.finish()))
}

fn initiator_and_owner(xml: &mut XmlWriter, account: &str) {
    xml.open("Initiator");
    xml.elem("ID", &buckets::canonical_id(account));
    xml.elem("DisplayName", "nimbus");
    xml.close("Initiator");
    buckets::owner(xml, account);
}

/// The parts a CompleteMultipartUpload names, in the order given.
fn requested_parts(body: &[u8]) -> S3Result<Vec<(u32, String)>> {
    let root = xml::parse(body)?;
    if root.name != "CompleteMultipartUpload" {
        return Err(S3Error::malformed_xml());
    }
    let parts = root.children("Part").map(|part| {
        let number = part.child_text("PartNumber").and_then(|n| n.trim().parse().ok());
        let etag = part.child_text("ETag").map(|e| e.trim().trim_matches('"').to_owned());
        number.zip(etag).ok_or_else(S3Error::malformed_xml)
    });
    let parts = parts.collect::<S3Result<Vec<_>>>()?;
    if parts.is_empty() {
        let message =
            "The XML you provided was not well-formed or did not validate against our published schema";
        return Err(S3Error::new(400, "MalformedXML", message));
    }
    if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
        let message = "The list of parts was not in ascending order. Parts must be ordered by part number.";
        return Err(S3Error::new(400, "InvalidPartOrder", message));
    }
    Ok(parts)
}

pub fn complete(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let upload = match s3.db.upload(ctx.bucket(), ctx.key(), ctx.param("uploadId").unwrap_or_default()) {
        Ok(upload) => upload,
        // A retried CompleteMultipartUpload whose first attempt succeeded answers the same.
        Err(error) => return completed_before(s3, ctx).ok_or(error),
    };
    let body = payload::read(&ctx.request)?.data;
    let requested = requested_parts(&body)?;
    let stored = s3.db.parts(&upload.id)?;
    let mut chosen = Vec::with_capacity(requested.len());
    for (index, (number, etag)) in requested.iter().enumerate() {
        let part = stored.iter().find(|p| p.number == *number && p.etag == *etag).ok_or_else(|| {
            let message =
                "One or more of the specified parts could not be found. The part may not have been \
                           uploaded, or the specified entity tag may not match the part's entity tag.";
            S3Error::new(400, "InvalidPart", message)
                .with("PartNumber", number.to_string())
                .with("ETag", etag)
        })?;
        if index + 1 < requested.len() && part.size < MIN_PART_BYTES {
            let message = "Your proposed upload is smaller than the minimum allowed size";
            return Err(S3Error::new(400, "EntityTooSmall", message)
                .with("ProposedSize", part.size.to_string())
                .with("MinSizeAllowed", MIN_PART_BYTES.to_string())
                .with("PartNumber", number.to_string()));
        }
        chosen.push(part);
    }
    let files: Vec<String> = chosen.iter().map(|p| p.file.clone()).collect();
    let etags: Vec<String> = chosen.iter().map(|p| p.etag.clone()).collect();
    let bucket = s3.db.require_bucket(&upload.bucket)?;
    let (mut headers, mut extra, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    for (name, value) in &upload.headers {
        if let Some(name) = name.strip_prefix(EXTRA) {
            extra.push((name.to_owned(), value.clone()));
        } else if let Some(name) = name.strip_prefix(TAG) {
            tags.push((name.to_owned(), value.clone()));
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    let row = ObjectRow {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        size: chosen.iter().map(|p| p.size).sum(),
        etag: checksum::multipart_etag(&etags),
        modified_ms: context::now_ms(),
        version_id: objects::new_version_id(&bucket),
        tags,
        extra,
        headers,
        metadata: upload.metadata.clone(),
        checksum: None,
        parts: chosen.len() as u32,
        file: s3.files.concat(&files)?,
    };
    match s3.db.complete_upload(&upload.id, &row) {
        Ok(unreferenced) => unreferenced.iter().for_each(|f| s3.files.remove(f)),
        Err(error) => {
            s3.files.remove(&row.file);
            return Err(error);
        }
    }
    ctx.events.push(objects::created("ObjectCreated:CompleteMultipartUpload", &row));
    let host = ctx.header("host").unwrap_or("localhost");
    let mut xml = XmlWriter::new();
    xml.open("CompleteMultipartUploadResult");
    xml.elem("Location", &format!("http://{host}/{}/{}", row.bucket, crate::events::encode_key(&row.key)));
    xml.elem("Bucket", &row.bucket);
    xml.elem("Key", &row.key);
    xml.elem("ETag", &format!("\"{}\"", row.etag));
    xml.close("CompleteMultipartUploadResult");
    Ok(settings::write_headers(Reply::xml(xml.finish()), &bucket, &row))
}

fn completed_before(s3: &Inner, ctx: &Ctx) -> Option<Reply> {
    let body = payload::read(&ctx.request).ok()?.data;
    let etags: Vec<String> = requested_parts(&body).ok()?.into_iter().map(|(_, etag)| etag).collect();
    let object = s3.db.object(ctx.bucket(), ctx.key()).ok()??;
    if etags.is_empty() || object.etag != checksum::multipart_etag(&etags) {
        return None;
    }
    let host = ctx.header("host").unwrap_or("localhost");
    let mut xml = XmlWriter::new();
    xml.open("CompleteMultipartUploadResult");
    xml.elem(
        "Location",
        &format!("http://{host}/{}/{}", object.bucket, crate::events::encode_key(&object.key)),
    );
    xml.elem("Bucket", &object.bucket);
    xml.elem("Key", &object.key);
    xml.elem("ETag", &format!("\"{}\"", object.etag));
    xml.close("CompleteMultipartUploadResult");
    Some(Reply::xml(xml.finish()))
}

pub fn abort(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let upload = s3.db.upload(ctx.bucket(), ctx.key(), ctx.param("uploadId").unwrap_or_default())?;
    let files = s3.db.abort_upload(&upload.id)?.ok_or_else(|| S3Error::no_such_upload(&upload.id))?;
    files.iter().for_each(|f| s3.files.remove(f));
    Ok(Reply::empty(204))
}

pub fn list_uploads(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let prefix = ctx.param("prefix").unwrap_or("");
    let mut xml = XmlWriter::new();
    xml.open("ListMultipartUploadsResult");
    xml.elem("Bucket", ctx.bucket());
    xml.elem("KeyMarker", "");
    xml.elem("UploadIdMarker", "");
    xml.elem("Prefix", prefix);
    xml.elem("MaxUploads", "1000");
    xml.elem("IsTruncated", "false");
    for upload in s3.db.uploads(ctx.bucket())?.iter().filter(|u| u.key.starts_with(prefix)).take(1000) {
        xml.open("Upload");
        xml.elem("Key", &upload.key);
        xml.elem("UploadId", &upload.id);
        initiator_and_owner(&mut xml, &s3.account);
        xml.elem("StorageClass", "STANDARD");
        xml.elem("Initiated", &context::iso8601(upload.initiated_ms));
        xml.close("Upload");
    }
    xml.close("ListMultipartUploadsResult");
    Ok(Reply::xml(xml.finish()))
}

#[cfg(test)]
mod tests {
    use super::requested_parts;

    #[test]
    fn complete_bodies_are_read_and_checked_for_order() {
        let body = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Part><ETag>"aa"</ETag><PartNumber>1</PartNumber></Part>
            <Part><ETag>bb</ETag><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>"#;
        assert_eq!(requested_parts(body).unwrap(), vec![(1, "aa".into()), (3, "bb".into())]);
        let reversed = br#"<CompleteMultipartUpload><Part><ETag>a</ETag><PartNumber>2</PartNumber></Part>
            <Part><ETag>b</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"#;
        assert_eq!(requested_parts(reversed).unwrap_err().code, "InvalidPartOrder");
        assert_eq!(requested_parts(b"<CompleteMultipartUpload/>").unwrap_err().code, "MalformedXML");
    }
}
