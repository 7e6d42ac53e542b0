//! Persistence: the only module that speaks sea-orm. Connects, migrates, writes and queries.
//!
//! - `dialect/`: every difference between SQLite and PostgreSQL, behind one enum.
//! - `error`: database errors by kind (transient, content, defect).
//! - `ingest/`: the webhook writer (group commit, batch plan, per-delivery apply).
//! - `rollup/`: the pre-aggregated tiers: kept equal to `calls`, and answering from them.
//! - `reader`: every call read, narrowed to the reader's scope; `calls`, `filter`, `stats`,
//!   `deliveries`: the reads themselves; `keys` and `access`: API keys and the access log;
//!   `recordings`: the archive queue and the archived recordings; `reviews`: what reviewers
//!   found (append-only); `sessions`: the reviewer desk's sign-ins; `evidence`: what an
//!   evidence bundle reads besides the calls (events, logged bodies, access rows, heads);
//!   `seed`: bulk loading; `checkpoint`: SQLite's log copied beside the writer.
pub mod access;
pub mod calls;
pub mod chain;
mod checkpoint;
pub mod deliveries;
pub mod dialect;
pub mod error;
pub mod evidence;
pub mod filter;
pub mod ingest;
pub mod keys;
pub mod reader;
pub mod recordings;
pub mod reviews;
pub mod rollup;
pub mod runtime;
pub mod seed;
pub mod sessions;
pub mod stats;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};

use crate::error::AppError;
use checkpoint::Checkpointer;
use dialect::Dialect;
use error::{DbFault, database_code, db_error, fault};

/// An open database: SQLite (embedded default) or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Store {
    /// The readers' pool: queries, bounded in time ([`StoreOptions::query_timeout`]).
    pub(crate) db: DatabaseConnection,
    /// The writers' pool, which readers never take: the webhook writer, the write probe, bulk
    /// loads and rebuilds. No statement timeout.
    pub(crate) writer: DatabaseConnection,
    dialect: Dialect,
    /// SQLite only: checkpoints the write-ahead log beside the writer.
    checkpointer: Option<Arc<Checkpointer>>,
    /// A reader's name lookups, kept for the reader's life (one request): its page, count
    /// and statistics see the same customers for a name, looked up once. `None` outside a
    /// [`reader::Reader`].
    names: Option<filter::NameLookups>,
    /// SQLite only: the database's file, whose file system's free space `probe_write` checks.
    file: Option<Arc<std::path::Path>>,
}

/// Size of the write [`Store::probe_write`] commits: a delivery's body is kept twice (the log
/// row and its event's raw payload), up to 256 KiB each.
const PROBE_BYTES: usize = 512 * 1024;

/// Least free space beside a database file for [`Store::probe_write`] to say it takes
/// writes: a delivery's largest write (its body twice, the customer's name twice more, their
/// indexes) with room to spare.
const FREE_SPACE_FLOOR: u64 = 2 * 1024 * 1024;

/// How a store is opened.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Longest a reader's statement may run before the database stops it (`QUERY_TIMEOUT`).
    pub query_timeout: Duration,
    /// Webhook batches in flight at once (PostgreSQL): the writers' pool has room for them.
    pub write_batches: u16,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            query_timeout: Duration::from_secs(10),
            write_batches: 3,
        }
    }
}

