//! A call's recording as calltrail keeps it: where its archiving stands, and what was archived.
use chrono::{DateTime, Utc};

/// Where the archiving of one recording link stands (the archive queue's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Queued, not tried yet.
    Pending,
    /// Tried, failed in a way a later try may fix; tried again after a back-off.
    Retrying,
    /// The bytes are in the object store.
    Archived,
    /// Given up: not audio, too large, refused, or the retry window passed.
    Failed,
    /// DoubleTick answered 404 or 410: the recording is no longer there.
    Gone,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Retrying,
        JobState::Archived,
        JobState::Failed,
        JobState::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Retrying => "retrying",
            JobState::Archived => "archived",
            JobState::Failed => "failed",
            JobState::Gone => "gone",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether a worker may still pick the job up.
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Pending | JobState::Retrying)
    }
}

/// What was archived of a recording: the evidence row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archived {
    pub call_id: String,
    /// DoubleTick's link it was fetched from (without the key).
    pub url: String,
    /// Hex SHA-256 of the bytes; also the object's name.
    pub sha256: String,
    pub bytes: i64,
    pub content_type: String,
    pub archived_at: DateTime<Utc>,
}

/// A call's current recording link and how its archiving stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingStatus {
    pub call_id: String,
    pub url: String,
    /// `None` when the link was never queued (a call stored before archiving existed, until
    /// `calltrail recordings backfill`).
    pub state: Option<JobState>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub archived: Option<Archived>,
}

/// One queued archive job, as a worker holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveJob {
    pub id: i64,
    pub call_id: String,
    pub url: String,
    /// Including the attempt now being made.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// How a fetch attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Archived {
        sha256: String,
        bytes: i64,
        content_type: String,
    },
    /// Worth trying again later (a timeout, a 5xx, a dropped connection).
    Retry(String),
    /// 404/410.
    Gone(String),
    /// Never worth trying again (not audio, too large, another 4xx).
    Failed(String),
}
