//! The layer's contract, on SQLite always and on PostgreSQL when `NIMBUS_TEST_DATABASE` names a
//! server (`scripts/test` starts one): both backends must answer alike.

use super::*;

const ITEMS: Schema = Schema {
    service: "layer_test",
    sqlite_file: "layer_test.db",
    relaxed: false,
    migrations: &[
        Migration {
            sqlite: "CREATE TABLE items (name TEXT PRIMARY KEY, n BIGINT NOT NULL, data BLOB)",
            postgres: "CREATE TABLE items (name TEXT PRIMARY KEY, n BIGINT NOT NULL, data BYTEA)",
        },
        Migration::both("ALTER TABLE items ADD COLUMN note TEXT"),
    ],
};

pub(crate) fn databases() -> Vec<(Database, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(Database::sqlite(dir.path()), Some(dir))];
    if let Ok(url) = std::env::var("NIMBUS_TEST_DATABASE") {
        let db = Database::postgres(&url).expect("NIMBUS_TEST_DATABASE is reachable");
        // A fresh schema per run: drop what an earlier run left (once: the tests run at once,
        // on rows of their own).
        static FRESH: std::sync::Once = std::sync::Once::new();
        if let Database::Postgres(server) = &db {
            FRESH.call_once(|| {
                let mut client = server.connection().unwrap();
                client
                    .batch_execute("DROP SCHEMA IF EXISTS layer_test CASCADE; DELETE FROM public.nimbus_schema WHERE service = 'layer_test'")
                    .ok();
            });
        }
        all.push((db, None));
    }
    all
}

#[test]
fn both_backends_store_read_and_refuse_alike() {
    for (database, _dir) in databases() {
        let db = database.open(&ITEMS).unwrap();
        db.execute("INSERT INTO items (name, n, data) VALUES (?1, ?2, ?3)", &params!["a", 1, vec![0u8, 255]])
            .unwrap();
        let conflict = db.execute("INSERT INTO items (name, n) VALUES (?1, ?2)", &params!["a", 2]);
        assert!(matches!(conflict, Err(DbError::Conflict(_))), "{conflict:?}");
        db.execute(
            "INSERT INTO items (name, n, note) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE SET n = excluded.n, note = excluded.note",
            &params!["a", 5, Some("upserted")],
        )
        .unwrap();
        let row =
            db.query_opt("SELECT n, data, note FROM items WHERE name = ?1", &params!["a"]).unwrap().unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 5);
        assert_eq!(row.get::<Vec<u8>>(1).unwrap(), vec![0, 255]);
        assert_eq!(row.get::<Option<String>>(2).unwrap().as_deref(), Some("upserted"));
        // Counted by name: on PostgreSQL the tests share one schema and run at once.
        let count: Option<i64> = db
            .read(|tx| tx.query_value("SELECT COUNT(*) FROM items WHERE name = ?1", &params!["a"]))
            .unwrap();
        assert_eq!(count, Some(1), "the refused insert and the upsert left one row");
    }
}

#[test]
fn a_failed_transaction_changes_nothing() {
    for (database, _dir) in databases() {
        let db = database.open(&ITEMS).unwrap();
        let result: Result<(), DbError> = db.write(|tx| {
            tx.execute("INSERT INTO items (name, n) VALUES (?1, ?2)", &params!["b", 1])?;
            Err(DbError::other("changed my mind"))
        });
        assert!(result.is_err());
        assert!(db.query_opt("SELECT n FROM items WHERE name = ?1", &params!["b"]).unwrap().is_none());
    }
}

#[test]
fn migrations_run_once_and_state_survives_reopening() {
    for (database, _dir) in databases() {
        database.open(&ITEMS).unwrap().execute("INSERT INTO items (name, n) VALUES ('c', 3)", &[]).unwrap();
        let again = database.open(&ITEMS).unwrap();
        assert_eq!(again.query("SELECT name FROM items WHERE name = 'c'", &[]).unwrap().len(), 1);
        let newer = Schema { migrations: &ITEMS.migrations[..1], ..ITEMS };
        assert!(database.open(&newer).is_err(), "a schema newer than the code is refused");
    }
}

#[test]
fn a_scoped_database_keeps_its_own_state_beside_the_default() {
    let key = format!(
        "scoped-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    for (database, dir) in databases() {
        let scoped = database.scoped("eu-west-1/123456789012");
        scoped
            .open(&ITEMS)
            .unwrap()
            .execute("INSERT INTO items (name, n) VALUES (?1, 1)", &params![key.as_str()])
            .unwrap();
        assert!(scoped.has_schema(&ITEMS));
        let default = database.open(&ITEMS).unwrap();
        assert!(default
            .query_opt("SELECT n FROM items WHERE name = ?1", &params![key.as_str()])
            .unwrap()
            .is_none());
        let again = database.scoped("eu-west-1/123456789012").open(&ITEMS).unwrap();
        assert!(again
            .query_opt("SELECT n FROM items WHERE name = ?1", &params![key.as_str()])
            .unwrap()
            .is_some());
        if let Some(dir) = dir {
            assert!(dir.path().join("eu-west-1/123456789012/layer_test.db").exists());
        }
    }
}
