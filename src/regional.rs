//! One instance of a service per region and account, as AWS keeps them apart: a request is
//! served by the instance of its SigV4 scope's region, and of the account its access key id names
//! when that is twelve digits (else `--account`). The instance of nimbus's own region and account
//! is today's (its state where it always was: no migration on upgrade); another region's or
//! account's keeps its state under its own names (`<data dir>/us-west-2/sqs/sqs.db`, schema
//! `sqs_us_west_2`; `us-west-2/123456789012/…`, `sqs_us_west_2_123456789012`) and, like every
//! [`Lazy`] service, costs nothing until its first request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::scope::{is_region, scope_of, REGIONS};
use nimbus_api::{ApiRequest, AwsError, Identity, Protocol, Service, ServiceFuture};
use nimbus_store::Database;

use crate::lazy::Lazy;

/// Instances a service holds besides its default one; past it a new region/account pair is
/// refused (each costs its own files and tasks).
const MAX_INSTANCES: usize = 64;

/// An instance per (region, account).
pub type Instances<T> = HashMap<(String, String), T>;

type Opener<S> = Arc<dyn Fn(&Database, &Identity) -> Result<Arc<S>, String> + Send + Sync>;

pub struct Regional<S> {
    name: &'static str,
    protocol: Protocol,
    default: Identity,
    home: Arc<Lazy<S>>,
    database: Database,
    others: RwLock<Instances<Arc<Lazy<S>>>>,
    open: Opener<S>,
}

impl<S: Service> Regional<S> {
    /// `home` serves nimbus's own region and account; `open` opens another's on the storage
    /// scoped to it (see [`Database::scoped`]) with its identity.
    pub fn new(
        home: Arc<Lazy<S>>,
        database: &Database,
        default: &Identity,
        open: impl Fn(&Database, &Identity) -> Result<Arc<S>, String> + Send + Sync + 'static,
    ) -> Arc<Regional<S>> {
        Arc::new(Regional {
            name: home.name(),
            protocol: home.protocol(),
            default: default.clone(),
            home,
            database: database.clone(),
            others: RwLock::default(),
            open: Arc::new(open),
        })
    }

    /// The instance of nimbus's own region and account.
    pub fn home(&self) -> &Arc<Lazy<S>> {
        &self.home
    }

    /// The default instance, opened now if it was not (see [`Lazy::get_blocking`]).
    pub fn get_blocking(&self) -> Result<Arc<S>, String> {
        self.home.get_blocking()
    }

    pub async fn get(&self) -> Result<Arc<S>, String> {
        self.home.get().await
    }

