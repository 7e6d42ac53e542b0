//! Durable ingestion with group commit: one writer task batches concurrent deliveries into one
//! transaction and answers each only after that transaction has committed (on PostgreSQL several
//! batches can be in flight, each in its own transaction: `--write-batches`). Within a batch, new
//! calls and deliveries that change no call are written together: with one multi-row statement
//! per table on SQLite, with one statement for every table on PostgreSQL (`store::bulk`).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{call, call_event, call_revision, delivery};
use sea_orm::sea_query::{ArrayType, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseTransaction, EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Statement, Value,
};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::calls::{call_from_model, model_from_state};
use super::{Store, bulk, pow2_chunks, rollup, unavailable};
use crate::domain::lifecycle::{AppliedEvent, fold};
use crate::domain::{CallEvent, EventKind};
use crate::error::AppError;

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 256;
/// Deliveries waiting for the writer before senders are made to wait.
const QUEUE_DEPTH: usize = 4096;
/// Most bound values in one statement: under SQLite's 32 766 and PostgreSQL's 65 535.
const MAX_PARAMS: usize = 32_000;
/// Longest wait for a PostgreSQL connection before a batch is answered 503: a sender waiting
/// on a dead database learns it quickly and retries later.
const BEGIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the webhook handler decided a delivery is, ready to be logged and applied.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub received_at: DateTime<Utc>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub verdict: Verdict,
    /// The delivery this one re-processes (`calltrail replay`).
    pub replay_of: Option<i64>,
}

/// The parse result of a delivery.
#[derive(Clone, Debug)]
pub enum Verdict {
    Call(Box<CallEvent>),
    NotACall {
        event: Option<String>,
        call_id: Option<String>,
        reason: String,
    },
    Rejected {
        event: Option<String>,
        call_id: Option<String>,
        reason: String,
    },
}

/// What happened to a delivery, as logged and as answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new concluded call (or an in-progress call that has now concluded).
    Stored,
    /// A concluded call changed; its previous version is kept as a revision.
    Updated,
    /// An event merged into a call still in progress, or one that changed nothing visible.
    Merged,
    /// The same event was already applied: nothing changed.
    Duplicate,
    /// Valid, but not a call event (permission reply, unknown event).
    Ignored,
    /// Not storable; kept in the log with the reason.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Updated => "updated",
            Outcome::Merged => "merged",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The acknowledgement of a committed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub delivery_id: i64,
    pub outcome: Outcome,
    pub call_id: Option<String>,
    /// Whether the call has concluded (and so appears in queries).
    pub concluded: bool,
}

struct Job {
    incoming: Incoming,
    reply: oneshot::Sender<Result<Receipt, AppError>>,
}

/// Handle to the writer task. Cloning shares the one writer.
#[derive(Clone, Debug)]
pub struct Ingestor {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

/// How a transaction applies its deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// A few statements for the whole batch where that gives exactly what [`Path::Each`]
    /// would ([`apply_batch`]): every batch is tried this way first, but for a lone delivery on
    /// PostgreSQL (see [`commit_batch`]).
    Batch,
    /// Delivery by delivery through the statements that handle any case ([`apply_each`]): a
    /// failed batch's deliveries are retried this way, each in its own transaction.
    Each,
}

/// What the writer has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions that committed a batch of deliveries together.
    pub batches_committed: u64,
    /// The most deliveries committed in one transaction.
    pub largest_batch: u64,
    /// Batches that failed as a whole and were retried delivery by delivery.
    pub batches_retried_one_by_one: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches_committed: AtomicU64,
    largest_batch: AtomicU64,
    batches_retried_one_by_one: AtomicU64,
    /// Why the writer's last transaction failed, until one commits again.
    failing: Mutex<Option<&'static str>>,
}

impl Counters {
    fn committed(&self) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn failed(&self, error: &AppError) {
        if let AppError::Unavailable(detail) = error {
            *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(write_fault(detail));
        }
    }
}

