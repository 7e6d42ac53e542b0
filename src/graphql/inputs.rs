//! Input types, turned into domain values (and checked) once, here.
use async_graphql::{Enum, ID, InputObject};

use super::scalars::DateTime;
use super::types::CallDirection;
use crate::domain;
use crate::error::AppError;

/// A half-open range of instants: `from <= t < to`. Either end may be left open.
#[derive(InputObject, Clone, Debug, Default)]
pub struct TimeRange {
    /// Inclusive start.
    pub from: Option<DateTime>,
    /// Exclusive end.
    pub to: Option<DateTime>,
}

impl TimeRange {
    fn to_domain(&self, argument: &str) -> Result<domain::TimeRange, AppError> {
        domain::TimeRange::new(argument, self.from.map(|t| t.0), self.to.map(|t| t.0))
    }
}

/// An inclusive range of whole numbers. Either end may be left open.
#[derive(InputObject, Clone, Debug, Default)]
pub struct IntRange {
    /// Smallest value included.
    pub min: Option<i64>,
    /// Largest value included.
    pub max: Option<i64>,
}

/// Which calls to return. Every given field must match (AND); a list matches any of its values.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CallFilter {
    /// Any of these DoubleTick call ids.
    pub call_id: Option<Vec<ID>>,
    /// DoubleTick's customer id.
    pub customer_id: Option<String>,
    /// The customer's number, whatever its formatting (`+91 98111-22233` matches `919811122233`).
    pub customer_number: Option<String>,
    /// A case-insensitive substring of the customer's name.
    pub customer_name: Option<String>,
    /// Any of these agents (`pickedBy`, as sent).
    pub picked_by: Option<Vec<String>>,
    /// Any of these `endedBy` values.
    pub ended_by: Option<Vec<String>>,
    /// Any of these business numbers.
    pub waba_number: Option<Vec<String>>,
    /// Incoming or outgoing.
    pub direction: Option<CallDirection>,
    /// Any of these statuses (`END`, `MISSED`, `REJECT`, `FAILED`, ...).
    pub status: Option<Vec<String>>,
    /// `PSTN` for phone-line calls.
    pub channel: Option<String>,
    /// When the call ended (half-open).
    pub ended_at: Option<TimeRange>,
    /// When the call was picked up (half-open); calls never picked up do not match a range.
    pub started_at: Option<TimeRange>,
    /// Talk time in seconds (inclusive).
    pub duration_seconds: Option<IntRange>,
    /// Whether a recording URL was sent.
    pub has_recording: Option<bool>,
    /// Whether the call has anomalies.
    pub has_anomalies: Option<bool>,
    /// Any of these recording states (of the call's current recording link). A call whose
    /// link was never queued (stored before archiving existed) matches none until
    /// `calltrail recordings backfill`.
    pub recording_state: Option<Vec<super::types::RecordingState>>,
    /// Calls with at least one review (`true`), or not reviewed yet (`false`).
    pub reviewed: Option<bool>,
}

impl CallFilter {
    /// The domain filter; ranges with `from > to` or `min > max` are refused. `archiving`
    /// says whether recordings are fetched (what `NOT_CONFIGURED` and `PENDING` mean).
    pub fn to_domain(&self, archiving: bool) -> Result<domain::CallFilter, AppError> {
        let customer_digits = self
            .customer_number
            .as_deref()
            .map(|n| domain::filter::customer_digits("filter.customerNumber", n))
            .transpose()?;
        Ok(domain::CallFilter {
            call_ids: self
                .call_id
                .as_ref()
                .map(|ids| ids.iter().map(|id| id.0.clone()).collect()),
            customer_id: self.customer_id.clone(),
            customer_digits,
            customer_name: self.customer_name.as_ref().map(|n| n.to_lowercase()),
            picked_by: self.picked_by.clone(),
            ended_by: self.ended_by.clone(),
            waba_numbers: self.waba_number.clone(),
            direction: self.direction.map(Into::into),
            statuses: self.status.clone(),
            channel: self.channel.clone(),
            ended_at: self
                .ended_at
                .as_ref()
                .map(|r| r.to_domain("filter.endedAt"))
                .transpose()?,
            started_at: self
                .started_at
                .as_ref()
                .map(|r| r.to_domain("filter.startedAt"))
                .transpose()?,
            duration_seconds: self
                .duration_seconds
                .as_ref()
                .map(|r| domain::IntRange::new("filter.durationSeconds", r.min, r.max))
                .transpose()?,
            has_recording: self.has_recording,
            has_anomalies: self.has_anomalies,
            recording_states: self.recording_state.as_ref().map(|states| {
                let shown: Vec<domain::recording::Shown> =
                    states.iter().map(|s| (*s).into()).collect();
                domain::recording::Shown::filter(&shown, archiving)
            }),
            reviewed: self.reviewed,
        })
    }
}

/// What to order calls by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CallOrderField {
    /// When the call ended (the default).
    EndedAt,
    /// When the call was picked up. Calls never picked up come last, in either direction.
    StartedAt,
    /// Talk time.
    DurationSeconds,
    /// When calltrail first received the call.
    ReceivedAt,
}

/// Ascending or descending.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SortDirection {
    /// Smallest / oldest first.
    Asc,
    /// Largest / newest first.
    Desc,
}

/// An ordering of calls. Ties are broken by a unique key in the same direction, so pages
/// never skip or repeat a call.
#[derive(InputObject, Clone, Copy, Debug)]
pub struct CallOrder {
    /// The sort key.
    pub field: CallOrderField,
    /// The direction.
    pub direction: SortDirection,
}

impl From<CallOrder> for domain::CallOrder {
    fn from(o: CallOrder) -> Self {
        domain::CallOrder {
            field: match o.field {
                CallOrderField::EndedAt => domain::OrderField::EndedAt,
                CallOrderField::StartedAt => domain::OrderField::StartedAt,
                CallOrderField::DurationSeconds => domain::OrderField::DurationSeconds,
                CallOrderField::ReceivedAt => domain::OrderField::ReceivedAt,
            },
            direction: match o.direction {
                SortDirection::Asc => domain::SortDirection::Asc,
                SortDirection::Desc => domain::SortDirection::Desc,
            },
        }
    }
}
