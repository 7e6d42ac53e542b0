//! Database errors by kind, decided once here from the driver's error codes: what a retry can
//! fix (a lost connection, a full pool, a lock timeout, a full disk, a read-only file or
//! standby), a statement the database stopped at a reader's time limit, and what a retry cannot (the data itself: a constraint, a value too large, an
//! invalid byte sequence; or calltrail's own defect: bad SQL, a missing table, a decode error).
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{DbErr, RuntimeErr};

use crate::error::AppError;

/// What kind of failure a database error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbFault {
    /// The database cannot take the statement right now; the same statement may succeed later.
    Transient,
    /// The database refuses the values themselves: retrying the same data fails the same way.
    Content,
    /// The database stopped the statement: a reader's time limit (PostgreSQL's
    /// `statement_timeout`, SQLite's interrupt).
    Cancelled,
    /// The database named in the URL does not exist (PostgreSQL's `3D000`).
    MissingDatabase,
    /// The statement or the schema is wrong, or a value did not decode: a bug or a schema
    /// mismatch, not something a client did.
    Defect,
}

/// The code the database gave `e` (PostgreSQL's SQLSTATE, SQLite's extended result code).
pub(crate) fn database_code(e: &DbErr) -> Option<String> {
    let (DbErr::Conn(RuntimeErr::SqlxError(sqlx))
    | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx))) = e
    else {
        return None;
    };
    match sqlx.deref() {
        sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The kind of `e`.
pub fn fault(e: &DbErr) -> DbFault {
    let runtime = match e {
        DbErr::ConnectionAcquire(_) => return DbFault::Transient,
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return DbFault::Defect,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return DbFault::Defect;
    };
    use sea_orm::sqlx::Error;
    match sqlx.deref() {
        Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                postgres_fault(&code)
            } else {
                sqlite_fault(&code)
            }
        }
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::BeginFailed => DbFault::Transient,
        _ => DbFault::Defect,
    }
}

/// By SQLSTATE class (PostgreSQL's appendix A).
fn postgres_fault(code: &str) -> DbFault {
    match code {
        "3D000" => DbFault::MissingDatabase,
        // Serialization failure, deadlock; an administrator's shutdown or a crash; disk full, out of memory, too many
        // connections; a lock not available; a read-only transaction (a standby).
        "57014" => DbFault::Cancelled,
        "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "55P03" | "25006" => DbFault::Transient,
        _ => match code.get(..2) {
            // Connection exceptions, insufficient resources, system and I/O errors.
            Some("08" | "53" | "58" | "XX") => DbFault::Transient,
            // Data exceptions (an invalid byte sequence, a value too long), integrity
            // constraints, a program limit (an index row too large).
            Some("22" | "23" | "54") => DbFault::Content,
            _ => DbFault::Defect,
        },
    }
}

/// An SQLite write was refused as read-only (`SQLITE_READONLY`) since the writers' pool last
/// looked. SQLite opens a file it cannot open for writing read-only, without an error, and such
/// a connection stays read-only after the file is writable again; the writers' pool closes its
/// connection when this is set, so the next one is opened read-write if it can be
/// ([`super::pool`]). Process-wide: another store's writer may reconnect once for nothing.
pub(crate) static READ_ONLY_SEEN: AtomicBool = AtomicBool::new(false);

/// By SQLite's primary result code (the low byte of the extended code the driver reports).
fn sqlite_fault(code: &str) -> DbFault {
    let Ok(extended) = code.parse::<u32>() else {
        return DbFault::Defect;
    };
    if extended & 0xff == 8 {
        READ_ONLY_SEEN.store(true, Ordering::Relaxed);
    }
    match extended & 0xff {
        9 => DbFault::Cancelled,
        // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
        5 | 6 | 7 | 8 | 10 | 13 | 14 | 15 => DbFault::Transient,
        // TOOBIG, CONSTRAINT, MISMATCH, RANGE.
        18 | 19 | 20 | 25 => DbFault::Content,
        _ => DbFault::Defect,
    }
}

/// A failed read or schema statement as the client is answered: 503 for what a retry can fix,
/// 422 for values the database refuses, 500 for calltrail's own defects.
pub(crate) fn db_error(e: DbErr) -> AppError {
    let detail = e.to_string();
    match fault(&e) {
        DbFault::Transient | DbFault::MissingDatabase => AppError::Unavailable(detail),
        DbFault::Cancelled => AppError::QueryTimeout(detail),
        DbFault::Content => AppError::Unstorable(detail),
        DbFault::Defect => AppError::Internal(detail),
    }
}

