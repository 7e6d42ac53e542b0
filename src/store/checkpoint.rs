//! SQLite: copying committed pages from the write-ahead log into the database file beside
//! the writer, instead of inside its commits.
//!
//! SQLite's own rule (`wal_autocheckpoint`, kept) checkpoints from the connection whose
//! commit took the log past 1 000 pages: that commit, and every delivery waiting on it, pays
//! for copying those pages and syncing the database file. Here a task copies the new pages
//! after every commit, on another connection and thread, in `PASSIVE` mode (it never waits
//! for, or holds up, the writer or a reader). When the writer's own checkpoint comes due, the
//! pages are already copied, and it only has to restart the log, which keeps the log's size
//! bounded exactly as before.
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Least time between two checkpoints: under load one checkpoint copies many commits' pages.
const PAUSE: Duration = Duration::from_millis(5);

/// The checkpointing task of one SQLite pool; stopped when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn start(db: DatabaseConnection) -> Checkpointer {
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(db, wake.clone()));
        Checkpointer { wake, task }
    }

    /// Something was committed: checkpoint it soon.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs until the [`Checkpointer`] is dropped. A checkpoint that fails (no pooled connection
/// free within the pool's timeout, the pool closed) is skipped, not retried: the next commit
/// wakes the task again, and SQLite's own checkpoints still run in the writer's commits.
async fn run(db: DatabaseConnection, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        if let Err(e) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::debug!(error = %e, "background checkpoint skipped");
        }
        tokio::time::sleep(PAUSE).await;
    }
}
