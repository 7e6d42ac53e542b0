//! The calls export: keyset pages read one after another and written out as CSV or NDJSON
//! while the client reads. At most one page is read ahead of the client: when it goes away,
//! the body is dropped and no further page is asked for.
use std::io;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::params::CallsExport;
use crate::domain::{Call, CallField, FieldSet, PageFields, PagePart, PageRequest};
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

/// A field's value borrowed from a call: what both formats write, from one table.
enum Cell<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Instant(DateTime<Utc>),
    Anomalies(&'a [crate::domain::Anomaly]),
}

/// As GraphQL answers it: an instant as RFC 3339 UTC text, anomalies as a list of codes.
impl serde::Serialize for Cell<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => s.serialize_unit(),
            Cell::Text(text) => s.serialize_str(text),
            Cell::Int(n) => s.serialize_i64(*n),
            Cell::Bool(b) => s.serialize_bool(*b),
            Cell::Instant(t) => s.serialize_str(&utc(*t)),
            Cell::Anomalies(list) => s.collect_seq(list.iter().map(|a| a.code())),
        }
    }
}

impl Cell<'_> {
    /// The cell's CSV text (before quoting), written in `scratch` when it is not borrowed:
    /// null is empty, a list is its items joined by `,`.
    fn csv_text<'s>(&'s self, scratch: &'s mut String) -> &'s str {
        use std::fmt::Write;
        scratch.clear();
        match self {
            Cell::Null => "",
            Cell::Text(s) => s,
            Cell::Int(n) => {
                let _ = write!(scratch, "{n}");
                scratch
            }
            Cell::Bool(b) => {
                if *b {
                    "true"
                } else {
                    "false"
                }
            }
            Cell::Instant(t) => {
                // The same text as `utc`, GraphQL's (years outside 0..=9999 included).
                scratch.push_str(&utc(*t));
                scratch
            }
            Cell::Anomalies(list) => {
                for (i, a) in list.iter().enumerate() {
                    if i > 0 {
                        scratch.push(',');
                    }
                    scratch.push_str(a.code());
                }
                scratch
            }
        }
    }
}

/// A text field's cell: `None` is null.
fn text(v: &Option<String>) -> Cell<'_> {
    v.as_deref().map_or(Cell::Null, Cell::Text)
}

fn cell_of(call: &Call, field: CallField) -> Cell<'_> {
    match field {
        CallField::CallId => Cell::Text(&call.call_id),
        CallField::Status => Cell::Text(&call.status),
        CallField::Direction => Cell::Text(call.direction.as_wire()),
        CallField::CustomerId => text(&call.customer_id),
        CallField::CustomerName => text(&call.customer_name),
        CallField::CustomerNumber => Cell::Text(&call.customer_number),
        CallField::WabaNumber => Cell::Text(&call.waba_number),
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
        CallField::StartedAt => call.started_at.map_or(Cell::Null, Cell::Instant),
        CallField::EndedAt => Cell::Instant(call.ended_at),
        CallField::DurationSeconds => Cell::Int(call.duration_seconds),
        CallField::RecordingUrl => text(&call.recording_url),
        CallField::IsNewCaller => call.is_new_caller.map_or(Cell::Null, Cell::Bool),
        CallField::IsChatAssigned => call.is_chat_assigned.map_or(Cell::Null, Cell::Bool),
        CallField::NotPickedCount => Cell::Int(call.not_picked_count.into()),
        CallField::Anomalies => Cell::Anomalies(&call.anomalies),
        CallField::ReceivedAt => Cell::Instant(call.received_at),
        CallField::UpdatedAt => Cell::Instant(call.updated_at),
        CallField::Revision => Cell::Int(call.revision.into()),
        CallField::RawContentType => Cell::Text(&call.raw_content_type),
        CallField::RawPayload => Cell::Text(&call.raw_payload),
        // Not columns: a list of records and an object (the evidence bundle carries them).
        CallField::Revisions | CallField::Recording | CallField::Reviews => Cell::Null,
    }
}

/// A field's value, as GraphQL would answer it.
pub fn value(call: &Call, field: CallField) -> Value {
    // Through the one encoding NDJSON writes (`Serialize for Cell`); it cannot fail.
    serde_json::to_value(cell_of(call, field)).unwrap_or(Value::Null)
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
    let mut scratch = String::with_capacity(64);
    for call in calls {
        write_csv_row(&mut out, &mut scratch, fields, None, call)?;
    }
    out.into_inner().map_err(|e| e.into_error())
}

