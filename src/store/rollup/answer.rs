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
//! A second tier, `call_half_hours`, holds the same rows summed per 30 minutes. Nearly every
//! zone's offsets are whole half hours (New York, Kolkata, UTC; not Kathmandu's +05:45), and
//! for those, with bounds on half hours too, a question reads the half-hour tier: half the
//! rows.
//!
//! Both tiers are kept exactly equal to aggregating `calls`, in the transaction that writes
//! the call: a newly concluded call is added to its bucket in each tier (an upsert); a
//! concluded call that changes has the buckets it left and entered recomputed from `calls`
//! in each tier (rare, and exact for min/max too). Every writer locks the tiers' rows in one
//! order ([`TIERS`]). The migrations that create the tables fill them from what is already
//! stored; `calltrail seed` rebuilds both after loading.
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{call, call_bucket};
use sea_orm::ActiveValue;
use sea_orm::sea_query::{Alias, Expr, OnConflict};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryResult, QueryTrait,
    Statement, Value,
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

/// One tier of the rollup: a table of bucket rows (`call_bucket::Model`s) of one length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tier {
    pub table: &'static str,
    pub seconds: i64,
}

/// The 15-minute buckets, which every zone's offsets divide into.
pub(crate) const QUARTERS: Tier = Tier {
    table: "call_buckets",
    seconds: BUCKET_SECONDS,
};

/// The quarters summed per half hour: what zones with whole-half-hour offsets read.
pub(crate) const HALF_HOURS: Tier = Tier {
    table: "call_half_hours",
    seconds: 2 * BUCKET_SECONDS,
};

/// Both tiers, in the order every writer locks their rows: half hours first, then quarters,
/// each tier's rows by key. (PostgreSQL's batch statement runs its half-hour upsert first
/// too; two writers locking in opposite orders would deadlock.)
pub(crate) const TIERS: [Tier; 2] = [HALF_HOURS, QUARTERS];

impl Tier {
    /// The start of the bucket of this tier that holds `seconds`.
    fn floor(self, seconds: i64) -> i64 {
        seconds.div_euclid(self.seconds) * self.seconds
    }

    /// [`Tier::floor`] of `column`, as SQL (floored, not truncated, before 1970 too).
    fn floor_sql(self, column: &str) -> String {
        let n = self.seconds;
        format!("({column} - ((({column} % {n}) + {n}) % {n}))")
    }
}

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
    txn.execute(&insert).await.map_err(unavailable)?;
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

/// The measures of a set of bucket rows, as SQL over a tier.
const ROLLED_UP: &str = "SUM(calls), SUM(total_duration_seconds), MIN(min_duration_seconds), \
    MAX(max_duration_seconds), SUM(with_recording), SUM(answered), SUM(missed), SUM(rejected)";

