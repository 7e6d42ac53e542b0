//! DoubleTick's wire format (JSON or form fields, all 19 keys plus extras) into a domain event.
//!
//! This is the one place that decides what a delivery means and whether it is valid; it
//! reports every field problem at once.
use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};

use crate::domain::phone;
use crate::domain::{Anomaly, CallEvent, CallFields, Direction, EventKind, FieldError};
use crate::error::AppError;

/// Longest `callId` and identifier (`pickedBy`, `customerId`, `customerNumber`, `wabaNumber`,
/// ...) stored, in bytes: they are indexed, and PostgreSQL's index entries hold about 2.7 KB.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest free text (`customerName`, `failedReason`, `recordingUrl`), in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The most bytes field `key` may hold.
fn max_bytes(key: &str) -> usize {
    match key {
        "customerName" | "failedReason" | "recordingUrl" => MAX_TEXT_BYTES,
        _ => MAX_KEY_BYTES,
    }
}

/// The event name DoubleTick's permission-reply webhook implies (its body has no `event` key).
pub const PERMISSION_REPLY: &str = "CALL_PERMISSION_REPLY_RECEIVED";

/// What a delivery turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A lifecycle event of a call.
    Call(Box<CallEvent>),
    /// A valid delivery that is not a call event (a permission reply, an unknown event).
    NotACall {
        event: Option<String>,
        call_id: Option<String>,
        reason: String,
    },
}

/// A delivery that cannot be stored, with what could be read of it, for the log.
#[derive(Debug)]
pub struct Rejected {
    pub error: AppError,
    pub event: Option<String>,
    pub call_id: Option<String>,
}

impl Rejected {
    fn malformed(message: impl Into<String>) -> Self {
        Rejected {
            error: AppError::MalformedBody(message.into()),
            event: None,
            call_id: None,
        }
    }
}

/// The body formats a DoubleTick webhook can be registered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    Multipart { boundary: String },
}

impl BodyFormat {
    /// The format a `Content-Type` names; a missing one is sniffed from the body.
    pub fn from_content_type(content_type: Option<&str>, body: &[u8]) -> Result<Self, AppError> {
        let Some(content_type) = content_type else {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            return Ok(if matches!(first, Some(b'{') | Some(b'[')) {
                BodyFormat::Json
            } else {
                BodyFormat::Form
            });
        };
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(BodyFormat::Json),
            e if e.starts_with("application/") && e.ends_with("+json") => Ok(BodyFormat::Json),
            "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
            "multipart/form-data" => multer::parse_boundary(content_type)
                .map(|boundary| BodyFormat::Multipart { boundary })
                .map_err(|_| AppError::MalformedBody("multipart body without a boundary".into())),
            _ => Err(AppError::UnsupportedMediaType(truncate(content_type, 100))),
        }
    }
}

/// Reads a delivery body of the given format into a [`Delivery`].
pub async fn parse(format: &BodyFormat, body: &[u8]) -> Result<Delivery, Rejected> {
    let object = match format {
        BodyFormat::Json => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| Rejected::malformed(format!("the body is not valid JSON: {e}")))?;
            match value {
                Value::Object(map) => map,
                other => {
                    return Err(Rejected {
                        error: AppError::InvalidPayload(vec![FieldError::new(
                            "$",
                            format!(
                                "expected one JSON object per delivery, got {}",
                                json_kind(&other)
                            ),
                        )]),
                        event: None,
                        call_id: None,
                    });
                }
            }
        }
        BodyFormat::Form => {
            let text = std::str::from_utf8(body)
                .map_err(|_| Rejected::malformed("the form body is not UTF-8"))?
                // Raw whitespace is never part of a URL-encoded form (`curl --data @file` strips it too).
                .trim();
            // Every pair DoubleTick sends has a `=` (empty values as `key=`), and encoded forms
            // never carry raw whitespace: anything else is text, not a form.
            let stray_pair = text.split('&').any(|p| !p.is_empty() && !p.contains('='));
            if stray_pair || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Rejected::malformed("the body is not a URL-encoded form"));
            }
            form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        }
        BodyFormat::Multipart { boundary } => read_multipart(boundary, body).await?,
    };
    from_object(&object, *format == BodyFormat::Json)
}

