//! An evidence bundle's contents, read a few calls at a time and sent file by file to the zip
//! writer ([`super::pack`]) through a bounded channel: `calls.csv`, `calls.json`, the logged
//! deliveries, the archived recordings (streamed from the archive a chunk at a time) and
//! `access-log.csv`, then the manifest. Nothing is read ahead of the writer, so memory stays
//! flat whatever the recordings weigh, and a writer that stops (the client went away) stops
//! the reads.
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use migration::chain::{ACCESS_LOG, Chain, DELIVERIES, Kind};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::manifest::{
    ACCESS_LOG_CSV, CALLS_CSV, CALLS_JSON, Manifest, access_log_header, delivery_paths, field_name,
    recording_path,
};
use super::pack::{ChannelWriter, Packed, Piece, pack};
use crate::domain::lifecycle::AppliedEvent;
use crate::domain::recording::{RecordingStatus, Shown};
use crate::domain::{Call, CallField, CallFilter, CallOrder, PageFields, PageRequest, Review};
use crate::error::AppError;
use crate::export::calls::{csv_header, csv_rows, utc, value};
use crate::recordings::Objects;
use crate::store::evidence::ChainedRow;
use crate::store::reader::Reader;

/// Calls read at once with everything they carry (raw bodies up to 256 KiB each, events).
const CALL_CHUNK: usize = 50;
/// Calls whose log rows are read at once (only their ids are sent to the database).
const ID_CHUNK: usize = 500;
/// Logged deliveries read at once (each body up to 256 KiB).
const BODY_PAGE: u64 = 32;
/// Access-log rows read at once.
const ACCESS_PAGE: u64 = 500;
/// Pieces waiting for the zip writer.
const PIECES_IN_FLIGHT: usize = 8;
/// Body chunks waiting for the client.
const CHUNKS_IN_FLIGHT: usize = 4;

/// What one bundle holds.
pub struct Plan {
    pub reader: Reader,
    pub objects: Objects,
    /// Recordings are fetched (a DoubleTick key is configured): what a recording's state means.
    pub archiving: bool,
    /// The calls, in the bundle's order (GraphQL's default: newest `endedAt` first).
    pub call_ids: Vec<String>,
    /// The manifest but its files; its `chain_heads` bound the log rows carried.
    pub manifest: Manifest,
    pub made_at: DateTime<Utc>,
}

/// The ids of the calls `filter` matches for `reader`, in the bundle's order, read in keyset
/// pages as GraphQL's cursors walk them.
pub async fn call_ids(reader: &Reader, filter: &CallFilter) -> Result<Vec<String>, AppError> {
    let mut ids = Vec::new();
    let mut after = None;
    let fields = PageFields {
        rows: true,
        raw_payload: false,
        details: false,
        only: None,
    };
    loop {
        let request = PageRequest::Forward {
            first: crate::export::calls::PAGE_SIZE,
            after,
        };
        let page = reader
            .page(filter, CallOrder::default(), &request, fields)
            .await?;
        ids.extend(page.items.iter().map(|(call, _)| call.call_id.clone()));
        match page.items.last() {
            Some((_, cursor)) if page.has_next_page => after = Some(cursor.clone()),
            _ => return Ok(ids),
        }
    }
}

/// The zip writer has stopped (its client went away, or it failed): nothing more is read.
#[derive(Debug)]
struct Stopped;

/// Why assembling ended early.
#[derive(Debug)]
enum Halt {
    Stopped(Stopped),
    Failed(AppError),
}

impl From<Stopped> for Halt {
    fn from(s: Stopped) -> Self {
        Halt::Stopped(s)
    }
}

impl From<AppError> for Halt {
    fn from(e: AppError) -> Self {
        Halt::Failed(e)
    }
}

impl From<csv::Error> for Halt {
    fn from(e: csv::Error) -> Self {
        Halt::Failed(AppError::Internal(format!("encoding the bundle: {e}")))
    }
}

impl From<io::Error> for Halt {
    fn from(e: io::Error) -> Self {
        Halt::Failed(AppError::Internal(format!("encoding the bundle: {e}")))
    }
}

/// Where the assembler sends its pieces.
struct Sink(mpsc::Sender<Piece>);

impl Sink {
    async fn send(&self, piece: Piece) -> Result<(), Stopped> {
        self.0.send(piece).await.map_err(|_| Stopped)
    }

    /// The next file, deflated.
    async fn file(&self, path: String, large: bool) -> Result<(), Stopped> {
        self.send(Piece::File {
            path,
            large,
            stored: false,
        })
        .await
    }

