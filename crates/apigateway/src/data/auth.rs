//! Authorizers: Lambda TOKEN and REQUEST authorizers of REST APIs (IAM policy evaluated for the
//! method ARN, context handed to the integration, results cached by identity for the TTL),
//! Lambda REQUEST authorizers of HTTP APIs (simple responses or policies) and JWT authorizers
//! (issuer, audience, expiry and not-before checked; see the README for signatures).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use serde_json::{json, Value};

use super::event::{v2_event, Incoming};
use super::reply::{capital_message, message};
use super::routes::{Compiled, HttpMatch, RestMatch};
use super::{function_of, Refusal};
use crate::ApiGateway;

/// Cached authorizer answers: (authorizer, identity) → (expiry ms, answer). Bounded.
#[derive(Default)]
pub struct ResultCache(Mutex<HashMap<(String, String), (i64, Value)>>);

const MAX_CACHED: usize = 10_000;

impl ResultCache {
    fn get(&self, key: &(String, String)) -> Option<Value> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|(expiry, _)| *expiry > crate::store::now_ms()).map(|(_, v)| v.clone())
    }

    fn put(&self, key: (String, String), ttl_seconds: i64, value: Value) {
        if ttl_seconds <= 0 {
            return;
        }
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, (crate::store::now_ms() + ttl_seconds * 1000, value));
    }
}

fn unauthorized() -> Refusal {
    Box::new(message(401, "Unauthorized"))
}

/// Values of a REST identity source (`method.request.header.X, method.request.querystring.y,
/// stageVariables.z`); `None` when one is missing.
fn rest_identity(source: &str, incoming: &Incoming<'_>, variables: &Value) -> Option<Vec<String>> {
    let query = incoming.query();
    source
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            if let Some(header) = part.strip_prefix("method.request.header.") {
                incoming.header(&header.to_ascii_lowercase()).filter(|v| !v.is_empty()).map(str::to_owned)
            } else if let Some(name) = part.strip_prefix("method.request.querystring.") {
                query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
            } else if let Some(name) = part.strip_prefix("stageVariables.") {
                variables[name].as_str().map(str::to_owned)
            } else {
                part.strip_prefix("context.").map(str::to_owned)
            }
        })
        .collect()
}

/// `$request.header.Authorization`, `$request.querystring.x`, `$stageVariables.y`.
fn http_identity(sources: &Value, incoming: &Incoming<'_>, variables: &Value) -> Option<Vec<String>> {
    let sources: Vec<&str> = match sources {
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => s.split(',').map(str::trim).collect(),
        _ => Vec::new(),
    };
    let query = incoming.query();
    sources
        .into_iter()
        .map(|part| {
            if let Some(header) = part.strip_prefix("$request.header.") {
                incoming.header(&header.to_ascii_lowercase()).filter(|v| !v.is_empty()).map(str::to_owned)
            } else if let Some(name) = part.strip_prefix("$request.querystring.") {
                query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            } else if let Some(name) = part.strip_prefix("$stageVariables.") {
                variables[name].as_str().map(str::to_owned)
            } else {
                Some(part.to_owned())
            }
        })
        .collect()
}

/// `*` and `?` wildcards, as IAM matches resources.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn as_list(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Evaluates an authorizer's policy document for `arn`: an explicit deny wins, then an allow.
fn evaluate(policy: &Value, arn: &str) -> Result<(), Refusal> {
    let statements = match &policy["Statement"] {
        Value::Array(list) => list.clone(),
        single @ Value::Object(_) => vec![single.clone()],
        _ => Vec::new(),
    };
    let applies = |s: &Value| {
        let action =
            as_list(&s["Action"]).iter().any(|a| glob(&a.to_ascii_lowercase(), "execute-api:invoke"));
        action && as_list(&s["Resource"]).iter().any(|r| glob(r, arn))
    };
    if statements.iter().any(|s| s["Effect"] == "Deny" && applies(s)) {
        let denied = "User is not authorized to access this resource with an explicit deny";
        return Err(Box::new(capital_message(403, denied)));
    }
    if statements.iter().any(|s| s["Effect"] == "Allow" && applies(s)) {
        return Ok(());
    }
    Err(Box::new(capital_message(403, "User is not authorized to access this resource")))
}

