//! One instance of a service per region and account, as AWS keeps them apart: a request is
//! served by the instance of its SigV4 scope's region, and of the account its access key id names
//! when that is twelve digits (else `--account`). The instance of nimbus's own region and account
//! is today's (its state where it always was: no migration on upgrade); another region's or
//! account's keeps its state under its own names (`<data dir>/us-west-2/sqs/sqs.db`, schema
//! `sqs_us_west_2`; `us-west-2/123456789012/…`, `sqs_us_west_2_123456789012`) and, like every
//! [`Lazy`] service, costs nothing until its first request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::scope::{arn_scope, is_account_id, is_region, scope_of, REGIONS};
use nimbus_api::{ApiRequest, AwsError, Identity, Protocol, Service, ServiceFuture};
use nimbus_store::{Database, Schema};

use crate::lazy::Lazy;

/// Regions and accounts served besides nimbus's own, all services together; past it a new
/// region/account pair is refused (each costs its own files and tasks in every service it uses).
const MAX_SCOPES: usize = 64;

/// The region/account pairs admitted so far, one set shared by every service's [`Regional`].
#[derive(Default)]
struct Scopes {
    admitted: Mutex<HashSet<(String, String)>>,
    /// Those known to hold state (see `probes`): their read-only calls open the real instances.
    used: Mutex<HashSet<(String, String)>>,
    /// Where stand-ins for unused scopes keep their throwaway state; unset: no stand-ins.
    probe_root: std::sync::OnceLock<std::path::PathBuf>,
}

impl Scopes {
    fn shared() -> Arc<Scopes> {
        static SHARED: std::sync::OnceLock<Arc<Scopes>> = std::sync::OnceLock::new();
        SHARED.get_or_init(Arc::default).clone()
    }

    /// Admits `key` if it is known or there is room for it.
    fn admit(&self, key: &(String, String)) -> bool {
        let mut scopes = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if scopes.contains(key) {
            return true;
        }
        if scopes.len() >= MAX_SCOPES {
            return false;
        }
        scopes.insert(key.clone());
        true
    }

    fn is_used(&self, key: &(String, String)) -> bool {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
    }

    fn mark_used(&self, key: (String, String)) {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }
}

/// Read-only calls to a region and account that hold nothing are answered by stand-ins keeping
/// their throwaway state under `root` (see `probes`); call once, at start.
pub fn set_probe_root(root: std::path::PathBuf) {
    let _ = Scopes::shared().probe_root.set(root);
}

/// Another region's blobs: under its scope directory, or a stand-in's own (see `probes`).
pub fn blobs_for(
    blobs: &nimbus_store::Blobs,
    database: &Database,
    default: &Identity,
    identity: &Identity,
) -> nimbus_store::Blobs {
    let root = Scopes::shared().probe_root.get().cloned();
    match crate::probes::probe_database(database, root.as_deref()) {
        Some(dir) => nimbus_store::Blobs::new(&dir, "local", false),
        None => blobs.scoped(&scope_dir(default, identity)),
    }
}

/// An instance per (region, account).
pub type Instances<T> = HashMap<(String, String), T>;

type Opener<S> = Arc<dyn Fn(&Database, &Identity) -> Result<Arc<S>, String> + Send + Sync>;

/// The region and account a request names itself, before its signature's (Lambda's function
/// ARN in the path); None: its signature's.
pub type Router = fn(&ApiRequest) -> Option<(String, String)>;

/// Why a region and account are not served.
#[derive(Debug)]
pub struct Refusal {
    status: u16,
    /// Error codes for JSON protocols and for Query/XML ones.
    codes: (&'static str, &'static str),
    message: String,
}

impl From<Refusal> for String {
    fn from(refusal: Refusal) -> String {
        refusal.message
    }
}

