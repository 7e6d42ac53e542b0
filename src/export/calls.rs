//! The calls export: keyset pages read one after another and written out as CSV or NDJSON
//! while the client reads. Nothing is read ahead of the client: when it goes away, the body is
//! dropped and the next page is never asked for.
use std::io;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};

use super::params::CallsExport;
use crate::domain::{Call, CallField, PageFields, PagePart, PageRequest};
use crate::store::reader::Reader;

/// Calls read per page: large enough that a page's round trip is a small share of its rows'
/// encoding, small enough that memory stays flat (a page of summaries is a few hundred KB).
pub const PAGE_SIZE: u64 = 2_000;

/// The two row formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// An instant as the export writes it: RFC 3339, UTC, milliseconds (as GraphQL's `DateTime`).
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The same instant as a local time with its offset in `tz`.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A field's value, as GraphQL would answer it.
pub fn value(call: &Call, field: CallField) -> Value {
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    match field {
        CallField::CallId => Value::String(call.call_id.clone()),
        CallField::Status => Value::String(call.status.clone()),
        CallField::Direction => Value::String(call.direction.as_wire().to_owned()),
        CallField::CustomerId => text(&call.customer_id),
        CallField::CustomerName => text(&call.customer_name),
        CallField::CustomerNumber => Value::String(call.customer_number.clone()),
        CallField::WabaNumber => Value::String(call.waba_number.clone()),
        CallField::PickedBy => text(&call.picked_by),
        CallField::EndedBy => text(&call.ended_by),
        CallField::RejectedBy => text(&call.rejected_by),
        CallField::DeviceId => text(&call.device_id),
        CallField::ChatId => text(&call.chat_id),
        CallField::ChatMessageId => text(&call.chat_message_id),
        CallField::Channel => text(&call.channel),
        CallField::ChannelNumber => text(&call.channel_number),
        CallField::PstnFrom => text(&call.pstn_from),
        CallField::PstnTo => text(&call.pstn_to),
        CallField::FailedReason => text(&call.failed_reason),
        CallField::StartedAt => call
            .started_at
            .map_or(Value::Null, |t| Value::String(utc(t))),
        CallField::EndedAt => Value::String(utc(call.ended_at)),
        CallField::DurationSeconds => Value::from(call.duration_seconds),
        CallField::RecordingUrl => text(&call.recording_url),
        CallField::IsNewCaller => call.is_new_caller.map_or(Value::Null, Value::Bool),
        CallField::IsChatAssigned => call.is_chat_assigned.map_or(Value::Null, Value::Bool),
        CallField::NotPickedCount => Value::from(call.not_picked_count),
        CallField::Anomalies => Value::Array(
            call.anomalies
                .iter()
                .map(|a| Value::String(a.code().to_owned()))
                .collect(),
        ),
        CallField::ReceivedAt => Value::String(utc(call.received_at)),
        CallField::UpdatedAt => Value::String(utc(call.updated_at)),
        CallField::Revision => Value::from(call.revision),
        CallField::RawContentType => Value::String(call.raw_content_type.clone()),
        CallField::RawPayload => Value::String(call.raw_payload.clone()),
        // Not columns: a list of records and an object (the evidence bundle carries them).
        CallField::Revisions | CallField::Recording => Value::Null,
    }
}

/// A value as a CSV cell: null is empty, a list is its items joined by `,`.
fn cell(value: Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s,
        Value::Array(items) => items.into_iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The CSV header row of the columns `fields` (no local times).
pub fn csv_header(fields: &[CallField]) -> io::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(fields.iter().map(|f| f.name()))?;
    out.into_inner().map_err(|e| e.into_error())
}

/// CSV rows of `calls` with the columns `fields` (no local times), as `calls.csv` writes them.
pub fn csv_rows<'a>(
    fields: &[CallField],
    calls: impl IntoIterator<Item = &'a Call>,
) -> io::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
    for call in calls {
        out.write_record(fields.iter().map(|f| cell(value(call, *f))))?;
    }
    out.into_inner().map_err(|e| e.into_error())
}

/// Writes rows of one export, and says when it ended before its last row.
struct Encoder {
    format: Format,
    fields: Vec<CallField>,
    time_zone: Option<Tz>,
    /// Rows written so far.
    rows: u64,
    /// The last page was written (or the export failed, and said so).
    ended: bool,
}

