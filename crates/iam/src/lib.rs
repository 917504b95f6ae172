//! IAM and STS as stores: roles, users, managed and inline policies, access keys and instance
//! profiles are kept and returned with AWS's shapes (SAM, Terraform, CloudFormation templates
//! and SDK helpers call them); STS answers `GetCallerIdentity` for the caller's access key and
//! hands out temporary credentials (`AssumeRole`, `GetSessionToken`). Policies are stored, not
//! evaluated: nimbus accepts any credentials.

mod iam;
pub mod provider;
mod render;
mod store;
mod sts;

use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{form, ApiRequest, AwsError, Protocol, Service, ServiceFuture};
use nimbus_store::Database;
use serde_json::Value;

use store::Store;
pub use store::SCHEMA;

pub(crate) type Result<T> = std::result::Result<T, AwsError>;

pub(crate) struct Core {
    pub store: Store,
    pub account: String,
}

/// The IAM service (`Version=2010-05-08`).
pub struct Iam {
    core: Arc<Core>,
}

/// The STS service (`Version=2011-06-15`), sharing IAM's state.
pub struct Sts {
    core: Arc<Core>,
}

impl Iam {
    pub fn open(database: &Database, account: &str) -> std::result::Result<Arc<Iam>, String> {
        let store = Store::open(database).map_err(|e| e.to_string())?;
        Ok(Arc::new(Iam { core: Arc::new(Core { store, account: account.to_owned() }) }))
    }

    pub fn sts(&self) -> Arc<Sts> {
        Arc::new(Sts { core: self.core.clone() })
    }
}

pub(crate) fn db_error(error: nimbus_store::DbError) -> AwsError {
    match error {
        nimbus_store::DbError::Unstorable(why) => AwsError::new(400, "ValidationError", why),
        error => AwsError::new(500, "ServiceFailure", error.to_string()),
    }
}

type Handler = fn(&Core, &ApiRequest, &Value) -> Result<Option<Value>>;

fn serve<'a>(
    core: &'a Arc<Core>,
    request: ApiRequest,
    namespace: &'static str,
    version: &'static str,
    dispatch: fn(&str) -> Option<Handler>,
) -> ServiceFuture<'a> {
    Box::pin(async move {
        let (action, input) = match form::parse(request.uri.query(), &request.body) {
            Ok(parsed) => parsed,
            Err(message) => {
                return AwsError::new(400, "ValidationError", message).into_response(Protocol::Query)
            }
        };
        let Some(handler) = dispatch(&action) else {
            let message = format!("Could not find operation {action} for version {version}");
            return AwsError::new(400, "InvalidAction", message).into_response(Protocol::Query);
        };
        let answer = tokio::task::block_in_place(|| handler(core, &request, &input));
        match answer {
            Ok(result) => render::response(namespace, &action, result.as_ref(), &request.request_id),
            Err(error) => error.into_response(Protocol::Query),
        }
    })
}

impl Service for Iam {
    fn name(&self) -> &'static str {
        "iam"
    }

    fn claims(&self, _: &Method, _: &Uri, _: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        serve(&self.core, request, "https://iam.amazonaws.com/doc/2010-05-08/", "2010-05-08", iam::handler)
    }
}

impl Service for Sts {
    fn name(&self) -> &'static str {
        "sts"
    }

    fn claims(&self, _: &Method, _: &Uri, _: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        serve(&self.core, request, "https://sts.amazonaws.com/doc/2011-06-15/", "2011-06-15", sts::handler)
    }
}

#[cfg(test)]
mod tests;