pub struct Regional<S> {
    name: &'static str,
    protocol: Protocol,
    default: Identity,
    home: Arc<Lazy<S>>,
    database: Database,
    others: RwLock<Instances<Arc<Lazy<S>>>>,
    open: Opener<S>,
    scopes: Arc<Scopes>,
    route: Option<Router>,
    /// Stand-ins answering read-only calls for scopes that hold nothing (see `probes`).
    probes: RwLock<Instances<Arc<Lazy<S>>>>,
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
            scopes: Scopes::shared(),
            route: None,
            probes: RwLock::default(),
        })
    }

    /// As [`Regional::new`], for a service whose requests may name their region and account
    /// themselves (`route`), which then wins over their signature's.
    pub fn routed(
        home: Arc<Lazy<S>>,
        database: &Database,
        default: &Identity,
        route: Router,
        open: impl Fn(&Database, &Identity) -> Result<Arc<S>, String> + Send + Sync + 'static,
    ) -> Arc<Regional<S>> {
        let mut regional = Regional::new(home, database, default, open);
        if let Some(made) = Arc::get_mut(&mut regional) {
            made.route = Some(route);
        }
        regional
    }

    /// The instance of nimbus's own region and account (`--region`, `--account`); another
    /// region's is [`Regional::at`] or [`Regional::for_arn`].
    pub fn home(&self) -> &Arc<Lazy<S>> {
        &self.home
    }

    /// The instance of `region` and `account` (not opened until used).
    pub fn at(&self, region: &str, account: &str) -> Result<Arc<Lazy<S>>, String> {
        self.admit(region, account).map_err(String::from)
    }

    fn admit(&self, region: &str, account: &str) -> Result<Arc<Lazy<S>>, Refusal> {
        if region == self.default.region && account == self.default.account {
            return Ok(self.home.clone());
        }
        // nimbus's own region is served whatever its name (`--region local`).
        if region != self.default.region && !is_region(region) {
            return Err(Refusal {
                status: 403,
                codes: ("InvalidSignatureException", "SignatureDoesNotMatch"),
                message: format!("Credential should be scoped to a valid region, not '{region}'."),
            });
        }
        // An account names a directory and a schema: twelve digits, nothing else.
        if !is_account_id(account) {
            return Err(Refusal {
                status: 403,
                codes: ("InvalidSignatureException", "SignatureDoesNotMatch"),
                message: format!("'{account}' is not an account id (twelve digits)"),
            });
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
        if !self.scopes.admit(&key) {
            return Err(Refusal {
                status: 400,
                codes: ("LimitExceededException", "LimitExceeded"),
                message: format!(
                    "nimbus serves at most {MAX_SCOPES} regions and accounts besides its own \
                     ({}, {}); region {region} with account {account} is one too many",
                    self.default.region, self.default.account
                ),
            });
        }
        let identity = Identity { region: region.to_owned(), account: account.to_owned() };
        let database = self.database.scoped(&self.dir(&identity));
        let open = self.open.clone();
        let instance = Lazy::new(self.name, self.protocol, move || open(&database, &identity));
        others.insert(key, instance.clone());
        Ok(instance)
    }

    /// The instance a signing scope names (its region, else nimbus's; its account, else
    /// nimbus's), as a request signed with it reaches.
    pub fn for_scope(&self, scope: &nimbus_api::scope::Scope) -> Result<Arc<Lazy<S>>, String> {
        let region = if scope.region.is_empty() { &self.default.region } else { &scope.region };
        self.at(region, scope.account().unwrap_or(&self.default.account))
    }

    /// The instance an ARN's region and account name (`arn:aws:sqs:us-west-2:123456789012:q`);
    /// the default one for an ARN without them.
    pub fn for_arn(&self, arn: &str) -> Result<Arc<Lazy<S>>, String> {
        let (region, account) = arn_scope(arn);
        let region = if region.is_empty() { &self.default.region } else { region };
        let account = if account.is_empty() { &self.default.account } else { account };
        self.at(region, account)
    }

    /// The instance a request is for: its scope's region and account; for a read-only call to
    /// a scope that holds nothing, a stand-in (see `probes`).
    fn for_request(&self, request: &ApiRequest) -> Result<Arc<Lazy<S>>, Refusal> {
        let routed = self.route.and_then(|route| route(request));
        let scope = match routed {
            Some(_) => None,
            None => scope_of(&request.headers, &request.uri),
        };
        let (region, account) = match &routed {
            Some((region, account)) => (region.as_str(), account.as_str()),
            None => (
                scope
                    .as_ref()
                    .map(|s| s.region.as_str())
                    .filter(|r| !r.is_empty())
                    .unwrap_or(&self.default.region),
                scope.as_ref().and_then(|s| s.account()).unwrap_or(&self.default.account),
            ),
        };
        let instance = self.admit(region, account)?;
        if instance.opened().is_some() || Arc::ptr_eq(&instance, &self.home) {
            return Ok(instance);
        }
        Ok(self.stand_in(region, account, request).unwrap_or(instance))
    }

    /// A stand-in for a read-only `request` to a scope that holds nothing; None: the real
    /// instance serves it (and the scope counts as used from now on).
    fn stand_in(&self, region: &str, account: &str, request: &ApiRequest) -> Option<Arc<Lazy<S>>> {
        self.scopes.probe_root.get()?;
        let key = (region.to_owned(), account.to_owned());
        if self.scopes.is_used(&key) {
            return None;
        }
        let identity = Identity { region: key.0.clone(), account: key.1.clone() };
        let used = !crate::probes::is_read_only(request, self.protocol)
            || tokio::task::block_in_place(|| {
                crate::probes::scope_used(&self.database, &self.dir(&identity))
            });
        if used {
            self.probes.write().unwrap_or_else(|p| p.into_inner()).remove(&key);
            self.scopes.mark_used(key);
            return None;
        }
        self.probe_at(&identity)
    }

    /// The stand-in of `identity`'s scope (made on first use; its state thrown away at the next
    /// start). Services opened over another's (Streams over DynamoDB) open that one's stand-in.
    pub fn probe_at(&self, identity: &Identity) -> Option<Arc<Lazy<S>>> {
        let root = self.scopes.probe_root.get()?;
        let key = (identity.region.clone(), identity.account.clone());
        if let Some(probe) = self.probes.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(probe.clone());
        }
        let mut probes = self.probes.write().unwrap_or_else(|p| p.into_inner());
        let dir = crate::probes::probe_dir(root, self.name, &self.dir(identity));
        let (open, identity) = (self.open.clone(), identity.clone());
        let database = Database::sqlite(&dir);
        let probe = probes
            .entry(key)
            .or_insert_with(|| Lazy::new(self.name, self.protocol, move || open(&database, &identity)));
        Some(probe.clone())
    }

    /// Whether the instance an ARN names holds nothing and is not open (asking opens nothing):
    /// another service checking that a function exists need not make the region's state.
    pub fn holds_nothing(&self, arn: &str) -> bool {
        let Ok(instance) = self.for_arn(arn) else { return false };
        if instance.opened().is_some()
            || Arc::ptr_eq(&instance, &self.home)
            || self.scopes.probe_root.get().is_none()
        {
            return false;
        }
        let (region, account) = arn_scope(arn);
        let region = if region.is_empty() { &self.default.region } else { region };
        let account = if account.is_empty() { &self.default.account } else { account };
        let key = (region.to_owned(), account.to_owned());
        let identity = Identity { region: key.0.clone(), account: key.1.clone() };
        !self.scopes.is_used(&key) && !crate::probes::scope_used(&self.database, &self.dir(&identity))
    }

    /// Whether `database` is a stand-in's (see [`Regional::probe_at`]).
    pub fn is_probe(database: &Database) -> bool {
        crate::probes::probe_database(database, Scopes::shared().probe_root.get().map(|p| p.as_path()))
            .is_some()
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

    /// Opens, in the background, the instances of other regions and accounts that hold `schema`
    /// (per `stored`, found once at start) and whose state `needs` work without a request
    /// (schedules, outboxes, sweeps). Nothing is spawned when no other region holds `schema`.
    pub fn resume(self: &Arc<Self>, stored: &Stored, schema: &Schema, needs: fn(&Database) -> bool)
    where
        S: Send + Sync + 'static,
    {
        let holding: Vec<Identity> = stored
            .scopes()
            .filter(|identity| stored.holds(&self.database, identity, schema))
            .cloned()
            .collect();
        if holding.is_empty() {
            return;
        }
        let regional = self.clone();
        tokio::spawn(async move {
            let found = {
                let regional = regional.clone();
                let asked = tokio::task::spawn_blocking(move || {
                    let scoped = |identity: &Identity| regional.database.scoped(&regional.dir(identity));
                    holding.into_iter().filter(|identity| needs(&scoped(identity))).collect::<Vec<_>>()
                });
                asked.await.unwrap_or_default()
            };
            for identity in found {
                regional.open_at(&identity).await;
            }
        });
    }

    /// Opens the instance of `identity` now (what `resume` does), saying why it cannot.
    pub async fn open_at(&self, identity: &Identity) {
        let opened = match self.at(&identity.region, &identity.account) {
            Ok(instance) => instance.get().await.map(drop),
            Err(why) => Err(why),
        };
        if let Err(why) = opened {
            eprintln!("nimbus: cannot open {} in {}: {why}", self.name, identity.region);
        }
    }
}

