//! Bulk loading of generated calls (`calltrail seed`): the rows ingestion would have written.
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::{call, call_event};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryTrait, Statement,
};

use super::dialect::Dialect;
use super::error::{db_error, defect};
use tokio::sync::Mutex;
use tokio::sync::mpsc::{self, Receiver};
use tokio::task::JoinSet;

use super::Store;
use super::calls::model_from_state;
use crate::domain::fold;
use crate::domain::lifecycle::AppliedEvent;
use crate::error::AppError;
use crate::seed::SeedCall;

/// Calls per multi-row INSERT: 500 rows × 33 columns stays under SQLite's 32 766 parameters.
const ROWS_PER_STATEMENT: usize = 500;
/// Calls into an empty table from which [`Store::seed`] is told to load them in bulk by
/// `calltrail seed`: below it, indexes are kept and updated row by row.
pub const BULK_LOAD_FROM: u64 = 50_000;
/// The statements for one chunk of calls, or why they could not be built.
type Batch = Result<Vec<Statement>, AppError>;

/// What a seed wrote, and how long each phase took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    pub calls: u64,
    /// `(phase, seconds)` in the order they ran: rows, indexes, rollup, analyze.
    pub phases: Vec<(&'static str, Duration)>,
}

#[derive(Debug, FromQueryResult)]
struct IndexDef {
    name: String,
    definition: String,
}

impl Store {
    /// When `total` calls, at least `bulk_from`, are about to go into an empty `calls` table,
    /// drops the secondary indexes of `calls` and `call_events` (committed) and returns
    /// them, to be built once at the end; otherwise `None`.
    async fn drop_indexes_for_bulk_load(
        &self,
        total: u64,
        bulk_from: u64,
    ) -> Result<Option<Vec<IndexDef>>, AppError> {
        let txn = self.begin_write().await.map_err(db_error)?;
        let empty = call::Entity::find().count(&txn).await.map_err(db_error)? == 0;
        if !empty || total < bulk_from {
            return Ok(None);
        }
        let mut defs = secondary_indexes(self.dialect(), &txn, "calls").await?;
        defs.extend(secondary_indexes(self.dialect(), &txn, "call_events").await?);
        for def in &defs {
            execute(&txn, &format!("DROP INDEX {}", quoted(&def.name))).await?;
        }
        txn.commit().await.map_err(db_error)?;
        Ok(Some(defs))
    }

    /// Executes the statements it takes from `incoming` until the channel is empty and
    /// closed: in one transaction, or with `per_commit`, in transactions of that many chunks.
    async fn load(
        &self,
        incoming: &Mutex<Receiver<Batch>>,
        per_commit: Option<usize>,
    ) -> Result<(), AppError> {
        let (first, last) = self.dialect().bulk_load_session();
        loop {
            let txn = self.begin_write().await.map_err(db_error)?;
            execute_all(&txn, first).await?;
            let mut taken = 0;
            let mut more = true;
            while per_commit.is_none_or(|n| taken < n) {
                let next = incoming.lock().await.recv().await;
                let Some(statements) = next else {
                    more = false;
                    break;
                };
                for statement in statements? {
                    txn.execute_raw(statement).await.map_err(db_error)?;
                }
                taken += 1;
            }
            execute_all(&txn, last).await?;
            txn.commit().await.map_err(db_error)?;
            self.committed();
            if !more {
                return Ok(());
            }
        }
    }

    /// Builds the indexes `defs` in one transaction, each sorted once.
    async fn create_indexes(&self, defs: &[IndexDef]) -> Result<(), AppError> {
        let (before, first, last) = self.dialect().index_build_session();
        for sql in before {
            execute_on(self, sql).await?;
        }
        let txn = self.begin_write().await.map_err(db_error)?;
        execute_all(&txn, first).await?;
        for def in defs {
            execute(&txn, &def.definition).await?;
        }
        execute_all(&txn, last).await?;
        txn.commit().await.map_err(db_error)
    }

