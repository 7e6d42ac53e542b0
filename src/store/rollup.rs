//! The `call_buckets` rollup: concluded calls pre-aggregated per 15-minute UTC bucket and direction.
//! Each bucket also has a row with direction `*`: its calls of every direction, so a question
//! that does not split or filter by direction reads one row per bucket instead of two.
//!
//! Every UTC offset in use is a whole number of quarter hours, so a local hour, day, week or
//! month in any zone is a union of whole 15-minute UTC buckets. Statistics over time
//! buckets that need only additive measures (plus min/max) and filter only on `endedAt` (on
//! quarter-hour bounds) and direction are answered from ~35 000 bucket rows a year instead
//! of every call.
//!
//! The table is kept exactly equal to aggregating `calls`, in the transaction that writes
//! the call: a newly concluded call is added to its bucket (an upsert); a concluded call
//! that changes has the buckets it left and entered recomputed from `calls` (rare, and
//! exact for min/max too). The migration that creates the table fills it from the calls
//! already stored; `calltrail seed` rebuilds it after loading.
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{call, call_bucket};
use sea_orm::ActiveValue;
use sea_orm::sea_query::{Alias, Expr, OnConflict};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryResult, Statement,
    Value,
};

use super::{Store, internal, pow2_chunks, unavailable};
use crate::domain::stats::{
    Aggregates, Dimension, KeyPart, MAX_GROUPS, OffsetSegment, Period, StatsGroup, StatsRequest,
    offset_segments,
};
use crate::domain::{CallFilter, Direction};
use crate::error::AppError;

/// Length of one bucket, in seconds.
pub const BUCKET_SECONDS: i64 = 900;

/// The `direction` of a bucket's every-direction row.
const ALL_DIRECTIONS: &str = "*";

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
            missed: status == "MISSED",
            rejected: status == "REJECT",
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
            recompute(txn, left.bucket_start).await?;
            match entered {
                Some(e) if e.bucket_start != left.bucket_start => {
                    recompute(txn, e.bucket_start).await
                }
                _ => Ok(()),
            }
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

/// What many new call rows add to the rollup, as bucket rows with distinct keys, to be merged
/// into the stored ones with [`MERGE`] (PostgreSQL's batch writes it in the same statement as
/// the calls).
pub(crate) fn new_call_sums(new: &[call::ActiveModel]) -> Vec<call_bucket::Model> {
    let added: Vec<Contribution> = new.iter().filter_map(Contribution::of_active).collect();
    sums(&added)
}

/// Most bucket rows in one upsert: ten bound values a row, well under SQLite's 32 766 and
/// PostgreSQL's 65 535 parameters.
const UPSERT_ROWS: usize = 3_000;

/// How an upsert combines a bucket row with the stored one of the same key, column by column:
/// counts and sums add, min and max compare. `call_buckets` is the stored row, `excluded` the
/// new one.
pub(crate) const MERGE: [(&str, &str); 8] = [
    ("calls", "call_buckets.calls + excluded.calls"),
    (
        "total_duration_seconds",
        "call_buckets.total_duration_seconds + excluded.total_duration_seconds",
    ),
    (
        "min_duration_seconds",
        "CASE WHEN excluded.min_duration_seconds < call_buckets.min_duration_seconds \
         THEN excluded.min_duration_seconds ELSE call_buckets.min_duration_seconds END",
    ),
    (
        "max_duration_seconds",
        "CASE WHEN excluded.max_duration_seconds > call_buckets.max_duration_seconds \
         THEN excluded.max_duration_seconds ELSE call_buckets.max_duration_seconds END",
    ),
    (
        "with_recording",
        "call_buckets.with_recording + excluded.with_recording",
    ),
    ("answered", "call_buckets.answered + excluded.answered"),
    ("missed", "call_buckets.missed + excluded.missed"),
    ("rejected", "call_buckets.rejected + excluded.rejected"),
];

/// Adds contributions to their buckets.
async fn add(txn: &DatabaseTransaction, added: &[Contribution]) -> Result<(), AppError> {
    let rows = sums(added);
    for chunk in pow2_chunks(&rows, UPSERT_ROWS) {
        upsert(txn, chunk).await?;
    }
    Ok(())
}

