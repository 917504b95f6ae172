//! The image store's tables (schema `images`; on SQLite `<data dir>/images/images.db`).

use nimbus_store::{Migration, Schema};

pub const SCHEMA: Schema = Schema {
    service: "images",
    sqlite_file: "images/images.db",
    relaxed: false,
    migrations: &[Migration::both(
        "CREATE TABLE repositories (region TEXT NOT NULL, name TEXT NOT NULL, \
           created_ms BIGINT NOT NULL, config TEXT NOT NULL, PRIMARY KEY (region, name));
         CREATE TABLE blobs (digest TEXT PRIMARY KEY, size BIGINT NOT NULL, created_ms BIGINT NOT NULL);
         CREATE TABLE repo_blobs (region TEXT NOT NULL, repo TEXT NOT NULL, digest TEXT NOT NULL, \
           created_ms BIGINT NOT NULL, PRIMARY KEY (region, repo, digest));
         CREATE TABLE manifests (region TEXT NOT NULL, repo TEXT NOT NULL, digest TEXT NOT NULL, \
           media_type TEXT NOT NULL, size BIGINT NOT NULL, image_size BIGINT NOT NULL, \
           pushed_ms BIGINT NOT NULL, root TEXT, config_digest TEXT, \
           PRIMARY KEY (region, repo, digest));
         CREATE TABLE manifest_refs (region TEXT NOT NULL, repo TEXT NOT NULL, manifest TEXT NOT NULL, \
           digest TEXT NOT NULL, PRIMARY KEY (region, repo, manifest, digest));
         CREATE INDEX manifest_refs_digest ON manifest_refs (digest);
         CREATE TABLE tags (region TEXT NOT NULL, repo TEXT NOT NULL, tag TEXT NOT NULL, \
           digest TEXT NOT NULL, pushed_ms BIGINT NOT NULL, PRIMARY KEY (region, repo, tag));
         CREATE TABLE uploads (id TEXT PRIMARY KEY, region TEXT NOT NULL, repo TEXT NOT NULL, \
           size BIGINT NOT NULL, started_ms BIGINT NOT NULL);",
    )],
};
