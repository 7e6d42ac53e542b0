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
    /// Calls whose current recording link's archive job is in one of these states (an empty
    /// list matches nothing).
    pub recording_states: Option<Vec<crate::domain::recording::JobState>>,
    /// Calls with at least one review (`true`) or none yet (`false`).
    pub reviewed: Option<bool>,
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

/// A field of a `Call` as readers ask for it, by its GraphQL name: the one list a page's
/// column selection (`store::calls`) and the GraphQL look-ahead (`graphql::query`) both read.
/// Its names are checked against the generated schema (`graphql::query` tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallField {
    CallId,
    Status,
    Direction,
    CustomerId,
    CustomerName,
    CustomerNumber,
    WabaNumber,
    PickedBy,
    EndedBy,
    RejectedBy,
    DeviceId,
    ChatId,
    ChatMessageId,
    Channel,
    ChannelNumber,
    PstnFrom,
    PstnTo,
    FailedReason,
    StartedAt,
    EndedAt,
    DurationSeconds,
    RecordingUrl,
    IsNewCaller,
    IsChatAssigned,
    NotPickedCount,
    Anomalies,
    ReceivedAt,
    UpdatedAt,
    Revision,
    RawContentType,
    RawPayload,
    Revisions,
    Recording,
    Reviews,
}

/// Which of a page's column sets serves a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagePart {
    /// A call log's summary (who, when, how long, recording): always read.
    Summary,
    /// Each call's raw delivery body, by far its largest column: read only when asked for.
    RawPayload,
    /// Everything else (device, chat, PSTN details, anomalies, revision...): read when any of
    /// it is asked for.
    Details,
}

impl CallField {
    pub const ALL: [CallField; 34] = [
        CallField::CallId,
        CallField::Status,
        CallField::Direction,
        CallField::CustomerId,
        CallField::CustomerName,
        CallField::CustomerNumber,
        CallField::WabaNumber,
        CallField::PickedBy,
        CallField::EndedBy,
        CallField::RejectedBy,
        CallField::DeviceId,
        CallField::ChatId,
        CallField::ChatMessageId,
        CallField::Channel,
        CallField::ChannelNumber,
        CallField::PstnFrom,
        CallField::PstnTo,
        CallField::FailedReason,
        CallField::StartedAt,
        CallField::EndedAt,
        CallField::DurationSeconds,
        CallField::RecordingUrl,
        CallField::IsNewCaller,
        CallField::IsChatAssigned,
        CallField::NotPickedCount,
        CallField::Anomalies,
        CallField::ReceivedAt,
        CallField::UpdatedAt,
        CallField::Revision,
        CallField::RawContentType,
        CallField::RawPayload,
        CallField::Revisions,
        CallField::Recording,
        CallField::Reviews,
    ];

