//! The signing keys of JWT issuers: `{issuer}/.well-known/openid-configuration`'s `jwks_uri`
//! (or `{issuer}/.well-known/jwks.json`), fetched over plain HTTP, kept five minutes (a failed
//! fetch one minute), and RS256 signatures checked against them. nimbus has no TLS client: an
//! `https://` issuer's keys cannot be fetched, and tokens are then checked by their claims only.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::Mutex;

const KEEP_MS: i64 = 300_000;
const KEEP_FAILED_MS: i64 = 60_000;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT: usize = 1024 * 1024;

/// Per issuer: when fetched, and the keys (`None`: unreachable).
#[derive(Default)]
pub struct Jwks(Mutex<HashMap<String, (i64, Option<JwkSet>)>>);

/// What checking a token's signature found.
#[derive(Debug, PartialEq, Eq)]
pub enum Signature {
    Valid,
    Invalid,
    /// The issuer's keys could not be fetched.
    Unchecked,
}

impl Jwks {
    pub async fn check(&self, issuer: &str, token: &str) -> Signature {
        let now = crate::store::now_ms();
        let mut sets = self.0.lock().await;
        let fresh = sets
            .get(issuer)
            .filter(|(at, set)| now - at < if set.is_some() { KEEP_MS } else { KEEP_FAILED_MS });
        let set = match fresh {
            Some((_, set)) => set.clone(),
            None => {
                let set = fetch_keys(issuer).await;
                if set.is_none() {
                    eprintln!("nimbus: cannot fetch the JWKS of {issuer}: JWTs it issues are checked by their claims only");
                }
                sets.insert(issuer.to_owned(), (now, set.clone()));
                set
            }
        };
        drop(sets);
        match set {
            None => Signature::Unchecked,
            Some(set) => verify(&set, token),
        }
    }
}

/// RS256 (the only algorithm API Gateway accepts) against the key the token's `kid` names.
pub fn verify(set: &JwkSet, token: &str) -> Signature {
    let Ok(header) = jsonwebtoken::decode_header(token) else { return Signature::Invalid };
    if header.alg != Algorithm::RS256 {
        return Signature::Invalid;
    }
    let key = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    };
    let Some(key) = key.and_then(|k| DecodingKey::from_jwk(k).ok()) else { return Signature::Invalid };
    let Some((message, signature)) = token.rsplit_once('.') else { return Signature::Invalid };
    match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::RS256) {
        Ok(true) => Signature::Valid,
        _ => Signature::Invalid,
    }
}

async fn fetch_keys(issuer: &str) -> Option<JwkSet> {
    let issuer = issuer.trim_end_matches('/');
    let discovery = get_json(&format!("{issuer}/.well-known/openid-configuration")).await;
    let uri = discovery.as_ref().and_then(|d| d["jwks_uri"].as_str()).map(str::to_owned);
    let keys = match uri {
        Some(uri) => get_json(&uri).await,
        None => get_json(&format!("{issuer}/.well-known/jwks.json")).await,
    }?;
    serde_json::from_value(keys).ok()
}

async fn get_json(url: &str) -> Option<Value> {
    let uri: hyper::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .ok()?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.ok()?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT).collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange).await.ok()?
}