/// What an operator is told about a failed write (the driver's text is logged, not shown).
fn write_fault(detail: &str) -> &'static str {
    let detail = detail.to_ascii_lowercase();
    if detail.contains("disk is full") || detail.contains("no space left") {
        "the database's disk is full"
    } else if detail.contains("readonly") || detail.contains("read-only") {
        "the database is read-only"
    } else if detail.contains("database is locked") {
        "the database stayed locked by another writer"
    } else {
        "the database refused or could not take the write"
    }
}

impl Ingestor {
    /// Starts the writer task on `store`, with up to `batches` transactions in flight.
    ///
    /// On PostgreSQL a batch builds and writes its rows while the one before it waits for its
    /// commit to reach the disk; two batches never work on one call at the same time (each
    /// takes advisory locks on its call ids first, in a fixed order). SQLite writes one
    /// transaction at a time whatever we do, so there it is always one.
    pub fn start(store: Store, batches: u16) -> Ingestor {
        let batches = if store.is_postgres() {
            usize::from(batches.max(1))
        } else {
            1
        };
        Ingestor::spawn(store, batches, Path::Batch)
    }

    /// A writer that commits every delivery in its own transaction, through the statements
    /// that handle any case, and never batches: the reference a batch's result is checked
    /// against (`tests/batching.rs`), and a way to rule batching out when something looks
    /// wrong.
    pub fn one_by_one(store: Store) -> Ingestor {
        Ingestor::spawn(store, 1, Path::Each)
    }

    fn spawn(store: Store, batches: usize, path: Path) -> Ingestor {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let counters = Arc::new(Counters::default());
        let largest = if path == Path::Batch { MAX_BATCH } else { 1 };
        tokio::spawn(write_loop(
            store,
            queue,
            batches,
            largest,
            path,
            counters.clone(),
        ));
        Ingestor { jobs, counters }
    }

    /// What the writer has done since it started.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            batches_committed: c.batches_committed.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            batches_retried_one_by_one: c.batches_retried_one_by_one.load(Ordering::Relaxed),
        }
    }

    /// Why the writer's last transaction failed, while no later one has committed.
    pub fn failing(&self) -> Option<&'static str> {
        *self
            .counters
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A write outside the writer succeeded: the database takes writes again.
    pub fn recovered(&self) {
        self.counters.committed();
    }

    /// Logs and applies one delivery; returns once it is committed.
    pub async fn submit(&self, incoming: Incoming) -> Result<Receipt, AppError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { incoming, reply })
            .await
            .map_err(|_| AppError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| AppError::Unavailable("the writer has stopped".into()))?
    }
}

async fn write_loop(
    store: Store,
    mut queue: mpsc::Receiver<Job>,
    batches: usize,
    largest: usize,
    path: Path,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(batches));
    loop {
        // A slot first: deliveries arriving while every slot is busy wait in the queue and
        // make the next batch bigger.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < largest {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A bug that panics while committing must cost only its batch (answered 503, nothing
        // acknowledged), never the writer itself.
        let store = store.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let committed =
                tokio::spawn(async move { commit_batch(&store, batch, path, &counters).await });
            if let Err(e) = committed.await {
                tracing::error!(error = %e, "a batch commit panicked; its deliveries were answered 503");
            }
            drop(slot);
        });
    }
}

