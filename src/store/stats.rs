//! Call statistics, aggregated in the database: groups, counts, percentiles, histograms.
//!
//! Every query is `WITH base AS (<filtered calls, one row each with its group key>)`
//! followed by a `GROUP BY` over `base`; the service only receives one row per group.
//!
//! - Percentiles are exact and continuous (linear interpolation between the two nearest
//!   ranks, as PostgreSQL's `percentile_cont`). PostgreSQL runs `percentile_cont`. SQLite
//!   has no such function: a window query numbers each group's durations in order
//!   (`ROW_NUMBER() OVER (PARTITION BY key ORDER BY duration)`) and keeps, per group, only
//!   the rows at ranks `floor(p * (n - 1)) + 1` and `+ 2`; the service interpolates between
//!   those two values. The sort happens in the database; two rows per group come back.
//! - Histograms are a `CASE` assigning each duration its bucket, counted by `GROUP BY`.
//! - Time buckets ([`time_bucket_key`]) are integer keys computed in SQL from the row's
//!   epoch seconds plus the zone's UTC offset, the offset chosen by a `CASE` over the few
//!   offset segments (daylight-saving transitions) that the service computes with
//!   chrono-tz for the span of the matching calls (one `MIN`/`MAX` query). Both databases
//!   run the same arithmetic, so SQLite (which has no time-zone database) and PostgreSQL
//!   agree to the second. Zero-filled buckets are added in the service from the filter's
//!   `endedAt` range; they involve no rows.
use std::collections::HashMap;

use chrono::Utc;
use entity::call;
use migration::sql::{STATUS_MISSED, STATUS_REJECTED};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, QueryResult, Statement};

use super::Store;
use super::dialect::{Dialect, PercentileQuery};
use super::error::{db_error, defect};
use super::rollup::Split;
use crate::domain::stats::{
    Aggregates, Dimension, GroupKey, HistogramBounds, KeyPart, MAX_GROUPS, OffsetSegment, Period,
    StatsGroup, StatsRequest, offset_segments, plausible_span, sort_groups,
};
use crate::error::AppError;

/// How a request's time buckets are computed: the zone offsets over the span of its calls.
/// Computed once per request and shared by all its queries, so their keys agree.
#[derive(Clone, Debug, Default)]
pub struct BucketPlan {
    segments: Vec<OffsetSegment>,
    /// For bounds off the rollup's grid: the interior read from the rollup, the edges from
    /// `calls` ([`Store::rollup_split`]).
    split: Option<Split>,
}

impl Store {
    /// The offset segments covering the calls `request` matches (none without a time dimension).
    pub(super) async fn bucket_plan(&self, request: &StatsRequest) -> Result<BucketPlan, AppError> {
        if !request.has_time_dimension() {
            return Ok(BucketPlan::default());
        }
        // Answerable from the `call_buckets` rollup (see `store::rollup`): no scan of calls.
        if let Some(segments) = self.rollup_segments(request).await? {
            return Ok(BucketPlan {
                segments,
                split: None,
            });
        }
        if let Some((segments, split)) = self.rollup_split(request).await? {
            return Ok(BucketPlan {
                segments,
                split: Some(split),
            });
        }
        let dialect = self.dialect();
        let epoch = dialect.epoch_seconds("\"ended_at\"");
        let (inner, values) = base_select(
            dialect,
            &request.ungrouped(),
            &BucketPlan::default(),
            Columns::NONE,
            self.condition(&request.filter).await?,
        );
        // Implausible instants are not planned for (see `plausible_span`).
        let (from, to) = plausible_span(Utc::now());
        let planned = format!("CASE WHEN {epoch} BETWEEN {from} AND {to} THEN {epoch} END");
        let sql = format!("WITH base AS ({inner}) SELECT MIN({planned}), MAX({planned}) FROM base");
        let rows = self.query(sql, values).await?;
        let range = rows.first().map(|r| {
            (
                r.try_get_by_index::<Option<i64>>(0),
                r.try_get_by_index::<Option<i64>>(1),
            )
        });
        let segments = match range {
            Some((Ok(Some(lo)), Ok(Some(hi)))) => offset_segments(request.time_zone, lo, hi),
            Some((Err(e), _)) | Some((_, Err(e))) => return Err(defect(e)),
            _ => Vec::new(),
        };
        Ok(BucketPlan {
            segments,
            split: None,
        })
    }