/// The regions and accounts besides nimbus's own that hold stored state, found once at start
/// (one `read_dir` of the data directory on SQLite, one query of the schema names on
/// PostgreSQL) and handed to every service's [`Regional::resume`].
#[derive(Debug, Default)]
pub struct Stored {
    default: Identity,
    scopes: Vec<Identity>,
    /// On PostgreSQL, every schema's name.
    schemas: HashSet<String>,
}

impl Stored {
    pub fn scan(database: &Database, default: &Identity) -> Stored {
        let mut stored = Stored { default: default.clone(), ..Stored::default() };
        let is_scope_region = |name: &str| name == default.region || is_region(name);
        match database {
            Database::Sqlite { data_dir } => {
                let Ok(entries) = std::fs::read_dir(data_dir) else { return stored };
                for entry in entries.flatten() {
                    let region = entry.file_name().to_string_lossy().into_owned();
                    if !is_scope_region(&region) || !entry.path().is_dir() {
                        continue;
                    }
                    let Ok(accounts) = std::fs::read_dir(entry.path()) else { continue };
                    if region != default.region {
                        stored.add(&region, &default.account);
                    }
                    for account in accounts.flatten() {
                        let account = account.file_name().to_string_lossy().into_owned();
                        if is_account_id(&account) {
                            stored.add(&region, &account);
                        }
                    }
                }
            }
            Database::Postgres(_) => {
                stored.schemas = database.schema_names().into_iter().collect();
                let regions: Vec<String> = REGIONS
                    .iter()
                    .map(|r| (*r).to_owned())
                    .chain((!is_region(&default.region)).then(|| default.region.clone()))
                    .collect();
                let names: Vec<String> = stored.schemas.iter().cloned().collect();
                for name in names {
                    for region in &regions {
                        let suffix = format!("_{}", schema_part(region));
                        if name.ends_with(&suffix) && region != &default.region {
                            stored.add(region, &default.account);
                        }
                        // `<service>_<region>_<account>`: an account's.
                        let Some((rest, account)) = name.rsplit_once('_') else { continue };
                        if is_account_id(account) && rest.ends_with(&suffix) {
                            stored.add(region, account);
                        }
                    }
                }
            }
        }
        stored
    }