async fn read_multipart(boundary: &str, body: &[u8]) -> Result<Map<String, Value>, Rejected> {
    let chunk = bytes::Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(chunk) });
    let mut multipart = multer::Multipart::new(stream, boundary.to_owned());
    let mut object = Map::new();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| Rejected::malformed(format!("the multipart body is malformed: {e}")))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or_default().to_owned();
        let value = field
            .text()
            .await
            .map_err(|e| Rejected::malformed(format!("the multipart body is malformed: {e}")))?;
        object.insert(name, Value::String(value));
    }
    Ok(object)
}

/// Interprets one delivery's fields, collecting every problem.
///
/// `typed` is true for JSON, where numbers and booleans have their own types; form bodies
/// carry every value as a string, which is then not an oddity.
pub fn from_object(object: &Map<String, Value>, typed: bool) -> Result<Delivery, Rejected> {
    let mut reader = FieldReader {
        object,
        typed,
        errors: Vec::new(),
        anomalies: Vec::new(),
        read: Vec::new(),
    };
    let event_name = reader.text("event");
    let call_id = reader.text("callId");
    let Some(event_name) = event_name else {
        if object.contains_key("response") || object.contains_key("receivedAt") {
            return Ok(Delivery::NotACall {
                event: Some(PERMISSION_REPLY.into()),
                call_id: None,
                reason: "call permission replies are logged, not stored as calls".into(),
            });
        }
        reader.errors.push(FieldError::new("event", "required"));
        return Err(reader.reject(None, call_id));
    };
    let Some(kind) = EventKind::from_wire(&event_name) else {
        return Ok(Delivery::NotACall {
            event: Some(event_name.clone()),
            call_id,
            reason: format!(
                "`{}` is not a call lifecycle event",
                truncate(&event_name, 64)
            ),
        });
    };
    if call_id.is_none() {
        reader
            .errors
            .push(FieldError::new("callId", "required, and must not be empty"));
    }
    let direction = reader.text("callDirection").and_then(|d| {
        let parsed = Direction::from_wire(&d);
        if parsed.is_none() {
            reader.errors.push(FieldError::new(
                "callDirection",
                format!("expected INCOMING or OUTGOING, got `{}`", truncate(&d, 64)),
            ));
        }
        parsed
    });
    let customer_number = reader.text("customerNumber");
    if customer_number.as_deref().is_some_and(phone::is_formatted) {
        reader.anomalies.push(Anomaly::FormattedPhoneNumber);
    }
    let mut fields = CallFields {
        status: reader.text("callStatus"),
        direction,
        customer_id: reader.text("customerId"),
        customer_name: reader.text("customerName"),
        customer_number,
        waba_number: reader.text("wabaNumber"),
        picked_by: reader.text("pickedBy"),
        ended_by: reader.text("endedBy"),
        rejected_by: reader.text("rejectedBy"),
        device_id: reader.text("deviceId"),
        chat_id: reader.text("chatId"),
        chat_message_id: reader.text("chatMessageId"),
        channel: reader.text("channel"),
        channel_number: reader.text("channelNumber"),
        pstn_from: reader.text("from"),
        pstn_to: reader.text("to"),
        failed_reason: reader.text("failedReason"),
        started_at: reader.timestamp("callStartedAt"),
        ended_at: reader.timestamp("callEndedAt"),
        duration_seconds: reader.duration("durationInSeconds"),
        recording_url: reader.text("recordingUrl"),
        is_new_caller: reader.boolean("isNewCaller"),
        is_chat_assigned: reader.boolean("isChatAssigned"),
        anomalies: Vec::new(),
    };
    // The keys DoubleTick documents are the ones read above; anything else is kept in the raw
    // payload and flagged. (A new key is known once it is read into a field.)
    // Keys not read, as text (a form carries every value as text, so a JSON number and its
    // digits in a form say the same); `""` and `null` say nothing.
    let unread: BTreeMap<String, String> = object
        .iter()
        .filter(|(k, _)| !reader.read.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (!text.is_empty()).then(|| (k.clone(), text))
        })
        .collect();
    if object.keys().any(|k| !reader.read.contains(&k.as_str())) {
        reader.anomalies.push(Anomaly::UnknownFields);
    }
    let event = CallEvent {
        kind,
        call_id: call_id.clone().unwrap_or_default(),
        fields: fields.clone(),
        unread,
    };
    if event.is_terminal() {
        let required = [
            ("callEndedAt", fields.ended_at.is_some()),
            ("callDirection", fields.direction.is_some()),
            ("customerNumber", fields.customer_number.is_some()),
            ("wabaNumber", fields.waba_number.is_some()),
            ("durationInSeconds", fields.duration_seconds.is_some()),
        ];
        for (key, present) in required {
            if !present && !reader.errors.iter().any(|e| e.field == key) {
                reader.errors.push(FieldError::new(
                    key,
                    format!("required on {} (a call that has concluded)", kind.as_wire()),
                ));
            }
        }
    }
    if !reader.errors.is_empty() {
        return Err(reader.reject(Some(event_name), call_id));
    }
    reader.anomalies.sort();
    reader.anomalies.dedup();
    fields.anomalies = reader.anomalies;
    Ok(Delivery::Call(Box::new(CallEvent { fields, ..event })))
}