    /// The field's name in GraphQL (`Call.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            CallField::CallId => "callId",
            CallField::Status => "status",
            CallField::Direction => "direction",
            CallField::CustomerId => "customerId",
            CallField::CustomerName => "customerName",
            CallField::CustomerNumber => "customerNumber",
            CallField::WabaNumber => "wabaNumber",
            CallField::PickedBy => "pickedBy",
            CallField::EndedBy => "endedBy",
            CallField::RejectedBy => "rejectedBy",
            CallField::DeviceId => "deviceId",
            CallField::ChatId => "chatId",
            CallField::ChatMessageId => "chatMessageId",
            CallField::Channel => "channel",
            CallField::ChannelNumber => "channelNumber",
            CallField::PstnFrom => "pstnFrom",
            CallField::PstnTo => "pstnTo",
            CallField::FailedReason => "failedReason",
            CallField::StartedAt => "startedAt",
            CallField::EndedAt => "endedAt",
            CallField::DurationSeconds => "durationSeconds",
            CallField::RecordingUrl => "recordingUrl",
            CallField::IsNewCaller => "isNewCaller",
            CallField::IsChatAssigned => "isChatAssigned",
            CallField::NotPickedCount => "notPickedCount",
            CallField::Anomalies => "anomalies",
            CallField::ReceivedAt => "receivedAt",
            CallField::UpdatedAt => "updatedAt",
            CallField::Revision => "revision",
            CallField::RawContentType => "rawContentType",
            CallField::RawPayload => "rawPayload",
            CallField::Revisions => "revisions",
            CallField::Recording => "recording",
            CallField::Reviews => "reviews",
        }
    }

    /// What a page must read to serve the field.
    pub fn part(self) -> PagePart {
        match self {
            CallField::CallId
            | CallField::Status
            | CallField::Direction
            | CallField::CustomerId
            | CallField::CustomerName
            | CallField::CustomerNumber
            | CallField::WabaNumber
            | CallField::PickedBy
            | CallField::EndedBy
            | CallField::StartedAt
            | CallField::EndedAt
            | CallField::DurationSeconds
            | CallField::RecordingUrl
            | CallField::Recording
            | CallField::Reviews
            | CallField::ReceivedAt
            | CallField::UpdatedAt => PagePart::Summary,
            CallField::RawPayload => PagePart::RawPayload,
            CallField::RejectedBy
            | CallField::DeviceId
            | CallField::ChatId
            | CallField::ChatMessageId
            | CallField::Channel
            | CallField::ChannelNumber
            | CallField::PstnFrom
            | CallField::PstnTo
            | CallField::FailedReason
            | CallField::IsNewCaller
            | CallField::IsChatAssigned
            | CallField::NotPickedCount
            | CallField::Anomalies
            | CallField::Revision
            | CallField::RawContentType
            | CallField::Revisions => PagePart::Details,
        }
    }

    /// Whether the field tells who the customer is (or carries what would): refused to readers
    /// who may not see identity ([`crate::domain::Viewer::may_see_identity`]).
    pub fn is_identity(self) -> bool {
        match self {
            CallField::CustomerId
            | CallField::CustomerName
            | CallField::CustomerNumber
            | CallField::RecordingUrl
            | CallField::RawPayload
            | CallField::Revisions
            | CallField::Reviews => true,
            CallField::CallId
            | CallField::Status
            | CallField::Direction
            | CallField::WabaNumber
            | CallField::PickedBy
            | CallField::EndedBy
            | CallField::RejectedBy
            | CallField::DeviceId
            | CallField::ChatId
            | CallField::ChatMessageId
            | CallField::Channel
            | CallField::ChannelNumber
            | CallField::PstnFrom
            | CallField::PstnTo
            | CallField::FailedReason
            | CallField::StartedAt
            | CallField::EndedAt
            | CallField::DurationSeconds
            | CallField::IsNewCaller
            | CallField::IsChatAssigned
            | CallField::NotPickedCount
            | CallField::Anomalies
            | CallField::ReceivedAt
            | CallField::UpdatedAt
            | CallField::Revision
            | CallField::RawContentType
            // Its state, size and checksum are open to every role; its playback is not.
            | CallField::Recording => false,
        }
    }

    /// Whether the field is one value per call (a table column), not a list of records or an
    /// object.
    pub fn is_scalar(self) -> bool {
        !matches!(
            self,
            CallField::Revisions | CallField::Recording | CallField::Reviews
        )
    }

    /// The field of a GraphQL name, if it is one.
    pub fn from_name(name: &str) -> Option<CallField> {
        CallField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a page must carry beyond its position: a reader that asks only for `totalCount`
/// needs no rows, and only a reader that asks for the raw body needs it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFields {
    /// The calls themselves (edges, nodes or page info were asked for).
    pub rows: bool,
    /// Each call's raw delivery body (`rawPayload`), by far its largest column.
    pub raw_payload: bool,
    /// Fields beyond a call log's summary ([`PagePart::Details`]).
    pub details: bool,
    /// Only these of the summary's fields (and the few every call needs), when a reader
    /// knows exactly what it writes (an export's columns): each value read costs its
    /// decoding, most of a narrow export's time.
    pub only: Option<FieldSet>,
}

/// A set of [`CallField`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(u64);

impl FieldSet {
    pub fn of(fields: impl IntoIterator<Item = CallField>) -> FieldSet {
        FieldSet(fields.into_iter().fold(0, |set, f| set | FieldSet::bit(f)))
    }

    pub fn with(self, field: CallField) -> FieldSet {
        FieldSet(self.0 | FieldSet::bit(field))
    }

    pub fn contains(self, field: CallField) -> bool {
        self.0 & FieldSet::bit(field) != 0
    }

    fn bit(field: CallField) -> u64 {
        1 << (field as u32)
    }
}

/// The sort-key value of a call at a cursor's position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorKey {
    Time(DateTime<Utc>),
    Int(i64),
    /// `startedAt` of a call never answered: such calls sort after all others.
    Null,
}

