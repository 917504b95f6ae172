//! Buckets: CreateBucket, HeadBucket, ListBuckets, DeleteBucket, GetBucketLocation,
//! GetBucketVersioning, and S3's bucket naming rules.

use crate::context::{self, Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::store::BucketDeletion;
use crate::xml::{self, XmlWriter};
use crate::{settings, Inner};

/// AWS's general purpose bucket naming rules.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let charset =
        bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-');
    let edges = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ip_like = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    let reserved_prefix = ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p));
    let reserved_suffix =
        ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s));
    (3..=63).contains(&name.len())
        && charset
        && edges(bytes.first())
        && edges(bytes.last())
        && !name.contains("..")
        && !ip_like
        && !reserved_prefix
        && !reserved_suffix
}

pub fn create(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let name = ctx.bucket().to_owned();
    if !valid_name(&name) {
        return Err(S3Error::invalid_bucket_name(&name));
    }
    // The bucket's region: its LocationConstraint, else the region the request was signed for.
    let mut region = scope_region(ctx).unwrap_or_else(|| s3.region.clone());
    if !ctx.request.body.iter().all(u8::is_ascii_whitespace) {
        let config = xml::parse(&ctx.request.body)?;
        if let Some(constraint) = config.child_text("LocationConstraint").filter(|c| !c.is_empty()) {
            if !region_like(constraint) {
                let message = "The specified location-constraint is not valid";
                return Err(S3Error::new(400, "InvalidLocationConstraint", message)
                    .with("LocationConstraint", constraint));
            }
            region = if constraint == "EU" { "eu-west-1".to_owned() } else { constraint.to_owned() };
        }
    }
    let acl = ctx.header("x-amz-acl").map(str::to_owned);
    if acl.as_deref().is_some_and(|a| !settings::CANNED_ACLS.contains(&a)) {
        return Err(
            S3Error::invalid_argument("Invalid value for header x-amz-acl").with("ArgumentName", "x-amz-acl")
        );
    }
    if !s3.db.create_bucket(&name, &region, context::now_ms())? {
        let message = "Your previous request to create the named bucket succeeded and you already own it.";
        return Err(S3Error::new(409, "BucketAlreadyOwnedByYou", message).with("BucketName", &name));
    }
    if let Some(acl) = acl {
        s3.db.set_config(&name, "acl", &acl)?;
    }
    if let Some(ownership) = ctx.header("x-amz-object-ownership") {
        let doc = format!(
            "<OwnershipControls><Rule><ObjectOwnership>{}</ObjectOwnership></Rule></OwnershipControls>",
            nimbus_api::xml::escape(ownership)
        );
        s3.db.set_config(&name, "ownershipControls", &doc)?;
    }
    if ctx.header("x-amz-bucket-object-lock-enabled").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        s3.db.set_versioning(&name, "Enabled")?;
        let doc = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
        s3.db.set_config(&name, "object-lock", doc)?;
    }
    Ok(Reply::empty(200).header("location", format!("/{name}")))
}

/// `us-east-1`, `eu-central-2`, `ap-southeast-1`, `us-gov-west-1`, and the legacy `EU`.
fn region_like(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    name == "EU"
        || (parts.len() >= 3
            && parts[0].len() == 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
            && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
}

/// The region of the request's SigV4 credential scope (header or presigned query).
fn scope_region(ctx: &Ctx) -> Option<String> {
    let region = nimbus_api::scope::scope_of(&ctx.request.headers, &ctx.request.uri)?.region;
    region_like(&region).then_some(region)
}

pub fn head(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    Ok(Reply::empty(200)
        .header("x-amz-bucket-region", bucket.region)
        .header("x-amz-access-point-alias", "false"))
}

pub fn list(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let prefix = ctx.param("prefix").unwrap_or("").to_owned();
    let after = ctx.param("continuation-token").unwrap_or("").to_owned();
    let max = match ctx.number("max-buckets")? {
        None => usize::MAX,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(_) => {
            return Err(S3Error::invalid_argument(
                "Argument max-buckets must be an integer between 1 and 10000",
            )
            .with("ArgumentName", "max-buckets"))
        }
    };
    let all = s3.db.buckets()?;
    let mut matching =
        all.into_iter().filter(|b| b.name.starts_with(&prefix) && b.name.as_str() > after.as_str());
    let page: Vec<_> = matching.by_ref().take(max).collect();
    let more = matching.next().is_some();
    let mut xml = XmlWriter::new();
    xml.open("ListAllMyBucketsResult");
    owner(&mut xml, &s3.account);
    xml.open("Buckets");
    for bucket in &page {
        xml.open("Bucket");
        xml.elem("Name", &bucket.name);
        xml.elem("CreationDate", &context::iso8601(bucket.created_ms));
        xml.elem("BucketRegion", &bucket.region);
        xml.close("Bucket");
    }
    xml.close("Buckets");
    if let (true, Some(last)) = (more, page.last()) {
        xml.elem("ContinuationToken", &last.name);
    }
    if ctx.has("prefix") {
        xml.elem("Prefix", &prefix);
    }
    xml.close("ListAllMyBucketsResult");
    Ok(Reply::xml(xml.finish()))
}

pub fn delete(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    match s3.db.delete_bucket(ctx.bucket())? {
        BucketDeletion::Deleted(files) => {
            files.iter().for_each(|f| s3.files.remove(f));
            Ok(Reply::empty(204))
        }
        BucketDeletion::Missing => Err(S3Error::no_such_bucket(ctx.bucket())),
        BucketDeletion::NotEmpty => {
            let message = "The bucket you tried to delete is not empty";
            Err(S3Error::new(409, "BucketNotEmpty", message).with("BucketName", ctx.bucket()))
        }
    }
}

pub fn location(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let bucket = s3.db.require_bucket(ctx.bucket())?;
    // us-east-1 is the empty constraint, as AWS answers.
    let region = if bucket.region == "us-east-1" { String::new() } else { bucket.region };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{}\">{}</LocationConstraint>",
        xml::NAMESPACE,
        nimbus_api::xml::escape(&region)
    );
    Ok(Reply::xml(body))
}

/// `<Owner>` as S3 writes it; the canonical id is derived from the account.
pub fn owner(xml: &mut XmlWriter, account: &str) {
    xml.open("Owner");
    xml.elem("ID", &canonical_id(account));
    xml.elem("DisplayName", "nimbus");
    xml.close("Owner");
}

pub fn canonical_id(account: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(account.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn bucket_names_follow_aws_rules() {
        for good in ["abc", "my-bucket.logs", "a1b", &"a".repeat(63)] {
            assert!(valid_name(good), "{good}");
        }
        let long = "a".repeat(64);
        let bad = [
            "ab",
            &long,
            "My-Bucket",
            "under_score",
            "-abc",
            "abc-",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "abc-s3alias",
        ];
        for bad in bad {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