impl ApiGateway {
    fn method_arn(&self, stage: &Compiled, method: &str, path: &str) -> String {
        format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{method}/{}",
            self.identity.region,
            self.identity.account,
            stage.api,
            stage.stage,
            path.trim_start_matches('/')
        )
    }

    /// Runs an authorizer function; its error "Unauthorized" answers 401, other failures 500.
    async fn run_authorizer(
        &self,
        uri: Option<&str>,
        variables: &Value,
        event: &Value,
        request_id: &str,
    ) -> Result<Value, Refusal> {
        let Some(function) = function_of(uri, variables) else {
            return Err(Box::new(message(500, "Internal server error")));
        };
        let payload = bytes::Bytes::from(event.to_string());
        match self.functions.invoke(&function, payload, request_id).await {
            Ok(invoked) => {
                let answer: Value = serde_json::from_slice(&invoked.payload).unwrap_or(Value::Null);
                if invoked.function_error {
                    return Err(if answer["errorMessage"] == "Unauthorized" {
                        unauthorized()
                    } else {
                        authorizer_failed()
                    });
                }
                Ok(answer)
            }
            Err(_) => Err(authorizer_failed()),
        }
    }

    pub(crate) async fn authorize_rest(
        &self,
        stage: &Compiled,
        incoming: &Incoming<'_>,
        matched: &RestMatch<'_>,
        event: &Value,
        authorizer: Option<Value>,
    ) -> Result<Value, Refusal> {
        let Some(authorizer) = authorizer else { return Err(authorizer_failed()) };
        let kind = authorizer["type"].as_str().unwrap_or("TOKEN");
        if kind == "COGNITO_USER_POOLS" {
            return Err(Box::new(message(500, "nimbus does not evaluate COGNITO_USER_POOLS authorizers")));
        }
        let source = authorizer["identitySource"].as_str().unwrap_or_default();
        let identity = rest_identity(source, incoming, &stage.variables).ok_or_else(unauthorized)?;
        let arn = self.method_arn(stage, &incoming.method, &incoming.path);
        let key = (
            format!("{}/{}", stage.api, authorizer["id"].as_str().unwrap_or_default()),
            identity.join("\u{1}"),
        );
        let cacheable = !identity.is_empty();
        let answer = match cacheable.then(|| self.front.authorized.get(&key)).flatten() {
            Some(answer) => answer,
            None => {
                let request = if kind == "TOKEN" {
                    json!({ "type": "TOKEN", "authorizationToken": identity.first(), "methodArn": arn })
                } else {
                    let mut request = event.clone();
                    request["type"] = json!("REQUEST");
                    request["methodArn"] = json!(arn);
                    request
                };
                let answer = self
                    .run_authorizer(
                        authorizer["authorizerUri"].as_str(),
                        &stage.variables,
                        &request,
                        &incoming.request_id,
                    )
                    .await?;
                if !answer["policyDocument"].is_object() {
                    return Err(authorizer_failed());
                }
                let ttl = authorizer["authorizerResultTtlInSeconds"].as_i64().unwrap_or(300);
                if cacheable {
                    self.front.authorized.put(key, ttl, answer.clone());
                }
                answer
            }
        };
        evaluate(&answer["policyDocument"], &arn)?;
        let _ = matched;
        let mut context = answer["context"].as_object().cloned().unwrap_or_default();
        context.insert("principalId".into(), answer["principalId"].clone());
        Ok(Value::Object(context))
    }

    pub(crate) async fn authorize_http(
        &self,
        stage: &Compiled,
        incoming: &Incoming<'_>,
        matched: &HttpMatch<'_>,
        authorizer: &Value,
    ) -> Result<Value, Refusal> {
        let sources = &authorizer["identitySource"];
        if authorizer["authorizerType"] == "JWT" {
            let sources =
                if sources.is_null() { json!(["$request.header.Authorization"]) } else { sources.clone() };
            let identity = http_identity(&sources, incoming, &stage.variables).ok_or_else(unauthorized)?;
            let token = identity
                .first()
                .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim().to_owned())
                .unwrap_or_default();
            let claims = check_jwt(&token, &authorizer["jwtConfiguration"], crate::store::now_ms() / 1000)
                .map_err(|_| unauthorized())?;
            let issuer = authorizer["jwtConfiguration"]["issuer"].as_str().unwrap_or_default();
            if self.front.jwks.check(issuer, &token).await == super::jwks::Signature::Invalid {
                return Err(unauthorized());
            }
            let scopes = claims["scope"]
                .as_str()
                .map(|s| json!(s.split(' ').collect::<Vec<_>>()))
                .unwrap_or(Value::Null);
            let required = as_list(&matched.route["authorizationScopes"]);
            if !required.is_empty() && !required.iter().any(|r| as_list(&scopes).contains(r)) {
                return Err(Box::new(message(403, "Forbidden")));
            }
            let claims: serde_json::Map<String, Value> = claims
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            Value::String(_) => v.clone(),
                            other => json!(other.to_string()),
                        },
                    )
                })
                .collect();
            return Ok(json!({ "jwt": { "claims": claims, "scopes": scopes } }));
        }
        let identity = if sources.is_null() || sources.as_array().is_some_and(Vec::is_empty) {
            Vec::new()
        } else {
            http_identity(sources, incoming, &stage.variables).ok_or_else(unauthorized)?
        };
        let arn = self.method_arn(stage, &incoming.method, &incoming.path);
        let key = (
            format!("{}/{}", stage.api, authorizer["authorizerId"].as_str().unwrap_or_default()),
            identity.join("\u{1}"),
        );
        let cacheable = !identity.is_empty();
        let simple = authorizer["enableSimpleResponses"] == true;
        let answer = match cacheable.then(|| self.front.authorized.get(&key)).flatten() {
            Some(answer) => answer,
            None => {
                let version = authorizer["authorizerPayloadFormatVersion"].as_str().unwrap_or("2.0");
                let mut request = if version == "1.0" {
                    let mut e = super::event::http_v1_event(incoming, stage, matched);
                    e["methodArn"] = json!(arn);
                    e
                } else {
                    let mut e = v2_event(incoming, Some(stage), matched.route_key, &matched.path_parameters);
                    e["routeArn"] = json!(arn);
                    e["identitySource"] = json!(identity);
                    e
                };
                request["type"] = json!("REQUEST");
                let answer = self
                    .run_authorizer(
                        authorizer["authorizerUri"].as_str(),
                        &stage.variables,
                        &request,
                        &incoming.request_id,
                    )
                    .await?;
                let ttl = authorizer["authorizerResultTtlInSeconds"].as_i64().unwrap_or(0);
                if cacheable {
                    self.front.authorized.put(key, ttl, answer.clone());
                }
                answer
            }
        };
        if simple {
            if answer["isAuthorized"] != true {
                return Err(Box::new(message(403, "Forbidden")));
            }
        } else if evaluate(&answer["policyDocument"], &arn).is_err() {
            return Err(Box::new(message(403, "Forbidden")));
        }
        let mut lambda = answer["context"].as_object().cloned().unwrap_or_default();
        if let Some(principal) = answer.get("principalId") {
            lambda.insert("principalId".into(), principal.clone());
        }
        Ok(json!({ "lambda": lambda }))
    }
}