    /// One group per distinct key (exactly one, the totals, without `group_by`), in the
    /// documented order, time buckets of a bounded `endedAt` range zero-filled.
    pub(super) async fn stats_groups(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
    ) -> Result<Vec<StatsGroup>, AppError> {
        let mut groups = if let Some(split) = &plan.split {
            self.split_groups(request, plan, split).await?
        } else if let Some(groups) = self.rollup_groups(request, &plan.segments).await? {
            groups
        } else {
            self.calls_groups(request, plan).await?
        };
        zero_fill(request, &mut groups)?;
        sort_groups(&request.group_by, &mut groups);
        Ok(groups)
    }

    /// The groups of a range split by [`Store::rollup_split`]: its interior from the rollup,
    /// its edges from `calls`, added up bucket by bucket.
    async fn split_groups(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
        split: &Split,
    ) -> Result<Vec<StatsGroup>, AppError> {
        let interior = request.within(split.interior);
        let mut parts = self
            .rollup_groups(&interior, &plan.segments)
            .await?
            .ok_or_else(|| AppError::Internal("the rollup did not answer a split range".into()))?;
        for edge in &split.edges {
            parts.extend(self.calls_groups(&request.within(*edge), plan).await?);
        }
        let mut merged: HashMap<GroupKey, Aggregates> = HashMap::new();
        for part in parts {
            merged.entry(part.key).or_default().absorb(&part.aggregates);
        }
        if merged.len() > MAX_GROUPS {
            return Err(too_many_groups());
        }
        Ok(merged
            .into_iter()
            .map(|(key, aggregates)| StatsGroup { key, aggregates })
            .collect())
    }

