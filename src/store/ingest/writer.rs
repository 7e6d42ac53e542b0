//! The writer task: a queue of deliveries, group commit, the retry of a failed batch delivery by
//! delivery, and what the writer knows about its last failure.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::apply::apply_each;
use super::plan::apply_batch;
use super::{Incoming, Receipt, Verdict};
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::{AccessEntry, append};
use crate::store::chain;
use crate::store::error::write_error;
use migration::chain::{ACCESS_LOG, DELIVERIES};

/// Most deliveries committed in one transaction.
const MAX_BATCH: usize = 256;
/// Deliveries waiting for the writer before senders are made to wait.
const QUEUE_DEPTH: usize = 4096;

/// What the writer commits: a webhook delivery, or an access-log entry (written by the same
/// group commit, so logging a read costs a share of a commit instead of one of its own).
enum Job {
    Delivery(Incoming, oneshot::Sender<Result<Receipt, AppError>>),
    Access(AccessEntry, oneshot::Sender<Result<i64, AppError>>),
}

/// Handle to the writer task. Cloning shares the one writer.
#[derive(Clone, Debug)]
pub struct Ingestor {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    /// Turns `true` once the writer has stopped: every handle dropped, the queue drained and
    /// every batch in flight committed or failed.
    drained: watch::Receiver<bool>,
}

/// Told what the writer does, for the metrics (the store knows no metrics library).
pub trait WriterObserver: Send + Sync + std::fmt::Debug {
    /// A transaction committed `jobs` deliveries and access-log entries together.
    fn batch_committed(&self, jobs: usize);
    /// An access-log entry was written, or could not be.
    fn access_logged(&self, written: bool);
}

/// Waits until the writer it was taken from has stopped ([`Ingestor::drained`]).
#[derive(Clone, Debug)]
pub struct Drained(watch::Receiver<bool>);