/// Replaces the rows of `tier`'s bucket `start` by aggregating the calls that ended in it.
async fn recompute(txn: &DatabaseTransaction, tier: Tier, start: i64) -> Result<(), AppError> {
    let backend = txn.get_database_backend();
    let p = |i: usize| placeholder(backend, i);
    let table = tier.table;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("DELETE FROM {table} WHERE bucket_start = {}", p(1)),
        [start.into()],
    ))
    .await
    .map_err(unavailable)?;
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
                "INSERT INTO {table} ({COLUMNS}) SELECT {}, {direction}, {MEASURES} \
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
    /// Rebuilds the whole rollup, both tiers, from `calls` (after a bulk load).
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
             {ROLLED_UP} FROM call_buckets GROUP BY bucket_start"
        ))
        .await
        .map_err(unavailable)?;
        txn.execute_unprepared(&format!("DELETE FROM {}", HALF_HOURS.table))
            .await
            .map_err(unavailable)?;
        txn.execute_unprepared(&format!(
            "INSERT INTO {} ({COLUMNS}) SELECT {} AS h, direction, {ROLLED_UP} \
             FROM call_buckets GROUP BY h, direction",
            HALF_HOURS.table,
            HALF_HOURS.floor_sql("bucket_start"),
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
        Ok(aligned(&segments, QUARTERS).then_some(segments))
    }

    /// The groups of `request` computed from the rollup, before zero-filling and sorting;
    /// `None` when the rollup cannot answer it exactly (the caller then reads `calls`).
    pub async fn rollup_groups(
        &self,
        request: &StatsRequest,
        segments: &[OffsetSegment],
    ) -> Result<Option<Vec<StatsGroup>>, AppError> {
        let Some(tier) = tier_for(request, segments) else {
            return Ok(None);
        };
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
             FROM {} WHERE {condition}{group}",
            sum(true, "calls"),
            sum(m.total_duration, "total_duration_seconds"),
            sum(m.with_recording, "with_recording"),
            sum(m.answered, "answered"),
            sum(m.missed, "missed"),
            sum(m.rejected, "rejected"),
            tier.table,
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
    let filter_ok = CallFilter {
        ended_at: request.filter.ended_at,
        direction: request.filter.direction,
        ..CallFilter::default()
    } == request.filter;
    dimensions_ok
        && filter_ok
        && bounds_on(request, QUARTERS)
        && request.short_call_seconds.is_none()
        && request.long_call_seconds.is_none()
}

/// The coarsest tier whose buckets fit both the zone's offsets over `segments` and the
/// request's bounds; `None` when the rollup cannot answer `request`.
fn tier_for(request: &StatsRequest, segments: &[OffsetSegment]) -> Option<Tier> {
    if !answerable(request) {
        return None;
    }
    [HALF_HOURS, QUARTERS]
        .into_iter()
        .find(|&tier| aligned(segments, tier) && bounds_on(request, tier))
}

/// Whether the request's `endedAt` bounds, if any, fall on bucket starts of `tier`.
fn bounds_on(request: &StatsRequest, tier: Tier) -> bool {
    let on = |t: Option<DateTime<Utc>>| {
        t.is_none_or(|t| {
            t.timestamp().rem_euclid(tier.seconds) == 0 && t.timestamp_subsec_nanos() == 0
        })
    };
    request
        .filter
        .ended_at
        .is_none_or(|r| on(r.from) && on(r.to))
}

/// Whether every offset and transition falls on a bucket start of `tier`, so no bucket
/// straddles two offsets or two local days.
fn aligned(segments: &[OffsetSegment], tier: Tier) -> bool {
    segments.iter().enumerate().all(|(i, s)| {
        s.offset_seconds.rem_euclid(tier.seconds) == 0
            && (i == 0 || s.from.rem_euclid(tier.seconds) == 0)
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

#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;
    use crate::domain::TimeRange;

    fn request(zone: Tz, from: &str, to: &str) -> StatsRequest {
        StatsRequest {
            filter: CallFilter {
                ended_at: Some(TimeRange {
                    from: Some(from.parse().expect("instant")),
                    to: Some(to.parse().expect("instant")),
                }),
                ..CallFilter::default()
            },
            group_by: vec![Dimension::Day],
            time_zone: zone,
            short_call_seconds: None,
            long_call_seconds: None,
            measures: crate::domain::stats::Measures::ALL,
        }
    }

    fn tier(zone: Tz, from: &str, to: &str) -> Option<Tier> {
        let r = request(zone, from, to);
        let range = r.filter.ended_at.expect("range");
        let (from, to) = (range.from.expect("from"), range.to.expect("to"));
        let segments = offset_segments(zone, from.timestamp(), to.timestamp());
        tier_for(&r, &segments)
    }

    #[test]
    fn the_coarsest_tier_that_fits_the_zone_and_the_bounds_answers() {
        let year = ("2025-03-01T05:00:00Z", "2026-03-01T05:00:00Z");
        // Whole-hour and half-hour offsets, DST included: half hours.
        for zone in [Tz::America__New_York, Tz::Asia__Kolkata, Tz::UTC] {
            assert_eq!(tier(zone, year.0, year.1), Some(HALF_HOURS), "{zone}");
        }
        // +05:45: quarters.
        assert_eq!(tier(Tz::Asia__Kathmandu, year.0, year.1), Some(QUARTERS));
        // A bound on a quarter that is not a half hour: quarters.
        assert_eq!(
            tier(Tz::America__New_York, "2025-03-01T05:15:00Z", year.1),
            Some(QUARTERS)
        );
        assert_eq!(
            tier(Tz::America__New_York, year.0, "2026-03-01T04:45:00Z"),
            Some(QUARTERS)
        );
        // A bound inside a quarter: no tier; the calls answer.
        assert_eq!(
            tier(Tz::America__New_York, "2025-03-01T05:05:00Z", year.1),
            None
        );
    }
}