    /// The groups of `request` read from `calls`, before zero-filling and sorting.
    async fn calls_groups(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
    ) -> Result<Vec<StatsGroup>, AppError> {
        let columns = Columns::for_groups(request);
        let (inner, values) = base_select(
            self.dialect(),
            request,
            plan,
            columns,
            self.condition(&request.filter).await?,
        );
        let keys = key_list(request);
        let short = request.short_call_seconds.map_or("NULL".to_owned(), |s| {
            format!("SUM(CASE WHEN d < {s} THEN 1 ELSE 0 END)")
        });
        let long = request.long_call_seconds.map_or("NULL".to_owned(), |s| {
            format!("SUM(CASE WHEN d > {s} THEN 1 ELSE 0 END)")
        });
        let select_keys = select_clause(&keys);
        let group = group_clause(&keys);
        let sql = format!(
            "WITH base AS ({inner}) SELECT {select_keys}COUNT(*), \
             CAST(COALESCE(SUM(d), 0) AS BIGINT), MIN(d), MAX(d), \
             COALESCE(SUM(rec), 0), COALESCE(SUM(ans), 0), COALESCE(SUM(missed), 0), \
             COALESCE(SUM(rejected), 0), {short}, {long} \
             FROM base{group} LIMIT {}",
            MAX_GROUPS + 1
        );
        let rows = self.query(sql, values).await?;
        if rows.len() > MAX_GROUPS {
            return Err(too_many_groups());
        }
        let n = request.group_by.len();
        let mut groups = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = read_key(row, request)?;
            let opt = |i: usize| row.try_get_by_index::<Option<i64>>(n + i).map_err(defect);
            let mut aggregates = read_aggregates(row, n)?;
            aggregates.short_calls = request.short_call_seconds.and(opt(8)?.or(Some(0)));
            aggregates.long_calls = request.long_call_seconds.and(opt(9)?.or(Some(0)));
            groups.push(StatsGroup { key, aggregates });
        }
        Ok(groups)
    }

    /// Each of the `ps` percentiles of durations per group, exact and continuous, all in one
    /// pass over the calls: element `i` of the result holds `ps[i]` for every group.
    pub(super) async fn duration_percentiles(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
        ps: &[f64],
    ) -> Result<Vec<HashMap<GroupKey, f64>>, AppError> {
        let mut result = vec![HashMap::new(); ps.len()];
        if ps.is_empty() {
            return Ok(result);
        }
        let dialect = self.dialect();
        let (inner, values) = base_select(
            dialect,
            request,
            plan,
            Columns::DURATION,
            self.condition(&request.filter).await?,
        );
        let keys = key_list(request);
        let sql = dialect.percentiles_sql(&PercentileQuery {
            inner: &inner,
            keys: &keys,
            ps,
            limit: MAX_GROUPS + 1,
        });
        let n = request.group_by.len();
        for row in self.query(sql, values).await? {
            let key = read_key(&row, request)?;
            for (value, out) in dialect
                .read_percentiles(&row, n, ps)?
                .into_iter()
                .zip(&mut result)
            {
                if let Some(value) = value {
                    out.insert(key.clone(), value);
                }
            }
        }
        Ok(result)
    }

    /// Per group, how many calls fall in each histogram bucket.
    pub(super) async fn duration_histograms(
        &self,
        request: &StatsRequest,
        plan: &BucketPlan,
        bounds: &HistogramBounds,
    ) -> Result<HashMap<GroupKey, Vec<i64>>, AppError> {
        let (inner, values) = base_select(
            self.dialect(),
            request,
            plan,
            Columns::DURATION,
            self.condition(&request.filter).await?,
        );
        let keys = key_list(request);
        let mut bucket = String::from("CAST(CASE");
        for (i, b) in bounds.bounds().iter().enumerate() {
            bucket.push_str(&format!(" WHEN d < {b} THEN {i}"));
        }
        bucket.push_str(&format!(" ELSE {} END AS BIGINT)", bounds.bounds().len()));
        let (select_keys, group) = if keys.is_empty() {
            (String::new(), " GROUP BY bucket".to_owned())
        } else {
            (format!("{keys}, "), format!(" GROUP BY {keys}, bucket"))
        };
        let sql = format!(
            "WITH base AS ({inner}), bucketed AS (SELECT {select_keys}{bucket} AS bucket FROM base) \
             SELECT {select_keys}bucket, COUNT(*) FROM bucketed{group} LIMIT {}",
            (MAX_GROUPS + 1) * bounds.bucket_count()
        );
        let n = request.group_by.len();
        let mut result: HashMap<GroupKey, Vec<i64>> = HashMap::new();
        for row in self.query(sql, values).await? {
            let index: i64 = row.try_get_by_index(n).map_err(defect)?;
            let count: i64 = row.try_get_by_index(n + 1).map_err(defect)?;
            let counts = result
                .entry(read_key(&row, request)?)
                .or_insert_with(|| vec![0; bounds.bucket_count()]);
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| counts.get_mut(i)) {
                *slot = count;
            }
        }
        Ok(result)
    }

    async fn query(
        &self,
        sql: String,
        values: sea_orm::Values,
    ) -> Result<Vec<QueryResult>, AppError> {
        self.db
            .query_all_raw(Statement::from_sql_and_values(self.backend(), sql, values))
            .await
            .map_err(db_error)
    }
}

pub(crate) fn too_many_groups() -> AppError {
    AppError::bad_input(
        "groupBy",
        format!("more than {MAX_GROUPS} groups; narrow the filter or group by fewer dimensions"),
    )
}

/// `g0, g1, ...`: the key columns of `base`.
fn key_list(request: &StatsRequest) -> String {
    (0..request.group_by.len())
        .map(|i| format!("g{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `g0, g1, ..., ` to select before the measures (nothing without keys).
pub(crate) fn select_clause(keys: &str) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!("{keys}, ")
    }
}

/// ` GROUP BY g0, g1, ...` (nothing without keys).
pub(crate) fn group_clause(keys: &str) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {keys}")
    }
}

/// The measure columns a read of `calls` selects beside the group keys and `ended_at`. A column
/// left out is selected as a constant (`0`, or `NULL` for the duration), so that the read
/// touches only what the covering index `idx_calls_ended_at_covering` holds plus what the
/// filter names, and the planner can answer it from the index alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Columns {
    duration: bool,
    recording: bool,
    answered: bool,
    missed: bool,
    rejected: bool,
}

