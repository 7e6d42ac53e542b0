//! SQLite's side of the seam: its migrations, time and percentile SQL, the webhook writer's
//! multi-row statements, and its bulk-load settings.
use std::collections::HashSet;

use entity::{call, call_event, delivery};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    EntityTrait, Iterable, QueryFilter, QueryResult, QuerySelect, QueryTrait, Statement,
    TransactionTrait,
};

use super::{PercentileQuery, literal};
use crate::error::AppError;
use crate::store::error::{db_error, defect};
use crate::store::ingest::{all_events_new, ids_in_row_order, skip_stored_event};
use crate::store::{pow2_chunks, rollup};

/// SQLite's virtual-machine instructions between two looks at a reader's deadline.
const DEADLINE_CHECK_OPS: i32 = 10_000;

/// Readers' statements stopped at `limit` after the connection was handed out (SQLite has no
/// statement timeout): a progress handler, armed when a connection is opened and each time
/// the pool hands it out, interrupts the statement running past it (`SQLITE_INTERRUPT`).
pub(crate) fn statement_deadline(
    options: sea_orm::sqlx::pool::PoolOptions<sea_orm::sqlx::Sqlite>,
    limit: std::time::Duration,
) -> sea_orm::sqlx::pool::PoolOptions<sea_orm::sqlx::Sqlite> {
    options
        .after_connect(move |conn, _| Box::pin(arm_deadline(conn, limit)))
        .before_acquire(move |conn, _| {
            Box::pin(async move { arm_deadline(conn, limit).await.map(|()| true) })
        })
}

async fn arm_deadline(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    limit: std::time::Duration,
) -> Result<(), sea_orm::sqlx::Error> {
    let deadline = std::time::Instant::now() + limit;
    conn.lock_handle()
        .await?
        .set_progress_handler(DEADLINE_CHECK_OPS, move || {
            std::time::Instant::now() < deadline
        });
    Ok(())
}

/// Most bound values in one statement: under SQLite's 32 766.
const MAX_PARAMS: usize = 32_000;

/// Statement chunks per transaction while bulk loading (40 of 500 calls: 20 000 calls, ~60 MB
/// of pages, inside the page cache of [`BULK_LOAD_SESSION`]).
pub(super) const CHUNKS_PER_COMMIT: usize = 40;

/// A page cache big enough that pages being filled are not spilled to the log and read back
/// before the transaction ends (the default is 2 MiB), then the default again.
pub(super) const BULK_LOAD_SESSION: (&[&str], &[&str]) = (
    &["PRAGMA cache_size = -262144"],
    &["PRAGMA cache_size = -2000"],
);

/// Index builds read the table from the database file, not page by page from a log as large
/// as the database (three times slower), and sort on two threads.
pub(super) const INDEX_BUILD_SESSION: (&[&str], &[&str], &[&str]) = (
    &["PRAGMA wal_checkpoint(TRUNCATE)"],
    &["SELECT count(*) FROM sqlite_master", "PRAGMA threads = 2"],
    &["PRAGMA threads = 0"],
);

/// Statistics for the planner, then the load moved from the write-ahead log into the database
/// file, so readers do not search a log as large as the database.
///
/// After `ANALYZE`, every index of `calls` is marked `noskipscan`: given statistics, SQLite would
/// answer "stats by agent over 30 days" by skip-scanning `(waba_number, ended_at)` (three
/// distinct leading values) and reading every call row in the range, 245 ms at 1M calls,
/// instead of the `ended_at` range of the covering index, 42 ms. calltrail's indexes are built
/// for equality on their leading column; a skip-scan of one is never the better plan.
pub(super) const AFTER_BULK_LOAD: &[&str] = &[
    "ANALYZE",
    "UPDATE sqlite_stat1 SET stat = stat || ' noskipscan' \
     WHERE tbl = 'calls' AND stat NOT LIKE '% noskipscan%'",
    "PRAGMA wal_checkpoint(TRUNCATE)",
];

/// Any statement that reads the database makes SQLite check its cached schema and reload it.
/// `CREATE INDEX` is compiled against the copy the connection holds without checking it first,
/// so after indexes were dropped on another pooled connection it fails with "index … already
/// exists" (a test saw this one run in four).
pub(super) const REFRESH_SCHEMA: &[&str] = &["SELECT count(*) FROM sqlite_master"];

pub(super) const SECONDARY_INDEXES: &str = "SELECT name, sql AS definition FROM sqlite_master \
     WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL";

/// Customers whose lower-cased name matches the `LIKE` pattern `?1` (escaped with `\`): the
/// FTS5 trigram index finds the names holding the text `?2` (an FTS5 phrase, at least three
/// characters; case-folded, so it finds all that `LIKE` does), and `LIKE` checks each as the
/// calls' own condition does; at most `?3` rows.
pub(super) const CUSTOMERS_NAMED: &str = "SELECT n.customer_digits FROM customer_names_trigram t \
     JOIN customer_names n ON n.id = t.rowid \
     WHERE customer_names_trigram MATCH ?2 AND n.name LIKE ?1 ESCAPE '\\' LIMIT ?3";

