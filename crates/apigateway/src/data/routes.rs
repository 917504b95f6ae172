//! Stages compiled for matching: REST API resources from the stage's deployment snapshot, HTTP
//! API routes as they are (with their integrations and authorizers), each path split into
//! literal, `{param}` and greedy `{name+}` segments. The most specific path wins (literals over
//! parameters over greedy), then the exact method over `ANY`; `$default` catches the rest.

use serde_json::{json, Value};

use crate::store::Docs;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// Path parameters in order: (name, decoded value).
pub type Params = Vec<(String, String)>;

pub struct Pattern {
    template: String,
    segments: Vec<Segment>,
}

impl Pattern {
    fn new(template: &str) -> Pattern {
        let segments = template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.ends_with('+') => Segment::Greedy(name.trim_end_matches('+').to_owned()),
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(s.to_owned()),
            })
            .collect();
        Pattern { template: template.to_owned(), segments }
    }

    /// The path parameters when `path` matches, with the rank of the match (lower is more
    /// specific).
    fn matches(&self, path: &[&str]) -> Option<(Vec<u8>, Params)> {
        let mut rank = Vec::new();
        let mut params = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy(name) => {
                    let rest = path.get(index..).filter(|r| !r.is_empty())?;
                    rank.push(2);
                    params.push((name.clone(), rest.iter().map(|s| decode(s)).collect::<Vec<_>>().join("/")));
                    return Some((rank, params));
                }
                Segment::Literal(literal) => {
                    (path.get(index)? == literal).then_some(())?;
                    rank.push(0);
                }
                Segment::Param(name) => {
                    params.push((name.clone(), decode(path.get(index)?)));
                    rank.push(1);
                }
            }
        }
        (path.len() == self.segments.len()).then_some((rank, params))
    }
}

fn decode(segment: &str) -> String {
    nimbus_api::percent_decode(segment)
}

pub enum Flavor {
    Rest(Vec<(Pattern, Value)>),
    Http(Box<Http>),
}

pub struct Http {
    routes: Vec<(String, Pattern, Value)>,
    default: Option<Value>,
    integrations: Value,
    authorizers: Value,
}

pub struct Compiled {
    pub epoch: u64,
    pub api: String,
    pub stage: String,
    pub variables: Value,
    pub binary_media_types: Vec<String>,
    pub cors: Option<Value>,
    /// The access log's group and line format.
    pub access_log: Option<(String, String)>,
    pub flavor: Flavor,
}

pub struct RestMatch<'a> {
    pub resource: &'a Value,
    pub template: &'a str,
    pub method: &'a Value,
    pub path_parameters: Vec<(String, String)>,
}

pub struct HttpMatch<'a> {
    pub route_key: &'a str,
    pub route: &'a Value,
    pub integration: Option<&'a Value>,
    pub authorizer: Option<&'a Value>,
    pub path_parameters: Vec<(String, String)>,
}

/// Builds stage `stage` of `api`; `None` when there is no such deployed stage.
pub fn compile(docs: &Docs, api: &str, stage: &str, epoch: u64) -> Option<Compiled> {
    let stage_doc = docs.get(api, "stage", stage)?;
    if let Some(rest_api) = docs.get("", "restapi", api) {
        let deployment = docs.get(api, "deployment", stage_doc["deploymentId"].as_str()?)?;
        let snapshot = &deployment["snapshot"];
        let resources = snapshot["resources"].as_array().cloned().unwrap_or_default();
        let routes =
            resources.into_iter().map(|r| (Pattern::new(r["path"].as_str().unwrap_or("/")), r)).collect();
        let types = snapshot["binaryMediaTypes"].as_array().or(rest_api["binaryMediaTypes"].as_array());
        return Some(Compiled {
            epoch,
            api: api.to_owned(),
            stage: stage.to_owned(),
            variables: stage_doc.get("variables").cloned().unwrap_or(json!({})),
            binary_media_types: strings(types),
            cors: None,
            access_log: super::access::group_of(&stage_doc["accessLogSettings"]),
            flavor: Flavor::Rest(routes),
        });
    }
    let http_api = docs.get("", "httpapi", api)?;
    if stage_doc["autoDeploy"] != true && stage_doc["deploymentId"].as_str().is_none() {
        return None;
    }
    let mut routes = Vec::new();
    let mut default = None;
    for route in docs.list(api, "route") {
        let key = route["routeKey"].as_str().unwrap_or_default().to_owned();
        match key.split_once(' ') {
            Some((_, path)) => routes.push((key.clone(), Pattern::new(path), route)),
            None if key == "$default" => default = Some(route),
            None => {}
        }
    }
    let integrations = json_map(docs.list(api, "integration"), "integrationId");
    let authorizers = json_map(docs.list(api, "authorizer"), "authorizerId");
    Some(Compiled {
        epoch,
        api: api.to_owned(),
        stage: stage.to_owned(),
        variables: stage_doc.get("stageVariables").cloned().unwrap_or(json!({})),
        binary_media_types: Vec::new(),
        cors: http_api.get("corsConfiguration").filter(|c| c.is_object()).cloned(),
        access_log: super::access::group_of(&stage_doc["accessLogSettings"]),
        flavor: Flavor::Http(Box::new(Http { routes, default, integrations, authorizers })),
    })
}