impl Columns {
    /// Only `ended_at` and the group keys (planning the buckets).
    const NONE: Columns = Columns {
        duration: false,
        recording: false,
        answered: false,
        missed: false,
        rejected: false,
    };
    /// The duration alone (percentiles, histograms).
    const DURATION: Columns = Columns {
        duration: true,
        ..Columns::NONE
    };

    /// What the additive measures `request` asks for read.
    fn for_groups(request: &StatsRequest) -> Columns {
        let m = request.measures;
        Columns {
            duration: m.total_duration
                || m.min_max_duration
                || request.short_call_seconds.is_some()
                || request.long_call_seconds.is_some(),
            recording: m.with_recording,
            answered: m.answered,
            missed: m.missed,
            rejected: m.rejected,
        }
    }
}

/// The calls `matching` (the request's filter as [`Store::condition`] makes it), one row each:
/// `g0..gN` (group key), `d` (duration), and 0/1 flags `rec`, `ans`, `missed`, `rejected`. Only the filter's values are bound parameters; every
/// other literal is a number the service produced. What `columns` leaves out reads as a
/// constant.
fn base_select(
    dialect: Dialect,
    request: &StatsRequest,
    plan: &BucketPlan,
    columns: Columns,
    matching: sea_orm::Condition,
) -> (String, sea_orm::Values) {
    let mut select = Query::select();
    for (i, dimension) in request.group_by.iter().enumerate() {
        let expr = match dimension.period() {
            Some(period) => time_bucket_key(dialect, period, plan),
            None => format!("\"{}\"", text_column(*dimension)),
        };
        select.expr_as(Expr::cust(expr), Alias::new(format!("g{i}")));
    }
    let flag = |wanted: bool, sql: &str| {
        Expr::cust(if wanted {
            format!("CASE WHEN {sql} THEN 1 ELSE 0 END")
        } else {
            "0".to_owned()
        })
    };
    let duration = if columns.duration {
        "\"duration_seconds\""
    } else {
        "CAST(NULL AS BIGINT)"
    };
    select
        .expr_as(Expr::cust(duration), Alias::new("d"))
        .expr_as(
            flag(columns.recording, "\"recording_url\" IS NOT NULL"),
            Alias::new("rec"),
        )
        .expr_as(
            flag(columns.answered, "\"started_at\" IS NOT NULL"),
            Alias::new("ans"),
        )
        .expr_as(
            flag(columns.missed, &format!("\"status\" = '{STATUS_MISSED}'")),
            Alias::new("missed"),
        )
        .expr_as(
            flag(
                columns.rejected,
                &format!("\"status\" = '{STATUS_REJECTED}'"),
            ),
            Alias::new("rejected"),
        )
        .expr_as(Expr::cust("\"ended_at\""), Alias::new("ended_at"))
        .from(call::Entity)
        .cond_where(matching);
    let statement = dialect.backend().build(&select);
    (
        statement.sql,
        statement.values.unwrap_or(sea_orm::Values(Vec::new())),
    )
}

fn text_column(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::PickedBy => "picked_by",
        Dimension::EndedBy => "ended_by",
        Dimension::Direction => "direction",
        Dimension::WabaNumber => "waba_number",
        Dimension::Customer => "customer_digits",
        Dimension::Status => "status",
        Dimension::Channel => "channel",
        Dimension::Hour | Dimension::Day | Dimension::Week | Dimension::Month => "ended_at",
    }
}

/// The zone's UTC offset, in seconds, at the instant `instant` (SQL giving epoch seconds): a
/// `CASE` over the offset segments, or the constant when there is one.
pub(crate) fn offset_case(segments: &[OffsetSegment], instant: &str) -> String {
    match segments {
        [] => "0".to_owned(),
        [only] => only.offset_seconds.to_string(),
        [first, rest @ ..] => {
            let mut case = String::from("CASE");
            let mut current = first.offset_seconds;
            for segment in rest {
                case.push_str(&format!(
                    " WHEN {instant} < {} THEN {current}",
                    segment.from
                ));
                current = segment.offset_seconds;
            }
            case.push_str(&format!(" ELSE {current} END"));
            case
        }
    }
}

