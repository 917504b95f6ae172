//! CORS: preflight `OPTIONS` answered from the bucket's CORS rules, and the
//! `Access-Control-Allow-Origin` headers on the requests those rules allow.

use crate::context::{Ctx, Reply};
use crate::error::{S3Error, S3Result};
use crate::xml::{self, Node};
use crate::Inner;

/// `*` matches any run of characters (S3 allows one wildcard per pattern).
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value[..head.len()].eq_ignore_ascii_case(head)
                && value[value.len() - tail.len()..].eq_ignore_ascii_case(tail)
        }
    }
}

fn texts<'a>(rule: &'a Node, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    rule.children(name).map(|n| n.text.trim())
}

/// The first rule allowing this origin, method and request headers.
fn matching(config: &Node, origin: &str, method: &str, headers: &[String]) -> Option<Node> {
    config
        .children("CORSRule")
        .find(|rule| {
            texts(rule, "AllowedOrigin").any(|o| wildcard(o, origin))
                && texts(rule, "AllowedMethod").any(|m| m == method)
                && headers.iter().all(|h| texts(rule, "AllowedHeader").any(|p| wildcard(p, h)))
        })
        .cloned()
}

fn allow(reply: Reply, rule: &Node, origin: &str) -> Reply {
    let any = texts(rule, "AllowedOrigin").any(|o| o == "*");
    let mut reply = reply
        .header("access-control-allow-origin", if any { "*" } else { origin })
        .header("access-control-allow-methods", texts(rule, "AllowedMethod").collect::<Vec<_>>().join(", "))
        .header("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
    if !any {
        reply = reply.header("access-control-allow-credentials", "true");
    }
    let expose: Vec<&str> = texts(rule, "ExposeHeader").collect();
    if !expose.is_empty() {
        reply = reply.header("access-control-expose-headers", expose.join(", "));
    }
    if let Some(age) = rule.child_text("MaxAgeSeconds") {
        reply = reply.header("access-control-max-age", age.trim());
    }
    reply
}

fn forbidden(message: &str) -> S3Error {
    S3Error::new(403, "AccessForbidden", message)
}

pub fn preflight(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let (Some(origin), Some(method)) = (ctx.header("origin"), ctx.header("access-control-request-method"))
    else {
        let message = "Insufficient information. Origin request header needed.";
        return Err(S3Error::new(400, "BadRequest", message));
    };
    let Some(config) = s3.db.config(ctx.bucket(), "cors")? else {
        return Err(forbidden("CORSResponse: CORS is not enabled for this bucket."));
    };
    let config = xml::parse(config.as_bytes())?;
    let headers: Vec<String> = ctx
        .header("access-control-request-headers")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let Some(rule) = matching(&config, origin, method, &headers) else {
        return Err(forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, \
             request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted \
             by the resource's CORS spec.",
        ));
    };
    let mut reply = allow(Reply::empty(200), &rule, origin);
    if !headers.is_empty() {
        reply = reply.header("access-control-allow-headers", headers.join(", "));
    }
    Ok(reply)
}

/// Adds the CORS headers to a reply when the request has an `Origin` the bucket's rules allow.
pub fn decorate(s3: &Inner, ctx: &Ctx, reply: Reply) -> Reply {
    let (Some(origin), Some(bucket)) = (ctx.header("origin"), ctx.bucket.as_deref()) else { return reply };
    let Ok(Some(config)) = s3.db.config(bucket, "cors") else { return reply };
    let Ok(config) = xml::parse(config.as_bytes()) else { return reply };
    match matching(&config, origin, ctx.request.method.as_str(), &[]) {
        Some(rule) => allow(reply, &rule, origin),
        None => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn origins_match_with_one_wildcard() {
        assert!(wildcard("*", "http://a.example"));
        assert!(wildcard("http://*.example.com", "http://app.example.com"));
        assert!(!wildcard("http://*.example.com", "http://example.org"));
        assert!(wildcard("https://a.b", "HTTPS://A.B"));
    }
}
