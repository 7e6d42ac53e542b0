//! One lifecycle event of a call, parsed and valid: what a webhook delivery means.
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Anomaly, Direction};

/// DoubleTick's lifecycle events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    IncomingInitiated,
    OutgoingInitiated,
    Accepted,
    NotPicked,
    Ended,
    Rejected,
    Missed,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::IncomingInitiated,
        EventKind::OutgoingInitiated,
        EventKind::Accepted,
        EventKind::NotPicked,
        EventKind::Ended,
        EventKind::Rejected,
        EventKind::Missed,
    ];

    /// DoubleTick's event name.
    pub fn as_wire(self) -> &'static str {
        match self {
            EventKind::IncomingInitiated => "CALL_INCOMING_INITIATED",
            EventKind::OutgoingInitiated => "CALL_OUTGOING_INITIATED",
            EventKind::Accepted => "CALL_ACCEPTED",
            EventKind::NotPicked => "CALL_NOT_PICKED",
            EventKind::Ended => "CALL_ENDED",
            EventKind::Rejected => "CALL_REJECTED",
            EventKind::Missed => "CALL_MISSED",
        }
    }

    pub fn from_wire(name: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_wire() == name)
    }

    /// Events that conclude a call.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventKind::Ended | EventKind::Rejected | EventKind::Missed
        )
    }
}

/// Call statuses after which a call is over (DoubleTick spells them `END`, `REJECT`, ...).
pub const TERMINAL_STATUSES: [&str; 4] = ["END", "REJECT", "MISSED", "FAILED"];

/// What one event says about its call; `None` where it said nothing (`""` on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFields {
    pub status: Option<String>,
    pub direction: Option<Direction>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub customer_number: Option<String>,
    pub waba_number: Option<String>,
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
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub recording_url: Option<String>,
    pub is_new_caller: Option<bool>,
    pub is_chat_assigned: Option<bool>,
    /// Oddities of the delivery itself (formatting, types), found while parsing it.
    pub anomalies: Vec<Anomaly>,
}

impl CallFields {
    /// Overwrites every field this event states; keeps the rest. Every field is named once
    /// and destructured without `..`, so a new one does not compile here until it says how it
    /// merges.
    pub fn overlay(&mut self, newer: &CallFields) {
        macro_rules! take_stated {
            ($($f:ident),*) => {
                let CallFields { $($f,)* anomalies } = newer;
                $( if $f.is_some() { self.$f = $f.clone(); } )*
                for anomaly in anomalies {
                    if !self.anomalies.contains(anomaly) {
                        self.anomalies.push(*anomaly);
                    }
                }
            };
        }
        take_stated!(
            status,
            direction,
            customer_id,
            customer_name,
            customer_number,
            waba_number,
            picked_by,
            ended_by,
            rejected_by,
            device_id,
            chat_id,
            chat_message_id,
            channel,
            channel_number,
            pstn_from,
            pstn_to,
            failed_reason,
            started_at,
            ended_at,
            duration_seconds,
            recording_url,
            is_new_caller,
            is_chat_assigned
        );
        self.anomalies.sort();
    }
}

/// A valid lifecycle event of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEvent {
    pub kind: EventKind,
    pub call_id: String,
    pub fields: CallFields,
    /// The keys DoubleTick sent that calltrail does not read, with their values as text
    /// (a number as its digits, an array or object as compact JSON; `""` and `null` left out):
    /// part of what the event said, so part of its fingerprint.
    pub unread: BTreeMap<String, String>,
}

/// The first line of the encoding version 1 fingerprints hash; fingerprints of version 1 are
/// `v1:` and the SHA-256 in hex.
pub const FINGERPRINT_V1: &str = "calltrail.event.v1";

/// Instants before this one (2000-01-01T00:00:00Z) are implausible for a call.
pub const PLAUSIBLE_FROM: i64 = 946_684_800;
/// How far after its delivery arrived a call's instant may lie (clock skew) before it is
/// implausible.
pub const PLAUSIBLE_AHEAD: TimeDelta = TimeDelta::days(1);

