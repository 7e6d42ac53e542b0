//! Call statistics: what is counted, how calls are grouped, and time buckets in a time zone.
//!
//! Time buckets are computed from `endedAt` in an IANA zone. A zone's UTC offset is constant
//! between two transitions, so over any span of time it is a short list of
//! [`OffsetSegment`]s. With it, a row's local time is `epoch + offset(segment)`, and each
//! bucket has an integer key that both databases can compute with plain arithmetic:
//!
//! - `HOUR`: the UTC instant (epoch seconds) at which the local hour began, so the two
//!   01:00 hours of a fall-back night stay two buckets;
//! - `DAY`: the local date, as days since 1970-01-01;
//! - `WEEK`: ISO weeks (Monday first), as weeks since Monday 1969-12-29;
//! - `MONTH`: `year * 12 + month - 1` of the local date.
//!
//! A bucket's `period` is the instant its local start happened (local midnight for a day,
//! so a `DAY` on a daylight-saving change lasts 23 or 25 hours).
use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::CallFilter;
use crate::error::AppError;

/// Most distinct groups one statistics request may return.
pub const MAX_GROUPS: usize = 10_000;
/// Most bounds one histogram may have.
pub const MAX_HISTOGRAM_BOUNDS: usize = 100;

/// What calls can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    PickedBy,
    EndedBy,
    Direction,
    WabaNumber,
    /// The customer's number, by its digits (formatting-insensitive).
    Customer,
    Status,
    Channel,
    Hour,
    Day,
    Week,
    Month,
}

/// The length of a time bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
}

impl Dimension {
    pub const ALL: [Dimension; 11] = [
        Dimension::PickedBy,
        Dimension::EndedBy,
        Dimension::Direction,
        Dimension::WabaNumber,
        Dimension::Customer,
        Dimension::Status,
        Dimension::Channel,
        Dimension::Hour,
        Dimension::Day,
        Dimension::Week,
        Dimension::Month,
    ];

    /// The name GraphQL's `CallDimension` gives it (`PICKED_BY`, `DAY`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dimension::PickedBy => "PICKED_BY",
            Dimension::EndedBy => "ENDED_BY",
            Dimension::Direction => "DIRECTION",
            Dimension::WabaNumber => "WABA_NUMBER",
            Dimension::Customer => "CUSTOMER",
            Dimension::Status => "STATUS",
            Dimension::Channel => "CHANNEL",
            Dimension::Hour => "HOUR",
            Dimension::Day => "DAY",
            Dimension::Week => "WEEK",
            Dimension::Month => "MONTH",
        }
    }

    pub fn from_name(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The bucket length, for the time dimensions.
    pub fn period(self) -> Option<Period> {
        match self {
            Dimension::Hour => Some(Period::Hour),
            Dimension::Day => Some(Period::Day),
            Dimension::Week => Some(Period::Week),
            Dimension::Month => Some(Period::Month),
            Dimension::PickedBy
            | Dimension::EndedBy
            | Dimension::Direction
            | Dimension::WabaNumber
            | Dimension::Customer
            | Dimension::Status
            | Dimension::Channel => None,
        }
    }
}

/// A checked statistics request.
#[derive(Clone, Debug)]
pub struct StatsRequest {
    pub filter: CallFilter,
    /// Distinct dimensions, in the order asked.
    pub group_by: Vec<Dimension>,
    pub time_zone: Tz,
    /// Calls strictly shorter than this are "short".
    pub short_call_seconds: Option<i64>,
    /// Calls strictly longer than this are "long".
    pub long_call_seconds: Option<i64>,
    /// The measures the asker reads; the others may be left zero (every one unless
    /// [`StatsRequest::with_measures`] narrows them).
    pub measures: Measures,
}

/// Which additive measures a statistics request needs besides the count, which is always
/// computed (it decides which groups exist). A measure left out reads as zero (min/max as
/// none): only for an asker that never reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measures {
    pub total_duration: bool,
    pub min_max_duration: bool,
    pub with_recording: bool,
    pub answered: bool,
    pub missed: bool,
    pub rejected: bool,
}

impl Measures {
    /// Every measure.
    pub const ALL: Measures = Measures {
        total_duration: true,
        min_max_duration: true,
        with_recording: true,
        answered: true,
        missed: true,
        rejected: true,
    };
    /// Only the count.
    pub const COUNT: Measures = Measures {
        total_duration: false,
        min_max_duration: false,
        with_recording: false,
        answered: false,
        missed: false,
        rejected: false,
    };
}

