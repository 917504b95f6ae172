//! The object sub-resources: tagging, ACL, retention, legal hold, GetObjectAttributes and
//! RestoreObject.

use crate::context::{self, Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::objects::find;
use crate::settings::{bad_header, check_tags, lock_enabled, CANNED_ACLS};
use crate::store::{pairs_json, ObjectRow, Pairs};
use crate::xml::{self, XmlWriter};
use crate::{buckets, payload, Inner};

fn version_header(reply: Reply, row: &ObjectRow) -> Reply {
    if row.version_id == "null" {
        reply
    } else {
        reply.header("x-amz-version-id", row.version_id.clone())
    }
}

fn set_extra(s3: &Inner, ctx: &Ctx, row: &ObjectRow, changes: &[(&str, Option<String>)]) -> S3Result<()> {
    let mut extra = row.extra.clone();
    for (name, value) in changes {
        extra.retain(|(n, _)| n != name);
        if let Some(value) = value {
            extra.push(((*name).to_owned(), value.clone()));
        }
    }
    let version = ctx.param("versionId");
    s3.db.set_object_field(ctx.bucket(), ctx.key(), version, "extra", &pairs_json(&extra))
}

fn body(ctx: &Ctx, root: &str) -> S3Result<xml::Node> {
    let data = payload::read(&ctx.request)?.data;
    let node = xml::parse(&data)?;
    if node.name != root {
        return Err(S3Error::malformed_xml());
    }
    Ok(node)
}

/// Tags of a `<Tagging><TagSet><Tag>` document.
pub fn parse_tags(node: &xml::Node) -> Pairs {
    let set = node.child("TagSet");
    set.map(|s| {
        s.children("Tag")
            .map(|t| {
                (
                    t.child_text("Key").unwrap_or_default().to_owned(),
                    t.child_text("Value").unwrap_or_default().to_owned(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

pub fn write_tags(xml: &mut XmlWriter, tags: &Pairs) {
    xml.open("Tagging");
    xml.open("TagSet");
    for (key, value) in tags {
        xml.open("Tag");
        xml.elem("Key", key);
        xml.elem("Value", value);
        xml.close("Tag");
    }
    xml.close("TagSet");
    xml.close("Tagging");
}

pub fn get_tagging(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    let mut xml = XmlWriter::new();
    write_tags(&mut xml, &row.tags);
    Ok(version_header(Reply::xml(xml.finish()), &row))
}

pub fn put_tagging(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let tags = parse_tags(&body(ctx, "Tagging")?);
    check_tags(&tags)?;
    let row = find(s3, ctx)?;
    s3.db.set_object_field(ctx.bucket(), ctx.key(), ctx.param("versionId"), "tags", &pairs_json(&tags))?;
    Ok(version_header(Reply::empty(200), &row))
}

pub fn delete_tagging(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    s3.db.set_object_field(ctx.bucket(), ctx.key(), ctx.param("versionId"), "tags", "[]")?;
    Ok(version_header(Reply::empty(204), &row))
}

/// An `AccessControlPolicy`: the owner with FULL_CONTROL, and the grants a canned ACL adds.
pub fn acl_document(account: &str, canned: &str) -> String {
    let id = buckets::canonical_id(account);
    let xsi = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
    let user = format!(
        "<Grantee {xsi} xsi:type=\"CanonicalUser\"><ID>{id}</ID><DisplayName>nimbus</DisplayName></Grantee>"
    );
    let group = |uri: &str| {
        format!(
            "<Grantee {xsi} xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/{uri}</URI></Grantee>"
        )
    };
    let mut grants = vec![(user, "FULL_CONTROL")];
    match canned {
        "public-read" => grants.push((group("global/AllUsers"), "READ")),
        "public-read-write" => {
            grants.push((group("global/AllUsers"), "READ"));
            grants.push((group("global/AllUsers"), "WRITE"));
        }
        "authenticated-read" => grants.push((group("global/AuthenticatedUsers"), "READ")),
        "log-delivery-write" => {
            grants.push((group("s3/LogDelivery"), "WRITE"));
            grants.push((group("s3/LogDelivery"), "READ_ACP"));
        }
        _ => {}
    }
    let mut xml = XmlWriter::new();
    xml.open("AccessControlPolicy");
    buckets::owner(&mut xml, account);
    xml.open("AccessControlList");
    for (grantee, permission) in grants {
        xml.open("Grant");
        xml.raw(&grantee);
        xml.elem("Permission", permission);
        xml.close("Grant");
    }
    xml.close("AccessControlList");
    xml.close("AccessControlPolicy");
    xml.finish()
}

/// The ACL a PutBucketAcl / PutObjectAcl sets: a canned name or the document sent.
pub fn acl_from_request(ctx: &Ctx) -> S3Result<String> {
    if let Some(canned) = ctx.header("x-amz-acl") {
        if !CANNED_ACLS.contains(&canned) {
            return Err(bad_header("x-amz-acl", canned));
        }
        return Ok(canned.to_owned());
    }
    let data = payload::read(&ctx.request)?.data;
    let root = xml::parse(&data)?;
    if root.name != "AccessControlPolicy" {
        return Err(S3Error::malformed_xml());
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// A stored ACL (canned name or document) as the document GetBucketAcl / GetObjectAcl answer.
pub fn acl_reply(account: &str, stored: Option<&str>) -> Reply {
    match stored {
        Some(doc) if doc.starts_with('<') => Reply::xml(doc.to_owned()),
        other => Reply::xml(acl_document(account, other.unwrap_or("private"))),
    }
}

pub fn get_acl(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    Ok(version_header(acl_reply(&s3.account, row.extra("acl")), &row))
}

pub fn put_acl(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let acl = acl_from_request(ctx)?;
    let row = find(s3, ctx)?;
    set_extra(s3, ctx, &row, &[("acl", Some(acl))])?;
    Ok(version_header(Reply::empty(200), &row))
}

pub fn get_retention(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    let (Some(mode), Some(until)) = (row.extra("lock-mode"), row.extra("lock-until")) else {
        return Err(no_lock_configuration());
    };
    let mut xml = XmlWriter::new();
    xml.open("Retention");
    xml.elem("Mode", mode);
    xml.elem("RetainUntilDate", until);
    xml.close("Retention");
    Ok(Reply::xml(xml.finish()))
}

fn no_lock_configuration() -> S3Error {
    S3Error::new(
        404,
        "NoSuchObjectLockConfiguration",
        "The specified object does not have a ObjectLock configuration",
    )
}

pub fn put_retention(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    if !lock_enabled(s3, ctx.bucket())? {
        return Err(S3Error::invalid_request("Bucket is missing Object Lock Configuration"));
    }
    let node = body(ctx, "Retention")?;
    let mode = node.child_text("Mode").map(str::to_owned);
    let until = node.child_text("RetainUntilDate").map(str::to_owned);
    if mode.as_deref().is_some_and(|m| m != "GOVERNANCE" && m != "COMPLIANCE")
        || until.as_deref().is_some_and(|u| context::parse_iso8601(u).is_none())
    {
        return Err(S3Error::malformed_xml());
    }
    let row = find(s3, ctx)?;
    // Shortening COMPLIANCE retention, or GOVERNANCE without the bypass, is refused.
    let bypass =
        ctx.header("x-amz-bypass-governance-retention").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let old_until = row.extra("lock-until").and_then(context::parse_iso8601);
    let new_until = until.as_deref().and_then(context::parse_iso8601);
    if let Some(old) = old_until.filter(|o| *o > context::now_ms()) {
        let shorter = new_until.is_none_or(|n| n < old);
        match row.extra("lock-mode") {
            Some("COMPLIANCE") if shorter || mode.as_deref() != Some("COMPLIANCE") => {
                return Err(S3Error::new(
                    403,
                    "AccessDenied",
                    "Access Denied because object protected by object lock.",
                ))
            }
            Some("GOVERNANCE") if shorter && !bypass => {
                return Err(S3Error::new(
                    403,
                    "AccessDenied",
                    "Access Denied because object protected by object lock.",
                ))
            }
            _ => {}
        }
    }
    set_extra(s3, ctx, &row, &[("lock-mode", mode), ("lock-until", until)])?;
    Ok(version_header(Reply::empty(200), &row))
}

pub fn get_legal_hold(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    let Some(status) = row.extra("legal-hold") else { return Err(no_lock_configuration()) };
    let mut xml = XmlWriter::new();
    xml.open("LegalHold");
    xml.elem("Status", status);
    xml.close("LegalHold");
    Ok(Reply::xml(xml.finish()))
}

pub fn put_legal_hold(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    if !lock_enabled(s3, ctx.bucket())? {
        return Err(S3Error::invalid_request("Bucket is missing Object Lock Configuration"));
    }
    let status = body(ctx, "LegalHold")?.child_text("Status").map(str::to_owned);
    if !matches!(status.as_deref(), Some("ON" | "OFF")) {
        return Err(S3Error::malformed_xml());
    }
    let row = find(s3, ctx)?;
    set_extra(s3, ctx, &row, &[("legal-hold", status)])?;
    Ok(version_header(Reply::empty(200), &row))
}

pub fn attributes(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    let wanted: Vec<String> = ctx
        .header("x-amz-object-attributes")
        .unwrap_or_default()
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(S3Error::invalid_argument("Invalid attribute name specified."));
    }
    let mut xml = XmlWriter::new();
    xml.open("GetObjectAttributesResponse");
    for attribute in &wanted {
        match attribute.as_str() {
            "ETag" => xml.elem("ETag", &row.etag),
            "Checksum" => {
                if let Some(checksum) = row.checksum.as_ref().filter(|_| row.parts == 0) {
                    xml.open("Checksum");
                    xml.elem(&format!("Checksum{}", checksum.algorithm), &checksum.value);
                    xml.elem("ChecksumType", "FULL_OBJECT");
                    xml.close("Checksum");
                }
            }
            "ObjectParts" if row.parts > 0 => {
                xml.open("ObjectParts");
                xml.elem("TotalPartsCount", &row.parts.to_string());
                xml.close("ObjectParts");
            }
            "ObjectParts" => {}
            "StorageClass" => xml.elem("StorageClass", row.extra("storage-class").unwrap_or("STANDARD")),
            "ObjectSize" => xml.elem("ObjectSize", &row.size.to_string()),
            _ => return Err(S3Error::invalid_argument("Invalid attribute name specified.")),
        }
    }
    xml.close("GetObjectAttributesResponse");
    let mut reply = Reply::xml(xml.finish()).header("last-modified", context::http_date(row.modified_ms));
    if bucket.versioning.is_some() {
        reply = reply.header("x-amz-version-id", row.version_id.clone());
    }
    Ok(reply)
}

/// RestoreObject: archived objects (GLACIER, DEEP_ARCHIVE) are restored at once.
pub fn restore(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let row = find(s3, ctx)?;
    if !matches!(row.extra("storage-class"), Some("GLACIER" | "DEEP_ARCHIVE")) {
        let message = "Restore is not allowed for the object's current storage class";
        return Err(S3Error::new(403, "InvalidObjectState", message));
    }
    let already = row.extra("restore").is_some();
    let days = payload::read(&ctx.request)
        .ok()
        .and_then(|p| xml::parse(&p.data).ok())
        .and_then(|n| n.child_text("Days").and_then(|d| d.parse::<i64>().ok()))
        .unwrap_or(1);
    let expiry = context::http_date(context::now_ms() + days * 86_400_000);
    set_extra(
        s3,
        ctx,
        &row,
        &[("restore", Some(format!("ongoing-request=\"false\", expiry-date=\"{expiry}\"")))],
    )?;
    Ok(Reply::empty(if already { 200 } else { 202 }))
}