/// The same for a text under three characters, which trigrams cannot index: a scan of the
/// names (one row per customer, not per call), stopped at `?2` rows.
pub(super) const CUSTOMERS_NAMED_SHORT: &str = "SELECT customer_digits FROM customer_names \
     WHERE name LIKE ?1 ESCAPE '\\' LIMIT ?2";

/// The main database's file, as SQLite opened it (`None` in memory, where it has no name).
pub(super) async fn database_file(
    db: &DatabaseConnection,
) -> Result<Option<std::path::PathBuf>, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
        ))
        .await?;
    let file: Option<String> = match row {
        Some(row) => row.try_get("", "file")?,
        None => None,
    };
    Ok(file.filter(|f| !f.is_empty()).map(std::path::PathBuf::from))
}

/// `Err` (unavailable, "disk is full") when the file system holding `file` has less than
/// `floor` bytes free for calltrail's user; `Ok` when it has, or when it cannot be asked (the
/// write that follows then finds out).
pub(crate) fn room_beside(file: &std::path::Path, floor: u64) -> Result<(), AppError> {
    let Ok(fs) = rustix::fs::statvfs(file) else {
        return Ok(());
    };
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if free < floor {
        return Err(AppError::Unavailable(format!(
            "database or disk is full: {free} bytes free beside the database, under the {floor} it needs"
        )));
    }
    Ok(())
}

/// In one `BEGIN IMMEDIATE` transaction: the write lock makes two processes starting at once on
/// one file take turns (the second finds the migrations applied), instead of both recording
/// the same migration.
pub(super) async fn migrate(db: &DatabaseConnection) -> Result<(), AppError> {
    let txn = db
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .map_err(db_error)?;
    Migrator::up(&txn, None).await.map_err(db_error)?;
    txn.commit().await.map_err(db_error)
}

pub(super) fn month_key(local: &str) -> String {
    format!(
        "(CAST(strftime('%Y', {local}, 'unixepoch') AS INTEGER) * 12 \
         + CAST(strftime('%m', {local}, 'unixepoch') AS INTEGER) - 1)"
    )
}

/// SQLite has no `percentile_cont`: window functions number each group's durations, of each
/// percentile only the two ranks around p·(n−1) are kept, and [`read_percentiles`]
/// interpolates between them. The sort happens in the database; two rows per group come back.
pub(super) fn percentiles_sql(q: &PercentileQuery<'_>) -> String {
    let (select_keys, group) = (q.select_keys(), q.group());
    let partition = if q.keys.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {} ", q.keys)
    };
    let rank = |p: f64| format!("CAST({} * (n - 1) AS INTEGER)", literal(p));
    let mut columns = Vec::new();
    let mut kept = Vec::new();
    for p in q.ps {
        let r = rank(*p);
        columns.push(format!(
            "MIN(CASE WHEN rn = {r} + 1 THEN d END), MIN(CASE WHEN rn = {r} + 2 THEN d END)"
        ));
        kept.push(format!("rn BETWEEN {r} + 1 AND {r} + 2"));
    }
    format!(
        "WITH base AS ({}), ranked AS (SELECT {select_keys}d, \
         ROW_NUMBER() OVER ({partition}ORDER BY d) AS rn, \
         COUNT(*) OVER ({partition}) AS n FROM base) \
         SELECT {select_keys}MAX(n), {} \
         FROM ranked WHERE {}{group} LIMIT {}",
        q.inner,
        columns.join(", "),
        kept.join(" OR "),
        q.limit
    )
}

/// Linear interpolation between the two ranks nearest p·(n−1), as `percentile_cont` does.
pub(super) fn read_percentiles(
    row: &QueryResult,
    keys: usize,
    ps: &[f64],
) -> Result<Vec<Option<f64>>, AppError> {
    let count: Option<i64> = row.try_get_by_index(keys).map_err(defect)?;
    let Some(count) = count else {
        return Ok(vec![None; ps.len()]);
    };
    let mut values = Vec::with_capacity(ps.len());
    for (i, p) in ps.iter().enumerate() {
        let lower: Option<i64> = row.try_get_by_index(keys + 1 + 2 * i).map_err(defect)?;
        let upper: Option<i64> = row.try_get_by_index(keys + 2 + 2 * i).map_err(defect)?;
        let Some(lower) = lower else {
            values.push(None);
            continue;
        };
        let position = p * (count - 1) as f64;
        let fraction = position - position.floor();
        values.push(Some(match upper {
            Some(upper) if fraction > 0.0 => lower as f64 + (upper - lower) as f64 * fraction,
            _ => lower as f64,
        }));
    }
    Ok(values)
}

/// Rows of `E` per multi-row statement, within the bound-value limit.
fn rows_per_statement<E: EntityTrait>() -> usize {
    (MAX_PARAMS / E::Column::iter().count().max(1)).max(1)
}