fn json_map(items: Vec<Value>, id: &str) -> Value {
    Value::Object(items.into_iter().map(|i| (i[id].as_str().unwrap_or_default().to_owned(), i)).collect())
}

fn strings(list: Option<&Vec<Value>>) -> Vec<String> {
    list.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl Compiled {
    pub fn match_rest(&self, method: &str, path: &str) -> Option<RestMatch<'_>> {
        let Flavor::Rest(routes) = &self.flavor else { return None };
        let parts = split(path);
        let mut best: Option<(Vec<u8>, RestMatch<'_>)> = None;
        for (pattern, resource) in routes {
            let Some((rank, params)) = pattern.matches(&parts) else { continue };
            let methods = &resource["resourceMethods"];
            let Some(found) = methods.get(method).or_else(|| methods.get("ANY")) else { continue };
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                let matched = RestMatch {
                    resource,
                    template: &pattern.template,
                    method: found,
                    path_parameters: params,
                };
                best = Some((rank, matched));
            }
        }
        best.map(|(_, m)| m)
    }

    pub fn match_http(&self, method: &str, path: &str) -> Option<HttpMatch<'_>> {
        let Flavor::Http(http) = &self.flavor else { return None };
        let parts = split(path);
        let mut best: Option<((Vec<u8>, u8), HttpMatch<'_>)> = None;
        for (key, pattern, route) in &http.routes {
            let route_method = key.split(' ').next().unwrap_or_default();
            let exact = match route_method {
                m if m == method => 0,
                "ANY" => 1,
                _ => continue,
            };
            let Some((rank, params)) = pattern.matches(&parts) else { continue };
            let score = (rank, exact);
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, self.http_match(http, key, route, params)));
            }
        }
        best.map(|(_, m)| m).or_else(|| {
            http.default.as_ref().map(|route| self.http_match(http, "$default", route, Vec::new()))
        })
    }

    fn http_match<'a>(
        &'a self,
        http: &'a Http,
        key: &'a str,
        route: &'a Value,
        params: Vec<(String, String)>,
    ) -> HttpMatch<'a> {
        let target = route["target"].as_str().and_then(|t| t.strip_prefix("integrations/"));
        let integration = target.and_then(|t| http.integrations.get(t));
        let authorizer = match route["authorizationType"].as_str() {
            Some("CUSTOM") | Some("JWT") => {
                route["authorizerId"].as_str().and_then(|a| http.authorizers.get(a))
            }
            _ => None,
        };
        HttpMatch { route_key: key, route, integration, authorizer, path_parameters: params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_paths_win_and_greedy_needs_a_segment() {
        let parts = split("/pets/42/toys");
        let literal = Pattern::new("/pets/{id}/toys").matches(&parts).unwrap();
        let greedy = Pattern::new("/{proxy+}").matches(&parts).unwrap();
        assert!(literal.0 < greedy.0);
        assert_eq!(literal.1, vec![("id".to_owned(), "42".to_owned())]);
        assert_eq!(greedy.1, vec![("proxy".to_owned(), "pets/42/toys".to_owned())]);
        assert!(Pattern::new("/{proxy+}").matches(&[]).is_none());
        assert!(Pattern::new("/").matches(&[]).is_some());
        assert!(Pattern::new("/pets/{id}").matches(&parts).is_none());
    }
}
