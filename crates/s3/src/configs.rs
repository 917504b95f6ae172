//! Bucket sub-resources kept as the documents clients send (policy, CORS, tagging, lifecycle,
//! website, encryption, replication, ownership controls, public access block, object lock,
//! logging, accelerate, request payment, ACL) and versioning.

use crate::context::{Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::xml::{self, XmlWriter};
use crate::{payload, subresources, Inner};

/// What a GET answers when nothing was configured.
enum Absent {
    Error(&'static str, &'static str),
    /// AWS's default, as a document.
    Default(&'static str),
}

struct Doc {
    sub: &'static str,
    root: &'static str,
    absent: Absent,
    /// Status of a successful PUT / DELETE.
    put_status: u16,
}

const fn doc(sub: &'static str, root: &'static str, absent: Absent, put_status: u16) -> Doc {
    Doc { sub, root, absent, put_status }
}

const DOCS: [Doc; 13] = [
    doc("policy", "", Absent::Error("NoSuchBucketPolicy", "The bucket policy does not exist"), 204),
    doc("cors", "CORSConfiguration", Absent::Error("NoSuchCORSConfiguration", "The CORS configuration does not exist"), 200),
    doc("tagging", "Tagging", Absent::Error("NoSuchTagSet", "The TagSet does not exist"), 204),
    doc(
        "lifecycle",
        "LifecycleConfiguration",
        Absent::Error("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
        200,
    ),
    doc(
        "website",
        "WebsiteConfiguration",
        Absent::Error("NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"),
        200,
    ),
    doc(
        "encryption",
        "ServerSideEncryptionConfiguration",
        Absent::Default(
            "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256\
             </SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule>\
             </ServerSideEncryptionConfiguration>",
        ),
        200,
    ),
    doc(
        "replication",
        "ReplicationConfiguration",
        Absent::Error("ReplicationConfigurationNotFoundError", "The replication configuration was not found"),
        200,
    ),
    doc(
        "ownershipControls",
        "OwnershipControls",
        Absent::Default("<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>"),
        200,
    ),
    doc(
        "publicAccessBlock",
        "PublicAccessBlockConfiguration",
        Absent::Error("NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"),
        200,
    ),
    doc(
        "object-lock",
        "ObjectLockConfiguration",
        Absent::Error("ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket"),
        200,
    ),
    doc("logging", "BucketLoggingStatus", Absent::Default("<BucketLoggingStatus/>"), 200),
    doc("accelerate", "AccelerateConfiguration", Absent::Default("<AccelerateConfiguration/>"), 200),
    doc(
        "requestPayment",
        "RequestPaymentConfiguration",
        Absent::Default("<RequestPaymentConfiguration><Payer>BucketOwner</Payer></RequestPaymentConfiguration>"),
        200,
    ),
];

fn find(ctx: &Ctx) -> Option<&'static Doc> {
    DOCS.iter().find(|d| ctx.has(d.sub))
}

/// Configurations kept by id: (sub-resource, document root, list result root).
const IDENTIFIED: [(&str, &str, &str); 4] = [
    ("inventory", "InventoryConfiguration", "ListInventoryConfigurationsResult"),
    ("analytics", "AnalyticsConfiguration", "ListBucketAnalyticsConfigurationResult"),
    ("metrics", "MetricsConfiguration", "ListMetricsConfigurationsResult"),
    (
        "intelligent-tiering",
        "IntelligentTieringConfiguration",
        "ListBucketIntelligentTieringConfigurationsOutput",
    ),
];

/// Whether the request names a bucket sub-resource handled here.
pub fn handles(ctx: &Ctx) -> bool {
    find(ctx).is_some()
        || ctx.has("acl")
        || ctx.has("versioning")
        || ctx.has("policyStatus")
        || IDENTIFIED.iter().any(|(sub, _, _)| ctx.has(sub))
}

/// GetBucketPolicyStatus: public when a policy statement allows everyone (`"Principal": "*"`).
fn policy_status(s3: &Inner, ctx: &Ctx) -> S3Result<Reply> {
    let policy = s3.db.config(ctx.bucket(), "policy")?.ok_or_else(|| {
        S3Error::new(404, "NoSuchBucketPolicy", "The bucket policy does not exist")
            .with("BucketName", ctx.bucket())
    })?;
    let parsed: serde_json::Value = serde_json::from_str(&policy).unwrap_or_default();
    let statements = match &parsed["Statement"] {
        serde_json::Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let everyone = |p: &serde_json::Value| {
        p == "*" || p["AWS"] == "*" || p["AWS"].as_array().is_some_and(|a| a.iter().any(|x| x == "*"))
    };
    let public = statements
        .iter()
        .any(|s| s["Effect"] == "Allow" && everyone(&s["Principal"]) && s["Condition"].is_null());
    let mut xml = XmlWriter::new();
    xml.open("PolicyStatus");
    xml.elem("IsPublic", if public { "true" } else { "false" });
    xml.close("PolicyStatus");
    Ok(Reply::xml(xml.finish()))
}

/// PUT / GET / DELETE of one configuration by `id`, and GET of them all.
fn identified(s3: &Inner, ctx: &mut Ctx, sub: &str, root: &str, list_root: &str) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let id = ctx.param("id").map(str::to_owned);
    let no_such = || S3Error::new(404, "NoSuchConfiguration", "The specified configuration does not exist.");
    match (&ctx.request.method, id) {
        (&hyper::Method::GET, None) => {
            let mut body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{list_root} xmlns=\"{}\">",
                xml::NAMESPACE
            );
            for (_, document) in s3.db.configs_prefixed(ctx.bucket(), &format!("{sub}:"))? {
                let element = document.trim_start();
                let element = if element.starts_with("<?") {
                    element.split_once("?>").map_or(element, |(_, rest)| rest.trim_start())
                } else {
                    element
                };
                body.push_str(element);
            }
            body.push_str(&format!("<IsTruncated>false</IsTruncated></{list_root}>"));
            Ok(Reply::xml(body))
        }
        (_, None) => {
            Err(S3Error::invalid_argument("Missing required parameter id").with("ArgumentName", "id"))
        }
        (&hyper::Method::GET, Some(id)) => {
            s3.db.config(ctx.bucket(), &format!("{sub}:{id}"))?.map(Reply::xml).ok_or_else(no_such)
        }
        (&hyper::Method::PUT, Some(id)) => {
            let data = payload::read(&ctx.request)?.data;
            let text = String::from_utf8(data.to_vec()).map_err(|_| S3Error::malformed_xml())?;
            let node = xml::parse(text.as_bytes())?;
            if node.name != root || node.child_text("Id").is_some_and(|i| i != id) {
                return Err(S3Error::malformed_xml());
            }
            s3.db.set_config(ctx.bucket(), &format!("{sub}:{id}"), &text)?;
            Ok(Reply::empty(204))
        }
        (&hyper::Method::DELETE, Some(id)) => {
            let name = format!("{sub}:{id}");
            if s3.db.config(ctx.bucket(), &name)?.is_none() {
                return Err(no_such());
            }
            s3.db.delete_config(ctx.bucket(), &name)?;
            Ok(Reply::empty(204))
        }
        _ => Err(crate::router::not_implemented(ctx)),
    }
}

pub fn route(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let method = ctx.request.method.clone();
    if let Some((sub, root, list_root)) = IDENTIFIED.iter().find(|(sub, _, _)| ctx.has(sub)) {
        return identified(s3, ctx, sub, root, list_root);
    }
    if ctx.has("acl") {
        return match method {
            hyper::Method::GET => {
                let stored = s3.db.config(ctx.bucket(), "acl")?;
                Ok(subresources::acl_reply(&s3.account, stored.as_deref()))
            }
            hyper::Method::PUT => {
                let acl = subresources::acl_from_request(ctx)?;
                s3.db.set_config(ctx.bucket(), "acl", &acl)?;
                Ok(Reply::empty(200))
            }
            _ => Err(crate::router::not_implemented(ctx)),
        };
    }
    if ctx.has("policyStatus") && method == hyper::Method::GET {
        return policy_status(s3, ctx);
    }
    if ctx.has("versioning") {
        return match method {
            hyper::Method::GET => get_versioning(s3, ctx),
            hyper::Method::PUT => put_versioning(s3, ctx),
            _ => Err(crate::router::not_implemented(ctx)),
        };
    }
    let Some(doc) = find(ctx) else { return Err(crate::router::not_implemented(ctx)) };
    match method {
        hyper::Method::GET => match s3.db.config(ctx.bucket(), doc.sub)? {
            Some(value) if doc.sub == "policy" => {
                Ok(Reply::empty(200).header("content-type", "application/json").with_body(value))
            }
            Some(value) => Ok(Reply::xml(value)),
            None => match doc.absent {
                Absent::Default(body) => {
                    Ok(Reply::xml(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}")))
                }
                Absent::Error(code, message) => {
                    Err(S3Error::new(404, code, message).with("BucketName", ctx.bucket()))
                }
            },
        },
        hyper::Method::PUT => {
            let data = payload::read(&ctx.request)?.data;
            let text = String::from_utf8(data.to_vec()).map_err(|_| S3Error::malformed_xml())?;
            validate(s3, ctx, doc, &text)?;
            s3.db.set_config(ctx.bucket(), doc.sub, &text)?;
            Ok(Reply::empty(doc.put_status))
        }
        hyper::Method::DELETE
            if !matches!(doc.sub, "object-lock" | "logging" | "accelerate" | "requestPayment") =>
        {
            s3.db.delete_config(ctx.bucket(), doc.sub)?;
            Ok(Reply::empty(204))
        }
        _ => Err(crate::router::not_implemented(ctx)),
    }
}

fn validate(s3: &Inner, ctx: &Ctx, doc: &Doc, text: &str) -> S3Result<()> {
    if doc.sub == "policy" {
        let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
        if !text.trim_start().starts_with('{') || parsed.as_ref().is_none_or(|p| p.get("Statement").is_none())
        {
            let message = if parsed.is_some() {
                "Missing required field Statement"
            } else {
                "Policies must be valid JSON and the first byte must be '{'"
            };
            return Err(S3Error::new(400, "MalformedPolicy", message));
        }
        return Ok(());
    }
    let root = xml::parse(text.as_bytes())?;
    if root.name != doc.root {
        return Err(S3Error::malformed_xml());
    }
    match doc.sub {
        "tagging" => {
            let tags = subresources::parse_tags(&root);
            if tags.len() > 50 {
                return Err(S3Error::new(400, "BadRequest", "Bucket tags cannot be greater than 50"));
            }
            for (i, (key, _)) in tags.iter().enumerate() {
                if tags[..i].iter().any(|(k, _)| k == key) {
                    return Err(S3Error::invalid_tag("Cannot provide multiple Tags with the same key")
                        .with("TagKey", key.clone()));
                }
                if key.starts_with("aws:") {
                    return Err(S3Error::invalid_tag("System tags cannot be added/updated by requester")
                        .with("TagKey", key.clone()));
                }
            }
        }
        "cors" if root.children("CORSRule").next().is_none() => return Err(S3Error::malformed_xml()),
        "lifecycle" => {
            for rule in root.children("Rule") {
                let status = rule.child_text("Status");
                if !matches!(status, Some("Enabled" | "Disabled")) {
                    return Err(S3Error::malformed_xml());
                }
            }
        }
        "object-lock" => {
            let versioning = s3.db.require_bucket(ctx.bucket())?.versioning;
            if versioning.as_deref() != Some("Enabled") {
                let message =
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration";
                return Err(S3Error::new(409, "InvalidBucketState", message));
            }
        }
        "website"
            if root.child("IndexDocument").is_none() && root.child("RedirectAllRequestsTo").is_none() =>
        {
            let message =
                "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty";
            return Err(S3Error::invalid_argument(message));
        }
        _ => {}
    }
    Ok(())
}

fn get_versioning(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let mut xml = XmlWriter::new();
    xml.open("VersioningConfiguration");
    if let Some(status) = &bucket.versioning {
        xml.elem("Status", status);
    }
    xml.close("VersioningConfiguration");
    Ok(Reply::xml(xml.finish()))
}

fn put_versioning(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    let data = payload::read(&ctx.request)?.data;
    let root = xml::parse(&data)?;
    if root.name != "VersioningConfiguration" {
        return Err(S3Error::malformed_xml());
    }
    match root.child_text("Status") {
        Some(status @ ("Enabled" | "Suspended")) => {
            if status == "Suspended" && s3.db.config(&bucket.name, "object-lock")?.is_some() {
                let message = "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.";
                return Err(S3Error::new(409, "InvalidBucketState", message));
            }
            s3.db.set_versioning(&bucket.name, status)?;
        }
        None => {}
        Some(_) => return Err(S3Error::malformed_xml()),
    }
    Ok(Reply::empty(200))
}