/// The SQL of a call's time-bucket key (see [`crate::domain::stats`] for the keys): the one
/// place that decides how `calls` rows meet time buckets (the rollup's tiers hold the same
/// buckets pre-aggregated, `store::rollup`).
fn time_bucket_key(dialect: Dialect, period: Period, plan: &BucketPlan) -> String {
    let epoch = dialect.epoch_seconds("\"ended_at\"");
    let offset = offset_case(&plan.segments, &epoch);
    let local = format!("({epoch} + {offset})");
    match period {
        Period::Hour => format!("({epoch} - ((({local} % 3600) + 3600) % 3600))"),
        Period::Day => format!("({local} / 86400)"),
        Period::Week => format!("(({local} / 86400 + 3) / 7)"),
        Period::Month => dialect.month_key(&local),
    }
}

fn read_key(row: &QueryResult, request: &StatsRequest) -> Result<GroupKey, AppError> {
    request
        .group_by
        .iter()
        .enumerate()
        .map(|(i, dimension)| {
            if dimension.period().is_some() {
                row.try_get_by_index::<i64>(i)
                    .map(KeyPart::Bucket)
                    .map_err(defect)
            } else {
                row.try_get_by_index::<Option<String>>(i)
                    .map(KeyPart::Text)
                    .map_err(defect)
            }
        })
        .collect()
}

/// With exactly one time dimension and a bounded `endedAt` range, every bucket of the range
/// is present for every combination of the other dimensions that has calls (for the
/// totals alone when there is no other dimension).
fn zero_fill(request: &StatsRequest, groups: &mut Vec<StatsGroup>) -> Result<(), AppError> {
    let time: Vec<(usize, Period)> = request
        .group_by
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.period().map(|p| (i, p)))
        .collect();
    let [(slot, period)] = time.as_slice() else {
        return Ok(());
    };
    let Some(range) = request.filter.ended_at else {
        return Ok(());
    };
    let (Some(from), Some(to)) = (range.from, range.to) else {
        return Ok(());
    };
    // Refuse before enumerating: the shortest bucket of each period bounds their number.
    let shortest = match period {
        Period::Hour => 1800,
        Period::Day => 22 * 3600,
        Period::Week => 7 * 86_400 - 3 * 3600,
        Period::Month => 28 * 86_400 - 3 * 3600,
    };
    if (to - from).num_seconds() / shortest > MAX_GROUPS as i64 {
        return Err(too_many_groups());
    }
    let buckets = period.keys_between(request.time_zone, from, to);
    let mut others: Vec<GroupKey> = groups
        .iter()
        .map(|g| {
            let mut k = g.key.clone();
            k[*slot] = KeyPart::Bucket(0);
            k
        })
        .collect();
    if request.group_by.len() == 1 {
        others = vec![vec![KeyPart::Bucket(0)]];
    }
    others.sort();
    others.dedup();
    if others.len().saturating_mul(buckets.len()) > MAX_GROUPS {
        return Err(too_many_groups());
    }
    let present: std::collections::HashSet<GroupKey> =
        groups.iter().map(|g| g.key.clone()).collect();
    for other in &others {
        for bucket in &buckets {
            let mut key = other.clone();
            key[*slot] = KeyPart::Bucket(*bucket);
            if !present.contains(&key) {
                groups.push(StatsGroup {
                    key,
                    aggregates: Aggregates::empty(request),
                });
            }
        }
    }
    Ok(())
}

/// The additive measures every aggregate query selects, in this order, from column `offset`:
/// count, total, min and max duration, with recording, answered, missed, rejected.
/// Threshold counts are left unset for the caller.
pub(crate) fn read_aggregates(row: &QueryResult, offset: usize) -> Result<Aggregates, AppError> {
    let int = |i: usize| row.try_get_by_index::<i64>(offset + i).map_err(defect);
    let opt = |i: usize| {
        row.try_get_by_index::<Option<i64>>(offset + i)
            .map_err(defect)
    };
    Ok(Aggregates {
        count: int(0)?,
        total_duration_seconds: int(1)?,
        min_duration_seconds: opt(2)?,
        max_duration_seconds: opt(3)?,
        with_recording: int(4)?,
        answered: int(5)?,
        missed: int(6)?,
        rejected: int(7)?,
        short_calls: None,
        long_calls: None,
    })
}
