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

/// Where a recording stands as readers are shown it (GraphQL's `RecordingState`, the exports'
/// `recordingState`): the queue's state, read with whether recordings are fetched at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shown {
    NotConfigured,
    Pending,
    Archived,
    Retrying,
    Failed,
    Gone,
}

impl Shown {
    pub const ALL: [Shown; 6] = [
        Shown::NotConfigured,
        Shown::Pending,
        Shown::Archived,
        Shown::Retrying,
        Shown::Failed,
        Shown::Gone,
    ];

    /// The state shown for a job in `state` (none when never queued), given whether recordings
    /// are fetched at all.
    pub fn of(state: Option<JobState>, archiving: bool) -> Shown {
        match state {
            Some(JobState::Archived) => Shown::Archived,
            Some(JobState::Failed) => Shown::Failed,
            Some(JobState::Gone) => Shown::Gone,
            _ if !archiving => Shown::NotConfigured,
            Some(JobState::Retrying) => Shown::Retrying,
            Some(JobState::Pending) | None => Shown::Pending,
        }
    }

    /// The job states shown as this state, given whether recordings are fetched.
    pub fn job_states(self, archiving: bool) -> Vec<JobState> {
        match self {
            Shown::Archived => vec![JobState::Archived],
            Shown::Failed => vec![JobState::Failed],
            Shown::Gone => vec![JobState::Gone],
            Shown::Pending if archiving => vec![JobState::Pending],
            Shown::Retrying if archiving => vec![JobState::Retrying],
            Shown::NotConfigured if !archiving => vec![JobState::Pending, JobState::Retrying],
            Shown::Pending | Shown::Retrying | Shown::NotConfigured => Vec::new(),
        }
    }

    /// The job states of any of `shown`, sorted, each once: a filter's `recording_states`.
    pub fn filter(shown: &[Shown], archiving: bool) -> Vec<JobState> {
        let mut jobs: Vec<JobState> = shown.iter().flat_map(|s| s.job_states(archiving)).collect();
        jobs.sort_by_key(|s| s.as_str());
        jobs.dedup();
        jobs
    }

    /// GraphQL's name of the state (`NOT_CONFIGURED`, `ARCHIVED`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Shown::NotConfigured => "NOT_CONFIGURED",
            Shown::Pending => "PENDING",
            Shown::Archived => "ARCHIVED",
            Shown::Retrying => "RETRYING",
            Shown::Failed => "FAILED",
            Shown::Gone => "GONE",
        }
    }

    pub fn from_name(name: &str) -> Option<Shown> {
        Shown::ALL.into_iter().find(|s| s.name() == name)
    }
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

impl RecordingStatus {
    /// Why the last attempt failed, or why nothing is fetched (`archiving`: a DoubleTick key is
    /// configured); never the key nor the link. GraphQL's `Recording.lastError`.
    pub fn last_error_shown(&self, archiving: bool) -> Option<String> {
        match (&self.last_error, self.state) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(JobState::Archived)) => None,
            (None, _) if !archiving => Some(
                "not archived: no DoubleTick API key is configured (--doubletick-api-key)".into(),
            ),
            (None, _) => None,
        }
    }
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