/// Commits a batch in one transaction. If the database cannot even be reached, every job is
/// answered unavailable at once; if one delivery made the transaction fail, each job is retried
/// alone, delivery by delivery, so that delivery cannot take the others down with it.
async fn commit_batch(store: &Store, batch: Vec<Job>, path: Path, counters: &Counters) {
    // A lone delivery on PostgreSQL goes the plain way: the batch statement's fixed cost (a
    // function scan and a tuplestore per column array) is more than the plain statements cost
    // for one row (0.93 against 0.41 ms of the server's statement time, measured). On SQLite
    // the batch statements are the cheaper way for one delivery too.
    let path = if batch.len() == 1 && store.is_postgres() {
        Path::Each
    } else {
        path
    };
    let incomings: Vec<&Incoming> = batch.iter().map(|j| &j.incoming).collect();
    match apply_in_transaction(store, &incomings, path).await {
        Ok(receipts) => {
            counters.committed();
            counters.batches_committed.fetch_add(1, Ordering::Relaxed);
            let size = u64::try_from(batch.len()).unwrap_or(u64::MAX);
            counters.largest_batch.fetch_max(size, Ordering::Relaxed);
            for (job, receipt) in batch.into_iter().zip(receipts) {
                let _ = job.reply.send(Ok(receipt));
            }
        }
        Err(failure) if failure.unreachable || path == Path::Each => {
            counters.failed(&failure.error);
            for job in batch {
                let _ = job.reply.send(Err(failure.error.clone()));
            }
        }
        Err(failure) => {
            tracing::warn!(error = %failure.error, size = batch.len(), "batch failed; retrying one by one");
            counters
                .batches_retried_one_by_one
                .fetch_add(1, Ordering::Relaxed);
            let mut unreachable: Option<AppError> = None;
            for job in batch {
                if let Some(error) = &unreachable {
                    let _ = job.reply.send(Err(error.clone()));
                    continue;
                }
                let result = match apply_in_transaction(store, &[&job.incoming], Path::Each).await {
                    Ok(mut receipts) => {
                        counters.committed();
                        receipts
                            .pop()
                            .ok_or_else(|| AppError::Internal("no receipt".into()))
                    }
                    Err(failure) => {
                        counters.failed(&failure.error);
                        if failure.unreachable {
                            unreachable = Some(failure.error.clone());
                        }
                        Err(failure.error)
                    }
                };
                let _ = job.reply.send(result);
            }
        }
    }
}

/// Why a transaction did not commit.
struct Failure {
    error: AppError,
    /// No transaction could even be started: the database is down or saturated.
    unreachable: bool,
}

impl Failure {
    fn during(error: AppError) -> Failure {
        Failure {
            error,
            unreachable: false,
        }
    }
}

async fn apply_in_transaction(
    store: &Store,
    incomings: &[&Incoming],
    path: Path,
) -> Result<Vec<Receipt>, Failure> {
    let begin = store.begin_write();
    // SQLite waits on its own busy timeout; a PostgreSQL connection that cannot be had quickly
    // means the server is down.
    let limit = if store.is_postgres() {
        BEGIN_TIMEOUT
    } else {
        Duration::MAX
    };
    let txn = match tokio::time::timeout(limit, begin).await {
        Ok(Ok(txn)) => txn,
        Ok(Err(e)) => {
            return Err(Failure {
                error: unavailable(e),
                unreachable: true,
            });
        }
        Err(_) => {
            return Err(Failure {
                error: AppError::Unavailable(format!(
                    "no database connection within {BEGIN_TIMEOUT:?}"
                )),
                unreachable: true,
            });
        }
    };
    let applied = async {
        if store.is_postgres() {
            lock_calls(&txn, incomings).await?;
        }
        match path {
            Path::Batch => apply_batch(&txn, incomings).await,
            Path::Each => apply_each(&txn, incomings).await,
        }
    }
    .await;
    let receipts = match applied {
        Ok(receipts) => receipts,
        Err(error) => {
            // Rolled back here rather than on drop, so a rollback that fails is seen. The
            // connection is then closed when it goes back to the pool (`outside_transaction`).
            if let Err(e) = txn.rollback().await {
                tracing::warn!(error = %e, "rolling back a failed write failed; its connection is replaced");
            }
            return Err(Failure::during(error));
        }
    };
    // The driver confirms the COMMIT only when the database reports it done. The transaction
    // began with `BEGIN` on a connection outside any transaction (checked when the pool hands it
    // out), so that COMMIT is the outermost one: once it succeeds the calls are durable, and
    // nothing is acknowledged before.
    txn.commit()
        .await
        .map_err(|e| Failure::during(unavailable(e)))?;
    store.committed();
    Ok(receipts)
}

