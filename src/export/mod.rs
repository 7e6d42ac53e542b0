//! What BI tools and auditors pull over plain HTTP: every matching call as CSV or NDJSON,
//! streamed from keyset pages without a cap, and `callStats` as a CSV table
//! (docs/exports.md), and the evidence bundle: one zip of a customer's, agent's or set of
//! calls' records, deliveries, recordings and access log that a recipient checks without
//! calltrail (`evidence`). Who may export what is the Access issue's rule: the key's role and
//! scope, through the same [`Reader`](crate::store::reader::Reader) as GraphQL.
pub mod calls;
pub mod evidence;
pub mod params;
pub mod stats;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::access::Gate;
use crate::domain::{CallField, Viewer};
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::AccessEntry;
use crate::store::ingest::Ingestor;
use calls::Format;
use params::{CallsExport, Query, StatsExport};

/// What the export routes share.
#[derive(Clone, Debug)]
pub struct ExportState {
    pub store: Store,
    pub gate: Gate,
    pub ingestor: Ingestor,
    /// Recordings are fetched (a DoubleTick key is configured): what `recordingState` means.
    pub archiving: bool,
    /// Where archived recordings are kept (the evidence bundle carries them).
    pub objects: crate::recordings::Objects,
}

type Peer = ConnectInfo<std::net::SocketAddr>;

/// `GET /export/calls.csv`.
pub async fn calls_csv(
    state: State<ExportState>,
    peer: Peer,
    headers: HeaderMap,
    query: RawQuery,
) -> Response {
    calls(state, peer, headers, query, Format::Csv)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /export/calls.ndjson`.
pub async fn calls_ndjson(
    state: State<ExportState>,
    peer: Peer,
    headers: HeaderMap,
    query: RawQuery,
) -> Response {
    calls(state, peer, headers, query, Format::Ndjson)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /export/stats.csv`.
pub async fn stats_csv(
    State(state): State<ExportState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let answer = async {
        let viewer = state.gate.viewer(&headers).await?;
        let export = StatsExport::parse(&Query::parse(raw.as_deref()), state.archiving)?;
        viewer.check_filter(&export.request.filter, "")?;
        viewer.check_dimensions(&export.request.group_by)?;
        let reader = state.store.reader(viewer.scope.clone());
        let table = stats::table(&reader, &export).await?;
        log(
            &state,
            &viewer,
            peer,
            "stats.csv",
            raw.as_deref(),
            Vec::new(),
        )
        .await?;
        Ok::<_, AppError>(attachment(
            Body::from(table),
            "text/csv; charset=utf-8; header=present",
            "call-stats.csv",
        ))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

async fn calls(
    State(state): State<ExportState>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    format: Format,
) -> Result<Response, AppError> {
    let viewer = state.gate.viewer(&headers).await?;
    let mut export = CallsExport::parse(&Query::parse(raw.as_deref()), state.archiving)?;
    viewer.check_filter(&export.filter, "")?;
    if !viewer.may_see_identity() {
        if export.fields_chosen {
            if let Some(field) = export.fields.iter().find(|f| f.is_identity()) {
                viewer.require_identity(&format!("fields: {}", field.name()))?;
            }
        } else {
            export.fields.retain(|f| !CallField::is_identity(*f));
        }
    }
    let name = format!("calls.{}", format.extension());
    log(&state, &viewer, peer, &name, raw.as_deref(), Vec::new()).await?;
    let reader = state.store.reader(viewer.scope.clone());
    let body = Body::from_stream(calls::stream(reader, export, format));
    Ok(attachment(body, format.content_type(), &name))
}

/// One access-log row per export, written before any of it leaves: the export and its
/// filter as asked (`calls.csv?pickedBy=…`), which calls it held being what that filter
/// matched then (an evidence bundle lists them: `call_ids`, sorted, each once). Reads on open
/// loopback (no key exists) are not logged, as for GraphQL. Returns the row's id.
async fn log(
    state: &ExportState,
    viewer: &Viewer,
    peer: std::net::SocketAddr,
    export: &str,
    query: Option<&str>,
    call_ids: Vec<String>,
) -> Result<Option<i64>, AppError> {
    if viewer.key_id.is_none() {
        return Ok(None);
    }
    let operation = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{export}?{q}"),
        None => export.to_owned(),
    };
    let entry = AccessEntry {
        at: chrono::Utc::now(),
        key_id: viewer.key_id,
        key_name: viewer.key_name.clone(),
        role: viewer.role.as_str().to_owned(),
        surface: "export".into(),
        operation_name: Some(operation),
        query_sha256: None,
        client_address: Some(peer.ip().to_string()),
        call_ids,
        byte_range: None,
    };
    state
        .ingestor
        .log_access(entry)
        .await
        .map(Some)
        .map_err(|e| AppError::Unavailable(format!("the access log could not be written: {e:?}")))
}

fn attachment(body: Body, content_type: &'static str, file_name: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