/// Whether `t`, stated by a delivery that arrived at `arrived`, can be a call's time.
pub fn plausible(t: DateTime<Utc>, arrived: DateTime<Utc>) -> bool {
    t.timestamp() >= PLAUSIBLE_FROM && t <= arrived + PLAUSIBLE_AHEAD
}

impl CallEvent {
    /// Concludes the call: a terminal event, or any event reporting a terminal status with an end time.
    pub fn is_terminal(&self) -> bool {
        self.kind.is_terminal()
            || (self.fields.ended_at.is_some()
                && self
                    .fields
                    .status
                    .as_deref()
                    .is_some_and(|s| TERMINAL_STATUSES.contains(&s)))
    }

    /// Merge precedence: initiation and "not picked" < accepted < terminal.
    pub fn rank(&self) -> i32 {
        if self.is_terminal() {
            3
        } else if self.kind == EventKind::Accepted {
            2
        } else {
            1
        }
    }

    /// Identifies what DoubleTick said, whatever format carried it: a redelivery has the
    /// same one, in this version and every later one. `v1:` and the SHA-256 of
    /// [`CallEvent::canonical`].
    pub fn fingerprint(&self) -> String {
        format!(
            "v1:{}",
            hex::encode(Sha256::digest(self.canonical().as_bytes()))
        )
    }

    /// The encoding version 1 fingerprints hash: [`FINGERPRINT_V1`], a newline, and one JSON
    /// object (keys sorted, no spaces) of every key DoubleTick sent with a value, under
    /// DoubleTick's own names, each value as read: text as a string (a number sent for text
    /// as its digits), `callStartedAt`/`callEndedAt` as RFC 3339 UTC with milliseconds,
    /// `durationInSeconds` as whole seconds, booleans as booleans, keys calltrail does not
    /// read as text (see [`CallEvent::unread`]). calltrail's own findings (anomalies) are not
    /// part of it.
    ///
    /// This encoding never changes: a key read in a later version keeps the encoding it has
    /// here (as text, when it is not read yet), and `tests/api/fingerprints.rs` pins the
    /// fingerprint of every fixture. A change of meaning is a new version beside this one.
    pub fn canonical(&self) -> String {
        let CallFields {
            status,
            direction,
            customer_id,
            customer_name,
            customer_number,
            waba_number,
            picked_by,
            ended_by,
            rejected_by,
            device_id,
            chat_id,
            chat_message_id,
            channel,
            channel_number,
            pstn_from,
            pstn_to,
            failed_reason,
            started_at,
            ended_at,
            duration_seconds,
            recording_url,
            is_new_caller,
            is_chat_assigned,
            anomalies: _,
        } = &self.fields;
        let mut said: BTreeMap<&str, Value> = self
            .unread
            .iter()
            .map(|(k, v)| (k.as_str(), json!(v)))
            .collect();
        let text = [
            ("callStatus", status),
            ("customerId", customer_id),
            ("customerName", customer_name),
            ("customerNumber", customer_number),
            ("wabaNumber", waba_number),
            ("pickedBy", picked_by),
            ("endedBy", ended_by),
            ("rejectedBy", rejected_by),
            ("deviceId", device_id),
            ("chatId", chat_id),
            ("chatMessageId", chat_message_id),
            ("channel", channel),
            ("channelNumber", channel_number),
            ("from", pstn_from),
            ("to", pstn_to),
            ("failedReason", failed_reason),
            ("recordingUrl", recording_url),
        ];
        for (key, value) in text {
            if let Some(value) = value {
                said.insert(key, json!(value));
            }
        }
        for (key, value) in [("callStartedAt", started_at), ("callEndedAt", ended_at)] {
            if let Some(t) = value {
                said.insert(key, json!(t.to_rfc3339_opts(SecondsFormat::Millis, true)));
            }
        }
        for (key, value) in [
            ("isNewCaller", is_new_caller),
            ("isChatAssigned", is_chat_assigned),
        ] {
            if let Some(b) = value {
                said.insert(key, json!(b));
            }
        }
        if let Some(d) = direction {
            said.insert("callDirection", json!(d.as_wire()));
        }
        if let Some(d) = duration_seconds {
            said.insert("durationInSeconds", json!(d));
        }
        said.insert("event", json!(self.kind.as_wire()));
        said.insert("callId", json!(self.call_id));
        let object: serde_json::Map<String, Value> =
            said.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        format!("{FINGERPRINT_V1}\n{}", Value::Object(object))
    }