/// AWS answers an authorizer that failed with `500 {"message": null}`.
fn authorizer_failed() -> Refusal {
    let mut response = message(500, "");
    *response.body_mut() = nimbus_api::Body::new(bytes::Bytes::from_static(b"{\"message\":null}"));
    Box::new(response)
}

/// Decodes a JWT and checks its issuer, audience (`aud` or `client_id`), expiry and not-before
/// against the authorizer's configuration; the claims when it passes.
pub fn check_jwt(token: &str, config: &Value, now: i64) -> Result<Value, &'static str> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next().ok_or("malformed")?, parts.next().ok_or("malformed")?);
    parts.next().ok_or("malformed")?;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "malformed")?;
    let claims: Value = serde_json::from_slice(&decoded).map_err(|_| "malformed")?;
    if let Some(issuer) = config["issuer"].as_str() {
        if claims["iss"].as_str() != Some(issuer) {
            return Err("issuer");
        }
    }
    let audiences = as_list(&config["audience"]);
    if !audiences.is_empty() {
        let mut theirs = as_list(&claims["aud"]);
        theirs.extend(as_list(&claims["client_id"]));
        if !theirs.iter().any(|a| audiences.contains(a)) {
            return Err("audience");
        }
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > now => {}
        _ => return Err("expired"),
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now) {
        return Err("not yet valid");
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", engine.encode(b"{\"alg\":\"RS256\"}"), engine.encode(claims.to_string()))
    }

    #[test]
    fn jwt_claims_are_checked() {
        let config = json!({ "issuer": "https://issuer", "audience": ["app"] });
        let good = token(json!({ "iss": "https://issuer", "aud": "app", "exp": 2000 }));
        assert!(check_jwt(&good, &config, 1000).is_ok());
        assert_eq!(check_jwt(&good, &config, 3000), Err("expired"));
        let other = token(json!({ "iss": "https://other", "aud": "app", "exp": 2000 }));
        assert_eq!(check_jwt(&other, &config, 1000), Err("issuer"));
        let audience = token(json!({ "iss": "https://issuer", "aud": "x", "exp": 2000 }));
        assert_eq!(check_jwt(&audience, &config, 1000), Err("audience"));
    }

    #[test]
    fn policies_deny_first_then_allow() {
        let arn = "arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/pets";
        let allow = json!({ "Statement": [{ "Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*:*:abc/*" }] });
        assert!(evaluate(&allow, arn).is_ok());
        let deny = json!({ "Statement": [
            { "Effect": "Allow", "Action": "*", "Resource": "*" },
            { "Effect": "Deny", "Action": "execute-api:Invoke", "Resource": arn }
        ] });
        assert!(evaluate(&deny, arn).is_err());
        assert!(glob("a*c?e", "abbbcde"));
        assert!(!glob("a*c", "abd"));
    }
}