struct FieldReader<'a> {
    object: &'a Map<String, Value>,
    typed: bool,
    errors: Vec<FieldError>,
    anomalies: Vec<Anomaly>,
    /// Every key looked up so far.
    read: Vec<&'static str>,
}

impl<'a> FieldReader<'a> {
    fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.object.get(key)
    }

    fn reject(self, event: Option<String>, call_id: Option<String>) -> Rejected {
        Rejected {
            error: AppError::InvalidPayload(self.errors),
            event,
            call_id,
        }
    }

    /// A text field; `""` and `null` mean absent. Numbers are taken as their digits.
    /// A text with a NUL character or longer than [`max_bytes`] is refused: no database
    /// stores the one (PostgreSQL refuses it in text), and the other may not fit an index.
    fn text(&mut self, key: &'static str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if s.contains('\0') => {
                self.errors.push(FieldError::new(
                    key,
                    "contains a NUL character (\\u0000), which cannot be stored",
                ));
                None
            }
            Value::String(s) if s.len() > max_bytes(key) => {
                self.errors.push(FieldError::new(
                    key,
                    format!(
                        "{} bytes long; at most {} are stored",
                        s.len(),
                        max_bytes(key)
                    ),
                ));
                None
            }
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.errors.push(FieldError::new(
                    key,
                    format!("expected a string, got {}", json_kind(other)),
                ));
                None
            }
        }
    }

    /// An ISO-8601 instant with `Z` or an offset, kept in UTC at millisecond precision.
    fn timestamp(&mut self, key: &'static str) -> Option<DateTime<Utc>> {
        let text = self.text(key)?;
        match DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => {
                if t.offset().local_minus_utc() != 0 {
                    self.anomalies.push(Anomaly::TimestampOffset);
                }
                Some(t.with_timezone(&Utc).trunc_subsecs(3))
            }
            Err(_) => {
                self.errors.push(FieldError::new(
                    key,
                    format!(
                        "expected an ISO-8601 timestamp with a UTC offset (2026-03-02T09:14:05.000Z), got `{}`",
                        truncate(&text, 64)
                    ),
                ));
                None
            }
        }
    }

    /// Whole seconds, from a number or a numeric string; fractions round half away from zero.
    fn duration(&mut self, key: &'static str) -> Option<i64> {
        let seconds = match self.value(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => {
                if self.typed {
                    self.anomalies.push(Anomaly::DurationAsString);
                }
                s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
            }
            Value::Null => return None,
            _ => None,
        };
        let Some(seconds) = seconds else {
            self.errors
                .push(FieldError::new(key, "expected a number of seconds"));
            return None;
        };
        if seconds < 0.0 {
            self.errors
                .push(FieldError::new(key, "must not be negative"));
            return None;
        }
        if seconds > f64::from(i32::MAX) {
            self.errors.push(FieldError::new(key, "is out of range"));
            return None;
        }
        if seconds.fract() != 0.0 {
            self.anomalies.push(Anomaly::DurationFractional);
        }
        Some(seconds.round() as i64)
    }

    /// `true` / `false`, as JSON booleans or as form strings.
    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(*b),
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            other => {
                self.errors.push(FieldError::new(
                    key,
                    format!("expected true or false, got {}", json_kind(other)),
                ));
                None
            }
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