impl StatsRequest {
    /// Checks the arguments; each problem names its argument.
    pub fn new(
        filter: CallFilter,
        group_by: Vec<Dimension>,
        time_zone: &str,
        short_call_seconds: Option<i64>,
        long_call_seconds: Option<i64>,
    ) -> Result<Self, AppError> {
        let time_zone: Tz = time_zone.parse().map_err(|_| {
            AppError::bad_input(
                "timeZone",
                format!("`{time_zone}` is not an IANA time zone (e.g. `America/New_York`)"),
            )
        })?;
        for (argument, value) in [
            ("shortCallSeconds", short_call_seconds),
            ("longCallSeconds", long_call_seconds),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(AppError::bad_input(argument, "must not be negative"));
            }
        }
        let mut seen = BTreeSet::new();
        let group_by = group_by.into_iter().filter(|d| seen.insert(*d)).collect();
        Ok(StatsRequest {
            filter,
            group_by,
            time_zone,
            short_call_seconds,
            long_call_seconds,
            measures: Measures::ALL,
        })
    }

    /// The same request computing only `measures` (and the count).
    pub fn with_measures(self, measures: Measures) -> StatsRequest {
        StatsRequest { measures, ..self }
    }

    /// The same request without grouping: the totals.
    pub fn ungrouped(&self) -> StatsRequest {
        StatsRequest {
            group_by: Vec::new(),
            ..self.clone()
        }
    }

    pub fn has_time_dimension(&self) -> bool {
        self.group_by.iter().any(|d| d.period().is_some())
    }

    /// The same request over the calls that ended within `range` instead.
    pub fn within(&self, range: super::TimeRange) -> StatsRequest {
        StatsRequest {
            filter: CallFilter {
                ended_at: Some(range),
                ..self.filter.clone()
            },
            ..self.clone()
        }
    }
}

/// A percentile rank: `p` in `[0, 1]`.
pub fn percentile(p: f64) -> Result<f64, AppError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(AppError::bad_input("p", "must be between 0 and 1"))
    }
}

/// Histogram bounds: non-empty and strictly increasing. `n` bounds make `n + 1` buckets,
/// the first and last unbounded on one side.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HistogramBounds(Vec<i64>);

impl HistogramBounds {
    pub fn new(bounds: Vec<i64>) -> Result<Self, AppError> {
        let argument = "boundsSeconds";
        if bounds.is_empty() {
            return Err(AppError::bad_input(argument, "give at least one bound"));
        }
        if bounds.len() > MAX_HISTOGRAM_BOUNDS {
            return Err(AppError::bad_input(
                argument,
                format!("at most {MAX_HISTOGRAM_BOUNDS} bounds"),
            ));
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(AppError::bad_input(
                argument,
                "bounds must be strictly increasing",
            ));
        }
        Ok(HistogramBounds(bounds))
    }

    pub fn bounds(&self) -> &[i64] {
        &self.0
    }

    /// `[from, to)` of bucket `i`; `None` is unbounded.
    pub fn bucket(&self, i: usize) -> (Option<i64>, Option<i64>) {
        let from = i.checked_sub(1).and_then(|j| self.0.get(j).copied());
        (from, self.0.get(i).copied())
    }

    pub fn bucket_count(&self) -> usize {
        self.0.len() + 1
    }
}

/// One dimension's value in a group's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    /// A text dimension's value; `None` when the calls have none.
    Text(Option<String>),
    /// A time bucket's key (see the module doc).
    Bucket(i64),
}

/// A group's key: one part per grouped dimension, in `group_by` order.
pub type GroupKey = Vec<KeyPart>;

/// What is counted over a group of calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregates {
    pub count: i64,
    pub total_duration_seconds: i64,
    pub min_duration_seconds: Option<i64>,
    pub max_duration_seconds: Option<i64>,
    pub with_recording: i64,
    pub answered: i64,
    pub missed: i64,
    pub rejected: i64,
    pub short_calls: Option<i64>,
    pub long_calls: Option<i64>,
}

impl Aggregates {
    /// An empty group (a zero-filled time bucket).
    pub fn empty(request: &StatsRequest) -> Self {
        Aggregates {
            short_calls: request.short_call_seconds.map(|_| 0),
            long_calls: request.long_call_seconds.map(|_| 0),
            ..Aggregates::default()
        }
    }