    /// The instance of `region` and `account` (not opened until used).
    pub fn at(&self, region: &str, account: &str) -> Result<Arc<Lazy<S>>, String> {
        if region == self.default.region && account == self.default.account {
            return Ok(self.home.clone());
        }
        if !is_region(region) {
            return Err(format!("Credential should be scoped to a valid region, not '{region}'."));
        }
        // An account names a directory and a schema: twelve digits, nothing else.
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{account}' is not an account id (twelve digits)"));
        }
        let key = (region.to_owned(), account.to_owned());
        let known = self.others.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some(instance) = known {
            return Ok(instance);
        }
        let mut others = self.others.write().unwrap_or_else(|p| p.into_inner());
        if let Some(instance) = others.get(&key) {
            return Ok(instance.clone());
        }
        if others.len() >= MAX_INSTANCES {
            return Err(format!(
                "nimbus serves {} in at most {MAX_INSTANCES} regions and accounts besides its own",
                self.name
            ));
        }
        let identity = Identity { region: region.to_owned(), account: account.to_owned() };
        let database = self.database.scoped(&self.dir(&identity));
        let open = self.open.clone();
        let instance = Lazy::new(self.name, self.protocol, move || open(&database, &identity));
        others.insert(key, instance.clone());
        Ok(instance)
    }

    /// The instance an ARN's region and account name (`arn:aws:sqs:us-west-2:123456789012:q`);
    /// the default one for an ARN without them.
    pub fn for_arn(&self, arn: &str) -> Result<Arc<Lazy<S>>, String> {
        let mut parts = arn.split(':');
        let (region, account) = (parts.nth(3).unwrap_or(""), parts.next().unwrap_or(""));
        let region = if region.is_empty() { &self.default.region } else { region };
        let account = if account.is_empty() { &self.default.account } else { account };
        self.at(region, account)
    }

    /// The instance a request is for: its scope's region and account.
    fn for_request(&self, request: &ApiRequest) -> Result<Arc<Lazy<S>>, String> {
        let scope = scope_of(&request.headers, &request.uri);
        let region = scope.as_ref().map(|s| s.region.as_str()).filter(|r| !r.is_empty());
        let account = scope.as_ref().and_then(|s| s.account());
        self.at(region.unwrap_or(&self.default.region), account.unwrap_or(&self.default.account))
    }

    fn dir(&self, identity: &Identity) -> String {
        scope_dir(&self.default, identity)
    }

    /// Every instance opened so far, the default one first.
    pub fn opened(&self) -> Vec<Arc<S>> {
        let others = self.others.read().unwrap_or_else(|p| p.into_inner());
        let mut opened: Vec<Arc<S>> = self.home.opened().into_iter().cloned().collect();
        opened.extend(others.values().filter_map(|lazy| lazy.opened().cloned()));
        opened
    }

    /// Opens, in the background, the instances of other regions and accounts whose stored state
    /// `needs` work without a request (schedules, outboxes, sweeps).
    pub fn resume(self: &Arc<Self>, needs: fn(&Database) -> bool)
    where
        S: Send + Sync + 'static,
    {
        let regional = self.clone();
        tokio::spawn(async move {
            let found = {
                let regional = regional.clone();
                let asked = tokio::task::spawn_blocking(move || regional.stored(needs));
                asked.await.unwrap_or_default()
            };
            for identity in found {
                let opened = match regional.at(&identity.region, &identity.account) {
                    Ok(instance) => instance.get().await.map(drop),
                    Err(why) => Err(why),
                };
                if let Err(why) = opened {
                    eprintln!("nimbus: cannot open {} in {}: {why}", regional.name, identity.region);
                }
            }
        });
    }

    /// The other regions (and, on SQLite, accounts) whose stored state `needs` says yes to:
    /// directories named after regions (and accounts) on SQLite, schemas
    /// `<service>_<region>` on PostgreSQL (other accounts' are opened by their first request).
    fn stored(&self, needs: fn(&Database) -> bool) -> Vec<Identity> {
        let mut found = Vec::new();
        // On PostgreSQL: only regions some service has a schema for are asked about.
        let schemas = self.database.schema_names();
        for region in REGIONS {
            let mut scopes = Vec::new();
            match &self.database {
                Database::Sqlite { data_dir } => {
                    let Ok(entries) = std::fs::read_dir(data_dir.join(region)) else { continue };
                    scopes.push(self.default.account.clone());
                    for entry in entries.flatten() {
                        let account = entry.file_name().to_string_lossy().into_owned();
                        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
                            scopes.push(account);
                        }
                    }
                }
                Database::Postgres(_) => {
                    let suffix = format!("_{}", region.replace('-', "_"));
                    if schemas.iter().any(|name| name.ends_with(&suffix)) {
                        scopes.push(self.default.account.clone());
                    }
                    // `<service>_<region>_<account>`: an account's.
                    for name in &schemas {
                        let Some((rest, account)) = name.rsplit_once('_') else { continue };
                        let digits = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
                        if digits && rest.ends_with(&suffix) && !scopes.iter().any(|a| a == account) {
                            scopes.push(account.to_owned());
                        }
                    }
                }
            }
            for account in scopes {
                let identity = Identity { region: (*region).to_owned(), account };
                let default =
                    identity.region == self.default.region && identity.account == self.default.account;
                if !default && needs(&self.database.scoped(&self.dir(&identity))) {
                    found.push(identity);
                }
            }
        }
        found
    }
}

/// Where the instance of `identity` keeps its state, relative to the default one's (`us-west-2`,
/// `us-west-2/123456789012`): the `dir` of `Database::scoped` and `Blobs::scoped`.
pub fn scope_dir(default: &Identity, identity: &Identity) -> String {
    match identity.account == default.account {
        true => identity.region.clone(),
        false => format!("{}/{}", identity.region, identity.account),
    }
}

