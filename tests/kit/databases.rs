//! Backends and databases, for the tests and the benchmarks: which backends a run covers, and databases made and removed on them.
//!
//! Tests run on SQLite (a temp-dir file) and, when `TEST_DATABASE_URL` is set, on PostgreSQL
//! too, in a database `test_<uuid>` created for the test and dropped after. Benchmarks keep
//! named databases (`calltrail_bench_<name>`) between their steps. An unreachable PostgreSQL
//! fails loudly; nothing skips silently.
// The tests use `TestDatabase`, the benchmarks `BenchDatabase`: each leaves the other unused.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};

/// A database kind to run against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// The backend called `name` (`sqlite` or `postgres`), PostgreSQL on the server at `admin_url`.
    pub fn named(name: &str, admin_url: &str) -> Option<Backend> {
        match name {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" => Some(Backend::Postgres {
                admin_url: admin_url.to_owned(),
            }),
            _ => None,
        }
    }
}

/// The backends every test runs on: SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var("TEST_DATABASE_URL")
        && !url.trim().is_empty()
    {
        all.push(Backend::Postgres { admin_url: url });
    }
    all
}

/// The PostgreSQL backend, for a test that runs on nothing else; `None`, said out loud, when
/// `TEST_DATABASE_URL` is not set.
pub fn postgres_only(test: &str) -> Option<Backend> {
    let found = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres { .. }));
    if found.is_none() {
        println!("{test}: NOT RUN, TEST_DATABASE_URL is not set");
    }
    found
}

/// `admin_url` pointing at database `name` instead.
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Runs one statement on the PostgreSQL server at `admin_url` (`CREATE DATABASE`, `DROP DATABASE`).
async fn on_server(admin_url: &str, sql: &str) {
    let admin = Database::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is unreachable: {e}"));
    admin
        .execute_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = admin.close().await;
}

/// Where one database lives: a SQLite file, or a database on a PostgreSQL server.
#[derive(Clone, Debug)]
enum Place {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Place {
    /// On SQLite, the file `sqlite_file`; on PostgreSQL, the database `name`.
    fn new(backend: &Backend, sqlite_file: PathBuf, name: &str) -> Place {
        match backend {
            Backend::Sqlite => Place::Sqlite(sqlite_file),
            Backend::Postgres { admin_url } => Place::Postgres {
                admin_url: admin_url.clone(),
                name: name.to_owned(),
            },
        }
    }

    fn url(&self) -> String {
        match self {
            Place::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            Place::Postgres { admin_url, name } => with_database(admin_url, name),
        }
    }

    /// Makes it, empty. A SQLite file is made by whoever opens it first (`mode=rwc`).
    async fn create(&self) {
        if let Place::Postgres { admin_url, name } = self {
            on_server(admin_url, &format!("CREATE DATABASE {name}")).await;
        }
    }

    /// Removes it: the SQLite file with its log and shared memory, or the PostgreSQL database
    /// with its open connections.
    async fn remove(&self) {
        match self {
            Place::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Place::Postgres { admin_url, name } => {
                on_server(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
            }
        }
    }
}

/// A fresh database of one backend for one test, removed when dropped.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    place: Place,
    dir: tempfile::TempDir,
}

impl TestDatabase {
    /// A new, empty database.
    pub async fn create(backend: &Backend) -> TestDatabase {
        let database = TestDatabase::uncreated(backend);
        database.place.create().await;
        database
    }

    /// The URL of a database that does not exist yet, for whoever makes it; removed when
    /// dropped all the same.
    pub fn uncreated(backend: &Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let place = Place::new(backend, dir.path().join("calltrail.db"), &name);
        TestDatabase {
            url: place.url(),
            backend: backend.clone(),
            place,
            dir,
        }
    }
}

impl TestDatabase {
    /// A database holding what an earlier calltrail left: on SQLite a copy of the file
    /// `sqlite_file`, on PostgreSQL a new database with the plain `pg_dump --inserts` output
    /// `postgres_dump` run into it.
    pub async fn restored(
        backend: &Backend,
        sqlite_file: &Path,
        postgres_dump: &Path,
    ) -> TestDatabase {
        let database = TestDatabase::uncreated(backend);
        match &database.place {
            Place::Sqlite(path) => {
                std::fs::copy(sqlite_file, path).expect("copy the SQLite file");
            }
            Place::Postgres { .. } => {
                database.place.create().await;
                let dump = std::fs::read_to_string(postgres_dump).expect("read the dump");
                let db = Database::connect(database.url.as_str())
                    .await
                    .expect("connect");
                db.execute_unprepared(&dump)
                    .await
                    .expect("restore the dump");
                let _ = db.close().await;
            }
        }
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The temp dir takes a SQLite file with it.
        if matches!(self.place, Place::Sqlite(_)) {
            return;
        }
        let place = self.place.clone();
        // Drop may run inside a runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(place.remove());
        })
        .join();
    }
}

/// A named benchmark database, kept until removed: `/tmp/calltrail_bench_<name>.db` or
/// PostgreSQL's `calltrail_bench_<name>`.
pub struct BenchDatabase {
    pub url: String,
    pub backend: Backend,
    place: Place,
}

impl BenchDatabase {
    /// Creates it empty (removing a previous one of the same name).
    pub async fn fresh(backend: &Backend, name: &str) -> BenchDatabase {
        let database = BenchDatabase::existing(backend, name);
        database.drop_now().await;
        database.place.create().await;
        database
    }

    /// Refers to it without creating or emptying it.
    pub fn existing(backend: &Backend, name: &str) -> BenchDatabase {
        let file = PathBuf::from(format!("/tmp/calltrail_bench_{name}.db"));
        let place = Place::new(backend, file, &format!("calltrail_bench_{name}"));
        BenchDatabase {
            url: place.url(),
            backend: backend.clone(),
            place,
        }
    }

    /// Removes it (the SQLite file and its WAL, or the PostgreSQL database).
    pub async fn drop_now(&self) {
        self.place.remove().await;
    }

    /// Bytes on disk (SQLite file + WAL, or `pg_database_size`).
    pub async fn size_bytes(&self) -> u64 {
        match &self.place {
            Place::Sqlite(path) => ["", "-wal"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
                .map(|m| m.len())
                .sum(),
            Place::Postgres { .. } => {
                let db = Database::connect(self.url.as_str()).await.expect("connect");
                let row = db
                    .query_one_raw(Statement::from_string(
                        DatabaseBackend::Postgres,
                        "SELECT pg_database_size(current_database())::bigint AS n",
                    ))
                    .await
                    .expect("size")
                    .expect("row");
                let n: i64 = row.try_get("", "n").expect("n");
                let _ = db.close().await;
                n as u64
            }
        }
    }
}
