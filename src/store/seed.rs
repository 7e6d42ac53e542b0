//! Bulk loading of generated calls (`calltrail seed`): the rows ingestion would have written.
use chrono::Utc;
use entity::{call, call_event};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, FromQueryResult,
    PaginatorTrait, Statement, TransactionTrait,
};
use tokio::sync::mpsc;

use super::calls::model_from_state;
use super::{Store, internal, unavailable};
use crate::domain::fold;
use crate::domain::lifecycle::AppliedEvent;
use crate::error::AppError;
use crate::seed::SeedCall;

/// Calls per multi-row INSERT: 500 rows × 33 columns stays under SQLite's 32 766 parameters.
const ROWS_PER_STATEMENT: usize = 500;
/// Below this many calls into an empty table, indexes are kept and updated row by row.
const REBUILD_INDEXES_FROM: u64 = 50_000;

/// What a seed wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedReport {
    pub calls: u64,
}

#[derive(Debug, FromQueryResult)]
struct IndexDef {
    name: String,
    definition: String,
}

impl Store {
    /// Writes `calls` as concluded calls with their one event each (unless `with_events` is
    /// false), in one transaction.
    ///
    /// Rows are built exactly as ingestion builds them (the event folded into the call
    /// state, then `model_from_state`), so queries see what real traffic would have left.
    /// Deliveries are not logged: these calls were never delivered. The `call_buckets` rollup
    /// is rebuilt from `calls` afterwards. When loading at least
    /// 50k calls into an empty `calls` table, its secondary indexes (and those of
    /// `call_events`) are dropped first and rebuilt at the end, inside the same
    /// transaction: building an index once is several times faster than growing it.
    pub async fn seed(
        &self,
        total: u64,
        with_events: bool,
        calls: impl Iterator<Item = SeedCall> + Send + 'static,
    ) -> Result<SeedReport, AppError> {
        let (chunks, mut incoming) = mpsc::channel::<Result<Chunk, AppError>>(4);
        let producer = tokio::task::spawn_blocking(move || build_chunks(calls, &chunks));

        let txn = self.db.begin().await.map_err(unavailable)?;
        let empty = call::Entity::find()
            .count(&txn)
            .await
            .map_err(unavailable)?
            == 0;
        let dropped = if empty && total >= REBUILD_INDEXES_FROM {
            let mut defs = secondary_indexes(&txn, "calls").await?;
            defs.extend(secondary_indexes(&txn, "call_events").await?);
            for def in &defs {
                execute(&txn, &format!("DROP INDEX {}", quoted(&def.name))).await?;
            }
            defs
        } else {
            Vec::new()
        };
        let mut written = 0u64;
        while let Some(chunk) = incoming.recv().await {
            let chunk = chunk?;
            written += chunk.calls.len() as u64;
            call::Entity::insert_many(chunk.calls)
                .exec_without_returning(&txn)
                .await
                .map_err(unavailable)?;
            if with_events {
                call_event::Entity::insert_many(chunk.events)
                    .exec_without_returning(&txn)
                    .await
                    .map_err(unavailable)?;
            }
        }
        producer
            .await
            .map_err(|e| AppError::Internal(format!("seed generator: {e}")))?;
        for def in &dropped {
            execute(&txn, &def.definition).await?;
        }
        txn.commit().await.map_err(unavailable)?;
        self.rebuild_rollup().await?;
        if self.is_postgres() {
            execute_on(self, "ANALYZE calls").await?;
            execute_on(self, "ANALYZE call_events").await?;
            execute_on(self, "ANALYZE call_buckets").await?;
        } else {
            execute_on(self, "ANALYZE").await?;
            // Move the load from the write-ahead log into the database file, so readers do
            // not search a log as large as the database.
            execute_on(self, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        Ok(SeedReport { calls: written })
    }
}

struct Chunk {
    calls: Vec<call::ActiveModel>,
    events: Vec<call_event::ActiveModel>,
}

/// Runs on a blocking thread: generation and folding overlap with the inserts.
fn build_chunks(
    calls: impl Iterator<Item = SeedCall>,
    out: &mpsc::Sender<Result<Chunk, AppError>>,
) {
    let now = Utc::now();
    let mut chunk = Chunk {
        calls: Vec::with_capacity(ROWS_PER_STATEMENT),
        events: Vec::with_capacity(ROWS_PER_STATEMENT),
    };
    for (n, seeded) in calls.enumerate() {
        let received_at = seeded.event.fields.ended_at.unwrap_or(now);
        let fingerprint = seeded.event.fingerprint();
        let fields = match serde_json::to_string(&seeded.event.fields) {
            Ok(f) => f,
            Err(e) => {
                let _ = out.blocking_send(Err(AppError::Internal(e.to_string())));
                return;
            }
        };
        let applied = AppliedEvent {
            seq: n as i64 + 1,
            event: seeded.event,
            fingerprint,
            received_at,
            content_type: "application/json".into(),
            raw_payload: seeded.payload,
        };
        let Some(state) = fold(std::slice::from_ref(&applied)) else {
            continue;
        };
        chunk.events.push(call_event::ActiveModel {
            call_id: Set(applied.event.call_id.clone()),
            fingerprint: Set(applied.fingerprint),
            event: Set(applied.event.kind.as_wire().to_owned()),
            rank: Set(applied.event.rank()),
            fields: Set(fields),
            received_at: Set(received_at),
            content_type: Set(applied.content_type),
            raw_payload: Set(applied.raw_payload),
            ..Default::default()
        });
        chunk.calls.push(model_from_state(&state, 1, received_at));
        if chunk.calls.len() == ROWS_PER_STATEMENT {
            let full = std::mem::replace(
                &mut chunk,
                Chunk {
                    calls: Vec::with_capacity(ROWS_PER_STATEMENT),
                    events: Vec::with_capacity(ROWS_PER_STATEMENT),
                },
            );
            if out.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !chunk.calls.is_empty() {
        let _ = out.blocking_send(Ok(chunk));
    }
}

/// The table's indexes other than its primary key and unique constraints, with the SQL
/// that recreates each.
async fn secondary_indexes(
    txn: &DatabaseTransaction,
    table: &str,
) -> Result<Vec<IndexDef>, AppError> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "SELECT indexname AS name, indexdef AS definition FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename = $1 \
             AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        }
        _ => {
            "SELECT name, sql AS definition FROM sqlite_master \
             WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
        }
    };
    IndexDef::find_by_statement(Statement::from_sql_and_values(backend, sql, [table.into()]))
        .all(txn)
        .await
        .map_err(internal)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn execute(txn: &DatabaseTransaction, sql: &str) -> Result<(), AppError> {
    txn.execute_raw(Statement::from_string(txn.get_database_backend(), sql))
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn execute_on(store: &Store, sql: &str) -> Result<(), AppError> {
    store
        .db
        .execute_raw(Statement::from_string(store.backend(), sql))
        .await
        .map_err(unavailable)?;
    Ok(())
}