    /// The next file, stored as it is (compressed already).
    async fn stored(&self, path: String, large: bool) -> Result<(), Stopped> {
        self.send(Piece::File {
            path,
            large,
            stored: true,
        })
        .await
    }

    async fn bytes(&self, bytes: impl Into<Bytes>) -> Result<(), Stopped> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(());
        }
        self.send(Piece::Bytes(bytes)).await
    }
}

/// The calls `ids` (a run of the bundle's order), read with `fields`, in that order.
async fn calls_of(
    reader: &Reader,
    ids: &[String],
    fields: PageFields,
) -> Result<Vec<Call>, AppError> {
    let filter = CallFilter {
        call_ids: Some(ids.to_vec()),
        ..CallFilter::default()
    };
    let request = PageRequest::Forward {
        first: ids.len() as u64,
        after: None,
    };
    let page = reader
        .page(&filter, CallOrder::default(), &request, fields)
        .await?;
    Ok(page.items.into_iter().map(|(call, _)| call).collect())
}

const EVERYTHING: PageFields = PageFields {
    rows: true,
    raw_payload: true,
    details: true,
    only: None,
};

const SUMMARY: PageFields = PageFields {
    rows: true,
    raw_payload: false,
    details: false,
    only: None,
};

/// Every scalar field, in the schema's order: a reviewer's `calls.csv` columns.
fn scalar_fields() -> Vec<CallField> {
    CallField::ALL
        .into_iter()
        .filter(|f| f.is_scalar())
        .collect()
}

fn scalars(call: &Call, fields: &[CallField]) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| (f.name().to_owned(), value(call, *f)))
        .collect()
}

/// A call's `recording` as GraphQL answers it, and the file that holds it in the bundle.
fn recording_value(status: &RecordingStatus, archiving: bool) -> Value {
    let archived = status.archived.as_ref();
    json!({
        "state": Shown::of(status.state, archiving).name(),
        "sha256": archived.map(|a| a.sha256.clone()),
        "bytes": archived.map(|a| a.bytes),
        "contentType": archived.map(|a| a.content_type.clone()),
        "archivedAt": archived.map(|a| utc(a.archived_at)),
        "attempts": status.attempts,
        "lastError": status.last_error_shown(archiving),
        "playbackPath": crate::recordings::playback::playback_path(&status.call_id),
        "file": archived.map(|a| recording_path(&status.call_id, &a.content_type)),
    })
}

async fn calls_csv(plan: &Plan, sink: &Sink) -> Result<(), Halt> {
    let fields = scalar_fields();
    sink.file(CALLS_CSV.into(), true).await?;
    sink.bytes(csv_header(&fields)?).await?;
    for ids in plan.call_ids.chunks(CALL_CHUNK) {
        let calls = calls_of(&plan.reader, ids, EVERYTHING).await?;
        sink.bytes(csv_rows(&fields, &calls)?).await?;
    }
    Ok(())
}

/// `calls.json`: a JSON array with one call on each line (so a reader can take it a line at
/// a time), each with its recording, revisions, events and reviews (as GraphQL's `Review`, with the
/// key's id).
async fn calls_json(plan: &Plan, sink: &Sink) -> Result<(), Halt> {
    let fields = scalar_fields();
    sink.file(CALLS_JSON.into(), true).await?;
    sink.bytes(Bytes::from_static(b"[\n")).await?;
    let mut first = true;
    for ids in plan.call_ids.chunks(CALL_CHUNK) {
        let calls = calls_of(&plan.reader, ids, EVERYTHING).await?;
        let mut events: HashMap<String, Vec<AppliedEvent>> = HashMap::new();
        for event in plan.reader.events(&calls).await? {
            events
                .entry(event.event.call_id.clone())
                .or_default()
                .push(event);
        }
        let mut reviews: HashMap<String, Vec<Review>> = HashMap::new();
        for review in plan.reader.reviews_of(&calls).await? {
            reviews
                .entry(review.call_id.clone())
                .or_default()
                .push(review);
        }
        let mut out = Vec::with_capacity(64 * 1024);
        for call in &calls {
            let mut object = scalars(call, &fields);
            let recording = match plan.reader.recording(call).await? {
                Some(status) => recording_value(&status, plan.archiving),
                None => Value::Null,
            };
            object.insert("recording".into(), recording);
            let revisions: Vec<Value> = plan
                .reader
                .revisions(call)
                .await?
                .iter()
                .map(|r| {
                    json!({
                        "revision": r.revision,
                        "replacedAt": utc(r.replaced_at),
                        "call": scalars(&r.call, &fields),
                    })
                })
                .collect();
            object.insert("revisions".into(), Value::Array(revisions));
            let own: Vec<Value> = events
                .remove(&call.call_id)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    json!({
                        "id": e.seq,
                        "event": e.event.kind.as_wire(),
                        "fingerprint": e.fingerprint,
                        "receivedAt": utc(e.received_at),
                        "contentType": e.content_type,
                        "rawPayload": e.raw_payload,
                    })
                })
                .collect();
            object.insert("events".into(), Value::Array(own));
            let own: Vec<Value> = reviews
                .remove(&call.call_id)
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id.to_string(),
                        "callId": r.call_id,
                        "verdict": r.verdict.as_str(),
                        "note": r.note,
                        "reviewedBy": r.key_name,
                        "keyId": r.key_id,
                        "reviewedAt": utc(r.reviewed_at),
                    })
                })
                .collect();
            object.insert("reviews".into(), Value::Array(own));
            if !first {
                out.extend_from_slice(b",\n");
            }
            first = false;
            serde_json::to_writer(&mut out, &Value::Object(object)).map_err(io::Error::other)?;
        }
        sink.bytes(out).await?;
    }
    sink.bytes(Bytes::from_static(if first { b"]\n" } else { b"\n]\n" }))
        .await?;
    Ok(())
}