/// Serialises writers of the same call across instances sharing one PostgreSQL: advisory
/// transaction locks on the batch's call ids, taken in a fixed order so batches cannot deadlock.
async fn lock_calls(txn: &DatabaseTransaction, incomings: &[&Incoming]) -> Result<(), AppError> {
    let mut keys: Vec<i64> = incomings
        .iter()
        .filter_map(|i| match &i.verdict {
            Verdict::Call(event) => Some(lock_key(&event.call_id)),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    // One array parameter: the same statement text for every batch, prepared once.
    let keys: Vec<Value> = keys.into_iter().map(Value::from).collect();
    let array = Value::Array(ArrayType::BigInt, Some(Box::new(keys)));
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT count(pg_advisory_xact_lock(k)) FROM \
         (SELECT unnest(CAST($1 AS bigint[])) AS k ORDER BY k) AS ordered",
        [array],
    ))
    .await
    .map_err(unavailable)?;
    Ok(())
}

fn lock_key(call_id: &str) -> i64 {
    let digest = Sha256::digest(call_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Applies each delivery in turn: the path every delivery took before batching, and the one a
/// delivery retried alone takes.
async fn apply_each(
    txn: &DatabaseTransaction,
    incomings: &[&Incoming],
) -> Result<Vec<Receipt>, AppError> {
    let mut receipts = Vec::with_capacity(incomings.len());
    for incoming in incomings {
        receipts.push(apply(txn, incoming).await?);
    }
    Ok(receipts)
}

/// Applies a batch with a few statements for the whole batch wherever that gives exactly what
/// [`apply_each`] would, and delivery by delivery elsewhere.
///
/// The batched deliveries are the ones whose effect cannot depend on another delivery: rejected
/// and not-a-call ones (their only write is the log row), and the first event of a call that has
/// no row yet and no other event in this batch (folded alone, as `apply_event` does for a new
/// call). Their event, call, rollup and log rows are written together (`write_new_sqlite`,
/// `bulk::write_new`); then the rest go through [`apply`] in arrival order, so a call's second
/// event sees its first. A check that fails (an event already stored for a call with no row, log
/// ids not matching their rows) fails the batch, which is then retried delivery by delivery.
async fn apply_batch(
    txn: &DatabaseTransaction,
    incomings: &[&Incoming],
) -> Result<Vec<Receipt>, AppError> {
    let mut events_per_call: HashMap<&str, usize> = HashMap::new();
    for incoming in incomings {
        if let Verdict::Call(event) = &incoming.verdict {
            *events_per_call.entry(event.call_id.as_str()).or_default() += 1;
        }
    }
    let alone: Vec<&str> = events_per_call
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(id, _)| *id)
        .collect();
    let stored = if txn.get_database_backend() == DatabaseBackend::Postgres {
        bulk::existing_calls(txn, &alone).await?
    } else {
        existing_calls(txn, &alone).await?
    };

    let now = Utc::now();
    let mut later = Vec::new();
    let mut logged: Vec<(usize, Logged)> = Vec::new();
    let mut events = Vec::new();
    let mut calls = Vec::new();
    for (index, incoming) in incomings.iter().enumerate() {
        let summary = match &incoming.verdict {
            Verdict::Call(event) => {
                let first_and_only = events_per_call.get(event.call_id.as_str()) == Some(&1)
                    && !stored.contains(&event.call_id);
                if !first_and_only {
                    later.push(index);
                    continue;
                }
                let (row, applied) = event_row(incoming, event)?;
                let state = fold(std::slice::from_ref(&applied))
                    .ok_or_else(|| AppError::Internal("no events to fold".into()))?;
                events.push(row);
                calls.push(model_from_state(&state, 1, now));
                Logged {
                    outcome: if state.concluded {
                        Outcome::Stored
                    } else {
                        Outcome::Merged
                    },
                    event: Some(event.kind.as_wire().to_owned()),
                    call_id: Some(event.call_id.clone()),
                    reason: None,
                    concluded: state.concluded,
                }
            }
            Verdict::NotACall {
                event,
                call_id,
                reason,
            } => not_applied(Outcome::Ignored, event, call_id, reason),
            Verdict::Rejected {
                event,
                call_id,
                reason,
            } => not_applied(Outcome::Rejected, event, call_id, reason),
        };
        logged.push((index, summary));
    }

    let rows: Vec<delivery::ActiveModel> = logged
        .iter()
        .map(|(index, summary)| delivery_row(incomings[*index], summary))
        .collect();
    let ids = if rows.is_empty() {
        Vec::new()
    } else if txn.get_database_backend() == DatabaseBackend::Postgres {
        let written =
            bulk::write_new(txn, &events, &calls, &rows, rollup::new_call_sums(&calls)).await?;
        all_events_new(written.events_inserted, events.len())?;
        ids_in_row_order(&rows, written.deliveries)?
    } else {
        write_new_sqlite(txn, &events, &calls, &rows).await?
    };

    let mut receipts: Vec<Option<Receipt>> = vec![None; incomings.len()];
    for ((index, summary), delivery_id) in logged.into_iter().zip(ids) {
        receipts[index] = Some(Receipt {
            delivery_id,
            outcome: summary.outcome,
            call_id: summary.call_id,
            concluded: summary.concluded,
        });
    }
    for index in later {
        receipts[index] = Some(apply(txn, incomings[index]).await?);
    }
    receipts
        .into_iter()
        .map(|r| r.ok_or_else(|| AppError::Internal("a delivery left unanswered".into())))
        .collect()
}

/// Rows of `E` per multi-row statement, within the bound-value limit.
fn rows_per_statement<E: EntityTrait>() -> usize {
    (MAX_PARAMS / E::Column::iter().count().max(1)).max(1)
}

/// The calls among `call_ids` that already have a row.
async fn existing_calls(
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
            .map_err(unavailable)?;
        found.extend(rows);
    }
    Ok(found)
}