impl Drop for Encoder {
    /// The body is dropped when the client goes away: no further page is read.
    fn drop(&mut self) {
        if self.ended {
            tracing::debug!(rows = self.rows, "an export finished");
        } else {
            tracing::info!(
                rows = self.rows,
                "an export stopped before its end: the client went away, no further page is read"
            );
        }
    }
}

impl Encoder {
    fn columns(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.fields.iter().map(|f| f.name()).collect();
        if self.time_zone.is_some() {
            names.extend(["startedAtLocal", "endedAtLocal"]);
        }
        names
    }

    fn values(&self, call: &Call) -> Vec<Value> {
        let mut values: Vec<Value> = self.fields.iter().map(|f| value(call, *f)).collect();
        if let Some(tz) = self.time_zone {
            values.push(
                call.started_at
                    .map_or(Value::Null, |t| Value::String(local(t, tz))),
            );
            values.push(Value::String(local(call.ended_at, tz)));
        }
        values
    }

    fn header(&self) -> io::Result<Vec<u8>> {
        match self.format {
            Format::Csv => {
                let mut out = csv::Writer::from_writer(Vec::new());
                out.write_record(self.columns())?;
                out.into_inner().map_err(|e| e.into_error())
            }
            Format::Ndjson => Ok(Vec::new()),
        }
    }

    fn rows<'a>(&mut self, calls: impl ExactSizeIterator<Item = &'a Call>) -> io::Result<Vec<u8>> {
        self.rows += calls.len() as u64;
        match self.format {
            Format::Csv => {
                let mut out = csv::Writer::from_writer(Vec::with_capacity(256 * 1024));
                for call in calls {
                    out.write_record(self.values(call).into_iter().map(cell))?;
                }
                out.into_inner().map_err(|e| e.into_error())
            }
            Format::Ndjson => {
                let columns = self.columns();
                let mut out = Vec::with_capacity(256 * 1024);
                for call in calls {
                    let object: Map<String, Value> = columns
                        .iter()
                        .map(|c| (*c).to_owned())
                        .zip(self.values(call))
                        .collect();
                    serde_json::to_writer(&mut out, &Value::Object(object))?;
                    out.push(b'\n');
                }
                Ok(out)
            }
        }
    }
}

/// Where the stream is.
enum Position {
    Header,
    After(Option<String>),
    Done,
}

/// The export's body: a header (CSV), then one chunk per page, until the last page. A database
/// error ends the stream with an error, so the client sees a broken transfer, never a file that
/// looks complete.
pub fn stream(
    reader: Reader,
    export: CallsExport,
    format: Format,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let fields = PageFields {
        rows: true,
        raw_payload: export.fields.contains(&CallField::RawPayload),
        details: export.fields.iter().any(|f| f.part() == PagePart::Details),
    };
    let encoder = Encoder {
        format,
        fields: export.fields.clone(),
        time_zone: export.time_zone,
        rows: 0,
        ended: false,
    };
    let state = (reader, export, encoder, Position::Header);
    futures_util::stream::unfold(
        state,
        move |(reader, export, mut encoder, position)| async move {
            match position {
                Position::Done => None,
                Position::Header => {
                    let chunk = encoder.header().map(Bytes::from);
                    Some((chunk, (reader, export, encoder, Position::After(None))))
                }
                Position::After(after) => {
                    let request = PageRequest::Forward {
                        first: PAGE_SIZE,
                        after,
                    };
                    let page = match reader
                        .page(&export.filter, export.order, &request, fields)
                        .await
                    {
                        Ok(page) => page,
                        Err(e) => {
                            tracing::warn!(error = %e, "an export stopped: a page could not be read");
                            let error = io::Error::other("the export could not read its next page");
                            encoder.ended = true;
                            return Some((Err(error), (reader, export, encoder, Position::Done)));
                        }
                    };
                    let next = match page.items.last() {
                        Some((_, cursor)) if page.has_next_page => {
                            Position::After(Some(cursor.clone()))
                        }
                        _ => {
                            encoder.ended = true;
                            Position::Done
                        }
                    };
                    let chunk = encoder
                        .rows(page.items.iter().map(|(call, _)| call))
                        .map(Bytes::from);
                    Some((chunk, (reader, export, encoder, next)))
                }
            }
        },
    )
    // A body may be polled again after its end (the compression layer does).
    .fuse()
}
