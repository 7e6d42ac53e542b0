//! The archive queue (`recording_jobs`) and the evidence of archived recordings
//! (`recordings`, append-only): queueing inside the webhook writer's transaction, claims by
//! workers, outcomes, and the reads of GraphQL, playback and `calltrail recordings`.
use chrono::{DateTime, Utc};
use entity::{recording, recording_job};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use super::Store;
use super::dialect::Dialect;
use super::error::{db_error, write_error};
use crate::domain::recording::{ArchiveJob, Archived, JobState, RecordingStatus};
use crate::error::AppError;

/// The insert that queues, for each call row it selects, the call's recording link, unless
/// that link is queued already (a changed link is a new job; earlier ones stay).
fn queue_sql(where_clause: &str, now: &str) -> String {
    format!(
        "INSERT INTO recording_jobs (call_id, url, state, attempts, next_attempt_at, created_at, updated_at) \
         SELECT call_id, recording_url, '{pending}', 0, {now}, {now}, {now} FROM calls \
         WHERE recording_url IS NOT NULL AND recording_url <> '' AND {where_clause} \
         ON CONFLICT (call_id, url) DO NOTHING",
        pending = JobState::Pending.as_str(),
    )
}

/// Queues the recording links of `call_ids` inside the webhook writer's transaction, after
/// their deliveries were applied: the job commits with the call, or neither does.
pub(crate) async fn queue_for_calls(
    dialect: Dialect,
    txn: &DatabaseTransaction,
    call_ids: &[&str],
) -> Result<(), AppError> {
    if call_ids.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = call_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let now = Utc::now();
    // SQLite's `?` binds in order: the three `now`s come first in the statement.
    let mut values: Vec<Value> = Vec::with_capacity(ids.len() + 3);
    let (now_sql, first_id) = match dialect {
        Dialect::Postgres => {
            values.push(now.into());
            ("$1".to_owned(), 2)
        }
        Dialect::Sqlite => {
            values.extend([now.into(), now.into(), now.into()]);
            ("?".to_owned(), 4)
        }
    };
    let list: Vec<String> = (0..ids.len())
        .map(|i| dialect.placeholder(first_id + i))
        .collect();
    values.extend(ids.iter().map(|id| Value::from(*id)));
    let sql = queue_sql(&format!("call_id IN ({})", list.join(", ")), &now_sql);
    txn.execute_raw(Statement::from_sql_and_values(
        dialect.backend(),
        sql,
        values,
    ))
    .await
    .map_err(write_error)?;
    Ok(())
}

/// Size of the archive queue, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// Jobs waiting for a worker (pending or retrying).
    pub open: u64,
    /// When the oldest of them was queued.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct ClaimedRow {
    id: i64,
    call_id: String,
    url: String,
    attempts: i32,
    created_at: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct BacklogRow {
    open: i64,
    oldest: Option<DateTime<Utc>>,
}

