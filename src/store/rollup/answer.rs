//! Answering statistics from the rollup: whether a question can be, from which tier, and the
//! grouped sums read from it.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Statement, TransactionTrait, Value};

use super::{ALL_DIRECTIONS, BUCKET_SECONDS, HALF_HOURS, QUARTERS, Tier};
use crate::domain::stats::{
    Aggregates, Dimension, KeyPart, OffsetSegment, Period, StatsGroup, StatsRequest, month_of_day,
    offset_segments, plausible_span,
};
use crate::domain::{CallFilter, Direction, TimeRange};
use crate::error::AppError;
use crate::store::Store;
use crate::store::dialect::Dialect;
use crate::store::error::{db_error, defect};
use crate::store::stats::{offset_case, read_aggregates, too_many_groups};

impl Store {
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
        let dialect = self.dialect();
        let (condition, values) = bucket_condition(dialect, request, 1);
        // Implausible instants are not planned for (see `plausible_span`).
        let (from, to) = plausible_span(Utc::now());
        let condition = format!("{condition} AND bucket_start BETWEEN {from} AND {to}");
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                dialect.backend(),
                // Two subqueries: each is one index probe, where MIN and MAX together scan the range.
                format!(
                    "SELECT (SELECT MIN(bucket_start) FROM call_buckets WHERE {condition}), \
                     (SELECT MAX(bucket_start) FROM call_buckets WHERE {condition})"
                ),
                dialect.bind_repeated(values, 2),
            ))
            .await
            .map_err(db_error)?;
        let span = match rows.first() {
            Some(r) => (
                r.try_get_by_index::<Option<i64>>(0).map_err(defect)?,
                r.try_get_by_index::<Option<i64>>(1).map_err(defect)?,
            ),
            None => (None, None),
        };
        let segments = match span {
            (Some(lo), Some(hi)) => offset_segments(request.time_zone, lo, hi + BUCKET_SECONDS - 1),
            _ => Vec::new(),
        };
        Ok(aligned(&segments, QUARTERS).then_some(segments))
    }

    /// When `request` is one the rollup holds but for `endedAt` bounds off its grid (as
    /// dashboards send: `now-30d .. now`), the zone's offsets over the range and how to split
    /// it: the whole buckets inside from the rollup, the partial buckets at the edges from
    /// `calls`. `None` when it is not such a request: open or implausible bounds (see
    /// [`plausible_span`]), a zone whose offsets no tier fits, or a range within one bucket.
    pub async fn rollup_split(
        &self,
        request: &StatsRequest,
    ) -> Result<Option<(Vec<OffsetSegment>, Split)>, AppError> {
        let Some(TimeRange {
            from: Some(from),
            to: Some(to),
        }) = request.filter.ended_at
        else {
            return Ok(None);
        };
        let (earliest, latest) = plausible_span(Utc::now());
        let (lo, hi) = (from.timestamp(), to.timestamp());
        if !holds(request) || lo < earliest || hi > latest || lo >= hi {
            return Ok(None);
        }
        let segments = offset_segments(request.time_zone, lo, hi);
        let Some(tier) = [HALF_HOURS, QUARTERS]
            .into_iter()
            .find(|&tier| aligned(&segments, tier))
        else {
            return Ok(None);
        };
        let instant = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or(from);
        // The first bucket start at or after `from`, the last at or before `to`.
        let on_grid = lo.rem_euclid(tier.seconds) == 0 && from.timestamp_subsec_nanos() == 0;
        let first = lo.div_euclid(tier.seconds) * tier.seconds;
        let inner_from = instant(if on_grid { first } else { first + tier.seconds });
        let inner_to = instant(hi.div_euclid(tier.seconds) * tier.seconds);
        if inner_from >= inner_to {
            return Ok(None);
        }
        let mut edges = Vec::new();
        if from < inner_from {
            edges.push(TimeRange {
                from: Some(from),
                to: Some(inner_from),
            });
        }
        if inner_to < to {
            edges.push(TimeRange {
                from: Some(inner_to),
                to: Some(to),
            });
        }
        let interior = TimeRange {
            from: Some(inner_from),
            to: Some(inner_to),
        };
        Ok(Some((segments, Split { interior, edges })))
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
        let dialect = self.dialect();
        let offset = offset_case(segments, "bucket_start");
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
        let (condition, values) = bucket_condition(dialect, request, 1);
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
        let statement = Statement::from_sql_and_values(dialect.backend(), sql, values);
        let setup = dialect.grouped_rollup_setup().filter(|_| !keys.is_empty());
        let rows = if let Some(setup) = setup {
            let txn = self.db.begin().await.map_err(db_error)?;
            txn.execute_unprepared(setup).await.map_err(db_error)?;
            let rows = txn.query_all_raw(statement).await.map_err(db_error)?;
            txn.commit().await.map_err(db_error)?;
            rows
        } else {
            self.db.query_all_raw(statement).await.map_err(db_error)?
        };
        let mut merged: HashMap<Vec<KeyPart>, Aggregates> = HashMap::new();
        for row in &rows {
            let (key, aggregates) = read_row(row, &request.group_by)?;
            let entry = merged.entry(key).or_default();
            entry.absorb(&aggregates);
        }
        if merged.len() > crate::domain::stats::MAX_GROUPS {
            return Err(too_many_groups());
        }
        let groups = merged
            .into_iter()
            .map(|(key, aggregates)| StatsGroup { key, aggregates })
            .collect();
        Ok(Some(groups))
    }
}

/// How an `endedAt` range off the rollup's grid is answered ([`Store::rollup_split`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The whole buckets inside the range: from the rollup.
    pub interior: TimeRange,
    /// What is left at each end, less than a bucket each (none, one or two): from `calls`.
    pub edges: Vec<TimeRange>,
}

/// Whether the rollup holds what `request` needs, whatever its bounds: time buckets and
/// direction as the only dimensions, `endedAt` and direction as the only filters, and no
/// short/long thresholds (those need each call's duration).
fn holds(request: &StatsRequest) -> bool {
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
        && request.short_call_seconds.is_none()
        && request.long_call_seconds.is_none()
}

/// Whether the rollup alone answers `request`: it [holds](holds) it and the `endedAt` bounds
/// fall on quarter hours.
fn answerable(request: &StatsRequest) -> bool {
    holds(request) && bounds_on(request, QUARTERS)
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
    dialect: Dialect,
    request: &StatsRequest,
    first: usize,
) -> (String, Vec<Value>) {
    let filter = &request.filter;
    let mut parts = vec!["calls > 0".to_owned()];
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |sql: &str, value: Value, parts: &mut Vec<String>| {
        parts.push(format!(
            "{sql} {}",
            dialect.placeholder(first + values.len())
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
                let day: i64 = row.try_get_by_index(i).map_err(defect)?;
                KeyPart::Bucket(month_of_day(day))
            }
            Some(_) => KeyPart::Bucket(row.try_get_by_index(i).map_err(defect)?),
            None => {
                let direction: String = row.try_get_by_index(i).map_err(defect)?;
                KeyPart::Text((!direction.is_empty()).then_some(direction))
            }
        });
    }
    let aggregates = read_aggregates(row, group_by.len())?;
    Ok((key, aggregates))
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
