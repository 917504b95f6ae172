//! The backends tests run on: SQLite always, PostgreSQL too when `NIMBUS_TEST_DATABASE` names a
//! server (`scripts/postgres start`), each test on a database of its own made afresh.

use nimbus_store::{Blobs, Database};

/// `(database, the directory that SQLite and the blobs live in)` per backend.
pub fn databases(name: &str) -> Vec<(Database, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(Database::sqlite(dir.path()), dir)];
    if let Ok(url) = std::env::var("NIMBUS_TEST_DATABASE") {
        all.push((fresh_postgres(&url, name), tempfile::tempdir().unwrap()));
    }
    all
}

pub fn blobs(dir: &tempfile::TempDir) -> Blobs {
    Blobs::new(dir.path(), "test", false)
}

/// Drops and creates the database `name` on the server of `url`, and connects to it.
fn fresh_postgres(url: &str, name: &str) -> Database {
    let server = Database::postgres(url).expect("NIMBUS_TEST_DATABASE is reachable");
    let Database::Postgres(server) = &server else { unreachable!() };
    let mut client = server.connection().unwrap();
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    // postgres://user@host:port/db?options: the database is the last path segment.
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let server_part = base.rsplit_once('/').map_or(base, |(s, _)| s);
    let query = if query.is_empty() { String::new() } else { format!("?{query}") };
    Database::postgres(&format!("{server_part}/{name}{query}")).unwrap()
}