    /// Writes `calls` as concluded calls with their one event each (unless `with_events` is
    /// false).
    ///
    /// Rows are built exactly as ingestion builds them (the event folded into the call
    /// state, then `model_from_state`), so queries see what real traffic would have left.
    /// Deliveries are not logged: these calls were never delivered. The `call_buckets` rollup
    /// is rebuilt from `calls` afterwards.
    ///
    /// Into a table that already holds calls, or fewer than `bulk_from` calls (`calltrail
    /// seed` uses [`BULK_LOAD_FROM`]), the rows go in one transaction. At least `bulk_from`
    /// calls into an empty `calls` table are a bulk load: the secondary indexes of `calls`
    /// and `call_events` are dropped first and built once the rows are committed (building
    /// an index once is several times faster than growing it row by row, and on SQLite
    /// building it from the database file is three times faster than from inside the
    /// loading transaction), PostgreSQL loads on two connections at once, and SQLite
    /// commits every 20 000 calls. If a bulk load fails, the indexes are recreated and the
    /// rollup rebuilt, and the calls already committed stay (their events are append-only):
    /// a partial load, as a process killed in the middle of one leaves (seed a fresh database
    /// again).
    pub async fn seed(
        &self,
        total: u64,
        bulk_from: u64,
        with_events: bool,
        calls: impl Iterator<Item = SeedCall> + Send + 'static,
    ) -> Result<SeedReport, AppError> {
        let mut phases = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |phases: &mut Vec<(&'static str, Duration)>, name: &'static str| {
            phases.push((name, clock.elapsed()));
            clock = Instant::now();
        };
        let backend = self.backend();
        let (chunks, incoming) = mpsc::channel::<Batch>(4);
        let producer = tokio::task::spawn_blocking(move || {
            build_statements(calls, backend, with_events, &chunks)
        });

        let dropped = self.drop_indexes_for_bulk_load(total, bulk_from).await?;
        // One transaction unless indexes were dropped (an empty table, which a failure
        // empties again): PostgreSQL then loads on two connections at once, each in its own
        // transaction, and SQLite commits every few chunks, so that a transaction's pages fit
        // in its page cache instead of spilling into the log and being read back, and the
        // committed pages are copied into the database file beside the loading, by the
        // background checkpointer, instead of all at once at the end.
        let (loaders, per_commit) = match &dropped {
            None => (1, None),
            Some(_) => self.dialect().bulk_loaders(),
        };
        let incoming = Arc::new(Mutex::new(incoming));
        let mut running = JoinSet::new();
        for _ in 0..loaders {
            let (store, incoming) = (self.clone(), Arc::clone(&incoming));
            running.spawn(async move { store.load(&incoming, per_commit).await });
        }
        let mut loaded = Ok(());
        while let Some(done) = running.join_next().await {
            let done = done
                .map_err(|e| AppError::Internal(format!("seed loader: {e}")))
                .and_then(|r| r);
            if let (Ok(()), Err(e)) = (&loaded, done) {
                loaded = Err(e);
                // Stop the generator and the other loaders.
                incoming.lock().await.close();
            }
        }
        let written = producer
            .await
            .map_err(|e| AppError::Internal(format!("seed generator: {e}")))?;
        lap(&mut phases, "rows");
        match dropped {
            None => loaded?,
            Some(dropped) => {
                let built = match loaded {
                    Ok(()) => self.create_indexes(&dropped).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = built {
                    // `call_events` is append-only: the committed part of the load stays. The
                    // indexes come back and the rollup is rebuilt, so what stays is a
                    // consistent database (each call with its event), which `verify` passes.
                    let txn = self.begin_write().await.map_err(db_error)?;
                    execute_all(&txn, self.dialect().refresh_schema()).await?;
                    for def in &dropped {
                        execute(&txn, &def.definition).await?;
                    }
                    txn.commit().await.map_err(db_error)?;
                    self.rebuild_rollup().await?;
                    return Err(AppError::Internal(format!(
                        "the bulk load failed and the calls it had committed stay (their \
                         events are append-only): seed a fresh database. Cause: {e}"
                    )));
                }
            }
        }
        lap(&mut phases, "indexes");
        self.rebuild_rollup().await?;
        lap(&mut phases, "rollup");
        for sql in self.dialect().after_bulk_load() {
            execute_on(self, sql).await?;
        }
        lap(&mut phases, "analyze");
        Ok(SeedReport {
            calls: written,
            phases,
        })
    }
}

/// Runs on a blocking thread: generates, folds and builds the INSERT statements (values
/// bound), so that building the next statements overlaps with executing the last ones.
/// Returns how many calls it generated.
fn build_statements(
    calls: impl Iterator<Item = SeedCall>,
    backend: DatabaseBackend,
    with_events: bool,
    out: &mpsc::Sender<Batch>,
) -> u64 {
    let now = Utc::now();
    let mut generated = 0u64;
    let mut seq = 0u64;
    let mut rows = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut events = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut calls = calls.peekable();
    while calls.peek().is_some() {
        for seeded in calls.by_ref().take(ROWS_PER_STATEMENT) {
            seq += 1;
            match seeded_rows(seeded, seq, now) {
                Ok(Some((row, event))) => {
                    rows.push(row);
                    events.push(event);
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = out.blocking_send(Err(e));
                    return generated;
                }
            }
        }
        generated += rows.len() as u64;
        let mut statements = Vec::with_capacity(2);
        if !rows.is_empty() {
            statements.push(call::Entity::insert_many(rows.drain(..)).build(backend));
        }
        if with_events && !events.is_empty() {
            statements.push(call_event::Entity::insert_many(events.drain(..)).build(backend));
        }
        events.clear();
        if out.blocking_send(Ok(statements)).is_err() {
            return generated;
        }
    }
    generated
}

/// The `calls` row and the `call_events` row ingestion would have written for `seeded`
/// as the `seq`th event; `None` when the event folds into no call.
fn seeded_rows(
    seeded: SeedCall,
    seq: u64,
    now: chrono::DateTime<Utc>,
) -> Result<Option<(call::ActiveModel, call_event::ActiveModel)>, AppError> {
    let received_at = seeded.event.fields.ended_at.unwrap_or(now);
    let fingerprint = seeded.event.fingerprint();
    let fields = serde_json::to_string(&seeded.event.fields)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let applied = AppliedEvent {
        seq: seq as i64,
        event: seeded.event,
        fingerprint,
        received_at,
        content_type: "application/json".into(),
        raw_payload: seeded.payload,
    };
    let Some(state) = fold(std::slice::from_ref(&applied)) else {
        return Ok(None);
    };
    let row = model_from_state(&state, 1, received_at);
    let rank = applied.event.rank();
    let event = call_event::ActiveModel {
        event: Set(applied.event.kind.as_wire().to_owned()),
        call_id: Set(applied.event.call_id),
        fingerprint: Set(applied.fingerprint),
        rank: Set(rank),
        fields: Set(fields),
        received_at: Set(received_at),
        content_type: Set(applied.content_type),
        raw_payload: Set(applied.raw_payload),
        ..Default::default()
    };
    Ok(Some((row, event)))
}

/// The table's indexes other than its primary key and unique constraints, with the SQL
/// that recreates each.
async fn secondary_indexes(
    dialect: Dialect,
    txn: &DatabaseTransaction,
    table: &str,
) -> Result<Vec<IndexDef>, AppError> {
    IndexDef::find_by_statement(Statement::from_sql_and_values(
        dialect.backend(),
        dialect.secondary_indexes_sql(),
        [table.into()],
    ))
    .all(txn)
    .await
    .map_err(defect)
}

async fn execute_all(txn: &DatabaseTransaction, statements: &[&str]) -> Result<(), AppError> {
    for sql in statements {
        execute(txn, sql).await?;
    }
    Ok(())
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn execute(txn: &DatabaseTransaction, sql: &str) -> Result<(), AppError> {
    txn.execute_raw(Statement::from_string(txn.get_database_backend(), sql))
        .await
        .map_err(db_error)?;
    Ok(())
}

/// On the writers' pool: bulk-load statements (ANALYZE, checkpoints) may run past a reader's
/// time limit.
async fn execute_on(store: &Store, sql: &str) -> Result<(), AppError> {
    store
        .writer
        .execute_raw(Statement::from_string(store.backend(), sql))
        .await
        .map_err(db_error)?;
    Ok(())
}
