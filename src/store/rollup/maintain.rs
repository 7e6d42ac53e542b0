//! Keeping the rollup equal to `calls`: a new call upserted into its bucket in each tier, a
//! changed call's old and new buckets recomputed from `calls`, and the whole rollup rebuilt
//! after a bulk load.
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use entity::{call, call_bucket};
use migration::sql::{BUCKET_COLUMNS, STATUS_MISSED, STATUS_REJECTED, call_measures};
use sea_orm::ActiveValue;
use sea_orm::sea_query::{Alias, Expr, OnConflict};
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, QueryTrait, Statement, Value};

use super::{ALL_DIRECTIONS, BUCKET_SECONDS, HALF_HOURS, TIERS, Tier};
use crate::error::AppError;
use crate::store::dialect::Dialect;
use crate::store::error::{db_error, write_error};
use crate::store::{Store, pow2_chunks};

/// What one concluded call adds to its bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Contribution {
    bucket_start: i64,
    direction: String,
    duration: i64,
    recorded: bool,
    answered: bool,
    missed: bool,
    rejected: bool,
}

impl Contribution {
    fn of(
        ended_at: Option<DateTime<Utc>>,
        direction: Option<&str>,
        status: &str,
        started: bool,
        recorded: bool,
        duration: i64,
    ) -> Option<Contribution> {
        let ended = ended_at?.timestamp();
        Some(Contribution {
            bucket_start: ended.div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS,
            direction: direction.unwrap_or_default().to_owned(),
            duration,
            recorded,
            answered: started,
            missed: status == STATUS_MISSED,
            rejected: status == STATUS_REJECTED,
        })
    }

    fn of_model(m: &call::Model) -> Option<Contribution> {
        Contribution::of(
            m.ended_at,
            m.direction.as_deref(),
            &m.status,
            m.started_at.is_some(),
            m.recording_url.is_some(),
            m.duration_seconds,
        )
    }

    fn of_active(m: &call::ActiveModel) -> Option<Contribution> {
        fn set<T: Clone + Into<Value>>(v: &ActiveValue<T>) -> Option<T> {
            match v {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Some(v.clone()),
                ActiveValue::NotSet => None,
            }
        }
        Contribution::of(
            set(&m.ended_at).flatten(),
            set(&m.direction).flatten().as_deref(),
            &set(&m.status).unwrap_or_default(),
            set(&m.started_at).flatten().is_some(),
            set(&m.recording_url).flatten().is_some(),
            set(&m.duration_seconds).unwrap_or(0),
        )
    }
}

