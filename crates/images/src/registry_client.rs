//! The HTTP side of pulling: one conversation with a registry (GETs under `/v2/<repository>/`,
//! an anonymous token fetched from a `Bearer` challenge's realm when the registry asks).

use std::time::Duration;

use crate::oci;
use crate::pull::Remote;

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// One conversation with a registry: its anonymous token, once it asked for one.
pub(crate) struct Client<'a> {
    agent: ureq::Agent,
    remote: &'a Remote,
    token: Option<String>,
}

pub(crate) enum Failure {
    NotFound,
    Denied(String),
    Other(String),
}

impl<'a> Client<'a> {
    pub(crate) fn new(remote: &'a Remote) -> Client<'a> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("nimbus/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent: ureq::Agent::new_with_config(config), remote, token: None }
    }

    /// GET `/v2/<repository>/<what>`, with a token when the registry asks for one.
    pub(crate) fn get(
        &mut self,
        what: &str,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let url = format!("{}/v2/{}/{what}", self.remote.base, self.remote.repository);
        for attempt in 0..2 {
            let mut request = self.agent.get(&url);
            if let Some(accept) = accept {
                request = request.header("Accept", accept);
            }
            if let Some(token) = &self.token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let response = request
                .call()
                .map_err(|e| Failure::Other(format!("failed to do request: Get \"{url}\": {e}")))?;
            match response.status().as_u16() {
                200..=299 => return Ok(response),
                404 => return Err(Failure::NotFound),
                401 if attempt == 0 && self.token.is_none() => {
                    let challenge = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    self.token = Some(self.token_for(&challenge)?);
                }
                401 | 403 => {
                    return Err(Failure::Denied(
                        "pull access denied, repository does not exist or may require authorization".into(),
                    ))
                }
                status => {
                    return Err(Failure::Other(format!(
                        "unexpected status from GET request to {url}: {status}"
                    )))
                }
            }
        }
        Err(Failure::Denied(
            "pull access denied, repository does not exist or may require authorization".into(),
        ))
    }

    /// An anonymous token from a `Bearer` challenge's realm.
    fn token_for(&self, challenge: &str) -> Result<String, Failure> {
        let denied = |why: &str| Failure::Denied(format!("pull access denied: {why}"));
        let Some(fields) = challenge.strip_prefix("Bearer ").or_else(|| challenge.strip_prefix("bearer "))
        else {
            return Err(denied("the registry asks for credentials (nimbus pulls anonymously)"));
        };
        let fields = challenge_fields(fields);
        let field =
            |key: &str| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str());
        let realm = field("realm").ok_or_else(|| denied("the registry's challenge names no realm"))?;
        // A token for a registry reached over HTTPS is fetched over HTTPS too.
        let insecure_allowed = self.remote.base.starts_with("http://");
        let acceptable = realm.starts_with("https://") || (insecure_allowed && realm.starts_with("http://"));
        if !acceptable {
            return Err(denied("the registry's token realm is not HTTPS"));
        }
        let scope = field("scope")
            .map_or_else(|| format!("repository:{}:pull", self.remote.repository), str::to_owned);
        let mut request = self.agent.get(realm).query("scope", &scope);
        if let Some(service) = field("service") {
            request = request.query("service", service);
        }
        let mut response =
            request.call().map_err(|e| Failure::Other(format!("failed to fetch an anonymous token: {e}")))?;
        if !response.status().is_success() {
            return Err(denied(&format!("the token service answered {}", response.status().as_u16())));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| Failure::Other(format!("failed to fetch an anonymous token: {e}")))?;
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Other("the token service answered no token".into()))
    }
}

/// `realm="…",service="…",scope="…"` as pairs (quoted values may hold commas).
fn challenge_fields(text: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, next)) => (value.to_owned(), next),
                None => (quoted.to_owned(), ""),
            },
            None => match after.split_once(',') {
                Some((value, next)) => (value.trim().to_owned(), next),
                None => (after.trim().to_owned(), ""),
            },
        };
        fields.push((key, value));
        rest = next.trim_start_matches(',').trim();
    }
    fields
}

/// A manifest's bytes and media type (the response's `Content-Type`).
pub(crate) fn fetch_manifest(
    client: &mut Client<'_>,
    version: &str,
) -> Result<(Vec<u8>, Option<String>), Failure> {
    let mut response = client.get(&format!("manifests/{version}"), Some(ACCEPT))?;
    let media_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|v| oci::MANIFEST_TYPES.contains(&v.as_str()));
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_MANIFEST_BYTES)
        .read_to_vec()
        .map_err(|e| Failure::Other(format!("failed to read the manifest: {e}")))?;
    Ok((bytes, media_type))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_bearer_challenges() {
        let fields = super::challenge_fields(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(fields[0], ("realm".into(), "https://auth.docker.io/token".into()));
        assert_eq!(fields[1].1, "registry.docker.io");
        assert_eq!(fields[2].1, "repository:library/busybox:pull,push");
    }
}