/// A position in one ordered, filtered list: valid only with that ordering and filter.
///
/// On the wire it is base64url (no padding) of `3|ORDER|FILTER|KEY|ID`: the ordering's
/// label, the filter's fingerprint, the sort key (`t` and seconds.nanoseconds since the epoch,
/// `i` and an integer, or `n` for none) and the storage id. Opaque to clients; the
/// leading version lets the format change without misreading old cursors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `FIELD:DIRECTION` of the ordering the cursor was issued for.
    pub order: String,
    /// Fingerprint of the filter the cursor was issued for.
    pub filter: String,
    pub key: CursorKey,
    pub id: i64,
}

impl OrderField {
    /// The call field the list is ordered by.
    pub fn field(self) -> CallField {
        match self {
            OrderField::EndedAt => CallField::EndedAt,
            OrderField::StartedAt => CallField::StartedAt,
            OrderField::DurationSeconds => CallField::DurationSeconds,
            OrderField::ReceivedAt => CallField::ReceivedAt,
        }
    }
}

impl CallOrder {
    /// `FIELD:DIRECTION` (`endedAt:DESC`), spelled out so no rename moves it.
    pub fn label(&self) -> String {
        let field = match self.field {
            OrderField::EndedAt => "endedAt",
            OrderField::StartedAt => "startedAt",
            OrderField::DurationSeconds => "durationSeconds",
            OrderField::ReceivedAt => "receivedAt",
        };
        let direction = match self.direction {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        };
        format!("{field}:{direction}")
    }
}

/// The digits a customer-number filter matches by (`+91 98111-22233` → `919811122233`);
/// `argument` names the input in the error when there are none.
pub fn customer_digits(argument: &str, number: &str) -> Result<String, AppError> {
    let digits = super::phone::digits(number);
    if digits.is_empty() {
        return Err(AppError::bad_input(
            argument,
            "a phone number needs at least one digit",
        ));
    }
    Ok(digits)
}

impl CallFilter {
    /// A short fingerprint, so a cursor cannot be replayed against another filter: the first
    /// 8 bytes (hex) of the SHA-256 of [`CallFilter::canonical`], stable across versions.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(self.canonical().as_bytes())[..8])
    }

    /// `calltrail.filter.v1`, a newline and one JSON object (keys sorted) of each condition
    /// set, under its GraphQL name: lists sorted and each value once (a list means any of
    /// them), instants as RFC 3339 UTC with nanoseconds, ranges as `[from, to]`/`[min, max]`
    /// with `null` for an open end. Every field is named (no `..`): a new condition does not
    /// compile here until it has an encoding; existing encodings never change.
    pub fn canonical(&self) -> String {
        use serde_json::{Value, json};
        let CallFilter {
            call_ids,
            customer_id,
            customer_digits,
            customer_name,
            picked_by,
            ended_by,
            waba_numbers,
            direction,
            statuses,
            channel,
            ended_at,
            started_at,
            duration_seconds,
            has_recording,
            has_anomalies,
            recording_states,
            reviewed,
        } = self;
        let set = |values: &Vec<String>| {
            let mut values = values.clone();
            values.sort();
            values.dedup();
            json!(values)
        };
        let instant = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        };
        let range = |r: &TimeRange| json!([instant(r.from), instant(r.to)]);
        let mut stated: Vec<(&str, Value)> = Vec::new();
        let mut state = |key, value: Option<Value>| {
            if let Some(value) = value {
                stated.push((key, value));
            }
        };
        state("callIds", call_ids.as_ref().map(set));
        state("customerId", customer_id.as_ref().map(|v| json!(v)));
        state("customerDigits", customer_digits.as_ref().map(|v| json!(v)));
        state("customerName", customer_name.as_ref().map(|v| json!(v)));
        state("pickedBy", picked_by.as_ref().map(set));
        state("endedBy", ended_by.as_ref().map(set));
        state("wabaNumber", waba_numbers.as_ref().map(set));
        state("direction", direction.map(|d| json!(d.as_wire())));
        state("callStatus", statuses.as_ref().map(set));
        state("channel", channel.as_ref().map(|v| json!(v)));
        state("endedAt", ended_at.as_ref().map(range));
        state("startedAt", started_at.as_ref().map(range));
        state(
            "durationSeconds",
            duration_seconds.map(|r| json!([r.min, r.max])),
        );
        state("hasRecording", has_recording.map(|b| json!(b)));
        state("hasAnomalies", has_anomalies.map(|b| json!(b)));
        state(
            "recordingState",
            recording_states
                .as_ref()
                .map(|states| set(&states.iter().map(|s| s.as_str().to_owned()).collect())),
        );
        state("reviewed", reviewed.map(|b| json!(b)));
        let object: serde_json::Map<String, Value> =
            stated.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        format!("calltrail.filter.v1\n{}", Value::Object(object))
    }
}