/// Keeps the rollup equal to `calls` after one call row went from `old` (none when new) to
/// `new`, inside the transaction that wrote it. Call it after the row is written.
pub(crate) async fn record_change(
    txn: &DatabaseTransaction,
    old: Option<&call::Model>,
    new: &call::ActiveModel,
) -> Result<(), AppError> {
    let before = old.and_then(Contribution::of_model);
    let after = Contribution::of_active(new);
    if before == after {
        return Ok(());
    }
    match (before, after) {
        (None, Some(added)) => add(txn, std::slice::from_ref(&added)).await,
        (Some(left), entered) => {
            for tier in TIERS {
                let mut starts = vec![tier.floor(left.bucket_start)];
                starts.extend(entered.as_ref().map(|e| tier.floor(e.bucket_start)));
                starts.sort_unstable();
                starts.dedup();
                for start in starts {
                    recompute(txn, tier, start).await?;
                }
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// Keeps the rollup equal to `calls` after many new call rows (none existed before) were
/// written in this transaction: what [`record_change`] does for each with `old = None`, in
/// one upsert per chunk.
pub(crate) async fn record_new_calls(
    txn: &DatabaseTransaction,
    new: &[call::ActiveModel],
) -> Result<(), AppError> {
    let added: Vec<Contribution> = new.iter().filter_map(Contribution::of_active).collect();
    add(txn, &added).await
}

/// What many new call rows add to each tier of the rollup (in [`TIERS`] order), as bucket
/// rows with distinct keys, to be merged into the stored ones with [`merge`] (PostgreSQL's
/// batch writes them in the same statement as the calls).
pub(crate) fn new_call_sums(new: &[call::ActiveModel]) -> [Vec<call_bucket::Model>; 2] {
    let added: Vec<Contribution> = new.iter().filter_map(Contribution::of_active).collect();
    TIERS.map(|tier| sums(&added, tier))
}

/// Most bucket rows in one upsert: ten bound values a row, well under SQLite's 32 766 and
/// PostgreSQL's 65 535 parameters.
const UPSERT_ROWS: usize = 3_000;

/// How an upsert into `table` combines a bucket row with the stored one of the same key,
/// column by column: counts and sums add, min and max compare. `table` is the stored row,
/// `excluded` the new one.
pub(crate) fn merge(table: &str) -> [(&'static str, String); 8] {
    let add = |c: &str| format!("{table}.{c} + excluded.{c}");
    let pick = |c: &str, op: &str| {
        format!("CASE WHEN excluded.{c} {op} {table}.{c} THEN excluded.{c} ELSE {table}.{c} END")
    };
    [
        ("calls", add("calls")),
        ("total_duration_seconds", add("total_duration_seconds")),
        ("min_duration_seconds", pick("min_duration_seconds", "<")),
        ("max_duration_seconds", pick("max_duration_seconds", ">")),
        ("with_recording", add("with_recording")),
        ("answered", add("answered")),
        ("missed", add("missed")),
        ("rejected", add("rejected")),
    ]
}

/// Adds contributions to their buckets, in each tier.
async fn add(txn: &DatabaseTransaction, added: &[Contribution]) -> Result<(), AppError> {
    for tier in TIERS {
        let rows = sums(added, tier);
        for chunk in pow2_chunks(&rows, UPSERT_ROWS) {
            upsert(txn, tier, chunk).await?;
        }
    }
    Ok(())
}

/// Contributions summed per bucket key of `tier`, exactly as [`merge`] combines a row with
/// the stored one, so no statement touches a key twice (PostgreSQL refuses that in one
/// `ON CONFLICT DO UPDATE`). Ordered by key, so concurrent writers lock bucket rows in the
/// same order.
fn sums(added: &[Contribution], tier: Tier) -> Vec<call_bucket::Model> {
    let flag = |b: bool| i64::from(b);
    let mut sums: BTreeMap<(i64, String), call_bucket::Model> = BTreeMap::new();
    let keys = added.iter().flat_map(|c| {
        [c.direction.clone(), ALL_DIRECTIONS.to_owned()]
            .map(|direction| (c, (tier.floor(c.bucket_start), direction)))
    });
    for (c, key) in keys {
        match sums.get_mut(&key) {
            Some(b) => {
                b.calls += 1;
                b.total_duration_seconds += c.duration;
                b.min_duration_seconds = b.min_duration_seconds.min(c.duration);
                b.max_duration_seconds = b.max_duration_seconds.max(c.duration);
                b.with_recording += flag(c.recorded);
                b.answered += flag(c.answered);
                b.missed += flag(c.missed);
                b.rejected += flag(c.rejected);
            }
            None => {
                sums.insert(
                    key.clone(),
                    call_bucket::Model {
                        bucket_start: key.0,
                        direction: key.1,
                        calls: 1,
                        total_duration_seconds: c.duration,
                        min_duration_seconds: c.duration,
                        max_duration_seconds: c.duration,
                        with_recording: flag(c.recorded),
                        answered: flag(c.answered),
                        missed: flag(c.missed),
                        rejected: flag(c.rejected),
                    },
                );
            }
        }
    }
    sums.into_values().collect()
}

/// One multi-row upsert of bucket sums with distinct keys into `tier`'s table.
async fn upsert(
    txn: &DatabaseTransaction,
    tier: Tier,
    rows: &[call_bucket::Model],
) -> Result<(), AppError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut on_conflict = OnConflict::columns([
        call_bucket::Column::BucketStart,
        call_bucket::Column::Direction,
    ]);
    for (column, merged) in merge(tier.table) {
        on_conflict.value(Alias::new(column), Expr::cust(merged));
    }
    let mut insert =
        call_bucket::Entity::insert_many(rows.iter().cloned().map(call_bucket::ActiveModel::from))
            .on_conflict(on_conflict)
            .into_query();
    insert.into_table(Alias::new(tier.table));
    txn.execute(&insert).await.map_err(write_error)?;
    Ok(())
}

/// The measures of a set of bucket rows, as SQL over a tier.
const ROLLED_UP: &str = "SUM(calls), SUM(total_duration_seconds), MIN(min_duration_seconds), \
    MAX(max_duration_seconds), SUM(with_recording), SUM(answered), SUM(missed), SUM(rejected)";

/// Replaces the rows of `tier`'s bucket `start` by aggregating the calls that ended in it.
async fn recompute(txn: &DatabaseTransaction, tier: Tier, start: i64) -> Result<(), AppError> {
    let backend = txn.get_database_backend();
    let dialect = Dialect::of_backend(backend);
    let p = |i: usize| dialect.placeholder(i);
    let measures = call_measures();
    let table = tier.table;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("DELETE FROM {table} WHERE bucket_start = {}", p(1)),
        [start.into()],
    ))
    .await
    .map_err(write_error)?;
    let from = DateTime::<Utc>::from_timestamp(start, 0)
        .ok_or_else(|| AppError::Internal(format!("bucket {start} out of range")))?;
    let to = from + Duration::seconds(tier.seconds);
    // One row per direction, then the bucket's every-direction row (none for an empty bucket).
    let rows = [
        (
            "COALESCE(direction, '')",
            "GROUP BY COALESCE(direction, '')",
        ),
        (&*format!("'{ALL_DIRECTIONS}'"), "HAVING COUNT(*) > 0"),
    ];
    for (direction, grouping) in rows {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO {table} ({BUCKET_COLUMNS}) SELECT {}, {direction}, {measures} \
                 FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} \
                 {grouping}",
                p(1),
                p(2),
                p(3)
            ),
            [start.into(), from.into(), to.into()],
        ))
        .await
        .map_err(write_error)?;
    }
    Ok(())
}