/// Contributions summed per bucket key, exactly as [`MERGE`] combines a row with the stored
/// one, so no statement touches a key twice (PostgreSQL refuses that in one
/// `ON CONFLICT DO UPDATE`). Ordered by key, so concurrent writers lock bucket rows in the
/// same order.
fn sums(added: &[Contribution]) -> Vec<call_bucket::Model> {
    let flag = |b: bool| i64::from(b);
    let mut sums: BTreeMap<(i64, String), call_bucket::Model> = BTreeMap::new();
    let keys = added.iter().flat_map(|c| {
        [c.direction.clone(), ALL_DIRECTIONS.to_owned()]
            .map(|direction| (c, (c.bucket_start, direction)))
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
                        bucket_start: c.bucket_start,
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

/// One multi-row upsert of bucket sums with distinct keys.
async fn upsert(txn: &DatabaseTransaction, rows: &[call_bucket::Model]) -> Result<(), AppError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut on_conflict = OnConflict::columns([
        call_bucket::Column::BucketStart,
        call_bucket::Column::Direction,
    ]);
    for (column, merged) in MERGE {
        on_conflict.value(Alias::new(column), Expr::cust(merged));
    }
    call_bucket::Entity::insert_many(rows.iter().cloned().map(call_bucket::ActiveModel::from))
        .on_conflict(on_conflict)
        .exec_without_returning(txn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The measures of a set of calls, as SQL over `calls`.
const MEASURES: &str = "COUNT(*), CAST(SUM(duration_seconds) AS BIGINT), \
    MIN(duration_seconds), MAX(duration_seconds), \
    SUM(CASE WHEN recording_url IS NOT NULL THEN 1 ELSE 0 END), \
    SUM(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END), \
    SUM(CASE WHEN status = 'MISSED' THEN 1 ELSE 0 END), \
    SUM(CASE WHEN status = 'REJECT' THEN 1 ELSE 0 END)";

const COLUMNS: &str = "bucket_start, direction, calls, total_duration_seconds, \
    min_duration_seconds, max_duration_seconds, with_recording, answered, missed, rejected";

/// Replaces bucket `start`'s rows by aggregating the calls that ended in it.
async fn recompute(txn: &DatabaseTransaction, start: i64) -> Result<(), AppError> {
    let backend = txn.get_database_backend();
    let p = |i: usize| placeholder(backend, i);
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("DELETE FROM call_buckets WHERE bucket_start = {}", p(1)),
        [start.into()],
    ))
    .await
    .map_err(unavailable)?;
    let from = DateTime::<Utc>::from_timestamp(start, 0)
        .ok_or_else(|| AppError::Internal(format!("bucket {start} out of range")))?;
    let to = from + Duration::seconds(BUCKET_SECONDS);
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
                "INSERT INTO call_buckets ({COLUMNS}) SELECT {}, {direction}, {MEASURES} \
                 FROM calls WHERE ended_at IS NOT NULL AND ended_at >= {} AND ended_at < {} \
                 {grouping}",
                p(1),
                p(2),
                p(3)
            ),
            [start.into(), from.into(), to.into()],
        ))
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

fn placeholder(backend: DatabaseBackend, i: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("${i}"),
        _ => "?".to_owned(),
    }
}

/// Whole epoch seconds of `ended_at`, as SQL.
fn epoch_seconds(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM ended_at)) AS BIGINT)",
        _ => "CAST(strftime('%s', ended_at) AS INTEGER)",
    }
}