/// A chained row's columns as JSON: integers as numbers, the rest as their texts.
fn row_object(chain: Chain, row: &ChainedRow) -> Map<String, Value> {
    chain
        .columns
        .iter()
        .zip(&row.texts)
        .map(|((column, kind, _), text)| {
            let value = match (kind, text) {
                (_, None) => Value::Null,
                (Kind::Int, Some(t)) => t.parse::<i64>().map_or(Value::Null, Value::from),
                (Kind::Text | Kind::Instant, Some(t)) => Value::String(t.clone()),
            };
            (field_name(column), value)
        })
        .collect()
}

/// The head's place of `chain` in the manifest (0 for an empty chain).
fn upto(manifest: &Manifest, chain: Chain) -> i64 {
    manifest
        .chain_heads
        .iter()
        .find(|h| h.chain == chain.table)
        .map_or(0, |h| h.seq)
}

async fn deliveries(plan: &Plan, sink: &Sink) -> Result<(), Halt> {
    let upto = upto(&plan.manifest, DELIVERIES);
    for ids in plan.call_ids.chunks(ID_CHUNK) {
        let calls = calls_of(&plan.reader, ids, SUMMARY).await?;
        let mut after = i64::MIN;
        loop {
            let page = plan
                .reader
                .logged_bodies(&calls, upto, after, BODY_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.row.id;
            for logged in page {
                let (body, row) = delivery_paths(logged.row.id);
                let mut object = row_object(DELIVERIES, &logged.row);
                object.insert("body".into(), Value::String(body.clone()));
                object.insert(
                    "chain".into(),
                    json!({
                        "chain": DELIVERIES.table,
                        "seq": logged.row.place.seq,
                        "link": logged.row.place.link,
                        "previousLink": logged.row.place.previous,
                    }),
                );
                sink.file(body, false).await?;
                sink.bytes(logged.body).await?;
                sink.file(row, false).await?;
                let mut text =
                    serde_json::to_vec_pretty(&Value::Object(object)).map_err(io::Error::other)?;
                text.push(b'\n');
                sink.bytes(text).await?;
            }
        }
    }
    Ok(())
}

async fn recordings(plan: &Plan, sink: &Sink) -> Result<(), Halt> {
    for ids in plan.call_ids.chunks(CALL_CHUNK) {
        let calls = calls_of(&plan.reader, ids, SUMMARY).await?;
        for call in &calls {
            let Some(archived) = plan
                .reader
                .recording(call)
                .await?
                .and_then(|status| status.archived)
            else {
                continue;
            };
            let mut stream = plan
                .objects
                .read(&archived.sha256, None)
                .await
                .map_err(|e| match e {
                    AppError::NotFound => AppError::Internal(format!(
                        "the archived recording of call {} ({}) is missing from {}: run `calltrail recordings verify`",
                        call.call_id, archived.sha256, plan.objects.location
                    )),
                    other => other,
                })?;
            let large = u64::try_from(archived.bytes).unwrap_or(u64::MAX) >= u64::from(u32::MAX);
            sink.stored(recording_path(&call.call_id, &archived.content_type), large)
                .await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    AppError::Unavailable(format!("reading recording {}: {e}", archived.sha256))
                })?;
                sink.bytes(chunk).await?;
            }
        }
    }
    Ok(())
}