    /// The fingerprint calltrail gave this event before version 1 (64 hex digits: SHA-256 of
    /// the JSON of its then internal struct, keys sorted, anomalies of its then kinds), so a
    /// redelivery of an event stored then is still recognised. Frozen: every name below is
    /// spelled out, not derived, so no later change to the structs moves it.
    pub fn legacy_fingerprint(&self) -> String {
        let f = &self.fields;
        let time =
            |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        let anomalies: Vec<&str> = f
            .anomalies
            .iter()
            .filter_map(|a| match a {
                Anomaly::DurationMismatch => Some("DurationMismatch"),
                Anomaly::EndedBeforeStarted => Some("EndedBeforeStarted"),
                Anomaly::AnsweredZeroDuration => Some("AnsweredZeroDuration"),
                Anomaly::DurationAsString => Some("DurationAsString"),
                Anomaly::DurationFractional => Some("DurationFractional"),
                Anomaly::TimestampOffset => Some("TimestampOffset"),
                Anomaly::FormattedPhoneNumber => Some("FormattedPhoneNumber"),
                Anomaly::UnknownFields => Some("UnknownFields"),
                Anomaly::ImplausibleTimestamp => None,
            })
            .collect();
        let kind = match self.kind {
            EventKind::IncomingInitiated => "IncomingInitiated",
            EventKind::OutgoingInitiated => "OutgoingInitiated",
            EventKind::Accepted => "Accepted",
            EventKind::NotPicked => "NotPicked",
            EventKind::Ended => "Ended",
            EventKind::Rejected => "Rejected",
            EventKind::Missed => "Missed",
        };
        let direction = f.direction.map(|d| match d {
            Direction::Incoming => "Incoming",
            Direction::Outgoing => "Outgoing",
        });
        let fields = json!({
            "status": f.status,
            "direction": direction,
            "customer_id": f.customer_id,
            "customer_name": f.customer_name,
            "customer_number": f.customer_number,
            "waba_number": f.waba_number,
            "picked_by": f.picked_by,
            "ended_by": f.ended_by,
            "rejected_by": f.rejected_by,
            "device_id": f.device_id,
            "chat_id": f.chat_id,
            "chat_message_id": f.chat_message_id,
            "channel": f.channel,
            "channel_number": f.channel_number,
            "pstn_from": f.pstn_from,
            "pstn_to": f.pstn_to,
            "failed_reason": f.failed_reason,
            "started_at": time(&f.started_at),
            "ended_at": time(&f.ended_at),
            "duration_seconds": f.duration_seconds,
            "recording_url": f.recording_url,
            "is_new_caller": f.is_new_caller,
            "is_chat_assigned": f.is_chat_assigned,
            "anomalies": anomalies,
        });
        hex::encode(Sha256::digest(
            json!([kind, self.call_id, fields]).to_string().as_bytes(),
        ))
    }

    /// Flags the event when a time it states is implausible (before 2000, or more than
    /// [`PLAUSIBLE_AHEAD`] after its delivery `arrived`): kept, shown, and left out of the
    /// planning of time buckets.
    pub fn flag_implausible(&mut self, arrived: DateTime<Utc>) {
        let times = [self.fields.started_at, self.fields.ended_at];
        if times.into_iter().flatten().any(|t| !plausible(t, arrived))
            && !self
                .fields
                .anomalies
                .contains(&Anomaly::ImplausibleTimestamp)
        {
            self.fields.anomalies.push(Anomaly::ImplausibleTimestamp);
            self.fields.anomalies.sort();
        }
    }
}

/// One problem with one field of a delivery, named as DoubleTick names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
