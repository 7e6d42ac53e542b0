//! Which calls a query asks for, in which order, and which page of them.
use chrono::{DateTime, Utc};

use super::Direction;
use crate::error::AppError;

/// Half-open instant range: `from <= t < to`; an open end is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub fn new(
        argument: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, AppError> {
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(AppError::bad_input(argument, "`from` is after `to`"));
        }
        Ok(TimeRange { from, to })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f <= t) && self.to.is_none_or(|e| t < e)
    }
}

/// Inclusive integer range; an open end is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl IntRange {
    pub fn new(argument: &str, min: Option<i64>, max: Option<i64>) -> Result<Self, AppError> {
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(AppError::bad_input(argument, "`min` is greater than `max`"));
        }
        Ok(IntRange { min, max })
    }

    pub fn contains(&self, v: i64) -> bool {
        self.min.is_none_or(|m| m <= v) && self.max.is_none_or(|m| v <= m)
    }
}

/// Conditions on calls, all of which must hold; a list means any of its values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    pub call_ids: Option<Vec<String>>,
    pub customer_id: Option<String>,
    /// Digits only: matched against the normalised customer number.
    pub customer_digits: Option<String>,
    /// Lower-cased; a substring of the customer's name.
    pub customer_name: Option<String>,
    pub picked_by: Option<Vec<String>>,
    pub ended_by: Option<Vec<String>>,
    pub waba_numbers: Option<Vec<String>>,
    pub direction: Option<Direction>,
    pub statuses: Option<Vec<String>>,
    pub channel: Option<String>,
    pub ended_at: Option<TimeRange>,
    pub started_at: Option<TimeRange>,
    pub duration_seconds: Option<IntRange>,
    pub has_recording: Option<bool>,
    pub has_anomalies: Option<bool>,
}

/// The keys a call list can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderField {
    EndedAt,
    StartedAt,
    DurationSeconds,
    ReceivedAt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortDirection {
    Asc,
    Desc,
}

/// An ordering of calls; ties are always broken by the call's storage id in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallOrder {
    pub field: OrderField,
    pub direction: SortDirection,
}

impl Default for CallOrder {
    fn default() -> Self {
        CallOrder {
            field: OrderField::EndedAt,
            direction: SortDirection::Desc,
        }
    }
}

/// Which slice of an ordered list to return, relative to opaque cursors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// `first` calls after the cursor's position (from the start when `None`).
    Forward { first: u64, after: Option<String> },
    /// `last` calls before the cursor's position (up to the end when `None`).
    Backward { last: u64, before: Option<String> },
}

/// What a page must carry beyond its position: a reader that asks only for `totalCount`
/// needs no rows, and only a reader that asks for the raw body needs it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFields {
    /// The calls themselves (edges, nodes or page info were asked for).
    pub rows: bool,
    /// Each call's raw delivery body (`rawPayload`), by far its largest column.
    pub raw_payload: bool,
    /// Fields beyond a call log's summary (who, when, how long, recording: see
    /// `store::calls`), such as device, chat, PSTN details, anomalies or revision.
    pub details: bool,
}

/// The sort-key value of a call at a cursor's position.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CursorKey {
    Time(DateTime<Utc>),
    Int(i64),
    /// `startedAt` of a call never answered: such calls sort after all others.
    Null,
}

/// A position in one ordered, filtered list: valid only with that ordering and filter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// `FIELD:DIRECTION` of the ordering the cursor was issued for.
    pub order: String,
    /// Fingerprint of the filter the cursor was issued for.
    pub filter: String,
    pub key: CursorKey,
    pub id: i64,
}

impl CallOrder {
    pub fn label(&self) -> String {
        format!("{:?}:{:?}", self.field, self.direction)
    }
}

impl CallFilter {
    /// A short stable fingerprint, so a cursor cannot be replayed against another filter.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(format!("{self:?}").as_bytes())[..8])
    }
}

impl Cursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor and checks it belongs to this ordering and filter.
    pub fn decode(
        argument: &str,
        text: &str,
        order: &CallOrder,
        filter: &CallFilter,
    ) -> Result<Cursor, AppError> {
        use base64::Engine;
        let invalid = || AppError::bad_input(argument, "not a cursor issued by this API");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.order != order.label() {
            return Err(AppError::bad_input(
                argument,
                "this cursor was issued for a different orderBy; start again without a cursor",
            ));
        }
        if cursor.filter != filter.fingerprint() {
            return Err(AppError::bad_input(
                argument,
                "this cursor was issued for a different filter; start again without a cursor",
            ));
        }
        Ok(cursor)
    }
}