impl Store {
    /// Rebuilds the whole rollup, both tiers, from `calls` (after a bulk load).
    pub async fn rebuild_rollup(&self) -> Result<(), AppError> {
        let epoch = self.dialect().epoch_seconds("ended_at");
        let measures = call_measures();
        let txn = sea_orm::TransactionTrait::begin(&self.writer)
            .await
            .map_err(db_error)?;
        txn.execute_unprepared("DELETE FROM call_buckets")
            .await
            .map_err(db_error)?;
        txn.execute_unprepared(&format!(
            "INSERT INTO call_buckets ({BUCKET_COLUMNS}) SELECT ({epoch} / {BUCKET_SECONDS}) * {BUCKET_SECONDS} AS b, \
             COALESCE(direction, '') AS dir, {measures} FROM calls WHERE ended_at IS NOT NULL \
             GROUP BY b, dir"
        ))
        .await
        .map_err(db_error)?;
        // The every-direction rows from the per-direction rows just written (a few rows
        // per bucket), instead of a second pass over the calls.
        txn.execute_unprepared(&format!(
            "INSERT INTO call_buckets ({BUCKET_COLUMNS}) SELECT bucket_start, '{ALL_DIRECTIONS}', \
             {ROLLED_UP} FROM call_buckets GROUP BY bucket_start"
        ))
        .await
        .map_err(db_error)?;
        txn.execute_unprepared(&format!("DELETE FROM {}", HALF_HOURS.table))
            .await
            .map_err(db_error)?;
        txn.execute_unprepared(&format!(
            "INSERT INTO {} ({BUCKET_COLUMNS}) SELECT {} AS h, direction, {ROLLED_UP} \
             FROM call_buckets GROUP BY h, direction",
            HALF_HOURS.table,
            HALF_HOURS.floor_sql("bucket_start"),
        ))
        .await
        .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(())
    }
}