impl Store {
    /// Rebuilds the whole rollup from `calls` (after a bulk load).
    pub async fn rebuild_rollup(&self) -> Result<(), AppError> {
        let backend = self.backend();
        let epoch = epoch_seconds(backend);
        let txn = sea_orm::TransactionTrait::begin(&self.db)
            .await
            .map_err(unavailable)?;
        txn.execute_unprepared("DELETE FROM call_buckets")
            .await
            .map_err(unavailable)?;
        txn.execute_unprepared(&format!(
            "INSERT INTO call_buckets ({COLUMNS}) SELECT ({epoch} / {BUCKET_SECONDS}) * {BUCKET_SECONDS} AS b, \
             COALESCE(direction, '') AS dir, {MEASURES} FROM calls WHERE ended_at IS NOT NULL \
             GROUP BY b, dir"
        ))
        .await
        .map_err(unavailable)?;
        // The every-direction rows from the per-direction rows just written (a few rows
        // per bucket), instead of a second pass over the calls.
        txn.execute_unprepared(&format!(
            "INSERT INTO call_buckets ({COLUMNS}) SELECT bucket_start, '{ALL_DIRECTIONS}', \
             SUM(calls), SUM(total_duration_seconds), MIN(min_duration_seconds), \
             MAX(max_duration_seconds), SUM(with_recording), SUM(answered), SUM(missed), \
             SUM(rejected) FROM call_buckets GROUP BY bucket_start"
        ))
        .await
        .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)?;
        Ok(())
    }

    /// When the rollup can answer `request`, the zone's offsets over the span of its
    /// buckets (what [`Store::bucket_plan`] would find from the calls, found from the
    /// buckets instead); `None` when it cannot.
    pub async fn rollup_segments(
        &self,
        request: &StatsRequest,
    ) -> Result<Option<Vec<OffsetSegment>>, AppError> {
        if !answerable(request) {
            return Ok(None);
        }
        let backend = self.backend();
        let (condition, values) = bucket_condition(backend, request, 1);
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                // Two subqueries: each is one index probe, where MIN and MAX together scan the range.
                format!(
                    "SELECT (SELECT MIN(bucket_start) FROM call_buckets WHERE {condition}), \
                     (SELECT MAX(bucket_start) FROM call_buckets WHERE {condition})"
                ),
                // PostgreSQL's numbered parameters serve both; SQLite's `?` are positional.
                if backend == DatabaseBackend::Postgres {
                    values
                } else {
                    [values.clone(), values].concat()
                },
            ))
            .await
            .map_err(unavailable)?;
        let span = match rows.first() {
            Some(r) => (
                r.try_get_by_index::<Option<i64>>(0).map_err(internal)?,
                r.try_get_by_index::<Option<i64>>(1).map_err(internal)?,
            ),
            None => (None, None),
        };
        let segments = match span {
            (Some(lo), Some(hi)) => offset_segments(request.time_zone, lo, hi + BUCKET_SECONDS - 1),
            _ => Vec::new(),
        };
        Ok(quarter_hour_aligned(&segments).then_some(segments))
    }

    /// The groups of `request` computed from the rollup, before zero-filling and sorting;
    /// `None` when the rollup cannot answer it exactly (the caller then reads `calls`).
    pub async fn rollup_groups(
        &self,
        request: &StatsRequest,
        segments: &[OffsetSegment],
    ) -> Result<Option<Vec<StatsGroup>>, AppError> {
        if !answerable(request) || !quarter_hour_aligned(segments) {
            return Ok(None);
        }
        let backend = self.backend();
        let offset = super::stats::offset_case(segments, "bucket_start");
        let local = format!("(bucket_start + {offset})");
        let mut keys = Vec::new();
        for dimension in &request.group_by {
            keys.push(match dimension.period() {
                Some(Period::Hour) => {
                    format!("(bucket_start - ((({local} % 3600) + 3600) % 3600))")
                }
                // Months are summed from days in the service: a month is whole local days.
                Some(Period::Day | Period::Month) => format!("({local} / 86400)"),
                Some(Period::Week) => format!("(({local} / 86400 + 3) / 7)"),
                None => "direction".to_owned(),
            });
        }
        let (condition, values) = bucket_condition(backend, request, 1);
        let key_list: Vec<String> = (0..keys.len()).map(|i| format!("g{i}")).collect();
        let select_keys: String = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS g{i}, "))
            .collect();
        let group = if keys.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", key_list.join(", "))
        };
        // Only the measures the asker reads: on a year of buckets the eight sums together cost
        // about as much as the scan (SQLite: 41–46 ms with all eight, 26–27 ms with three).
        let m = request.measures;
        let sum = |wanted: bool, column: &str| {
            if wanted {
                format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT)")
            } else {
                "CAST(0 AS BIGINT)".to_owned()
            }
        };
        let (min, max) = if m.min_max_duration {
            ("MIN(min_duration_seconds)", "MAX(max_duration_seconds)")
        } else {
            ("CAST(NULL AS BIGINT)", "CAST(NULL AS BIGINT)")
        };
        let sql = format!(
            "SELECT {select_keys}{}, {}, {min}, {max}, {}, {}, {}, {} \
             FROM call_buckets WHERE {condition}{group}",
            sum(true, "calls"),
            sum(m.total_duration, "total_duration_seconds"),
            sum(m.with_recording, "with_recording"),
            sum(m.answered, "answered"),
            sum(m.missed, "missed"),
            sum(m.rejected, "rejected"),
        );
        let statement = Statement::from_sql_and_values(backend, sql, values);
        let rows = if backend == DatabaseBackend::Postgres && !keys.is_empty() {
            // PostgreSQL cannot estimate how many groups a computed key makes; it assumes
            // one per bucket, finds no room for a hash table in the default 4 MB, and sorts
            // the buckets on disk. A year's few hundred groups hash in well under 32 MB.
            let txn = sea_orm::TransactionTrait::begin(&self.db)
                .await
                .map_err(unavailable)?;
            txn.execute_unprepared("SET LOCAL work_mem = '32MB'")
                .await
                .map_err(unavailable)?;
            let rows = txn.query_all_raw(statement).await.map_err(unavailable)?;
            txn.commit().await.map_err(unavailable)?;
            rows
        } else {
            self.db
                .query_all_raw(statement)
                .await
                .map_err(unavailable)?
        };
        let mut merged: HashMap<Vec<KeyPart>, Aggregates> = HashMap::new();
        for row in &rows {
            let (key, aggregates) = read_row(row, &request.group_by)?;
            let entry = merged.entry(key).or_default();
            entry.absorb(&aggregates);
        }
        if merged.len() > MAX_GROUPS {
            return Err(AppError::bad_input(
                "groupBy",
                format!(
                    "more than {MAX_GROUPS} groups; narrow the filter or group by fewer dimensions"
                ),
            ));
        }
        let groups = merged
            .into_iter()
            .map(|(key, aggregates)| StatsGroup { key, aggregates })
            .collect();
        Ok(Some(groups))
    }
}

