//! The archive workers: each claims the next due job, makes one attempt, records its outcome
//! (archived; retrying after an exponential back-off with jitter; failed once the retry window
//! has passed, or at once for what no retry fixes; gone), and stops cleanly on shutdown.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::archive::Fetcher;
use crate::domain::recording::{ArchiveJob, AttemptOutcome, JobState};
use crate::store::Store;

/// How long a worker waits before looking again when no job is due.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How the workers retry.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub workers: u16,
    /// Longest one attempt may take, start to stored.
    pub attempt_timeout: Duration,
    /// The first back-off; each later one doubles, up to an hour, each with ±50 % jitter.
    pub retry_base: Duration,
    /// After this long since the job was queued, a failing job is given up (FAILED).
    pub retry_window: Duration,
}

/// What the workers did since they started (for metrics).
#[derive(Debug, Default)]
pub struct ArchiveCounters {
    pub attempts: AtomicU64,
    pub archived: AtomicU64,
    /// Attempts that did not archive (retried, failed or gone).
    pub failures: AtomicU64,
}

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub counters: Arc<ArchiveCounters>,
}

impl Workers {
    /// Starts `policy.workers` workers over `store`.
    pub fn start(store: Store, fetcher: Fetcher, policy: Policy) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(ArchiveCounters::default());
        let mut tasks = JoinSet::new();
        for _ in 0..policy.workers.max(1) {
            tasks.spawn(work(
                store.clone(),
                fetcher.clone(),
                policy,
                Arc::clone(&counters),
                stopped.clone(),
            ));
        }
        Workers {
            stop,
            tasks,
            counters,
        }
    }

    /// Asks every worker to stop (an attempt under way is given back to the queue) and waits.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn work(
    store: Store,
    fetcher: Fetcher,
    policy: Policy,
    counters: Arc<ArchiveCounters>,
    mut stopped: watch::Receiver<bool>,
) {
    // A worker's lease outlasts its attempt (and the recording of its outcome), so no other
    // worker takes a job being fetched; a worker killed mid-fetch frees it when it passes.
    let lease = policy.attempt_timeout + (policy.attempt_timeout / 2).min(Duration::from_secs(30));
    loop {
        if *stopped.borrow() {
            return;
        }
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
        let job = match store.claim_recording_job(until).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                let _ = tokio::time::timeout(IDLE_POLL, stopped.changed()).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "archive worker: could not claim a job");
                let _ = tokio::time::timeout(IDLE_POLL * 4, stopped.changed()).await;
                continue;
            }
        };
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        let attempt = tokio::time::timeout(policy.attempt_timeout, fetcher.attempt(&job.url));
        let outcome = tokio::select! {
            outcome = attempt => match outcome {
                Ok(outcome) => outcome,
                Err(_) => AttemptOutcome::Retry(format!(
                    "timed out after {:?} (--archive-fetch-timeout)",
                    policy.attempt_timeout
                )),
            },
            _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => {
                if let Err(e) = store.release_recording_job(&job).await {
                    tracing::warn!(error = %e, call_id = %job.call_id, "archive worker: could not give a job back; it is due again when its lease passes");
                }
                return;
            }
        };
        if let Err(e) = settle(&store, &job, outcome, &policy, &counters).await {
            tracing::warn!(error = %e, call_id = %job.call_id, "archive worker: could not record an attempt; it is due again when its lease passes");
        }
    }
}

async fn settle(
    store: &Store,
    job: &ArchiveJob,
    outcome: AttemptOutcome,
    policy: &Policy,
    counters: &ArchiveCounters,
) -> Result<(), crate::error::AppError> {
    let now = Utc::now();
    let (state, why) = match outcome {
        AttemptOutcome::Archived {
            sha256,
            bytes,
            content_type,
        } => {
            store
                .record_archived(job, &sha256, bytes, &content_type)
                .await?;
            counters.archived.fetch_add(1, Ordering::Relaxed);
            tracing::info!(call_id = %job.call_id, %sha256, bytes, "recording archived");
            return Ok(());
        }
        AttemptOutcome::Gone(why) => (JobState::Gone, why),
        AttemptOutcome::Failed(why) => (JobState::Failed, why),
        AttemptOutcome::Retry(why) => {
            let window = chrono::Duration::from_std(policy.retry_window).unwrap_or_default();
            if now >= job.created_at + window {
                (
                    JobState::Failed,
                    format!(
                        "gave up after {} attempts over {:?} (--archive-retry-window); last: {why}",
                        job.attempts, policy.retry_window
                    ),
                )
            } else {
                (JobState::Retrying, why)
            }
        }
    };
    counters.failures.fetch_add(1, Ordering::Relaxed);
    let next = now + chrono::Duration::from_std(backoff(policy, job.attempts)).unwrap_or_default();
    tracing::warn!(call_id = %job.call_id, attempts = job.attempts, state = state.as_str(), reason = %why, "recording not archived");
    store.record_attempt_failed(job, state, &why, next).await
}

/// The wait before attempt `attempts + 1`: the base doubled per attempt, at most an hour,
/// times a random factor in [0.5, 1.5).
fn backoff(policy: &Policy, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let plain = policy
        .retry_base
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF);
    let jitter: f64 = rand::Rng::random_range(&mut rand::rng(), 0.5..1.5);
    plain.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_an_hour() {
        let policy = Policy {
            workers: 1,
            attempt_timeout: Duration::from_secs(1),
            retry_base: Duration::from_secs(30),
            retry_window: Duration::from_secs(3600),
        };
        for (attempts, plain) in [(1, 30.0), (2, 60.0), (3, 120.0), (12, 3600.0)] {
            let waits: Vec<f64> = (0..50)
                .map(|_| backoff(&policy, attempts).as_secs_f64())
                .collect();
            assert!(waits.iter().all(|w| *w >= plain * 0.5 && *w < plain * 1.5));
            assert!(waits.iter().any(|w| (*w - waits[0]).abs() > 1e-6), "jitter");
        }
    }
}