async fn access_log(plan: &Plan, sink: &Sink) -> Result<(), Halt> {
    let upto = upto(&plan.manifest, ACCESS_LOG);
    sink.file(ACCESS_LOG_CSV.into(), true).await?;
    let mut header = csv::Writer::from_writer(Vec::new());
    header.write_record(access_log_header(ACCESS_LOG))?;
    sink.bytes(header.into_inner().map_err(|e| e.into_error())?)
        .await?;
    let mut written: HashSet<i64> = HashSet::new();
    for ids in plan.call_ids.chunks(ID_CHUNK) {
        let calls = calls_of(&plan.reader, ids, SUMMARY).await?;
        let mut after = i64::MIN;
        loop {
            let page = plan
                .reader
                .access_rows(&calls, upto, after, ACCESS_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let mut out = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
            for row in page.iter().filter(|r| written.insert(r.id)) {
                let cells = row
                    .texts
                    .iter()
                    .map(|t| t.clone().unwrap_or_default())
                    .chain([
                        row.place.seq.to_string(),
                        row.place.link.clone(),
                        row.place.previous.clone(),
                    ]);
                out.write_record(cells)?;
            }
            sink.bytes(out.into_inner().map_err(|e| e.into_error())?)
                .await?;
        }
    }
    Ok(())
}

async fn assemble(plan: &Plan, sink: &Sink) -> Result<(), Halt> {
    calls_csv(plan, sink).await?;
    calls_json(plan, sink).await?;
    deliveries(plan, sink).await?;
    recordings(plan, sink).await?;
    access_log(plan, sink).await?;
    sink.send(Piece::End(Box::new(plan.manifest.clone())))
        .await?;
    Ok(())
}

/// Assembles `plan` into `out` on a blocking thread; returns what assembling and packing each
/// came to.
async fn run<W: Write + Send + 'static>(
    plan: Plan,
    out: W,
) -> (Result<(), Halt>, io::Result<(W, Packed)>) {
    let (tx, mut rx) = mpsc::channel(PIECES_IN_FLIGHT);
    let made_at = plan.made_at;
    let packing = tokio::task::spawn_blocking(move || pack(out, &mut rx, made_at));
    let sink = Sink(tx);
    let assembled = assemble(&plan, &sink).await;
    drop(sink);
    let packed = match packing.await {
        Ok(packed) => packed,
        Err(e) => Err(io::Error::other(format!("the zip writer panicked: {e}"))),
    };
    (assembled, packed)
}

/// The bundle as an HTTP body, written while it is read. A failure after the first byte breaks
/// the transfer (the zip has no central directory), so a client never takes a part for a whole.
pub fn stream(plan: Plan) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let failed = tx.clone();
    tokio::spawn(async move {
        let calls = plan.call_ids.len();
        let (assembled, packed) = run(plan, ChannelWriter::new(tx)).await;
        let outcome = match (assembled, packed) {
            (Ok(()), Ok((_, packed))) => {
                tracing::info!(
                    calls,
                    files = packed.files,
                    bytes = packed.bytes,
                    "an evidence bundle was sent"
                );
                return;
            }
            (_, Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::info!(calls, "an evidence bundle stopped: the client went away");
                return;
            }
            (Err(Halt::Failed(e)), _) => detail(&e),
            (_, Err(e)) => format!("writing the zip: {e}"),
            (Err(Halt::Stopped(_)), Ok(_)) => "the zip writer stopped early".to_owned(),
        };
        tracing::warn!(calls, error = %outcome, "an evidence bundle failed part-way: the transfer is broken off");
        let _ = failed
            .send(Err(io::Error::other(
                "the evidence bundle could not be completed",
            )))
            .await;
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Writes the bundle into `file` (synced to disk at the end).
pub async fn write_file(plan: Plan, file: std::fs::File) -> Result<Packed, AppError> {
    let (assembled, packed) = run(plan, io::BufWriter::with_capacity(256 * 1024, file)).await;
    match assembled {
        Err(Halt::Failed(e)) => return Err(e),
        Err(Halt::Stopped(_)) | Ok(()) => {}
    }
    let (out, packed) =
        packed.map_err(|e| AppError::Internal(format!("writing the bundle: {e}")))?;
    let file = out
        .into_inner()
        .map_err(|e| AppError::Internal(format!("writing the bundle: {}", e.error())))?;
    file.sync_all()
        .map_err(|e| AppError::Internal(format!("writing the bundle: {e}")))?;
    Ok(packed)
}

/// What is logged of `e` (the detail a client is never shown).
pub fn detail(e: &AppError) -> String {
    match e {
        AppError::Internal(d) | AppError::Unavailable(d) | AppError::QueryTimeout(d) => d.clone(),
        other => other.to_string(),
    }
}