/// SQLite's write of a batch's new rows: multi-row statements, in power-of-two chunks.
/// Returns the log rows' ids in the order of `rows`.
async fn write_new_sqlite(
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
            .map_err(unavailable)?
            .rows_affected();
    }
    all_events_new(inserted, events.len())?;
    for chunk in pow2_chunks(calls, rows_per_statement::<call::Entity>()) {
        let insert =
            call::Entity::insert_many(chunk.iter().cloned()).build(DatabaseBackend::Sqlite);
        txn.execute_raw(or_fail(insert)?)
            .await
            .map_err(unavailable)?;
    }
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in pow2_chunks(rows, rows_per_statement::<delivery::Entity>()) {
        ids.extend(log_many(txn, chunk).await?);
    }
    // The rollup rows of the current quarter hour are the ones every concurrent batch writes:
    // updated last, so a batch holds their locks only from here to its commit. Before the
    // per-delivery rest, whose bucket recomputes read `calls` and must find these counted.
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

/// An event already stored for its call (the same fingerprint) is skipped, not an error.
fn skip_stored_event() -> OnConflict {
    OnConflict::columns([call_event::Column::CallId, call_event::Column::Fingerprint])
        .do_nothing()
        .to_owned()
}

/// A batch's new calls have no stored events; an event that was already stored means the
/// batch misjudged a call as new.
fn all_events_new(inserted: impl TryInto<usize>, events: usize) -> Result<(), AppError> {
    match inserted.try_into() {
        Ok(n) if n == events => Ok(()),
        _ => Err(AppError::Internal(format!(
            "not all the events of {events} new calls were new"
        ))),
    }
}

/// SQLite: appends log rows in one statement and returns their ids, in the order of `rows`.
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
    let returned = txn.query_all_raw(statement).await.map_err(unavailable)?;
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
        .map_err(|e| AppError::Internal(e.to_string()))?;
    ids_in_row_order(rows, written)
}