    pub fn average_duration_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_duration_seconds as f64 / self.count as f64)
    }

    pub fn answer_rate(&self) -> Option<f64> {
        (self.count > 0).then(|| self.answered as f64 / self.count as f64)
    }

    /// Adds another disjoint set of calls: counts and sums add, min and max compare. Every
    /// measure here is additive, so the totals of a request are its groups absorbed together.
    pub fn absorb(&mut self, more: &Aggregates) {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        let add = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.count += more.count;
        self.total_duration_seconds += more.total_duration_seconds;
        self.min_duration_seconds = pick(
            self.min_duration_seconds,
            more.min_duration_seconds,
            i64::min,
        );
        self.max_duration_seconds = pick(
            self.max_duration_seconds,
            more.max_duration_seconds,
            i64::max,
        );
        self.with_recording += more.with_recording;
        self.answered += more.answered;
        self.missed += more.missed;
        self.rejected += more.rejected;
        self.short_calls = add(self.short_calls, more.short_calls);
        self.long_calls = add(self.long_calls, more.long_calls);
    }
}

/// A group of calls and what was counted over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsGroup {
    pub key: GroupKey,
    pub aggregates: Aggregates,
}

/// The order groups are returned in: time buckets ascending (in `group_by` order), then
/// the other dimensions in `group_by` order, ascending by value with `null` last.
pub fn sort_groups(group_by: &[Dimension], groups: &mut [StatsGroup]) {
    let time: Vec<usize> = (0..group_by.len())
        .filter(|&i| group_by[i].period().is_some())
        .collect();
    let other: Vec<usize> = (0..group_by.len())
        .filter(|&i| group_by[i].period().is_none())
        .collect();
    let rank = |key: &GroupKey| {
        let mut parts = Vec::with_capacity(key.len());
        for &i in time.iter().chain(other.iter()) {
            parts.push(match &key[i] {
                KeyPart::Bucket(b) => (0u8, *b, None),
                KeyPart::Text(Some(s)) => (0u8, 0, Some(s.clone())),
                KeyPart::Text(None) => (1u8, 0, None),
            });
        }
        parts
    };
    groups.sort_by_cached_key(|g| rank(&g.key));
}

/// From `from` (inclusive, epoch seconds) on, the zone's UTC offset is `offset_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetSegment {
    pub from: i64,
    pub offset_seconds: i64,
}

/// The zone's UTC offset at an instant (epoch seconds).
pub fn offset_at(tz: Tz, epoch: i64) -> i64 {
    match DateTime::from_timestamp(epoch, 0) {
        Some(t) => i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        ),
        None => 0,
    }
}

/// The instants (epoch seconds, inclusive) time buckets are planned over at `now`: the
/// plausible ones, 2000-01-01 to a day ahead. Planning finds the zone's offsets over the span
/// of the calls asked about within these, so one implausible call (year 1 or 9999) cannot make
/// it probe centuries of offsets or push a question off the rollup (the local mean time of
/// year 1 is not on a quarter hour); such a call is bucketed with the offset in force at the
/// nearer end of the planned span (UTC when no call is plausible).
pub fn plausible_span(now: DateTime<Utc>) -> (i64, i64) {
    use super::event::{PLAUSIBLE_AHEAD, PLAUSIBLE_FROM};
    (PLAUSIBLE_FROM, (now + PLAUSIBLE_AHEAD).timestamp())
}