impl Store {
    /// Queues the recording link of every stored call that has none queued yet (calls stored
    /// before archiving existed); returns how many were queued.
    pub async fn backfill_recordings(&self) -> Result<u64, AppError> {
        let p = self.dialect.placeholder(1);
        let now = Utc::now();
        let values: Vec<Value> = match self.dialect {
            Dialect::Postgres => vec![now.into()],
            Dialect::Sqlite => vec![now.into(), now.into(), now.into()],
        };
        let txn = self.begin_write().await.map_err(write_error)?;
        let done = txn
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                queue_sql("ended_at IS NOT NULL", &p),
                values,
            ))
            .await
            .map_err(write_error)?;
        txn.commit().await.map_err(write_error)?;
        self.committed();
        Ok(done.rows_affected())
    }

    /// Takes the next due job for a worker until `leased_until` (counting the attempt), or
    /// `None` when no job is due. A job whose worker died is due again once its lease passed.
    pub async fn claim_recording_job(
        &self,
        leased_until: DateTime<Utc>,
    ) -> Result<Option<ArchiveJob>, AppError> {
        let d = self.dialect;
        let p = |i| d.placeholder(i);
        let now = Utc::now();
        let sql = format!(
            "UPDATE recording_jobs SET leased_until = {}, attempts = attempts + 1, updated_at = {} \
             WHERE id = (SELECT id FROM recording_jobs \
               WHERE state IN ('{}', '{}') AND next_attempt_at <= {} \
               AND (leased_until IS NULL OR leased_until < {}) \
               ORDER BY next_attempt_at, id LIMIT 1{}) \
             RETURNING id, call_id, url, attempts, created_at",
            p(1),
            p(2),
            JobState::Pending.as_str(),
            JobState::Retrying.as_str(),
            p(3),
            p(4),
            d.skip_locked(),
        );
        let values: Vec<Value> = vec![leased_until.into(), now.into(), now.into(), now.into()];
        // Idle workers look on the readers' pool first: no write transaction (on SQLite, no
        // turn of the one writer connection the webhook writer uses) while nothing is due.
        let due = format!(
            "SELECT id FROM recording_jobs WHERE state IN ('{}', '{}') AND next_attempt_at <= {} \
             AND (leased_until IS NULL OR leased_until < {}) LIMIT 1",
            JobState::Pending.as_str(),
            JobState::Retrying.as_str(),
            p(1),
            p(2),
        );
        let any = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                d.backend(),
                due,
                [now.into(), now.into()],
            ))
            .await
            .map_err(db_error)?;
        if any.is_none() {
            return Ok(None);
        }
        let txn = self.begin_write().await.map_err(write_error)?;
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(d.backend(), sql, values))
            .await
            .map_err(write_error)?;
        txn.commit().await.map_err(write_error)?;
        self.committed();
        let Some(row) = row else { return Ok(None) };
        let row = ClaimedRow::from_query_result(&row, "").map_err(db_error)?;
        Ok(Some(ArchiveJob {
            id: row.id,
            call_id: row.call_id,
            url: row.url,
            attempts: row.attempts,
            created_at: row.created_at,
        }))
    }

    /// Records an archived job: the evidence row (once per call and link, whatever retries
    /// or instances do) and the job's state, in one transaction.
    pub async fn record_archived(
        &self,
        job: &ArchiveJob,
        sha256: &str,
        bytes: i64,
        content_type: &str,
    ) -> Result<(), AppError> {
        let now = Utc::now();
        let txn = self.begin_write().await.map_err(write_error)?;
        recording::Entity::insert(recording::ActiveModel {
            call_id: Set(job.call_id.clone()),
            url: Set(job.url.clone()),
            sha256: Set(sha256.to_owned()),
            bytes: Set(bytes),
            content_type: Set(content_type.to_owned()),
            archived_at: Set(now),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([recording::Column::CallId, recording::Column::Url])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(write_error)?;
        recording_job::Entity::update_many()
            .col_expr(
                recording_job::Column::State,
                JobState::Archived.as_str().into(),
            )
            .col_expr(
                recording_job::Column::LeasedUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(
                recording_job::Column::LastError,
                Option::<String>::None.into(),
            )
            .col_expr(recording_job::Column::UpdatedAt, now.into())
            .filter(recording_job::Column::Id.eq(job.id))
            .exec(&txn)
            .await
            .map_err(write_error)?;
        txn.commit().await.map_err(write_error)?;
        self.committed();
        Ok(())
    }

    /// Records a failed attempt: `state` (retrying, failed or gone), why, and when to try next.
    pub async fn record_attempt_failed(
        &self,
        job: &ArchiveJob,
        state: JobState,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let now = Utc::now();
        recording_job::Entity::update_many()
            .col_expr(recording_job::Column::State, state.as_str().into())
            .col_expr(
                recording_job::Column::LeasedUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(
                recording_job::Column::LastError,
                Some(error.to_owned()).into(),
            )
            .col_expr(recording_job::Column::NextAttemptAt, next_attempt_at.into())
            .col_expr(recording_job::Column::UpdatedAt, now.into())
            .filter(recording_job::Column::Id.eq(job.id))
            .exec(&self.writer)
            .await
            .map_err(write_error)?;
        self.committed();
        Ok(())
    }

    /// Gives a job back unfinished (its worker is stopping): due again at once, the attempt
    /// not counted.
    pub async fn release_recording_job(&self, job: &ArchiveJob) -> Result<(), AppError> {
        recording_job::Entity::update_many()
            .col_expr(
                recording_job::Column::LeasedUntil,
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(
                recording_job::Column::Attempts,
                (job.attempts - 1).max(0).into(),
            )
            .filter(recording_job::Column::Id.eq(job.id))
            .exec(&self.writer)
            .await
            .map_err(write_error)?;
        self.committed();
        Ok(())
    }

    /// How a call's recording link stands: its job and, when archived, the evidence row.
    pub async fn recording_status(
        &self,
        call_id: &str,
        url: &str,
    ) -> Result<RecordingStatus, AppError> {
        let job = recording_job::Entity::find()
            .filter(recording_job::Column::CallId.eq(call_id))
            .filter(recording_job::Column::Url.eq(url))
            .one(&self.db)
            .await
            .map_err(db_error)?;
        let archived = recording::Entity::find()
            .filter(recording::Column::CallId.eq(call_id))
            .filter(recording::Column::Url.eq(url))
            .one(&self.db)
            .await
            .map_err(db_error)?
            .map(archived_from_model);
        let state =
            match &job {
                Some(job) => Some(JobState::parse(&job.state).ok_or_else(|| {
                    AppError::Internal(format!("unknown job state {}", job.state))
                })?),
                None => archived.as_ref().map(|_| JobState::Archived),
            };
        Ok(RecordingStatus {
            call_id: call_id.to_owned(),
            url: url.to_owned(),
            state,
            attempts: job.as_ref().map_or(0, |j| j.attempts),
            last_error: job.and_then(|j| j.last_error),
            archived,
        })
    }

    /// Archived recordings by id, `limit` at a time after `after` (for `recordings verify`).
    pub async fn archived_recordings(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Archived)>, AppError> {
        let rows = recording::Entity::find()
            .filter(recording::Column::Id.gt(after))
            .order_by_asc(recording::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|m| (m.id, archived_from_model(m)))
            .collect())
    }

    /// Jobs waiting for a worker and the age of the oldest, for metrics.
    pub async fn recording_backlog(&self) -> Result<Backlog, AppError> {
        let sql = format!(
            "SELECT COUNT(*) AS open, MIN(created_at) AS oldest FROM recording_jobs \
             WHERE state IN ('{}', '{}')",
            JobState::Pending.as_str(),
            JobState::Retrying.as_str()
        );
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.backend(), sql))
            .await
            .map_err(db_error)?
            .ok_or_else(|| AppError::Internal("no backlog row".into()))?;
        let row = BacklogRow::from_query_result(&row, "").map_err(db_error)?;
        Ok(Backlog {
            open: u64::try_from(row.open).unwrap_or(0),
            oldest_queued_at: row.oldest,
        })
    }
}

fn archived_from_model(m: recording::Model) -> Archived {
    Archived {
        call_id: m.call_id,
        url: m.url,
        sha256: m.sha256,
        bytes: m.bytes,
        content_type: m.content_type,
        archived_at: m.archived_at,
    }
}