/// The ids of log rows written by one multi-row insert, in the order of `rows`, from the
/// `(id, sha256, outcome)` it returned.
///
/// `RETURNING` lists rows in no promised order, but a multi-row INSERT takes ids in the order of
/// its rows (SQLite's rowids under the write lock, PostgreSQL's sequence), so the ids sorted are
/// the rows' ids in order. Each is checked against its row's body hash and outcome; a mismatch
/// fails the batch rather than answer a delivery with another's id.
fn ids_in_row_order(
    rows: &[delivery::ActiveModel],
    mut written: Vec<(i64, String, String)>,
) -> Result<Vec<i64>, AppError> {
    written.sort_unstable_by_key(|(id, _, _)| *id);
    if written.len() != rows.len() {
        return Err(AppError::Internal(format!(
            "{} log rows written, {} returned",
            rows.len(),
            written.len()
        )));
    }
    let mut ids = Vec::with_capacity(rows.len());
    for (row, (id, sha256, outcome)) in rows.iter().zip(written) {
        let matches = row.sha256.as_ref() == &sha256 && row.outcome.as_ref() == &outcome;
        if !matches {
            return Err(AppError::Internal(
                "log ids returned out of row order".into(),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// What the log records about a delivery, and what its receipt says.
struct Logged {
    outcome: Outcome,
    event: Option<String>,
    call_id: Option<String>,
    reason: Option<String>,
    concluded: bool,
}

/// The summary of a delivery that changes no call.
fn not_applied(
    outcome: Outcome,
    event: &Option<String>,
    call_id: &Option<String>,
    reason: &str,
) -> Logged {
    Logged {
        outcome,
        event: event.clone(),
        call_id: call_id.clone(),
        reason: Some(reason.to_owned()),
        concluded: false,
    }
}

/// The log row of a delivery.
fn delivery_row(incoming: &Incoming, summary: &Logged) -> delivery::ActiveModel {
    delivery::ActiveModel {
        received_at: Set(incoming.received_at),
        content_type: Set(incoming.content_type.clone()),
        body: Set(incoming.body.clone()),
        sha256: Set(hex::encode(Sha256::digest(&incoming.body))),
        event: Set(summary.event.clone()),
        call_id: Set(summary.call_id.clone()),
        outcome: Set(summary.outcome.as_str().to_owned()),
        reason: Set(summary.reason.clone()),
        replay_of: Set(incoming.replay_of),
        ..Default::default()
    }
}

/// Logs one delivery and applies its event to its call, inside the batch's transaction.
async fn apply(txn: &DatabaseTransaction, incoming: &Incoming) -> Result<Receipt, AppError> {
    let summary = match &incoming.verdict {
        Verdict::Call(event) => {
            let (outcome, concluded) = apply_event(txn, incoming, event).await?;
            Logged {
                outcome,
                event: Some(event.kind.as_wire().to_owned()),
                call_id: Some(event.call_id.clone()),
                reason: None,
                concluded,
            }
        }
        Verdict::NotACall {
            event,
            call_id,
            reason,
        } => not_applied(Outcome::Ignored, event, call_id, reason),
        Verdict::Rejected {
            event,
            call_id,
            reason,
        } => not_applied(Outcome::Rejected, event, call_id, reason),
    };
    let logged = delivery_row(incoming, &summary)
        .insert(txn)
        .await
        .map_err(unavailable)?;
    Ok(Receipt {
        delivery_id: logged.id,
        outcome: summary.outcome,
        call_id: summary.call_id,
        concluded: summary.concluded,
    })
}

/// The `call_events` row of an event, and the event as folded.
fn event_row(
    incoming: &Incoming,
    event: &CallEvent,
) -> Result<(call_event::ActiveModel, AppliedEvent), AppError> {
    let fingerprint = event.fingerprint();
    let raw_payload = String::from_utf8_lossy(&incoming.body).into_owned();
    let fields =
        serde_json::to_string(&event.fields).map_err(|e| AppError::Internal(e.to_string()))?;
    let row = call_event::ActiveModel {
        call_id: Set(event.call_id.clone()),
        fingerprint: Set(fingerprint.clone()),
        event: Set(event.kind.as_wire().to_owned()),
        rank: Set(event.rank()),
        fields: Set(fields),
        received_at: Set(incoming.received_at),
        content_type: Set(incoming.content_type.clone()),
        raw_payload: Set(raw_payload.clone()),
        ..Default::default()
    };
    let applied = AppliedEvent {
        seq: i64::MAX,
        event: event.clone(),
        fingerprint,
        received_at: incoming.received_at,
        content_type: incoming.content_type.clone(),
        raw_payload,
    };
    Ok((row, applied))
}

/// Records the event if it is new, and refolds its call. Returns the outcome and whether the
/// call is concluded afterwards.
async fn apply_event(
    txn: &DatabaseTransaction,
    incoming: &Incoming,
    event: &CallEvent,
) -> Result<(Outcome, bool), AppError> {
    let (row, this) = event_row(incoming, event)?;
    let inserted = call_event::Entity::insert(row)
        .on_conflict(skip_stored_event())
        .exec_without_returning(txn)
        .await
        .map_err(unavailable)?;

    let existing = call::Entity::find()
        .filter(call::Column::CallId.eq(&event.call_id))
        .one(txn)
        .await
        .map_err(unavailable)?;
    if inserted == 0 {
        let concluded = existing.as_ref().is_some_and(|m| m.ended_at.is_some());
        return Ok((Outcome::Duplicate, concluded));
    }

    let events = match &existing {
        None => vec![this],
        Some(_) => load_events(txn, &event.call_id).await?,
    };
    let state = fold(&events).ok_or_else(|| AppError::Internal("no events to fold".into()))?;
    let now = Utc::now();

    let Some(old) = existing else {
        let model = model_from_state(&state, 1, now);
        rollup::record_change(txn, None, &model).await?;
        call::Entity::insert(model)
            .exec_without_returning(txn)
            .await
            .map_err(unavailable)?;
        let outcome = if state.concluded {
            Outcome::Stored
        } else {
            Outcome::Merged
        };
        return Ok((outcome, state.concluded));
    };

    let was_concluded = old.ended_at.is_some();
    let mut model = model_from_state(&state, old.revision, now);
    model.id = Set(old.id);
    let changed = content_differs(&old, &model);
    if !changed {
        return Ok((Outcome::Merged, was_concluded));
    }
    let outcome = if was_concluded {
        let previous = call_from_model(old.clone())?;
        let snapshot =
            serde_json::to_string(&previous).map_err(|e| AppError::Internal(e.to_string()))?;
        call_revision::ActiveModel {
            call_id: Set(old.call_id.clone()),
            revision: Set(old.revision),
            replaced_at: Set(now),
            snapshot: Set(snapshot),
            ..Default::default()
        }
        .insert(txn)
        .await
        .map_err(unavailable)?;
        model.revision = Set(old.revision + 1);
        Outcome::Updated
    } else if state.concluded {
        Outcome::Stored
    } else {
        Outcome::Merged
    };
    model.clone().update(txn).await.map_err(unavailable)?;
    rollup::record_change(txn, Some(&old), &model).await?;
    Ok((outcome, state.concluded))
}

async fn load_events(
    txn: &DatabaseTransaction,
    call_id: &str,
) -> Result<Vec<AppliedEvent>, AppError> {
    let rows = call_event::Entity::find()
        .filter(call_event::Column::CallId.eq(call_id))
        .order_by_asc(call_event::Column::Id)
        .all(txn)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| {
            let kind = EventKind::from_wire(&row.event)
                .ok_or_else(|| AppError::Internal(format!("unknown stored event {}", row.event)))?;
            let fields =
                serde_json::from_str(&row.fields).map_err(|e| AppError::Internal(e.to_string()))?;
            Ok(AppliedEvent {
                seq: row.id,
                event: CallEvent {
                    kind,
                    call_id: row.call_id,
                    fields,
                },
                fingerprint: row.fingerprint,
                received_at: row.received_at,
                content_type: row.content_type,
                raw_payload: row.raw_payload,
            })
        })
        .collect()
}

/// Whether the refolded call differs from the stored one in anything a reader sees.
fn content_differs(old: &call::Model, new: &call::ActiveModel) -> bool {
    let mut candidate = old.clone();
    let new = new.clone();
    macro_rules! copy {
        ($($f:ident),*) => {$( if let sea_orm::ActiveValue::Set(v) = new.$f { candidate.$f = v; } )*};
    }
    copy!(
        status,
        direction,
        customer_id,
        customer_name,
        customer_number,
        customer_digits,
        waba_number,
        picked_by,
        ended_by,
        rejected_by,
        device_id,
        chat_id,
        chat_message_id,
        channel,
        channel_number,
        pstn_from,
        pstn_to,
        failed_reason,
        started_at,
        ended_at,
        duration_seconds,
        recording_url,
        is_new_caller,
        is_chat_assigned,
        not_picked_count,
        anomalies
    );
    candidate != *old
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