    fn add(&mut self, region: &str, account: &str) {
        let identity = Identity { region: region.to_owned(), account: account.to_owned() };
        let default = identity.region == self.default.region && identity.account == self.default.account;
        if !default
            && !self.scopes.iter().any(|s| s.region == identity.region && s.account == identity.account)
        {
            self.scopes.push(identity);
        }
    }

    /// The regions and accounts found, nimbus's own not among them.
    pub fn scopes(&self) -> impl Iterator<Item = &Identity> {
        self.scopes.iter()
    }

    /// Whether `identity`'s storage holds `schema` (a file's existence on SQLite; the list of
    /// schema names on PostgreSQL, no connection).
    pub fn holds(&self, database: &Database, identity: &Identity, schema: &Schema) -> bool {
        let dir = scope_dir(&self.default, identity);
        match database {
            Database::Sqlite { data_dir } => data_dir.join(&dir).join(schema.sqlite_file).exists(),
            Database::Postgres(_) => {
                self.schemas.contains(&format!("{}_{}", schema.service, schema_part(&dir)))
            }
        }
    }
}

/// A scope directory as part of a schema name (as `Database::scoped` names it).
pub fn schema_part(dir: &str) -> String {
    dir.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
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
                Err(Refusal { status, codes: (json, query), message }) => {
                    let code = match self.protocol {
                        Protocol::Query | Protocol::RestXml | Protocol::Ec2 => query,
                        _ => json,
                    };
                    AwsError::new(status, code, message).into_response(self.protocol)
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

    /// Its instances open nothing on disk; it counts its scopes in `scopes`.
    fn capped(scopes: &Arc<Scopes>) -> Arc<Regional<Echo>> {
        let default = Identity::default();
        let home = Lazy::ready("sqs", Protocol::Json, Arc::new(Echo(default.clone())));
        let database = Database::sqlite(std::path::Path::new("/nonexistent"));
        let mut regional =
            Regional::new(home, &database, &default, |_, identity| Ok(Arc::new(Echo(identity.clone()))));
        Arc::get_mut(&mut regional).unwrap().scopes = scopes.clone();
        regional
    }

    fn regional() -> Arc<Regional<Echo>> {
        capped(&Arc::default())
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
    fn stored_state_is_found_in_one_look() {
        let path = std::env::temp_dir().join(format!("nimbus-stored-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let database = Database::sqlite(&path);
        let default = Identity::default();
        assert_eq!(Stored::scan(&database, &default).scopes().count(), 0, "nothing stored");
        for made in ["us-west-2/sqs", "us-east-1/123456789012/sns", "eu-west-1/111122223333", "sqs", "tmp/x"]
        {
            std::fs::create_dir_all(path.join(made)).unwrap();
        }
        std::fs::write(path.join("us-west-2/sqs/sqs.db"), b"").unwrap();
        let stored = Stored::scan(&database, &default);
        let mut found: Vec<String> = stored.scopes().map(|i| format!("{}/{}", i.region, i.account)).collect();
        found.sort();
        assert_eq!(
            found,
            [
                "eu-west-1/000000000000",
                "eu-west-1/111122223333",
                "us-east-1/123456789012",
                "us-west-2/000000000000"
            ]
        );
        let schema = |sqlite_file| Schema { service: "sqs", sqlite_file, relaxed: false, migrations: &[] };
        let west = Identity { region: "us-west-2".into(), account: default.account.clone() };
        assert!(stored.holds(&database, &west, &schema("sqs/sqs.db")));
        assert!(!stored.holds(&database, &west, &schema("sns/sns.db")));
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn instances_are_bounded_and_placed_beside_the_default() {
        let scopes = Arc::default();
        let (regional, streams) = (capped(&scopes), capped(&scopes));
        // One cap for every service: fill it and the next is refused.
        for n in 0..MAX_SCOPES {
            regional.at("eu-west-1", &format!("{n:012}")).unwrap();
        }
        let refused = regional.at("eu-west-1", "999999999999").err().unwrap();
        assert!(refused.contains("at most 64 regions and accounts"), "{refused}");
        assert!(streams.at("eu-west-1", "999999999999").is_err(), "the cap is shared");
        assert!(streams.at("eu-west-1", "000000000000").is_ok(), "a known scope is served by every service");
        assert!(regional.at("eu-west-1", "000000000001").is_ok(), "a known one is still served");
        assert!(
            regional.at("us-east-2", "../../etc").is_err()
                && regional.for_arn("arn:aws:sqs:us-east-2:x:q").is_err()
        );
        // nimbus's own region is served whatever its name, for any account.
        let local = Identity { region: "local".into(), account: "000000000000".into() };
        let home = Lazy::ready("sqs", Protocol::Json, Arc::new(Echo(local.clone())));
        let database = Database::sqlite(std::path::Path::new("/nonexistent"));
        let own = Regional::new(home, &database, &local, |_, identity| Ok(Arc::new(Echo(identity.clone()))));
        assert!(Arc::ptr_eq(own.home(), &own.at("local", "000000000000").unwrap()));
        assert!(own.for_arn("arn:aws:sqs:local:000000000000:q").is_ok());
        assert!(own.at("moon-east-1", "000000000000").is_err());
        let default = Identity::default();
        let other = |region: &str, account: &str| Identity { region: region.into(), account: account.into() };
        assert_eq!(scope_dir(&default, &other("us-west-2", "000000000000")), "us-west-2");
        assert_eq!(scope_dir(&default, &other("us-west-2", "123456789012")), "us-west-2/123456789012");
    }
}
