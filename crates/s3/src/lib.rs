//! Amazon S3 on nimbus's shared port: buckets, objects, listings, multipart uploads, presigned
//! URLs, `aws-chunked` uploads with checksums, and bucket notifications to Lambda and SQS.
//!
//! Why not the `s3s` crate: s3s is a complete hyper service of its own (routing, auth provider,
//! error rendering, streaming bodies). nimbus's port hands every service a fully read
//! `ApiRequest` and stamps the response itself, S3 must share `/` with the Query-protocol
//! services, and accepting *any* credentials would mean disabling s3s's signature checks anyway.
//! What is left of the wire protocol (path/virtual-host routing, a dozen XML shapes, aws-chunked
//! decoding) is small, so it lives here over quick-xml, with nimbus's own durable storage.

mod address;
mod buckets;
mod checksum;
mod configs;
mod context;
mod cors;
mod error;
mod events;
mod files;
mod lifecycle;
mod list;
mod multipart;
mod notifications;
mod objects;
mod payload;
mod post;
pub mod provider;
mod range;
mod router;
mod settings;
mod store;
mod subresources;
mod xml;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Body, Service, ServiceFuture};
use nimbus_store::{Blobs, Database};

pub use error::S3Error;
pub use notifications::{NotificationSink, NotificationTarget};

use context::{Ctx, Reply};

/// The S3 service: metadata in the database (`s3/s3.sqlite` under the data directory, or schema
/// `s3` on PostgreSQL), object bytes in blob area `s3` (`objects/`). Nothing is kept in memory
/// between requests, so nodes sharing the database and the blob root serve the same buckets.
pub struct S3 {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: store::Db,
    pub files: files::Files,
    pub sink: Option<Arc<dyn NotificationSink>>,
    pub region: String,
    pub account: String,
    pub sequencer: events::Sequencer,
}

impl S3 {
    /// Opens (or creates) S3's state on the storage layer. Files left by a crash mid-upload are
    /// swept in the background; they were never visible.
    pub fn open_on(
        database: &Database,
        blobs: &Blobs,
        sink: Option<Arc<dyn NotificationSink>>,
        region: &str,
        account: &str,
    ) -> std::io::Result<Arc<S3>> {
        let db = store::Db::open(database).map_err(std::io::Error::other)?;
        S3::start(db, files::Files::open(blobs)?, sink, region, account)
    }

    fn start(
        db: store::Db,
        files: files::Files,
        sink: Option<Arc<dyn NotificationSink>>,
        region: &str,
        account: &str,
    ) -> std::io::Result<Arc<S3>> {
        let inner = Arc::new(Inner {
            db,
            files,
            sink,
            region: region.to_owned(),
            account: account.to_owned(),
            sequencer: events::Sequencer::default(),
        });
        let sweeper = inner.clone();
        std::thread::Builder::new().name("s3-sweep".into()).spawn(move || {
            if let Ok(referenced) = sweeper.db.referenced_files() {
                let _ = sweeper.files.sweep(&referenced);
            }
        })?;
        Ok(Arc::new(S3 { inner }))
    }

    /// Starts applying lifecycle expiration on `clock` (nimbus's, virtual in tests).
    pub fn run_lifecycle(&self, clock: Arc<dyn nimbus_api::clock::Clock>) {
        lifecycle::run(self.inner.clone(), clock);
    }

    /// The entry point before the storage layer, kept until `nimbus` opens every service with
    /// [`S3::open_on`]: `dir` is `<data dir>/s3`, on SQLite, alone.
    pub fn open(
        dir: &Path,
        sink: Option<Arc<dyn NotificationSink>>,
        region: &str,
        account: &str,
    ) -> std::io::Result<Arc<S3>> {
        let data_dir = match (dir.parent(), dir.file_name()) {
            (Some(parent), Some(name)) if name == "s3" => parent,
            _ => return Err(std::io::Error::other(format!("{} is not <data dir>/s3", dir.display()))),
        };
        let blobs = Blobs::new(data_dir, "local", false);
        S3::open_on(&Database::sqlite(data_dir), &blobs, sink, region, account)
    }

    /// Writes an object as a PUT would (CloudWatch Logs export tasks); no notification is sent.
    pub fn write_object(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        content_type: &str,
    ) -> Result<(), S3Error> {
        let s3 = &self.inner;
        let bucket = s3.db.require_bucket(bucket)?;
        let row = store::ObjectRow {
            bucket: bucket.name.clone(),
            key: key.to_owned(),
            size: data.len() as u64,
            etag: checksum::md5_hex(data),
            modified_ms: context::now_ms(),
            headers: vec![("content-type".into(), content_type.to_owned())],
            metadata: Vec::new(),
            checksum: Some(checksum::default_checksum(data)),
            parts: 0,
            file: s3.files.write(data)?,
            version_id: objects::new_version_id(&bucket),
            tags: Vec::new(),
            extra: vec![("sse".into(), "AES256".into())],
        };
        objects::commit(s3, &row)
    }

    /// An object's bytes (Lambda's `Code.S3Bucket`/`S3Key`/`S3ObjectVersion`).
    pub fn read_object(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, S3Error> {
        self.inner.db.require_bucket(bucket)?;
        let object = objects::source_object(&self.inner, bucket, key, version)?;
        Ok(self.inner.files.read(&object.file, None)?)
    }
}

impl Inner {
    fn handle(&self, request: ApiRequest) -> ApiResponse {
        let host =
            request.header("host").map(str::to_owned).or_else(|| request.uri.host().map(str::to_owned));
        let at = address::locate(host.as_deref(), request.uri.path());
        let is_head = request.method == Method::HEAD;
        let mut ctx = Ctx::new(request, at.bucket, at.key);
        let reply = router::route(self, &mut ctx)
            .map(|reply| cors::decorate(self, &ctx, reply))
            .unwrap_or_else(|error| {
                let body = if is_head { String::new() } else { error.body(&ctx.request_id, &ctx.host_id) };
                let mut reply = Reply::empty(error.status).header("content-type", "application/xml");
                reply.headers.extend(error.headers);
                reply.with_body(body)
            });
        let response = respond(reply, &ctx);
        notifications::deliver_events(self, &ctx);
        response
    }
}

fn respond(reply: Reply, ctx: &Ctx) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    let ids = [("x-amz-request-id", ctx.request_id.clone()), ("x-amz-id-2", ctx.host_id.clone())];
    for (name, value) in reply.headers.into_iter().chain(ids.map(|(n, v)| (n.to_owned(), v))) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            headers.append(name, value);
        }
    }
    response
}

impl Service for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        address::claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        let inner = self.inner.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || inner.handle(request)).await {
                Ok(response) => response,
                Err(error) => {
                    let body = S3Error::internal(error).body("", "");
                    let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    response
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