impl<S: Service> Service for Regional<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.home.claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            match self.for_request(&request) {
                Ok(instance) => instance.call(request).await,
                Err(why) => {
                    let code = match self.protocol {
                        Protocol::Query | Protocol::RestXml | Protocol::Ec2 => "SignatureDoesNotMatch",
                        _ => "InvalidSignatureException",
                    };
                    AwsError::new(403, code, why).into_response(self.protocol)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that answers with its own region and account.
    struct Echo(Identity);

    impl Service for Echo {
        fn name(&self) -> &'static str {
            "sqs"
        }

        fn claims(&self, _: &Method, _: &Uri, _: &HeaderMap) -> bool {
            false
        }

        fn call(&self, _request: ApiRequest) -> ServiceFuture<'_> {
            let body = format!("{}/{}", self.0.region, self.0.account);
            Box::pin(async move { nimbus_api::ApiResponse::new(nimbus_api::Body::new(body.into())) })
        }
    }

    /// Its instances open nothing on disk.
    fn regional() -> Arc<Regional<Echo>> {
        let default = Identity::default();
        let home = Lazy::ready("sqs", Protocol::Json, Arc::new(Echo(default.clone())));
        let database = Database::sqlite(std::path::Path::new("/nonexistent"));
        Regional::new(home, &database, &default, |_, identity| Ok(Arc::new(Echo(identity.clone()))))
    }

    fn signed(auth: &str) -> ApiRequest {
        let mut headers = HeaderMap::new();
        if !auth.is_empty() {
            headers.insert("authorization", auth.parse().unwrap());
        }
        ApiRequest {
            method: Method::POST,
            uri: Uri::from_static("/"),
            headers,
            body: Default::default(),
            request_id: String::new(),
        }
    }

    async fn answer(regional: &Regional<Echo>, auth: &str) -> (u16, String) {
        use http_body_util::BodyExt;
        let response = regional.call(signed(auth)).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_reach_their_scopes_instance() {
        let regional = regional();
        let scope = |key: &str, region: &str| {
            format!("AWS4-HMAC-SHA256 Credential={key}/20240101/{region}/sqs/aws4_request, SignedHeaders=host, Signature=x")
        };
        assert_eq!(answer(&regional, "").await.1, "us-east-1/000000000000");
        assert_eq!(answer(&regional, &scope("test", "us-west-2")).await.1, "us-west-2/000000000000");
        assert_eq!(answer(&regional, &scope("111122223333", "us-east-1")).await.1, "us-east-1/111122223333");
        let (status, body) = answer(&regional, &scope("test", "moon-east-1")).await;
        assert_eq!(status, 403);
        assert!(body.contains("Credential should be scoped to a valid region, not 'moon-east-1'."), "{body}");
        assert!(Arc::ptr_eq(
            &regional.at("us-west-2", "000000000000").unwrap(),
            &regional.for_arn("arn:aws:sqs:us-west-2:000000000000:q").unwrap()
        ));
        assert!(Arc::ptr_eq(regional.home(), &regional.for_arn("arn:aws:sqs:::q").unwrap()));
    }

    #[test]
    fn instances_are_bounded_and_placed_beside_the_default() {
        let regional = regional();
        for n in 0..MAX_INSTANCES {
            regional.at("eu-west-1", &format!("{n:012}")).unwrap();
        }
        assert!(regional.at("eu-west-1", "999999999999").is_err());
        assert!(regional.at("eu-west-1", "000000000001").is_ok(), "a known one is still served");
        assert!(
            regional.at("us-east-2", "../../etc").is_err()
                && regional.for_arn("arn:aws:sqs:us-east-2:x:q").is_err()
        );
        let default = Identity::default();
        let other = |region: &str, account: &str| Identity { region: region.into(), account: account.into() };
        assert_eq!(scope_dir(&default, &other("us-west-2", "000000000000")), "us-west-2");
        assert_eq!(scope_dir(&default, &other("us-west-2", "123456789012")), "us-west-2/123456789012");
    }
}