impl Drained {
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
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
    observer: Option<Arc<dyn WriterObserver>>,
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
pub(crate) fn write_fault(detail: &str) -> &'static str {
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
        let batches = store.dialect().batches_in_flight(batches);
        Ingestor::spawn(store, batches, Path::Batch, None)
    }

    /// Same, telling `observer` what it commits.
    pub fn start_observed(
        store: Store,
        batches: u16,
        observer: Arc<dyn WriterObserver>,
    ) -> Ingestor {
        let batches = store.dialect().batches_in_flight(batches);
        Ingestor::spawn(store, batches, Path::Batch, Some(observer))
    }

    /// A writer that commits every delivery in its own transaction, through the statements
    /// that handle any case, and never batches: the reference a batch's result is checked
    /// against (`tests/api/batching.rs`), and a way to rule batching out when something looks
    /// wrong.
    pub fn one_by_one(store: Store) -> Ingestor {
        Ingestor::spawn(store, 1, Path::Each, None)
    }

    fn spawn(
        store: Store,
        batches: usize,
        path: Path,
        observer: Option<Arc<dyn WriterObserver>>,
    ) -> Ingestor {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let (stopped, drained) = watch::channel(false);
        let counters = Arc::new(Counters {
            observer,
            ..Counters::default()
        });
        let largest = if path == Path::Batch { MAX_BATCH } else { 1 };
        tokio::spawn(write_loop(
            store,
            queue,
            batches,
            largest,
            path,
            counters.clone(),
            stopped,
        ));
        Ingestor {
            jobs,
            counters,
            drained,
        }
    }

    /// Jobs waiting in the writer's queue.
    pub fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// A handle that waits until this writer has stopped: once every [`Ingestor`] is dropped,
    /// the writer commits what is queued, waits for its batches in flight, and stops.
    pub fn drained(&self) -> Drained {
        Drained(self.drained.clone())
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
        self.commit(|reply| Job::Delivery(incoming, reply)).await
    }

    /// Appends an access-log entry; returns its id once it is committed.
    pub async fn log_access(&self, entry: AccessEntry) -> Result<i64, AppError> {
        let written = self.commit(|reply| Job::Access(entry, reply)).await;
        if let Some(observer) = &self.counters.observer {
            observer.access_logged(written.is_ok());
        }
        written
    }

    /// Queues the job `make` builds around its reply, and waits for that reply.
    async fn commit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, AppError>>) -> Job,
    ) -> Result<T, AppError> {
        let stopped = || AppError::Unavailable("the writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs.send(make(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_loop(
    store: Store,
    mut queue: mpsc::Receiver<Job>,
    batches: usize,
    largest: usize,
    path: Path,
    counters: Arc<Counters>,
    stopped: watch::Sender<bool>,
) {
    let slots = Arc::new(Semaphore::new(batches));
    loop {
        // A slot first: deliveries arriving while every slot is busy wait in the queue and
        // make the next batch bigger.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(first) = queue.recv().await else {
            drop(slot);
            break;
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
    // Every handle is gone and the queue is empty: wait for the batches in flight.
    let _ = slots
        .acquire_many(u32::try_from(batches).unwrap_or(u32::MAX))
        .await;
    let _ = stopped.send(true);
}

/// Commits a batch in one transaction. If the database cannot even be reached, every job is
/// answered unavailable at once; if one delivery made the transaction fail, each job is retried
/// alone, delivery by delivery, so that delivery cannot take the others down with it.
async fn commit_batch(store: &Store, batch: Vec<Job>, path: Path, counters: &Counters) {
    let size = batch.len();
    let mut deliveries = Vec::new();
    let mut accesses = Vec::new();
    for job in batch {
        match job {
            Job::Delivery(incoming, reply) => deliveries.push((incoming, reply)),
            Job::Access(entry, reply) => accesses.push((entry, reply)),
        }
    }
    let path = if deliveries.len() == 1 && !store.dialect().batches_a_lone_delivery() {
        Path::Each
    } else {
        path
    };
    let incomings: Vec<&Incoming> = deliveries.iter().map(|(i, _)| i).collect();
    let entries: Vec<&AccessEntry> = accesses.iter().map(|(e, _)| e).collect();
    match apply_in_transaction(store, &incomings, &entries, path).await {
        Ok((receipts, ids)) => {
            counters.committed();
            counters.batches_committed.fetch_add(1, Ordering::Relaxed);
            if let Some(observer) = &counters.observer {
                observer.batch_committed(size);
            }
            let size = u64::try_from(size).unwrap_or(u64::MAX);
            counters.largest_batch.fetch_max(size, Ordering::Relaxed);
            for ((_, reply), receipt) in deliveries.into_iter().zip(receipts) {
                let _ = reply.send(Ok(receipt));
            }
            for ((_, reply), id) in accesses.into_iter().zip(ids) {
                let _ = reply.send(Ok(id));
            }
        }
        Err(failure) if failure.unreachable || path == Path::Each => {
            counters.failed(&failure.error);
            for (incoming, reply) in deliveries {
                let _ = reply.send(Err(settle(store, &incoming, failure.error.clone()).await));
            }
            for (_, reply) in accesses {
                let _ = reply.send(Err(failure.error.clone()));
            }
        }
        Err(failure) => {
            tracing::warn!(error = %failure.error, size, "batch failed; retrying one by one");
            counters
                .batches_retried_one_by_one
                .fetch_add(1, Ordering::Relaxed);
            let mut unreachable: Option<AppError> = None;
            for (incoming, reply) in deliveries {
                let result = retry_alone(store, &[&incoming], &[], counters, &mut unreachable)
                    .await
                    .and_then(|(mut receipts, _)| {
                        receipts
                            .pop()
                            .ok_or_else(|| AppError::Internal("no receipt".into()))
                    });
                let result = match result {
                    Err(error) => Err(settle(store, &incoming, error).await),
                    ok => ok,
                };
                let _ = reply.send(result);
            }
            for (entry, reply) in accesses {
                let result = retry_alone(store, &[], &[&entry], counters, &mut unreachable)
                    .await
                    .and_then(|(_, mut ids)| {
                        ids.pop()
                            .ok_or_else(|| AppError::Internal("no access id".into()))
                    });
                let _ = reply.send(result);
            }
        }
    }
}

/// One job of a failed batch in a transaction of its own (none once the database proved
/// unreachable: the same error then answers the rest).
async fn retry_alone(
    store: &Store,
    incomings: &[&Incoming],
    entries: &[&AccessEntry],
    counters: &Counters,
    unreachable: &mut Option<AppError>,
) -> Result<(Vec<Receipt>, Vec<i64>), AppError> {
    if let Some(error) = unreachable {
        return Err(error.clone());
    }
    match apply_in_transaction(store, incomings, entries, Path::Each).await {
        Ok(done) => {
            counters.committed();
            Ok(done)
        }
        Err(failure) => {
            counters.failed(&failure.error);
            if failure.unreachable {
                *unreachable = Some(failure.error.clone());
            }
            Err(failure.error)
        }
    }
}

/// What a sender is answered for a delivery whose transaction failed. A delivery the database
/// refused for its values (a retry would fail the same way) is logged as rejected, with why, in
/// a transaction of its own, and answered 422 `UNSTORABLE`: kept, and not asked for again. 503
/// if even that row cannot be written. Any other failure is answered as it is.
async fn settle(store: &Store, incoming: &Incoming, error: AppError) -> AppError {
    let AppError::Unstorable(detail) = error else {
        return error;
    };
    let (event, call_id) = match &incoming.verdict {
        Verdict::Call(e) => (Some(e.kind.as_wire().to_owned()), Some(e.call_id.clone())),
        Verdict::NotACall { event, call_id, .. } | Verdict::Rejected { event, call_id, .. } => {
            (event.clone(), call_id.clone())
        }
    };
    let storable = |v: Option<String>| v.filter(|v| v.len() <= 256 && !v.contains('\0'));
    let refused = AppError::Unstorable(detail);
    let reason = serde_json::json!({
        "code": refused.code(),
        "message": refused.to_string(),
        "details": null,
    })
    .to_string();
    let logged = Incoming {
        verdict: Verdict::Rejected {
            event: storable(event),
            call_id: storable(call_id),
            reason,
        },
        ..incoming.clone()
    };
    match apply_in_transaction(store, &[&logged], &[], Path::Each).await {
        Ok(_) => refused,
        Err(failure) => AppError::Unavailable(format!(
            "a delivery the database refused could not be logged either: {:?}",
            failure.error
        )),
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
    entries: &[&AccessEntry],
    path: Path,
) -> Result<(Vec<Receipt>, Vec<i64>), Failure> {
    let dialect = store.dialect();
    let limit = dialect.begin_timeout();
    let txn = match tokio::time::timeout(limit, store.begin_write()).await {
        Ok(Ok(txn)) => txn,
        Ok(Err(e)) => {
            return Err(Failure {
                error: write_error(e),
                unreachable: true,
            });
        }
        Err(_) => {
            return Err(Failure {
                error: AppError::Unavailable(format!("no database connection within {limit:?}")),
                unreachable: true,
            });
        }
    };
    let applied = async {
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            ids.push(append(&txn, entry).await?);
        }
        let receipts = if incomings.is_empty() {
            Vec::new()
        } else {
            dialect.lock_calls(&txn, &call_ids(incomings)).await?;
            let receipts = match path {
                Path::Batch => apply_batch(dialect, &txn, incomings).await,
                Path::Each => apply_each(&txn, incomings).await,
            }?;
            // A recording link stored with a call queues its archive job in the same
            // transaction, so no crash can lose it.
            crate::store::recordings::queue_for_calls(dialect, &txn, &call_ids(incomings)).await?;
            receipts
        };
        // Both logs' new rows are linked last, so the chains' locks are held only until COMMIT.
        let delivered: Vec<i64> = receipts.iter().map(|r| r.delivery_id).collect();
        chain::extend(&txn, dialect, DELIVERIES, &delivered).await?;
        chain::extend(&txn, dialect, ACCESS_LOG, &ids).await?;
        Ok((receipts, ids))
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
        .map_err(|e| Failure::during(write_error(e)))?;
    store.committed();
    Ok(receipts)
}

/// The calls the deliveries write to.
fn call_ids<'a>(incomings: &[&'a Incoming]) -> Vec<&'a str> {
    incomings
        .iter()
        .filter_map(|i| match &i.verdict {
            Verdict::Call(event) => Some(event.call_id.as_str()),
            _ => None,
        })
        .collect()
}