/// A failed statement of the webhook writer's transaction as the sender is answered. Nothing of
/// the delivery was stored, so whatever is not the delivery's own content (a defect too: a
/// table renamed away, a migration half applied) is 503, for the sender to retry once it is
/// fixed; values the database refuses are [`AppError::Unstorable`].
pub(crate) fn write_error(e: DbErr) -> AppError {
    let detail = e.to_string();
    match fault(&e) {
        DbFault::Content => AppError::Unstorable(detail),
        _ => AppError::Unavailable(detail),
    }
}

/// A row that did not decode as calltrail wrote it: always a defect.
pub(crate) fn defect(e: DbErr) -> AppError {
    AppError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

    use super::*;

    /// One connection, so a temporary table and session settings stay in view.
    async fn connect(url: &str) -> DatabaseConnection {
        let mut options = ConnectOptions::new(url.to_owned());
        options.max_connections(1).sqlx_logging(false);
        Database::connect(options).await.expect("database")
    }

    /// A table `t` with one row, then each statement (which must fail) and the kind expected.
    async fn classify(db: &DatabaseConnection, table: &str, cases: &[(&str, DbFault, &str)]) {
        db.execute_unprepared(table).await.expect("table");
        db.execute_unprepared("INSERT INTO t VALUES (1, 'a')")
            .await
            .expect("row");
        let shared = [
            ("INSERT INTO t VALUES (1, 'b')", DbFault::Content, "unique"),
            (
                "INSERT INTO t (id) VALUES (2)",
                DbFault::Content,
                "not null",
            ),
            ("SELECT * FROM missing", DbFault::Defect, "missing table"),
        ];
        for (sql, kind, what) in shared.iter().chain(cases) {
            let e = db.execute_unprepared(sql).await.expect_err(what);
            assert_eq!(fault(&e), *kind, "{what}: {e}");
        }
    }

    /// Real errors from a real SQLite and, with `TEST_DATABASE_URL`, a real PostgreSQL.
    #[tokio::test]
    async fn errors_are_classified_by_what_a_retry_can_fix() {
        let sqlite = connect("sqlite::memory:").await;
        classify(
            &sqlite,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
            &[
                ("SELEC 1", DbFault::Defect, "bad SQL"),
                ("ROLLBACK", DbFault::Defect, "no transaction"),
            ],
        )
        .await;
        let _ = sqlite.close().await;

        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            println!("PostgreSQL classification: NOT RUN, TEST_DATABASE_URL is not set");
            return;
        };
        let pg = connect(&url).await;
        classify(
            &pg,
            "CREATE TEMP TABLE t (id int PRIMARY KEY, v text NOT NULL)",
            &[
                ("SELECT 1 / 0", DbFault::Content, "division by zero"),
                (
                    "SELECT convert_from('\\x00'::bytea, 'UTF8')",
                    DbFault::Content,
                    "a NUL byte",
                ),
                (
                    "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$",
                    DbFault::Transient,
                    "serialization failure",
                ),
                (
                    "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '53100'; END $$",
                    DbFault::Transient,
                    "disk full",
                ),
                (
                    "SET statement_timeout = '10ms'; SELECT pg_sleep(1)",
                    DbFault::Cancelled,
                    "statement timeout",
                ),
            ],
        )
        .await;
        let _ = pg.close().await;
        let refuse = |url: String| async move {
            let mut options = ConnectOptions::new(url);
            options
                .connect_timeout(std::time::Duration::from_secs(2))
                .acquire_timeout(std::time::Duration::from_secs(2))
                .sqlx_logging(false);
            Database::connect(options)
                .await
                .expect_err("cannot connect")
        };
        let (base, _) = url.rsplit_once('/').expect("a database in the URL");
        let gone = refuse(format!("{base}/calltrail_no_such_database")).await;
        assert_eq!(fault(&gone), DbFault::MissingDatabase);
        let refused = refuse("postgres://postgres@127.0.0.1:1/x".into()).await;
        assert_eq!(fault(&refused), DbFault::Transient, "connection refused");
    }
}
