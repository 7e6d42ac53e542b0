//! The reviewer desk's rules: which calls are short or long, and an agent's day in figures and
//! on a timeline.
use chrono::{DateTime, Utc};

use super::{Call, Direction, IntRange};

/// Where short calls end and long calls begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// An answered call that lasted less than this many seconds is short.
    pub short_call_seconds: i64,
    /// A call that lasted more than this many seconds is long.
    pub long_call_seconds: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            short_call_seconds: 30,
            long_call_seconds: 1800,
        }
    }
}

impl Thresholds {
    /// The lengths of a short call: at least a second (a call never answered lasts 0 s, and
    /// has nothing to review), under the threshold.
    pub fn short(&self) -> IntRange {
        IntRange {
            min: Some(1),
            max: Some(self.short_call_seconds.saturating_sub(1)),
        }
    }

    /// The lengths of a long call.
    pub fn long(&self) -> IntRange {
        IntRange {
            min: Some(self.long_call_seconds.saturating_add(1)),
            max: None,
        }
    }

    pub fn is_short(&self, call: &Call) -> bool {
        self.short().contains(call.duration_seconds)
    }

    pub fn is_long(&self, call: &Call) -> bool {
        self.long().contains(call.duration_seconds)
    }
}

/// The lengths both `a` (when given) and `b` allow; `min > max` when none.
pub fn both(a: Option<IntRange>, b: IntRange) -> IntRange {
    let Some(a) = a else { return b };
    let pick = |x: Option<i64>, y: Option<i64>, f: fn(i64, i64) -> i64| match (x, y) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, None) => x,
        (None, y) => y,
    };
    IntRange {
        min: pick(a.min, b.min, i64::max),
        max: pick(a.max, b.max, i64::min),
    }
}

/// One day's calls in figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaySummary {
    pub calls: u64,
    pub incoming: u64,
    pub outgoing: u64,
    /// Calls that were picked up (`callStartedAt` set).
    pub answered: u64,
    pub talk_seconds: i64,
    pub short: u64,
    pub long: u64,
    pub anomalous: u64,
}

impl DaySummary {
    pub fn of(calls: &[Call], thresholds: &Thresholds) -> DaySummary {
        let mut s = DaySummary::default();
        for call in calls {
            s.calls += 1;
            match call.direction {
                Direction::Incoming => s.incoming += 1,
                Direction::Outgoing => s.outgoing += 1,
            }
            if call.started_at.is_some() {
                s.answered += 1;
            }
            s.talk_seconds = s.talk_seconds.saturating_add(call.duration_seconds.max(0));
            s.short += u64::from(thresholds.is_short(call));
            s.long += u64::from(thresholds.is_long(call));
            s.anomalous += u64::from(!call.anomalies.is_empty());
        }
        s
    }

    /// Answered calls over all calls; `None` without calls.
    pub fn answer_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.answered as f64 / self.calls as f64)
    }
}

/// Where a call sits on a day's timeline, in seconds from the day's start: from when it was
/// picked up (or, never answered, when it ended) for as long as it lasted, clipped to the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub length: i64,
}

/// `call`'s place on the day `[day_start, day_end)`.
pub fn span(call: &Call, day_start: DateTime<Utc>, day_end: DateTime<Utc>) -> Span {
    let day = (day_end - day_start).num_seconds().max(0);
    let began = call.started_at.unwrap_or(call.ended_at);
    let start = (began - day_start).num_seconds().clamp(0, day);
    let end = (call.ended_at - day_start).num_seconds().clamp(start, day);
    Span {
        start,
        length: end - start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_call_was_answered_and_under_the_threshold() {
        let t = Thresholds::default();
        assert_eq!(
            t.short(),
            IntRange {
                min: Some(1),
                max: Some(29)
            }
        );
        assert!(t.short().contains(29) && !t.short().contains(30) && !t.short().contains(0));
        assert!(t.long().contains(1801) && !t.long().contains(1800));
        let narrowed = both(
            Some(IntRange {
                min: Some(10),
                max: None,
            }),
            t.short(),
        );
        assert_eq!(
            narrowed,
            IntRange {
                min: Some(10),
                max: Some(29)
            }
        );
        let none = both(
            Some(IntRange {
                min: Some(100),
                max: None,
            }),
            t.short(),
        );
        assert!(none.min > none.max);
        assert_eq!(both(None, t.long()), t.long());
    }
}
