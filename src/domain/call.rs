//! A concluded call, as the call log shows it.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who placed the call: the customer (incoming) or the business (outgoing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    Incoming,
    Outgoing,
}

impl Direction {
    /// DoubleTick's spelling (`INCOMING`, `OUTGOING`), also the stored form.
    pub fn as_wire(self) -> &'static str {
        match self {
            Direction::Incoming => "INCOMING",
            Direction::Outgoing => "OUTGOING",
        }
    }

    pub fn from_wire(value: &str) -> Option<Self> {
        match value {
            "INCOMING" => Some(Direction::Incoming),
            "OUTGOING" => Some(Direction::Outgoing),
            _ => None,
        }
    }
}

/// Something odd about a stored call: kept, never dropped, and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Anomaly {
    /// `durationInSeconds` differs from `callEndedAt - callStartedAt` by more than 2 s.
    DurationMismatch,
    /// `callEndedAt` is before `callStartedAt`.
    EndedBeforeStarted,
    /// The call was picked up (`callStartedAt` set) but lasted 0 s.
    AnsweredZeroDuration,
    /// `durationInSeconds` arrived as a string.
    DurationAsString,
    /// `durationInSeconds` had a fraction; it is stored rounded to the nearest second.
    DurationFractional,
    /// A timestamp carried a UTC offset other than `Z`; it is stored as the same instant in UTC.
    TimestampOffset,
    /// `customerNumber` carried formatting (spaces, dashes, `+`); matching uses its digits.
    FormattedPhoneNumber,
    /// The payload had keys DoubleTick does not document; they are kept in the raw payload.
    UnknownFields,
    /// `callStartedAt` or `callEndedAt` is before 2000-01-01 or more than a day after the
    /// delivery arrived; kept as sent, and left out of the planning of time buckets.
    ImplausibleTimestamp,
}

impl Anomaly {
    pub const ALL: [Anomaly; 9] = [
        Anomaly::DurationMismatch,
        Anomaly::EndedBeforeStarted,
        Anomaly::AnsweredZeroDuration,
        Anomaly::DurationAsString,
        Anomaly::DurationFractional,
        Anomaly::TimestampOffset,
        Anomaly::FormattedPhoneNumber,
        Anomaly::UnknownFields,
        Anomaly::ImplausibleTimestamp,
    ];

    /// Stable code, used in storage and GraphQL.
    pub fn code(self) -> &'static str {
        match self {
            Anomaly::DurationMismatch => "DURATION_MISMATCH",
            Anomaly::EndedBeforeStarted => "ENDED_BEFORE_STARTED",
            Anomaly::AnsweredZeroDuration => "ANSWERED_ZERO_DURATION",
            Anomaly::DurationAsString => "DURATION_AS_STRING",
            Anomaly::DurationFractional => "DURATION_FRACTIONAL",
            Anomaly::TimestampOffset => "TIMESTAMP_OFFSET",
            Anomaly::FormattedPhoneNumber => "FORMATTED_PHONE_NUMBER",
            Anomaly::UnknownFields => "UNKNOWN_FIELDS",
            Anomaly::ImplausibleTimestamp => "IMPLAUSIBLE_TIMESTAMP",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Anomaly::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The stored form of a set of anomalies: codes joined by `,`, empty when none.
    pub fn join(anomalies: &[Anomaly]) -> String {
        anomalies
            .iter()
            .map(|a| a.code())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn split(stored: &str) -> Vec<Anomaly> {
        stored.split(',').filter_map(Anomaly::from_code).collect()
    }
}

/// A concluded call: a terminal event (ended, rejected, missed, failed) has arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Storage key; breaks ties in every ordering.
    pub id: i64,
    pub call_id: String,
    pub status: String,
    pub direction: Direction,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub customer_number: String,
    pub waba_number: String,
    pub picked_by: Option<String>,
    pub ended_by: Option<String>,
    pub rejected_by: Option<String>,
    pub device_id: Option<String>,
    pub chat_id: Option<String>,
    pub chat_message_id: Option<String>,
    pub channel: Option<String>,
    pub channel_number: Option<String>,
    pub pstn_from: Option<String>,
    pub pstn_to: Option<String>,
    pub failed_reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub duration_seconds: i64,
    pub recording_url: Option<String>,
    pub is_new_caller: Option<bool>,
    pub is_chat_assigned: Option<bool>,
    pub not_picked_count: i32,
    pub anomalies: Vec<Anomaly>,
    pub revision: i32,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub raw_content_type: String,
    pub raw_payload: String,
}

/// An earlier version of a call, replaced by a later delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRevision {
    pub revision: i32,
    pub replaced_at: DateTime<Utc>,
    pub call: Call,
}