/// One CSV record: the columns `fields` of `call`, then its local times in `time_zone`.
fn write_csv_row(
    out: &mut csv::Writer<Vec<u8>>,
    scratch: &mut String,
    fields: &[CallField],
    time_zone: Option<Tz>,
    call: &Call,
) -> csv::Result<()> {
    for field in fields {
        out.write_field(cell_of(call, *field).csv_text(scratch))?;
    }
    if let Some(tz) = time_zone {
        let started = call.started_at.map(|t| local(t, tz));
        out.write_field(started.as_deref().unwrap_or(""))?;
        out.write_field(local(call.ended_at, tz))?;
    }
    // Ends the record (every row has at least one field).
    out.write_record(std::iter::empty::<&[u8]>())
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

    /// The row's cells: each field's, then the local times (`Err`: already text, or null).
    fn cells<'a>(&self, call: &'a Call) -> Vec<Result<Cell<'a>, Option<String>>> {
        let mut cells: Vec<_> = self.fields.iter().map(|f| Ok(cell_of(call, *f))).collect();
        if let Some(tz) = self.time_zone {
            cells.push(Err(call.started_at.map(|t| local(t, tz))));
            cells.push(Err(Some(local(call.ended_at, tz))));
        }
        cells
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
                let mut scratch = String::with_capacity(64);
                for call in calls {
                    write_csv_row(&mut out, &mut scratch, &self.fields, self.time_zone, call)?;
                }
                out.into_inner().map_err(|e| e.into_error())
            }
            Format::Ndjson => {
                let columns = self.columns();
                let mut out = Vec::with_capacity(256 * 1024);
                for call in calls {
                    // Written field by field in column order, borrowing from the call.
                    out.push(b'{');
                    for (i, (column, cell)) in columns.iter().zip(self.cells(call)).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        serde_json::to_writer(&mut out, column)?;
                        out.push(b':');
                        match cell {
                            Ok(cell) => serde_json::to_writer(&mut out, &cell)?,
                            Err(local) => serde_json::to_writer(&mut out, &local)?,
                        }
                    }
                    out.extend_from_slice(b"}\n");
                }
                Ok(out)
            }
        }
    }
}

/// Where the stream is.
enum Position {
    Header,
    Rows,
    Done,
}

/// Pages read ahead of the encoder: one waiting while the next is read, so the database reads
/// a page while the one before is encoded and sent. When the client goes away the body is
/// dropped, the next hand-over fails and no further page is read.
const PAGES_AHEAD: usize = 1;

/// Reads the export's pages in order into `pages`, until the last one, a failure, or the
/// body being dropped.
async fn read_pages(
    reader: Reader,
    export: CallsExport,
    fields: PageFields,
    pages: tokio::sync::mpsc::Sender<Result<crate::store::calls::Page, crate::error::AppError>>,
) {
    let mut after = None;
    loop {
        let request = PageRequest::Forward {
            first: PAGE_SIZE,
            after: after.take(),
        };
        let page = reader
            .page(&export.filter, export.order, &request, fields)
            .await;
        after = match &page {
            Ok(page) if page.has_next_page => page.items.last().map(|(_, c)| c.clone()),
            _ => None,
        };
        let last = after.is_none();
        if pages.send(page).await.is_err() || last {
            return;
        }
    }
}

/// The export's body: a header (CSV), then one chunk per page, until the last page. A database
/// error ends the stream with an error, so the client sees a broken transfer, never a file that
/// looks complete.
pub fn stream(
    reader: Reader,
    export: CallsExport,
    format: Format,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    // Only the columns written (and the start and end, for the local times).
    let mut written = FieldSet::of(export.fields.iter().copied());
    if export.time_zone.is_some() {
        written = written.with(CallField::StartedAt).with(CallField::EndedAt);
    }
    let fields = PageFields {
        rows: true,
        raw_payload: export.fields.contains(&CallField::RawPayload),
        details: export.fields.iter().any(|f| f.part() == PagePart::Details),
        only: Some(written),
    };
    let encoder = Encoder {
        format,
        fields: export.fields.clone(),
        time_zone: export.time_zone,
        rows: 0,
        ended: false,
    };
    let (sender, pages) = tokio::sync::mpsc::channel(PAGES_AHEAD);
    tokio::spawn(read_pages(reader, export, fields, sender));
    let state = (pages, encoder, Position::Header);
    futures_util::stream::unfold(state, move |(mut pages, mut encoder, position)| async move {
        match position {
            Position::Done => None,
            Position::Header => {
                let chunk = encoder.header().map(Bytes::from);
                Some((chunk, (pages, encoder, Position::Rows)))
            }
            Position::Rows => {
                let page = match pages.recv().await {
                    Some(Ok(page)) => page,
                    failed => {
                        match failed {
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "an export stopped: a page could not be read");
                            }
                            _ => tracing::error!("an export stopped: its page reader ended early"),
                        }
                        let error = io::Error::other("the export could not read its next page");
                        encoder.ended = true;
                        return Some((Err(error), (pages, encoder, Position::Done)));
                    }
                };
                let next = if page.has_next_page && !page.items.is_empty() {
                    Position::Rows
                } else {
                    encoder.ended = true;
                    Position::Done
                };
                let chunk = encoder
                    .rows(page.items.iter().map(|(call, _)| call))
                    .map(Bytes::from);
                Some((chunk, (pages, encoder, next)))
            }
        }
    })
    // A body may be polled again after its end (the compression layer does).
    .fuse()
}
