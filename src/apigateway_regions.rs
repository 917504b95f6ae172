//! API Gateway per region and account (see `regional`): each region's REST and HTTP APIs, stages,
//! keys, usage plans and authorizers in its own store. The control plane is served by the
//! request's SigV4 scope; the front door (`{id}.execute-api.localhost`, `/_aws/execute-api/{id}/…`)
//! by whichever region holds the API's id — ids are unique across regions and accounts — found in
//! memory: every region holding APIs is opened at start, and a region making one is open.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, Identity, Protocol, Service, ServiceFuture};
use nimbus_apigateway::{ApiGateway, Front};
use nimbus_functions::telemetry::{LogEvent, LogSink};
use nimbus_store::Database;

use crate::lambda_regions::LambdaRegions;
use crate::lazy::Lazy;
use crate::regional::{Regional, Stored};

/// With several nodes, how often an unknown API id sends the front door looking for regions
/// another node made APIs in (a database query; a known id never does).
const RESCAN_MS: i64 = 1000;

/// API Gateway of every region and account, as one service.
pub struct Gateways {
    regional: Arc<Regional<ApiGateway>>,
    database: Database,
    default: Identity,
    rescanned_ms: AtomicI64,
}

/// Every region's API Gateway (none opened yet: see [`Gateways::resume`]), each invoking
/// functions through `lambda` and writing access logs to its own region's Logs through `logs`.
pub fn regions(
    database: &Database,
    default: &Identity,
    lambda: Arc<LambdaRegions>,
    logs: Arc<crate::logs_home::LogsSink>,
) -> Arc<Gateways> {
    // Each instance checks new API ids against every other's (set once the whole is made).
    let all: Arc<OnceLock<Weak<Regional<ApiGateway>>>> = Arc::default();
    let open = {
        let all = all.clone();
        move |database: &Database, identity: &Identity| {
            let functions = Arc::new(RegionFunctions { lambda: lambda.clone(), identity: identity.clone() });
            let gateway = ApiGateway::open(database, identity.clone(), functions)?;
            gateway.set_access_logs(Arc::new(AccessLogs(logs.scoped(&identity.region, &identity.account))));
            let all = all.clone();
            gateway.set_taken_elsewhere(Arc::new(move |id| {
                let regional = all.get().and_then(Weak::upgrade);
                regional.is_some_and(|regional| regional.opened().iter().any(|other| other.holds_api(id)))
            }));
            Ok(gateway)
        }
    };
    let (home_open, home_database, home_identity) = (open.clone(), database.clone(), default.clone());
    let home = Lazy::new("apigateway", Protocol::RestJson, move || home_open(&home_database, &home_identity));
    let regional = Regional::new(home, database, default, open);
    let _ = all.set(Arc::downgrade(&regional));
    Arc::new(Gateways {
        regional,
        database: database.clone(),
        default: default.clone(),
        rescanned_ms: AtomicI64::new(0),
    })
}

impl Gateways {
    /// Every region's instance, for CloudFormation's providers (a stack's APIs in its region).
    pub fn regional(&self) -> &Arc<Regional<ApiGateway>> {
        &self.regional
    }

    /// Opens now every region's API Gateway that holds APIs (`--region`'s among them), so that
    /// the front door knows every API from the first request; a nimbus whose only APIs are
    /// `--region`'s opens no other.
    pub async fn resume(&self, stored: &Stored) {
        if nimbus_apigateway::has_state(&self.database) {
            if let Err(why) = self.regional.home().get().await {
                eprintln!("nimbus: cannot open API Gateway: {why}");
            }
        }
        let schema = nimbus_apigateway::SCHEMA;
        for identity in stored.scopes().filter(|identity| stored.holds(&self.database, identity, &schema)) {
            self.regional.open_at(identity).await;
        }
    }

    /// Every deployed stage of every region's APIs with its local URL (`nimbus apis`).
    pub fn inventory(&self, port: u16) -> Vec<serde_json::Value> {
        self.regional.opened().iter().flat_map(|gateway| gateway.inventory(port)).collect()
    }

