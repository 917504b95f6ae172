//! Request → operation: by method, by whether a bucket and key are addressed, and by the query's
//! sub-resource (`?uploads`, `?notification`, `?delete` …), as in botocore's S3 model.

use hyper::Method;

use crate::context::{Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::{buckets, configs, cors, list, multipart, notifications, objects, post, subresources, Inner};

/// Sub-resources nimbus does not keep.
const UNSUPPORTED: [&str; 1] = ["torrent"];

pub fn route(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    check_presigned_expiry(ctx)?;
    // Every bucket belongs to nimbus's account: another expected owner is refused, as AWS does.
    let expected = ["x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner"];
    if expected.iter().any(|h| ctx.header(h).is_some_and(|owner| owner != s3.account)) {
        return Err(S3Error::new(403, "AccessDenied", "Access Denied"));
    }
    let method = ctx.request.method.clone();
    if ctx.bucket.is_none() {
        return match method {
            Method::GET => buckets::list(s3, ctx),
            _ => Err(method_not_allowed()),
        };
    }
    if ctx.key.is_none() {
        return route_bucket(s3, ctx, &method);
    }
    let sub = |name: &str| ctx.has(name);
    if method == Method::OPTIONS {
        return cors::preflight(s3, ctx);
    }
    match method {
        Method::PUT if sub("uploadId") => multipart::upload_part(s3, ctx),
        Method::PUT if sub("tagging") => subresources::put_tagging(s3, ctx),
        Method::PUT if sub("acl") => subresources::put_acl(s3, ctx),
        Method::PUT if sub("retention") => subresources::put_retention(s3, ctx),
        Method::PUT if sub("legal-hold") => subresources::put_legal_hold(s3, ctx),
        Method::PUT if ctx.header("x-amz-copy-source").is_some() => objects::copy(s3, ctx),
        Method::PUT if unsupported(ctx).is_some() => Err(not_implemented(ctx)),
        Method::PUT => objects::put(s3, ctx),
        Method::GET if sub("uploadId") => multipart::list_parts(s3, ctx),
        Method::GET if sub("tagging") => subresources::get_tagging(s3, ctx),
        Method::GET if sub("acl") => subresources::get_acl(s3, ctx),
        Method::GET if sub("retention") => subresources::get_retention(s3, ctx),
        Method::GET if sub("legal-hold") => subresources::get_legal_hold(s3, ctx),
        Method::GET if sub("attributes") => subresources::attributes(s3, ctx),
        Method::GET if unsupported(ctx).is_some() => Err(not_implemented(ctx)),
        Method::GET | Method::HEAD => objects::get(s3, ctx),
        Method::DELETE if sub("uploadId") => multipart::abort(s3, ctx),
        Method::DELETE if sub("tagging") => subresources::delete_tagging(s3, ctx),
        Method::DELETE => objects::delete(s3, ctx),
        Method::POST if sub("restore") => subresources::restore(s3, ctx),
        Method::POST if sub("uploads") => multipart::create(s3, ctx),
        Method::POST if sub("uploadId") => multipart::complete(s3, ctx),
        _ => Err(not_implemented(ctx)),
    }
}

fn route_bucket(s3: &Inner, ctx: &mut Ctx, method: &Method) -> S3Result<Reply> {
    let sub = |name: &str| ctx.has(name);
    match *method {
        Method::OPTIONS => cors::preflight(s3, ctx),
        Method::PUT if sub("notification") => notifications::put(s3, ctx),
        Method::PUT if ctx.query.is_empty() => buckets::create(s3, ctx),
        Method::GET if sub("notification") => notifications::get(s3, ctx),
        Method::GET if sub("location") => buckets::location(s3, ctx),
        Method::GET if sub("versions") => list::list_versions(s3, ctx),
        Method::GET if sub("uploads") => multipart::list_uploads(s3, ctx),
        _ if unsupported(ctx).is_some() => {
            s3.db.require_bucket(ctx.bucket())?;
            Err(not_implemented(ctx))
        }
        Method::GET | Method::PUT | Method::DELETE if configs::handles(ctx) => configs::route(s3, ctx),
        Method::GET if ctx.param("list-type") == Some("2") => list::list_v2(s3, ctx),
        Method::GET => list::list_v1(s3, ctx),
        Method::HEAD => buckets::head(s3, ctx),
        Method::DELETE if ctx.query.is_empty() => buckets::delete(s3, ctx),
        Method::POST if sub("delete") => objects::delete_many(s3, ctx),
        Method::POST if post::is_post_upload(ctx) => post::upload(s3, ctx),
        _ => Err(not_implemented(ctx)),
    }
}

fn unsupported(ctx: &Ctx) -> Option<&'static str> {
    UNSUPPORTED.into_iter().find(|name| ctx.has(name))
}

pub fn not_implemented(ctx: &Ctx) -> S3Error {
    let sub = ctx.query.first().map(|(n, _)| n.as_str()).unwrap_or("");
    S3Error::not_implemented(&format!("{} ?{sub}", ctx.request.method))
}

fn method_not_allowed() -> S3Error {
    S3Error::new(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
}

/// Presigned URLs carry their own expiry; nimbus accepts any signature but honours it.
fn check_presigned_expiry(ctx: &Ctx) -> S3Result<()> {
    let (Some(date), Some(expires)) = (ctx.param("X-Amz-Date"), ctx.param("X-Amz-Expires")) else {
        return Ok(());
    };
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let (Ok(signed), Ok(expires)) = (time::PrimitiveDateTime::parse(date, &format), expires.parse::<i64>())
    else {
        return Err(S3Error::new(
            400,
            "AuthorizationQueryParametersError",
            "Invalid X-Amz-Date or X-Amz-Expires",
        ));
    };
    let deadline = signed.assume_utc() + time::Duration::seconds(expires);
    if time::OffsetDateTime::now_utc() > deadline {
        return Err(S3Error::new(403, "AccessDenied", "Request has expired")
            .with("X-Amz-Expires", expires.to_string())
            .with("Expires", crate::context::iso8601(deadline.unix_timestamp() * 1000)));
    }
    Ok(())
}
