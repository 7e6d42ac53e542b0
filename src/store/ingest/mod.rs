//! Durable ingestion with group commit: what a delivery is, and the writer that commits it.
//!
//! - `writer`: one task batches concurrent deliveries into one transaction and answers each only
//!   after that transaction has committed (on PostgreSQL several batches can be in flight, each
//!   in its own transaction: `--write-batches`); a failed batch is retried delivery by delivery.
//! - `plan`: which deliveries of a batch can be written together, with a few statements for the
//!   whole batch (the backend's batch writer, behind `store::dialect`).
//! - `apply`: the per-delivery path: log row, event, fold, revision, rollup upkeep.
mod apply;
mod plan;
mod writer;

use chrono::{DateTime, Utc};

use crate::domain::CallEvent;

pub(crate) use apply::{
    all_events_new, applied_event, first_difference, ids_in_row_order, skip_stored_event,
};
pub(crate) use writer::write_fault;
pub use writer::{Drained, Ingestor, WriterObserver, WriterStats};

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