impl Store {
    /// Opens the database at `url` with the durability settings calltrail promises and the
    /// default [`StoreOptions`].
    pub async fn connect(url: &str) -> Result<Store, AppError> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    /// Opens the database at `url`: two pools (readers and writers, so readers can never take
    /// the webhook writer's connections), with the durability settings calltrail promises.
    ///
    /// SQLite: WAL, `synchronous=FULL`, a 5 s busy timeout, the file created if missing.
    ///
    /// A PostgreSQL database that does not exist yet is created first (like the SQLite file),
    /// so `DATABASE_URL=postgres://user@host/newdb calltrail` needs no other setup.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store, AppError> {
        match Store::open(url, options).await {
            Err(e) if fault(&e) == DbFault::MissingDatabase => {
                create_postgres_database(url).await?;
                Store::open(url, options).await.map_err(db_error)
            }
            other => other.map_err(db_error),
        }
    }

    async fn open(url: &str, options: StoreOptions) -> Result<Store, DbErr> {
        let dialect = Dialect::of_url(url);
        let (readers, writers) = dialect.pool_sizes(options.write_batches);
        // The writers first: on SQLite they create the file and switch it to WAL.
        let writer = Database::connect(pool(url, writers, None)).await?;
        let db = Database::connect(pool(url, readers, Some(options.query_timeout))).await?;
        let checkpointer = dialect
            .checkpoints_beside_the_writer()
            .then(|| Arc::new(Checkpointer::start(db.clone())));
        let file = dialect.database_file(&writer).await?.map(Arc::from);
        Ok(Store {
            db,
            writer,
            dialect,
            checkpointer,
            names: None,
            file,
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), waiting out the busy timeout for another writer: a transaction that
    /// read first and only then writes can be refused at once ("database is locked") when
    /// another connection holds or has just released the write lock.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// A write was committed (SQLite: its pages are checkpointed in the background).
    pub(crate) fn committed(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wake();
        }
    }

    /// The database this store runs on, chosen when it opened.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.dialect.backend()
    }

    /// Applies pending migrations (see [`Dialect::migrate`]). What a retry can fix is tried
    /// again for up to [`MIGRATION_PATIENCE`]: another instance starting on the same new
    /// database holds SQLite's write lock (or PostgreSQL's advisory lock) for as long as its
    /// own migration takes, which on a loaded machine is longer than one busy timeout.
    pub async fn migrate(&self) -> Result<(), AppError> {
        patiently(
            Duration::from_millis(250),
            |e| matches!(e, AppError::Unavailable(_)),
            || self.dialect.migrate(&self.writer),
        )
        .await
    }

    /// Commits a one-row write (`write_probe`) through the same kind of transaction the webhook
    /// writer uses, as large as the largest delivery writes ([`PROBE_BYTES`] of random bytes, so
    /// no page or compression makes it smaller): `Ok` means the database takes such a write
    /// right now. A small write can still fit where a delivery's no longer does.
    ///
    /// A database in a file is first held to [`FREE_SPACE_FLOOR`] of free space on its file
    /// system: SQLite reuses its write-ahead log's room once a checkpoint has copied it, so
    /// on a full disk a probe can fit where the next delivery will not, and a server whose
    /// last delivery was refused for a full disk would say it is ready again.
    pub async fn probe_write(&self) -> Result<(), AppError> {
        if let Some(file) = &self.file {
            dialect::room_beside(file, FREE_SPACE_FLOOR)?;
        }
        let mut filler = vec![0u8; PROBE_BYTES];
        rand::Rng::fill(&mut rand::rng(), filler.as_mut_slice());
        let p = |i| self.dialect.placeholder(i);
        let txn = self.begin_write().await.map_err(db_error)?;
        txn.execute_raw(Statement::from_sql_and_values(
            self.backend(),
            format!(
                "INSERT INTO write_probe (id, probed_at, filler) VALUES (1, {}, {}) \
                 ON CONFLICT (id) DO UPDATE \
                 SET probed_at = excluded.probed_at, filler = excluded.filler",
                p(1),
                p(2)
            ),
            [chrono::Utc::now().timestamp_micros().into(), filler.into()],
        ))
        .await
        .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        self.committed();
        Ok(())
    }

    /// Whether the database accepts a write right now, else why not (`/readyz`).
    pub async fn ready(&self) -> Result<(), String> {
        self.dialect.ready(self).await
    }

    /// Connections of the readers' and the writers' pools, for the metrics.
    pub fn pool_use(&self) -> [PoolUse; 2] {
        let read = |pool, db: &DatabaseConnection| {
            let (size, idle, max) = self.dialect.pool_use(db);
            PoolUse {
                pool,
                size,
                idle,
                max,
            }
        };
        [read("readers", &self.db), read("writers", &self.writer)]
    }

    /// Writes a consistent copy of the database to the new file `to` while it serves
    /// (`calltrail backup`; SQLite only).
    pub async fn backup_to(&self, to: &str) -> Result<(), AppError> {
        self.dialect.backup(&self.writer, to).await
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
        let _ = self.writer.close().await;
    }
}

/// One pool's connections at a moment.
#[derive(Clone, Copy, Debug)]
pub struct PoolUse {
    /// `readers` or `writers`.
    pub pool: &'static str,
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// Most it may open.
    pub max: u32,
}

/// What an operator is told about a write the database refused (the driver's text is logged,
/// not shown).
pub fn write_refusal(error: &AppError) -> String {
    match error {
        AppError::Unavailable(detail) => ingest::write_fault(detail).to_owned(),
        _ => "the database refused the write".to_owned(),
    }
}

/// The options of one pool of `size` connections; readers' statements bounded by `timeout`.
fn pool(url: &str, size: u32, timeout: Option<Duration>) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .max_connections(size)
        .min_connections(1)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .create_if_missing(true)
        })
        .map_sqlx_sqlite_pool_opts(move |o| match timeout {
            Some(limit) => dialect::sqlite_statement_deadline(
                o.after_release(|conn, _| Box::pin(async { Ok(outside_transaction(conn)) })),
                limit,
            ),
            // The writers' pool: also closes a connection after a write was refused as
            // read-only, which SQLite keeps read-only for good (`error::READ_ONLY_SEEN`).
            None => o.after_release(|conn, _| {
                Box::pin(async {
                    let writable = !error::READ_ONLY_SEEN.swap(false, Ordering::Relaxed);
                    if !writable {
                        tracing::warn!(
                            "a write was refused as read-only; the writer's connection is reopened"
                        );
                    }
                    Ok(outside_transaction(conn) && writable)
                })
            }),
        })
        .map_sqlx_postgres_pool_opts(|o| {
            o.after_release(|conn, _| Box::pin(async { Ok(outside_transaction(conn)) }))
        });
    if let Some(limit) = timeout {
        options.map_sqlx_postgres_opts(move |o| dialect::postgres_statement_timeout(o, limit));
    }
    options
}