/// Whether the rollup holds what `request` needs: time buckets and direction as the only
/// dimensions, `endedAt` on quarter-hour bounds and direction as the only filters, and no
/// short/long thresholds (those need each call's duration).
fn answerable(request: &StatsRequest) -> bool {
    let dimensions_ok = request
        .group_by
        .iter()
        .all(|d| d.period().is_some() || *d == Dimension::Direction);
    let on_quarter = |t: Option<DateTime<Utc>>| {
        t.is_none_or(|t| {
            t.timestamp().rem_euclid(BUCKET_SECONDS) == 0 && t.timestamp_subsec_nanos() == 0
        })
    };
    let filter_ok = CallFilter {
        ended_at: request.filter.ended_at,
        direction: request.filter.direction,
        ..CallFilter::default()
    } == request.filter
        && request
            .filter
            .ended_at
            .is_none_or(|r| on_quarter(r.from) && on_quarter(r.to));
    dimensions_ok
        && filter_ok
        && request.short_call_seconds.is_none()
        && request.long_call_seconds.is_none()
}

/// Whether every offset and transition falls on a quarter hour, so no bucket straddles two offsets.
fn quarter_hour_aligned(segments: &[OffsetSegment]) -> bool {
    segments.iter().enumerate().all(|(i, s)| {
        s.offset_seconds.rem_euclid(BUCKET_SECONDS) == 0
            && (i == 0 || s.from.rem_euclid(BUCKET_SECONDS) == 0)
    })
}

/// `bucket_start` within the `endedAt` range, and the rows of the asked direction: the
/// every-direction rows unless the request filters or groups by direction. Bound values are
/// numbered from `$first`.
fn bucket_condition(
    backend: DatabaseBackend,
    request: &StatsRequest,
    first: usize,
) -> (String, Vec<Value>) {
    let filter = &request.filter;
    let mut parts = vec!["calls > 0".to_owned()];
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |sql: &str, value: Value, parts: &mut Vec<String>| {
        parts.push(format!(
            "{sql} {}",
            placeholder(backend, first + values.len())
        ));
        values.push(value);
    };
    if let Some(range) = filter.ended_at {
        if let Some(from) = range.from {
            bind("bucket_start >=", from.timestamp().into(), &mut parts);
        }
        if let Some(to) = range.to {
            bind("bucket_start <", to.timestamp().into(), &mut parts);
        }
    }
    if let Some(direction) = filter.direction {
        bind(
            "direction =",
            Direction::as_wire(direction).into(),
            &mut parts,
        );
    } else if request.group_by.contains(&Dimension::Direction) {
        parts.push(format!("direction <> '{ALL_DIRECTIONS}'"));
    } else {
        parts.push(format!("direction = '{ALL_DIRECTIONS}'"));
    }
    (parts.join(" AND "), values)
}

fn read_row(
    row: &QueryResult,
    group_by: &[Dimension],
) -> Result<(Vec<KeyPart>, Aggregates), AppError> {
    let mut key = Vec::with_capacity(group_by.len());
    for (i, dimension) in group_by.iter().enumerate() {
        key.push(match dimension.period() {
            Some(Period::Month) => {
                let day: i64 = row.try_get_by_index(i).map_err(internal)?;
                KeyPart::Bucket(month_of_day(day))
            }
            Some(_) => KeyPart::Bucket(row.try_get_by_index(i).map_err(internal)?),
            None => {
                let direction: String = row.try_get_by_index(i).map_err(internal)?;
                KeyPart::Text((!direction.is_empty()).then_some(direction))
            }
        });
    }
    let aggregates = super::stats::read_aggregates(row, group_by.len())?;
    Ok((key, aggregates))
}

/// The `Month` key (`year * 12 + month - 1`) of a local day number.
fn month_of_day(day: i64) -> i64 {
    use chrono::Datelike;
    let date = NaiveDate::default() + Duration::days(day);
    i64::from(date.year()) * 12 + i64::from(date.month0())
}