    /// The region's API Gateway that holds API `id`, from memory.
    fn holder(&self, id: &str) -> Option<Arc<ApiGateway>> {
        let found = self.regional.opened().into_iter().find(|gateway| gateway.holds_api(id));
        if found.is_some() || !self.database.is_shared() || !self.rescan_due() {
            return found;
        }
        // With several nodes, another node may have made it in a region not open here.
        tokio::task::block_in_place(|| {
            let stored = Stored::scan(&self.database, &self.default);
            let schema = nimbus_apigateway::SCHEMA;
            for identity in stored.scopes().filter(|identity| stored.holds(&self.database, identity, &schema))
            {
                if let Ok(instance) = self.regional.at(&identity.region, &identity.account) {
                    let _ = instance.get_blocking();
                }
            }
        });
        self.regional.opened().into_iter().find(|gateway| gateway.holds_api(id))
    }

    fn rescan_due(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let last = self.rescanned_ms.load(Ordering::Acquire);
        now - last >= RESCAN_MS
            && self.rescanned_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

impl Service for Gateways {
    fn name(&self) -> &'static str {
        "apigateway"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        nimbus_apigateway::is_data_plane(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            match Front::of(&request.uri, &request.headers) {
                // An API's own region serves it; an unknown id is answered as AWS does (by ours).
                Some(Front::Api { id, .. }) => match self.holder(&id) {
                    Some(gateway) => gateway.call(request).await,
                    None => self.regional.home().call(request).await,
                },
                // Function URLs of every region are found by `RegionFunctions::url`.
                Some(Front::Url { .. }) => self.regional.home().call(request).await,
                None => self.regional.call(request).await,
            }
        })
    }
}

/// HTTP APIs (`apigatewayv2`) are served by the API Gateway service: one state, one cache.
pub struct GatewayV2(pub Arc<Gateways>);

impl Service for GatewayV2 {
    fn name(&self) -> &'static str {
        "apigatewayv2"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        self.0.call(request)
    }
}

/// A region's front door invokes functions through Lambda in the region and account of the
/// function's ARN; a bare name (an integration naming no ARN) is the API's region's.
struct RegionFunctions {
    lambda: Arc<LambdaRegions>,
    identity: Identity,
}

impl nimbus_apigateway::Functions for RegionFunctions {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: bytes::Bytes,
        request_id: &'a str,
    ) -> nimbus_apigateway::InvokeFuture<'a> {
        Box::pin(async move {
            let failed = nimbus_apigateway::InvokeError::Failed;
            let arn = match function.starts_with("arn:") {
                true => function.to_owned(),
                false => {
                    let Identity { region, account } = &self.identity;
                    format!("arn:aws:lambda:{region}:{account}:function:{function}")
                }
            };
            let lambda = self.lambda.for_arn(&arn).map_err(failed)?.get().await.map_err(failed)?;
            match lambda.invoke_sync(function, payload, request_id).await {
                Ok((payload, function_error)) => Ok(nimbus_apigateway::Invoked { payload, function_error }),
                Err(nimbus_lambda::SyncFailure::Throttled) => Err(nimbus_apigateway::InvokeError::Throttled),
                Err(nimbus_lambda::SyncFailure::Failed(why)) => {
                    Err(nimbus_apigateway::InvokeError::Failed(why))
                }
            }
        })
    }

    /// Any region's URL (their ids are unique); a region is looked in once its Lambda is open
    /// (at start when it holds functions).
    fn url(&self, url_id: &str) -> Option<nimbus_apigateway::FunctionUrl> {
        self.lambda.opened().iter().find_map(|lambda| lambda.function_url(url_id)).map(|target| {
            nimbus_apigateway::FunctionUrl {
                function: target.function,
                auth_type: target.auth_type,
                cors: target.cors,
            }
        })
    }
}

/// A stage's access logs go to its API's region's CloudWatch Logs.
struct AccessLogs(Arc<dyn LogSink>);

impl nimbus_apigateway::AccessLogs for AccessLogs {
    fn write(&self, group: &str, stream: &str, timestamp_ms: i64, line: String) {
        self.0.append(group, stream, vec![LogEvent { timestamp_ms, message: line }]);
    }
}