/// Whether a connection going back to the pool may be used again: only when the driver knows
/// it is outside any transaction. `false` closes it, and the pool opens a replacement.
///
/// The driver counts the transactions it opened on a connection and lowers the count only when
/// its `COMMIT` or `ROLLBACK` succeeds. When SQLite rolls a transaction back by itself (it does
/// on `SQLITE_FULL`), the driver's `ROLLBACK` then fails ("no transaction is active") and the
/// count stays at 1. Kept in the pool, that connection's next transaction would begin as a
/// `SAVEPOINT` instead of `BEGIN IMMEDIATE`; once a `ROLLBACK TO` had left a real transaction
/// open under it, every later "commit" would be a `RELEASE` that commits nothing, answered as
/// a success, while its write lock blocked every other connection ("database is locked")
/// until the process exited and SQLite threw it all away.
///
/// A transaction dropped without an outcome has its rollback queued on the connection (SQLite)
/// or sent (PostgreSQL, which lowers the count at once). Read before a queued rollback has
/// run, the count is still 1 and a connection that would have been fine is replaced: the safe
/// side, and only on a failure path.
fn outside_transaction<C: sea_orm::sqlx::Connection>(conn: &mut C) -> bool {
    let inside = conn.is_in_transaction();
    if inside {
        tracing::warn!("a database connection was left inside a transaction; closed and replaced");
    }
    !inside
}

/// `items` in chunks whose lengths are powers of two (largest first, none above `max`): a
/// multi-row statement then comes in a handful of shapes, which the driver prepares once
/// and keeps, instead of one new statement text (parsed, planned and cached, pushing out
/// the others) for every batch size.
pub(crate) fn pow2_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = 1usize << rest.len().min(max).ilog2();
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// How long start-up waits for a database that is busy (another instance migrating it, or
/// creating it from the template) before giving up.
const MIGRATION_PATIENCE: Duration = Duration::from_secs(60);

/// `attempt` again, `pause` after each failure `busy` says a retry can fix, for up to
/// [`MIGRATION_PATIENCE`]; then its last answer.
async fn patiently<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    pause: Duration,
    busy: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    let deadline = tokio::time::Instant::now() + MIGRATION_PATIENCE;
    loop {
        match attempt().await {
            Err(e) if busy(&e) && tokio::time::Instant::now() < deadline => {
                tracing::info!(reason = %e, "the database is busy; trying again shortly");
                tokio::time::sleep(pause).await;
            }
            answer => return answer,
        }
    }
}

/// Creates the database a PostgreSQL URL names, through the server's `postgres` database.
/// Another instance creating it at the same moment is not an error.
async fn create_postgres_database(url: &str) -> Result<(), AppError> {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let slash = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |s| s + 2))
        .ok_or_else(|| AppError::Internal(format!("no database name in {url}")))?;
    let name = &base[slash + 1..];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(AppError::Internal(format!(
            "database `{name}` does not exist and its name is not one calltrail will create (letters, digits, `_`, `-`)"
        )));
    }
    let maintenance = if query.is_empty() {
        format!("{}/postgres", &base[..slash])
    } else {
        format!("{}/postgres?{query}", &base[..slash])
    };
    let admin = Database::connect(maintenance).await.map_err(db_error)?;
    // `55006`: another `CREATE DATABASE` is copying the template at this moment (well under a
    // second on a quiet server, seconds on a busy one: it checkpoints), so try again.
    let create = format!("CREATE DATABASE \"{name}\"");
    let created = patiently(
        Duration::from_millis(100),
        |e| database_code(e).as_deref() == Some("55006"),
        || admin.execute_unprepared(&create),
    )
    .await;
    let _ = admin.close().await;
    match created {
        Ok(_) => {
            tracing::info!(database = name, "created the PostgreSQL database");
            Ok(())
        }
        // Another instance created it first (`42P04`, or the catalog's unique index when both
        // inserted at once: `23505`).
        Err(e) if matches!(database_code(&e).as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(e) => Err(db_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::pow2_chunks;

    #[test]
    fn pow2_chunks_cover_every_item_in_order_in_power_of_two_lengths() {
        for n in 0..300usize {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = pow2_chunks(&items, 100).collect();
            assert_eq!(chunks.concat(), items);
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= 100)
            );
            // Full chunks of 64, then at most one of each smaller power of two.
            assert!(chunks.len() <= n / 64 + 6, "{n}: {} chunks", chunks.len());
        }
    }
}
