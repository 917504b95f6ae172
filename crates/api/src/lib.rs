//! The AWS wire front: one HTTP port, requests routed to the service they name, errors in
//! each protocol's exact shape, and `x-amzn-RequestId` on every response.

pub mod clock;
mod door;
mod error;
pub mod eventstream;
pub mod form;
pub mod provider;
mod request;
mod router;
pub mod scope;
mod server;
mod stream;
mod target;
pub mod xml;

pub use door::{raise_open_files_limit, Limits};
pub use error::{AwsError, Protocol};
pub use request::{percent_decode, ApiRequest, ApiResponse, Body};
pub use server::{json_response, Api, Health, Service, ServiceFuture};
pub use stream::EventStream;
pub use target::FrontDoor;

/// Region and account every ARN and identity is built from.
#[derive(Debug, Clone)]
pub struct Identity {
    pub region: String,
    pub account: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity { region: "us-east-1".into(), account: "000000000000".into() }
    }
}

/// A request id in AWS's format (a random UUID).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}
