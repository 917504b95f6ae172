//! ECR per account. One image store holds every region's repositories of an account (keyed by
//! region, the region of the request's SigV4 scope or of the registry host it addressed), so an
//! account is the unit here: `--account`'s store is where it always was, another account's under
//! `<data dir>/<--region>/<account>/` (see `regional`). The ECR API is served by the account of
//! the request's access key (twelve digits, else `--account`); the registry (`/v2/…`, unsigned)
//! by the account its host names (`<account>.dkr.ecr.<region>.localhost:<port>`), else
//! `--account`; an image URI (Lambda's, Batch's) is resolved in its host's account.

use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::scope::{is_account_id, scope_of};
use nimbus_api::{ApiRequest, AwsError, Identity, Protocol, Service, ServiceFuture};
use nimbus_ecr::Ecr;
use nimbus_store::Database;

use crate::lazy::Lazy;
use crate::regional::{Regional, Stored};

/// ECR of every account.
pub struct Registries {
    regional: Arc<Regional<Ecr>>,
    default: Identity,
}

impl Registries {
    /// `home` serves `--account`; `open` opens another account's ECR on its own storage.
    pub fn new(
        home: Arc<Lazy<Ecr>>,
        database: &Database,
        default: &Identity,
        open: impl Fn(&Database, &Identity) -> Result<Arc<Ecr>, String> + Send + Sync + 'static,
    ) -> Arc<Registries> {
        let regional = Regional::new(home, database, default, open);
        Arc::new(Registries { regional, default: default.clone() })
    }

    /// `--account`'s ECR.
    pub fn home(&self) -> &Arc<Lazy<Ecr>> {
        self.regional.home()
    }

    /// The ECR of `account` (not opened until used).
    pub fn for_account(&self, account: &str) -> Result<Arc<Lazy<Ecr>>, String> {
        self.regional.at(&self.default.region, account)
    }

    /// The ECR holding an image reference: its ECR host's account, else `--account` (opened if
    /// need be: blocking).
    pub fn for_image(&self, reference: &str) -> Result<Arc<Ecr>, String> {
        let account = host_account(reference.split('/').next().unwrap_or_default());
        self.for_account(account.unwrap_or(&self.default.account))?.get_blocking()
    }

    /// Opens, in the background, the other accounts' ECR that hold images (their lifecycle
    /// policies are swept without a request).
    pub fn resume(&self, stored: &Stored) {
        self.regional.resume(stored, &nimbus_images::SCHEMA, |_| true);
    }

    /// The account a request is for.
    fn account_of(&self, request: &ApiRequest) -> String {
        let path = request.uri.path();
        let registry =
            request.header("x-amz-target").is_none() && (path == "/v2" || path.starts_with("/v2/"));
        let named = match registry {
            true => request.header("host").and_then(host_account).map(str::to_owned),
            false => scope_of(&request.headers, &request.uri).and_then(|s| s.account().map(str::to_owned)),
        };
        named.unwrap_or_else(|| self.default.account.clone())
    }
}

/// The account of an ECR registry host (`<account>.dkr.ecr.<region>.…[:port]`).
fn host_account(host: &str) -> Option<&str> {
    let mut parts = host.split('.');
    let account = parts.next().filter(|account| is_account_id(account))?;
    (parts.next() == Some("dkr") && parts.next() == Some("ecr")).then_some(account)
}

impl Service for Registries {
    fn name(&self) -> &'static str {
        "ecr"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.home().claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            // nimbus's own paths (`nimbus images`) are `--account`'s.
            if request.uri.path().starts_with(nimbus_ecr::ADMIN_PREFIX) {
                return self.home().call(request).await;
            }
            match self.for_account(&self.account_of(&request)) {
                Ok(ecr) => ecr.call(request).await,
                Err(why) => AwsError::new(400, "LimitExceededException", why).into_response(Protocol::Json),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_name_their_account() {
        assert_eq!(host_account("111122223333.dkr.ecr.eu-west-1.localhost:4566"), Some("111122223333"));
        assert_eq!(host_account("111122223333.dkr.ecr.eu-west-1.amazonaws.com"), Some("111122223333"));
        assert_eq!(host_account("127.0.0.1:4566"), None);
        assert_eq!(host_account("localhost:4566"), None);
        assert_eq!(host_account("111122223333.execute-api.localhost"), None);
        assert_eq!(host_account("repo"), None);
    }
}