impl Cursor {
    const VERSION: &'static str = "3";

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
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let cursor = Cursor::parse(text).ok_or_else(invalid)?;
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

    fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.split('|');
        if parts.next()? != Cursor::VERSION {
            return None;
        }
        let order = parts.next()?.to_owned();
        let filter = parts.next()?.to_owned();
        let key = parts.next()?;
        let key = match key.split_at_checked(1)? {
            ("t", instant) => {
                let (seconds, nanos) = instant.split_once('.')?;
                // Nine digits, or ten within a leap second (chrono counts it as nanoseconds
                // 1e9 to 2e9 of the second before).
                if !(9..=10).contains(&nanos.len()) {
                    return None;
                }
                CursorKey::Time(DateTime::from_timestamp(
                    seconds.parse().ok()?,
                    nanos.parse().ok()?,
                )?)
            }
            ("i", value) => CursorKey::Int(value.parse().ok()?),
            ("n", "") => CursorKey::Null,
            _ => return None,
        };
        let id = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Cursor {
            order,
            filter,
            key,
            id,
        })
    }
}

/// What every cursor of one page has in common, written once per page.
pub struct CursorPrefix(String);

impl CursorPrefix {
    pub fn new(order: &CallOrder, filter: &CallFilter) -> CursorPrefix {
        CursorPrefix(format!(
            "{}|{}|{}|",
            Cursor::VERSION,
            order.label(),
            filter.fingerprint()
        ))
    }

    /// The cursor of the call with sort key `key` and storage id `id`.
    pub fn encode(&self, key: &CursorKey, id: i64) -> String {
        use base64::Engine;
        use std::fmt::Write;
        let mut text = String::with_capacity(self.0.len() + 40);
        text.push_str(&self.0);
        let _ = match key {
            CursorKey::Time(t) => write!(
                text,
                "t{}.{:09}|{id}",
                t.timestamp(),
                t.timestamp_subsec_nanos()
            ),
            CursorKey::Int(v) => write!(text, "i{v}|{id}"),
            CursorKey::Null => write!(text, "n|{id}"),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Cursor, AppError> {
        Cursor::decode("after", text, &CallOrder::default(), &CallFilter::default())
    }

    #[test]
    fn cursors_read_back_exactly_what_was_written() {
        let time = DateTime::from_timestamp(1_764_201_600, 123_456_789).expect("instant");
        let before_1970 = DateTime::from_timestamp(-86_401, 5).expect("instant");
        let leap_second = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("leap second")
            .and_utc();
        for key in [
            CursorKey::Time(time),
            CursorKey::Time(before_1970),
            CursorKey::Time(leap_second),
            CursorKey::Int(-42),
            CursorKey::Null,
        ] {
            let prefix = CursorPrefix::new(&CallOrder::default(), &CallFilter::default());
            let cursor = decode(&prefix.encode(&key, 9_007_199_254_740_993)).expect("valid");
            assert_eq!(cursor.key, key);
            assert_eq!(cursor.id, 9_007_199_254_740_993);
        }
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let order = CallOrder::default().label();
        let filter = CallFilter::default().fingerprint();
        let valid = format!("3|{order}|{filter}|i5|7");
        assert!(decode(&b64(&valid)).is_ok());
        for text in [
            format!("1|{order}|{filter}|i5|7"),
            format!("3|{order}|{filter}|i5|7|8"),
            format!("3|{order}|{filter}|i5"),
            format!("3|{order}|{filter}|x5|7"),
            format!("3|{order}|{filter}|n5|7"),
            format!("3|{order}|{filter}|tnope|7"),
            format!("3|{order}|{filter}|t5|7"),
            format!("3|{order}|{filter}|t5.1|7"),
            format!("3|{order}|{filter}||7"),
            format!(r#"{{"order":"{order}","filter":"{filter}","key":{{"Int":5}},"id":7}}"#),
        ] {
            assert!(decode(&b64(&text)).is_err(), "{text} was read as a cursor");
        }
        assert!(decode("not base64 at all!").is_err());
        let other_filter = format!("3|{order}|0000000000000000|i5|7");
        assert!(decode(&b64(&other_filter)).is_err());
    }
}
