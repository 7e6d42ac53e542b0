//! The one seam between SQLite and PostgreSQL: chosen once when the store opens, it owns every
//! difference (placeholders, time arithmetic, percentiles, migrations, batch writes, call
//! locks, bulk-load settings). Nothing outside this folder asks which backend it runs on.
//!
//! `sqlite.rs` and `postgres.rs` hold each backend's statements; this file says which one a
//! question goes to.
mod postgres;
mod sqlite;

pub(crate) use postgres::statement_timeout as postgres_statement_timeout;
pub(crate) use sqlite::room_beside;
pub(crate) use sqlite::statement_deadline as sqlite_statement_deadline;

use std::collections::HashSet;
use std::time::Duration;

use entity::{call, call_event, delivery};
use sea_orm::{
    AccessMode, DatabaseBackend, DatabaseConnection, DatabaseTransaction, IsolationLevel,
    QueryResult, Value,
};

use crate::error::AppError;

/// The database calltrail runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL (`postgres://`/`postgresql://`, else SQLite).
    pub fn of_url(url: &str) -> Dialect {
        if url.starts_with("postgres") {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    /// The dialect of an open connection or transaction's backend.
    pub(crate) fn of_backend(backend: DatabaseBackend) -> Dialect {
        match backend {
            DatabaseBackend::Postgres => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }

    pub fn backend(self) -> DatabaseBackend {
        match self {
            Dialect::Sqlite => DatabaseBackend::Sqlite,
            Dialect::Postgres => DatabaseBackend::Postgres,
        }
    }

    // Connection setup.

    /// Connections of the readers' pool and of the writers' pool, for `write_batches` webhook
    /// batches in flight. SQLite writes one transaction at a time whatever we do: its writers'
    /// pool is the one connection the webhook writer, the write probe and key updates take in
    /// turn (each connection keeps its own page cache, so fewer connections, less memory).
    /// PostgreSQL's has a connection per batch in flight and one more.
    pub(crate) fn pool_sizes(self, write_batches: u16) -> (u32, u32) {
        match self {
            Dialect::Sqlite => (4, 1),
            Dialect::Postgres => (10, u32::from(write_batches.max(1)) + 1),
        }
    }

    /// Whether committed pages are copied from the write-ahead log beside the writer
    /// (`store::checkpoint`): SQLite's log only.
    pub(crate) fn checkpoints_beside_the_writer(self) -> bool {
        self == Dialect::Sqlite
    }

    /// Applies pending migrations: on PostgreSQL in one transaction under an advisory lock,
    /// so instances starting at once on one database take turns.
    pub(crate) async fn migrate(self, db: &DatabaseConnection) -> Result<(), AppError> {
        match self {
            Dialect::Sqlite => sqlite::migrate(db).await,
            Dialect::Postgres => postgres::migrate(db).await,
        }
    }

    // Operations: readiness, pool use, backups.

    /// The file the database lives in: SQLite's main file (`None` for a database in memory).
    /// PostgreSQL's disk is its server's, and its own errors say when it is full.
    pub(crate) async fn database_file(
        self,
        db: &DatabaseConnection,
    ) -> Result<Option<std::path::PathBuf>, sea_orm::DbErr> {
        match self {
            Dialect::Sqlite => sqlite::database_file(db).await,
            Dialect::Postgres => Ok(None),
        }
    }

    /// Whether the database accepts a write right now; the reason when it does not.
    /// SQLite: a write as large as a delivery's commits ([`crate::store::Store::probe_write`]).
    /// PostgreSQL: reachable, not in recovery, a writer connection free.
    pub(crate) async fn ready(self, store: &crate::store::Store) -> Result<(), String> {
        match self {
            Dialect::Sqlite => store
                .probe_write()
                .await
                .map_err(|e| crate::store::write_refusal(&e)),
            Dialect::Postgres => postgres::ready(&store.writer).await,
        }
    }

    /// Connections open, idle, and at most, in one of the store's pools.
    pub(crate) fn pool_use(self, db: &DatabaseConnection) -> (u32, u32, u32) {
        match self {
            Dialect::Sqlite => sqlite::pool_use(db),
            Dialect::Postgres => postgres::pool_use(db),
        }
    }

    /// A consistent copy of the database in a new file at `to`, taken while it serves
    /// (SQLite's `VACUUM INTO`); PostgreSQL's own tools do this, so it is refused there.
    pub(crate) async fn backup(self, db: &DatabaseConnection, to: &str) -> Result<(), AppError> {
        match self {
            Dialect::Sqlite => sqlite::backup(db, to).await,
            Dialect::Postgres => Err(AppError::bad_input(
                "backup",
                "calltrail backup copies SQLite databases only: back PostgreSQL up with pg_dump, or with base backups and WAL archiving (docs/operations.md, \"Backups\")",
            )),
        }
    }

    /// Why the connected role could rewrite the logs (it owns the tables, or is a superuser),
    /// if it could. SQLite has no roles: whoever can write the file can (docs/reliability.md).
    pub(crate) async fn rewrites_history(
        self,
        db: &DatabaseConnection,
    ) -> Result<Option<String>, AppError> {
        match self {
            Dialect::Sqlite => Ok(None),
            Dialect::Postgres => postgres::rewrites_history(db).await,
        }
    }

    /// `calltrail db grant-runtime ROLE`.
    pub(crate) async fn grant_runtime(
        self,
        db: &DatabaseConnection,
        role: &str,
    ) -> Result<(), AppError> {
        match self {
            Dialect::Sqlite => Err(AppError::bad_input(
                "role",
                "SQLite has no roles: whoever can write the database file can change it;                  `calltrail verify` detects what was changed (docs/reliability.md)",
            )),
            Dialect::Postgres => postgres::grant_runtime(db, role).await,
        }
    }

    // SQL fragments.

    /// The `i`-th bound value's placeholder (from 1).
    pub(crate) fn placeholder(self, i: usize) -> String {
        match self {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${i}"),
        }
    }

    /// The values of a statement that uses each of `values`' placeholders `times` times:
    /// PostgreSQL's numbered placeholders bind each once, SQLite's `?` bind in order.
    pub(crate) fn bind_repeated(self, values: Vec<Value>, times: usize) -> Vec<Value> {
        match self {
            Dialect::Sqlite => (0..times).flat_map(|_| values.iter().cloned()).collect(),
            Dialect::Postgres => values,
        }
    }

    /// Whole epoch seconds of the timestamp `column`.
    pub(crate) fn epoch_seconds(self, column: &str) -> String {
        migration::sql::epoch_seconds(self.backend(), column)
    }

    /// The month key (`year * 12 + month - 1`) of `local`, SQL giving local epoch seconds.
    pub(crate) fn month_key(self, local: &str) -> String {
        match self {
            Dialect::Sqlite => sqlite::month_key(local),
            Dialect::Postgres => postgres::month_key(local),
        }
    }

    /// The query of each group's continuous percentiles `ps` of `d` over `base` (whose rows
    /// carry the group key columns `keys`); read each row with [`Dialect::read_percentiles`].
    pub(crate) fn percentiles_sql(self, query: &PercentileQuery<'_>) -> String {
        match self {
            Dialect::Sqlite => sqlite::percentiles_sql(query),
            Dialect::Postgres => postgres::percentiles_sql(query),
        }
    }

    /// One row of [`Dialect::percentiles_sql`]: each percentile's value (none for an empty
    /// group), read from the columns after the `keys` key columns.
    pub(crate) fn read_percentiles(
        self,
        row: &QueryResult,
        keys: usize,
        ps: &[f64],
    ) -> Result<Vec<Option<f64>>, AppError> {
        match self {
            Dialect::Sqlite => sqlite::read_percentiles(row, keys, ps),
            Dialect::Postgres => postgres::read_percentiles(row, keys, ps),
        }
    }

    /// A statement to run first in the transaction of a rollup query grouped by a computed
    /// key, if the backend needs one (PostgreSQL's default `work_mem` makes it sort on disk).
    pub(crate) fn grouped_rollup_setup(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(postgres::GROUPED_ROLLUP_WORK_MEM),
        }
    }

    // The webhook writer.

    /// How many batch transactions may be in flight at once, of `asked`: PostgreSQL builds
    /// one while another waits for its commit to reach the disk; SQLite writes one at a time.
    pub(crate) fn batches_in_flight(self, asked: u16) -> usize {
        match self {
            Dialect::Sqlite => 1,
            Dialect::Postgres => usize::from(asked.max(1)),
        }
    }

    /// Whether a lone delivery takes the batch statements. On PostgreSQL the batch statement's
    /// fixed cost (a function scan and a tuplestore per column array) is more than the plain
    /// statements cost for one row (0.93 against 0.41 ms of server time, measured); on SQLite
    /// the batch statements are the cheaper way for one delivery too.
    pub(crate) fn batches_a_lone_delivery(self) -> bool {
        self == Dialect::Sqlite
    }

    /// Longest wait for a writer's transaction to begin before its batch is answered 503.
    /// SQLite waits on its own busy timeout; a PostgreSQL connection that cannot be had
    /// quickly means the server is down, and a sender learns it at once.
    pub(crate) fn begin_timeout(self) -> Duration {
        match self {
            Dialect::Sqlite => Duration::MAX,
            Dialect::Postgres => Duration::from_secs(2),
        }
    }

    /// Serialises writers of the same calls across instances sharing one database (PostgreSQL:
    /// advisory transaction locks in a fixed order; SQLite's write lock already does it).
    pub(crate) async fn lock_calls(
        self,
        txn: &DatabaseTransaction,
        call_ids: &[&str],
    ) -> Result<(), AppError> {
        match self {
            Dialect::Sqlite => Ok(()),
            Dialect::Postgres => postgres::lock_calls(txn, call_ids).await,
        }
    }

    /// How `calltrail verify`'s snapshot begins: PostgreSQL, repeatable read and read only,
    /// so every check sees one state; SQLite's read transaction is a snapshot already.
    pub(crate) fn snapshot_options(self) -> (Option<IsolationLevel>, Option<AccessMode>) {
        match self {
            Dialect::Sqlite => (None, None),
            Dialect::Postgres => (
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            ),
        }
    }

    /// Takes the lock on `chain`'s head until the transaction ends (PostgreSQL: several
    /// writers share the database; SQLite's write lock is already held).
    pub(crate) async fn lock_chain(
        self,
        txn: &DatabaseTransaction,
        chain: &str,
    ) -> Result<(), AppError> {
        match self {
            Dialect::Sqlite => Ok(()),
            Dialect::Postgres => postgres::lock_chain(txn, chain).await,
        }
    }

    /// What a worker's claim of the next archive job adds to the sub-query that picks it, so
    /// that instances sharing one database never pick the same job: PostgreSQL skips rows
    /// another transaction holds; SQLite's single writer already serialises the claims.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The calls among `call_ids` that already have a row.
    pub(crate) async fn existing_calls(
        self,
        txn: &DatabaseTransaction,
        call_ids: &[&str],
    ) -> Result<HashSet<String>, AppError> {
        match self {
            Dialect::Sqlite => sqlite::existing_calls(txn, call_ids).await,
            Dialect::Postgres => postgres::existing_calls(txn, call_ids).await,
        }
    }

    /// Writes a batch's new calls (none had a row) with their one event each, the log rows of
    /// the batched deliveries, and the calls' rollup sums. Returns the log rows' ids in the
    /// order of `deliveries`.
    pub(crate) async fn write_new(
        self,
        txn: &DatabaseTransaction,
        events: &[call_event::ActiveModel],
        calls: &[call::ActiveModel],
        deliveries: &[delivery::ActiveModel],
    ) -> Result<Vec<i64>, AppError> {
        match self {
            Dialect::Sqlite => sqlite::write_new(txn, events, calls, deliveries).await,
            Dialect::Postgres => postgres::write_new(txn, events, calls, deliveries).await,
        }
    }

    /// The query for the digits of customers whose lower-cased name matches `pattern` (a
    /// `LIKE` pattern escaped with `\`, made of the lower-cased text `needle`), at most
    /// `limit` rows, through the names' trigram index (`customer_names`, migration 000017).
    pub(crate) fn customers_named(
        self,
        pattern: &str,
        needle: &str,
        limit: u64,
    ) -> (&'static str, Vec<Value>) {
        match self {
            Dialect::Postgres => (
                postgres::CUSTOMERS_NAMED,
                vec![pattern.into(), (limit as i64).into()],
            ),
            // Trigrams index text of three characters or more.
            Dialect::Sqlite if needle.chars().count() < 3 => (
                sqlite::CUSTOMERS_NAMED_SHORT,
                vec![pattern.into(), (limit as i64).into()],
            ),
            Dialect::Sqlite => {
                // One FTS5 phrase: the text between double quotes, its own quotes doubled.
                let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
                (
                    sqlite::CUSTOMERS_NAMED,
                    vec![pattern.into(), phrase.into(), (limit as i64).into()],
                )
            }
        }
    }

    // Bulk loading (`calltrail seed`).

    /// The settings a bulk load runs under: `(inside each loading transaction first, then
    /// before it commits)`.
    pub(crate) fn bulk_load_session(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Dialect::Sqlite => sqlite::BULK_LOAD_SESSION,
            Dialect::Postgres => (&[], &[]),
        }
    }

    /// Connections loading at once into an emptied table, and how many statement chunks each
    /// transaction takes (`None`: all of them).
    pub(crate) fn bulk_loaders(self) -> (usize, Option<usize>) {
        match self {
            Dialect::Sqlite => (1, Some(sqlite::CHUNKS_PER_COMMIT)),
            Dialect::Postgres => (postgres::BULK_LOADERS, None),
        }
    }

    /// What runs before and around building indexes after a bulk load: `(before, outside any
    /// transaction; first inside the building transaction; last inside it)`.
    pub(crate) fn index_build_session(
        self,
    ) -> (
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    ) {
        match self {
            Dialect::Sqlite => sqlite::INDEX_BUILD_SESSION,
            Dialect::Postgres => postgres::INDEX_BUILD_SESSION,
        }
    }

    /// What runs after a bulk load: statistics for the planner (and SQLite's log moved into
    /// the database file).
    pub(crate) fn after_bulk_load(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => sqlite::AFTER_BULK_LOAD,
            Dialect::Postgres => postgres::AFTER_BULK_LOAD,
        }
    }

    /// A statement that makes this connection reload the schema before DDL that depends on a
    /// change made on another connection (SQLite compiles against its cached copy).
    pub(crate) fn refresh_schema(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => sqlite::REFRESH_SCHEMA,
            Dialect::Postgres => &[],
        }
    }

    /// The query listing a table's secondary indexes (`name`, `definition`), the table's name
    /// bound as the one value.
    pub(crate) fn secondary_indexes_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite::SECONDARY_INDEXES,
            Dialect::Postgres => postgres::SECONDARY_INDEXES,
        }
    }
}

/// What a percentile query is built from.
pub(crate) struct PercentileQuery<'a> {
    /// The `base` rows' query: `g0..gN` and `d`.
    pub inner: &'a str,
    /// `g0, g1, ...` (empty without grouping).
    pub keys: &'a str,
    pub ps: &'a [f64],
    /// Most rows to return.
    pub limit: usize,
}

impl PercentileQuery<'_> {
    fn select_keys(&self) -> String {
        crate::store::stats::select_clause(self.keys)
    }

    fn group(&self) -> String {
        crate::store::stats::group_clause(self.keys)
    }
}

/// A percentile as a SQL literal: `{:e}` prints the shortest literal that reads back as the
/// same f64.
fn literal(p: f64) -> String {
    format!("CAST({p:e} AS DOUBLE PRECISION)")
}