pub(super) async fn existing_calls(
    txn: &DatabaseTransaction,
    call_ids: &[&str],
) -> Result<HashSet<String>, AppError> {
    let mut found = HashSet::new();
    for chunk in pow2_chunks(call_ids, MAX_PARAMS) {
        let rows: Vec<String> = call::Entity::find()
            .select_only()
            .column(call::Column::CallId)
            .filter(call::Column::CallId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(db_error)?;
        found.extend(rows);
    }
    Ok(found)
}

/// Multi-row statements, in power-of-two chunks, then the rollup's upserts last: the rollup
/// rows of the current quarter hour are the ones every concurrent batch writes, so a batch
/// holds their locks only from there to its commit.
pub(super) async fn write_new(
    txn: &DatabaseTransaction,
    events: &[call_event::ActiveModel],
    calls: &[call::ActiveModel],
    rows: &[delivery::ActiveModel],
) -> Result<Vec<i64>, AppError> {
    let mut inserted = 0;
    for chunk in pow2_chunks(events, rows_per_statement::<call_event::Entity>()) {
        let insert = call_event::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(skip_stored_event())
            .build(DatabaseBackend::Sqlite);
        inserted += txn
            .execute_raw(or_fail(insert)?)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    all_events_new(inserted, events.len())?;
    for chunk in pow2_chunks(calls, rows_per_statement::<call::Entity>()) {
        let insert =
            call::Entity::insert_many(chunk.iter().cloned()).build(DatabaseBackend::Sqlite);
        txn.execute_raw(or_fail(insert)?).await.map_err(db_error)?;
    }
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in pow2_chunks(rows, rows_per_statement::<delivery::Entity>()) {
        ids.extend(log_many(txn, chunk).await?);
    }
    rollup::record_new_calls(txn, calls).await?;
    Ok(ids)
}

/// A SQLite `INSERT` as `INSERT OR FAIL`: a statement that fails keeps the rows it already
/// wrote instead of undoing them itself, so a multi-row insert inside a transaction needs no
/// statement journal (SQLite copies every page the statement changes into one first, spilling
/// to a temporary file past 64 KiB: with the batch's index pages, most of its writes). The
/// same constraints are checked and fail the same way, and a batch that fails is rolled back
/// whole, so the outcome is the same.
fn or_fail(mut statement: Statement) -> Result<Statement, AppError> {
    let rest = statement
        .sql
        .strip_prefix("INSERT INTO ")
        .ok_or_else(|| AppError::Internal(format!("not a plain INSERT: {}", statement.sql)))?;
    statement.sql = format!("INSERT OR FAIL INTO {rest}");
    Ok(statement)
}

/// Appends log rows in one statement and returns their ids, in the order of `rows`.
async fn log_many(
    txn: &DatabaseTransaction,
    rows: &[delivery::ActiveModel],
) -> Result<Vec<i64>, AppError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut insert = delivery::Entity::insert_many(rows.iter().cloned());
    insert.query().returning(Query::returning().columns([
        delivery::Column::Id,
        delivery::Column::Sha256,
        delivery::Column::Outcome,
    ]));
    let statement = or_fail(insert.build(DatabaseBackend::Sqlite))?;
    let returned = txn.query_all_raw(statement).await.map_err(db_error)?;
    let written = returned
        .iter()
        .map(|row| {
            Ok((
                row.try_get_by_index::<i64>(0)?,
                row.try_get_by_index::<String>(1)?,
                row.try_get_by_index::<String>(2)?,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        .map_err(defect)?;
    ids_in_row_order(rows, written)
}

/// Connections open and idle in an SQLite pool.
pub(super) fn pool_use(db: &DatabaseConnection) -> (u32, u32, u32) {
    let pool = db.get_sqlite_connection_pool();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    (pool.size(), idle, pool.options().get_max_connections())
}

/// Copies the database into a new file at `to`, consistently, while it is in use
/// (`VACUUM INTO`: one read transaction, so the copy is one committed state).
pub(super) async fn backup(db: &DatabaseConnection, to: &str) -> Result<(), AppError> {
    db.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Sqlite,
        "VACUUM INTO ?",
        [to.into()],
    ))
    .await
    .map(|_| ())
    .map_err(crate::store::error::db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_fail_rewrites_only_a_plain_insert() {
        let insert = Statement::from_string(
            DatabaseBackend::Sqlite,
            "INSERT INTO calls (call_id) VALUES ('a') ON CONFLICT DO NOTHING",
        );
        assert_eq!(
            or_fail(insert).expect("a plain INSERT").sql,
            "INSERT OR FAIL INTO calls (call_id) VALUES ('a') ON CONFLICT DO NOTHING"
        );
        let replace = Statement::from_string(DatabaseBackend::Sqlite, "REPLACE INTO calls");
        assert!(or_fail(replace).is_err());
    }
}
