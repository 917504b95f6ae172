//! Lambda per region and account: each region's functions in their own store (see `regional`),
//! run by one functions engine whose keys, logs and figures keep the regions apart. Other
//! services reach a function in the region and account of the ARN they name.

use std::sync::{Arc, OnceLock};

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::scope::arn_scope;
use nimbus_api::{percent_decode, ApiRequest, Identity, Protocol, Service, ServiceFuture};
use nimbus_functions::Engine;
use nimbus_lambda::{Lambda, LambdaOptions};
use nimbus_store::code::CodeStore;
use nimbus_store::{Database, LambdaStore};

use crate::lazy::Lazy;
use crate::regional::{scope_dir, Regional};

/// Lambda of every region and account.
pub type LambdaRegions = Regional<Lambda>;

/// What every region's Lambda is opened with; the services it reaches are set once made
/// (they are made after Lambda, and another region's instance opens later, on first use).
pub struct Parts {
    pub node: String,
    pub code: Arc<CodeStore>,
    pub engine: Engine,
    pub endpoint_url: String,
    pub file_systems: std::path::PathBuf,
    pub retry_delay_scale: f64,
    pub queues: Option<Arc<dyn nimbus_lambda::Queues>>,
    pub logs: Arc<crate::logs_home::LogsSink>,
    pub metrics: Arc<crate::metrics_home::MetricsHome>,
    /// Several nodes share the store.
    pub shared: bool,
    pub objects: OnceLock<Arc<dyn nimbus_lambda::Objects>>,
    pub images: OnceLock<Arc<dyn nimbus_lambda::images::ImageStore>>,
    pub destinations: OnceLock<Arc<dyn nimbus_lambda::Destinations>>,
    pub streams: OnceLock<Arc<dyn nimbus_lambda::Streams>>,
}

/// Every region's Lambda, `home` (nimbus's own, opened at start) among them.
pub fn regions(
    database: &Database,
    default: &Identity,
    home: Arc<Lambda>,
    parts: Arc<Parts>,
) -> Arc<LambdaRegions> {
    let home = Lazy::ready("lambda", Protocol::RestJson, home);
    let own = default.clone();
    Regional::routed(home, database, default, function_arn_scope, move |database, identity| {
        open(&parts, database, &own, identity)
    })
}

fn open(
    parts: &Parts,
    database: &Database,
    default: &Identity,
    identity: &Identity,
) -> Result<Arc<Lambda>, String> {
    let store = Arc::new(LambdaStore::open(database, &parts.node).map_err(|e| e.to_string())?);
    let (region, account) = (identity.region.as_str(), identity.account.as_str());
    let engine = parts.engine.scoped(
        &format!("{region}/{account}/"),
        Some(parts.logs.scoped(region, account)),
        Some(crate::metrics_home::ScopedMetricsSink::sink(parts.metrics.clone(), region, account)),
    );
    let options = LambdaOptions {
        identity: identity.clone(),
        endpoint_url: parts.endpoint_url.clone(),
        file_systems: parts.file_systems.join(scope_dir(default, identity)),
        retry_delay_scale: parts.retry_delay_scale,
        queues: parts.queues.clone(),
    };
    let lambda = Lambda::start(store, parts.code.clone(), engine, options).map_err(|e| e.to_string())?;
    if parts.shared {
        lambda.share_store();
    }
    if let Some(objects) = parts.objects.get() {
        lambda.set_objects(objects.clone());
    }
    if let Some(images) = parts.images.get() {
        lambda.set_images(images.clone());
    }
    if let Some(destinations) = parts.destinations.get() {
        lambda.set_destinations(destinations.clone());
    }
    if let Some(streams) = parts.streams.get() {
        lambda.set_streams(streams.clone());
    }
    Ok(lambda)
}

/// A request naming its function by ARN (`/2015-03-31/functions/arn:aws:lambda:eu-west-1:…`)
/// is for that function's region and account, whatever it was signed for.
fn function_arn_scope(request: &ApiRequest) -> Option<(String, String)> {
    let reference = request.uri.path().split('/').nth(3)?;
    if !reference.starts_with("arn") {
        return None;
    }
    let reference = percent_decode(reference);
    let (region, account) = arn_scope(&reference);
    (reference.starts_with("arn:aws:lambda:") && !region.is_empty() && !account.is_empty())
        .then(|| (region.to_owned(), account.to_owned()))
}

/// Lambda as the front door serves it: `GET /_nimbus/functions` lists every open region's
/// functions (each row names its region and account; `nimbus functions` and the console read
/// it); every other request goes to the region and account it is for.
pub struct LambdaFront(pub Arc<LambdaRegions>);

impl Service for LambdaFront {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.0.claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        if request.method != Method::GET || request.uri.path() != nimbus_lambda::INVENTORY_PATH {
            return self.0.call(request);
        }
        let functions: Vec<serde_json::Value> = self
            .0
            .opened()
            .iter()
            .flat_map(|lambda| lambda.inventory()["functions"].as_array().cloned().unwrap_or_default())
            .collect();
        let response = nimbus_api::json_response(serde_json::json!({ "functions": functions }));
        Box::pin(async move { response })
    }
}

/// Functions as other services reach them: in the region and account of the ARN they name (a
/// bare name: nimbus's own).
pub struct Functions(pub Arc<LambdaRegions>);

impl Functions {
    /// The Lambda that holds `arn` (opened if need be: blocking).
    pub fn for_arn(&self, arn: &str) -> Result<Arc<Lambda>, String> {
        let lazy = self.0.for_arn(arn)?;
        if let Some(lambda) = lazy.opened() {
            return Ok(lambda.clone());
        }
        tokio::task::block_in_place(|| lazy.get_blocking())
    }

    /// As [`Lambda::enqueue_event_blocking`], in the function's region.
    pub fn enqueue_event_blocking(&self, arn: &str, payload: Vec<u8>) -> Result<(), String> {
        self.for_arn(arn)?.enqueue_event_blocking(arn, payload)
    }

    /// As [`Lambda::function_exists`], in the function's region.
    pub fn function_exists(&self, arn: &str) -> bool {
        !self.0.holds_nothing(arn) && self.for_arn(arn).is_ok_and(|lambda| lambda.function_exists(arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arns_in_paths_name_their_region() {
        let request = |path: &str| ApiRequest {
            method: hyper::Method::POST,
            uri: path.parse().unwrap(),
            headers: Default::default(),
            body: Default::default(),
            request_id: String::new(),
        };
        let arn = "arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Afn";
        assert_eq!(
            function_arn_scope(&request(&format!("/2015-03-31/functions/{arn}/invocations"))),
            Some(("eu-west-1".to_owned(), "123456789012".to_owned()))
        );
        let raw = "/2015-03-31/functions/arn:aws:lambda:us-west-2:000000000000:function:fn:prod/invocations";
        assert_eq!(
            function_arn_scope(&request(raw)),
            Some(("us-west-2".to_owned(), "000000000000".to_owned()))
        );
        assert_eq!(function_arn_scope(&request("/2015-03-31/functions/fn/invocations")), None);
        assert_eq!(function_arn_scope(&request("/2015-03-31/functions")), None);
        assert_eq!(function_arn_scope(&request("/2015-03-31/functions/arn:aws:sqs:eu-west-1:1:q")), None);
    }
}