/// The offsets in force from `start` to `end` (epoch seconds), first segment starting at
/// `start`. Transitions are found by probing every 6 hours, then bisecting to the second.
pub fn offset_segments(tz: Tz, start: i64, end: i64) -> Vec<OffsetSegment> {
    const STEP: i64 = 6 * 3600;
    let mut segments = vec![OffsetSegment {
        from: start,
        offset_seconds: offset_at(tz, start),
    }];
    let mut probe = start;
    while probe < end {
        let next = (probe + STEP).min(end);
        let current = offset_at(tz, probe);
        if offset_at(tz, next) != current {
            // The first second in (probe, next] with another offset.
            let (mut lo, mut hi) = (probe, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            segments.push(OffsetSegment {
                from: hi,
                offset_seconds: offset_at(tz, hi),
            });
        }
        probe = next;
    }
    segments
}

fn date_of_day_number(day: i64) -> NaiveDate {
    NaiveDate::default() + Duration::days(day)
}

impl Period {
    /// The key of the bucket holding the instant `epoch` (seconds), given the zone offset then.
    pub fn key(self, epoch: i64, offset_seconds: i64) -> i64 {
        let local = epoch + offset_seconds;
        let day = local.div_euclid(86_400);
        match self {
            Period::Hour => epoch - local.rem_euclid(3600),
            Period::Day => day,
            Period::Week => (day + 3).div_euclid(7),
            Period::Month => month_of_day(day),
        }
    }

    /// The instant the bucket with `key` began in `tz`.
    pub fn start(self, key: i64, tz: Tz) -> Option<DateTime<Utc>> {
        let date = match self {
            Period::Hour => return DateTime::from_timestamp(key, 0),
            Period::Day => date_of_day_number(key),
            Period::Week => date_of_day_number(key * 7 - 3),
            Period::Month => {
                let year = i32::try_from(key.div_euclid(12)).ok()?;
                let month = u32::try_from(key.rem_euclid(12)).ok()? + 1;
                NaiveDate::from_ymd_opt(year, month, 1)?
            }
        };
        local_start(tz, date.and_time(chrono::NaiveTime::MIN))
    }

    /// Keys of every bucket that overlaps `[from, to)`, in time order.
    pub fn keys_between(self, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<i64> {
        let first_epoch = from.timestamp();
        // The last whole second before `to`.
        let last_epoch = (to - Duration::nanoseconds(1)).timestamp();
        if last_epoch < first_epoch {
            return Vec::new();
        }
        let key_at = |e: i64| self.key(e, offset_at(tz, e));
        let (first, last) = (key_at(first_epoch), key_at(last_epoch));
        match self {
            Period::Day | Period::Week | Period::Month => (first..=last).collect(),
            Period::Hour => {
                let mut keys = vec![first];
                let mut current = first;
                while current < last {
                    // The next local hour starts at most an hour (plus any offset change) later.
                    let next = key_at(current + 3600);
                    let next = if next > current {
                        next
                    } else {
                        key_at(current + 7200)
                    };
                    if next > last || next <= current {
                        break;
                    }
                    keys.push(next);
                    current = next;
                }
                if keys.last() != Some(&last) {
                    keys.push(last);
                }
                keys
            }
        }
    }
}

/// The instant a local wall-clock time happened; the earlier one when it happened twice,
/// the first valid time after it when a transition skipped it.
fn local_start(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    for minutes in 0..=24 * 60 {
        let candidate = local + Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&candidate).earliest() {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// The `Month` key (`year * 12 + month - 1`) of a local day number: the month buckets of
/// every answer, from calls or from the rollup, are keyed by this.
pub fn month_of_day(day: i64) -> i64 {
    let date = date_of_day_number(day);
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days since 1970-01-01 of a date.
    fn day_number(date: NaiveDate) -> i64 {
        (date - NaiveDate::default()).num_days()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("instant")
    }

    #[test]
    fn a_new_york_day_on_a_daylight_saving_change_is_23_or_25_hours() {
        let ny: Tz = "America/New_York".parse().expect("zone");
        let spring = day_number(NaiveDate::from_ymd_opt(2026, 3, 8).expect("date"));
        let length = |key: i64| {
            Period::Day.start(key + 1, ny).expect("start")
                - Period::Day.start(key, ny).expect("start")
        };
        assert_eq!(length(spring), Duration::hours(23));
        let fall = day_number(NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"));
        assert_eq!(length(fall), Duration::hours(25));
        assert_eq!(length(fall + 1), Duration::hours(24));
    }

    #[test]
    fn the_two_one_oclock_hours_of_a_fall_back_night_are_two_buckets() {
        let ny: Tz = "America/New_York".parse().expect("zone");
        let keys =
            Period::Hour.keys_between(ny, at("2026-11-01T04:00:00Z"), at("2026-11-01T08:00:00Z"));
        assert_eq!(keys.len(), 4);
        assert!(keys.windows(2).all(|w| w[1] - w[0] == 3600));
    }

    #[test]
    fn offset_segments_find_the_transition_to_the_second() {
        let ny: Tz = "America/New_York".parse().expect("zone");
        let segments = offset_segments(
            ny,
            at("2026-03-01T00:00:00Z").timestamp(),
            at("2026-03-20T00:00:00Z").timestamp(),
        );
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].offset_seconds, -5 * 3600);
        assert_eq!(segments[1].from, at("2026-03-08T07:00:00Z").timestamp());
        assert_eq!(segments[1].offset_seconds, -4 * 3600);
    }

    #[test]
    fn iso_weeks_start_on_monday() {
        let utc: Tz = "UTC".parse().expect("zone");
        let sunday = at("2026-11-29T12:00:00Z").timestamp();
        let key = Period::Week.key(sunday, 0);
        assert_eq!(
            Period::Week.start(key, utc),
            Some(at("2026-11-23T00:00:00Z"))
        );
    }

    #[test]
    fn unsorted_or_empty_histogram_bounds_are_refused() {
        assert!(HistogramBounds::new(vec![]).is_err());
        assert!(HistogramBounds::new(vec![10, 5]).is_err());
        assert!(HistogramBounds::new(vec![5, 5]).is_err());
        let bounds = HistogramBounds::new(vec![10, 60]).expect("bounds");
        assert_eq!(bounds.bucket(0), (None, Some(10)));
        assert_eq!(bounds.bucket(2), (Some(60), None));
    }
}
