//! nimbus's own paths that belong to no one service: the clock (`GET /_nimbus/clock`,
//! `POST /_nimbus/clock/advance?seconds=N` under `--clock virtual`) and the next firings of rules
//! and schedules (`GET /_nimbus/schedules`, what `nimbus schedules` prints), stream mappings'
//! shards with their iterator ages (`GET /_nimbus/streams`, `nimbus streams`), and every API
//! stage and function URL with its local URL (`GET /_nimbus/apis`, what `nimbus apis` prints).

use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::clock::{Clock, VirtualClock};
use nimbus_api::{json_response, ApiRequest, AwsError, Protocol, Service, ServiceFuture};
use nimbus_eventbridge::EventBridge;
use serde_json::json;

use crate::lazy::Lazy;

const CLOCK: &str = "/_nimbus/clock";
const ADVANCE: &str = "/_nimbus/clock/advance";
const SCHEDULES: &str = "/_nimbus/schedules";
const STREAMS: &str = "/_nimbus/streams";
const APIS: &str = "/_nimbus/apis";

pub struct Admin {
    pub clock: Arc<dyn Clock>,
    /// Set when nimbus runs with `--clock virtual`.
    pub virtual_clock: Option<Arc<VirtualClock>>,
    pub events: Arc<Lazy<EventBridge>>,
    pub lambda: Arc<nimbus_lambda::Lambda>,
    /// Lambda of every region (their function URLs).
    pub lambda_regions: Arc<crate::lambda_regions::LambdaRegions>,
    /// API Gateway of every region.
    pub apigateway: Arc<crate::apigateway_regions::Gateways>,
    /// nimbus's port, for the local URLs of APIs.
    pub port: u16,
}

impl Service for Admin {
    fn name(&self) -> &'static str {
        "nimbus"
    }

    fn claims(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap) -> bool {
        matches!(uri.path(), CLOCK | ADVANCE | SCHEDULES | STREAMS | APIS)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let answer = match (request.method.as_str(), request.uri.path()) {
                ("GET", CLOCK) => Ok(self.clock_document()),
                ("POST", ADVANCE) => self.advance(&request),
                ("GET", SCHEDULES) => match self.events.opened() {
                    None => Ok(json!({ "schedules": [] })),
                    Some(events) => tokio::task::block_in_place(|| events.upcoming())
                        .map(|list| json!({ "schedules": list })),
                },
                ("GET", STREAMS) => {
                    let mappings = tokio::task::block_in_place(|| self.lambda.stream_report());
                    Ok(json!({ "mappings": mappings }))
                }
                ("GET", APIS) => Ok(self.apis()),
                (method, path) => {
                    Err(AwsError::new(405, "MethodNotAllowed", format!("{method} {path} is not served")))
                }
            };
            match answer {
                Ok(value) => json_response(value),
                Err(error) => error.into_response(Protocol::RestJson),
            }
        })
    }
}

impl Admin {
    /// Every region's APIs (opened at start where they exist, so an unopened region has none)
    /// and URLs.
    fn apis(&self) -> serde_json::Value {
        let mut rows = self.apigateway.inventory(self.port);
        for lambda in self.lambda_regions.opened() {
            for (function, url) in lambda.function_urls() {
                let region = lambda.identity().region.clone();
                rows.push(json!({
                    "kind": "function URL", "name": function, "id": null, "stage": null, "region": region, "url": url,
                }));
            }
        }
        json!({ "apis": rows })
    }

    fn clock_document(&self) -> serde_json::Value {
        let offset = self.virtual_clock.as_ref().map_or(0, |clock| clock.offset_ms());
        json!({
            "now_ms": self.clock.now_ms(),
            "virtual": self.virtual_clock.is_some(),
            "offset_ms": offset,
        })
    }

    fn advance(&self, request: &ApiRequest) -> Result<serde_json::Value, AwsError> {
        let Some(clock) = &self.virtual_clock else {
            return Err(AwsError::new(
                400,
                "ClockNotVirtual",
                "the clock is real time: start nimbus with --clock virtual to move it",
            ));
        };
        let seconds = request
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("seconds="))
            .and_then(|value| value.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .ok_or_else(|| {
                AwsError::new(400, "InvalidParameter", "give ?seconds=N, a number of seconds ≥ 0")
            })?;
        clock.advance_ms((seconds * 1000.0) as i64);
        Ok(self.clock_document())
    }
}
