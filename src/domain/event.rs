//! One lifecycle event of a call, parsed and valid: what a webhook delivery means.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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

    /// Identifies the event's meaning, whatever format carried it: a redelivery has the same one.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([self.kind, self.call_id, self.fields]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
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
