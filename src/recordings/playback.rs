//! `GET /recordings/{callId}`: a call's recording for reviewer and admin keys (scoped keys
//! within their scope), from the archive with `Range` support so an `<audio>` element can seek,
//! or streamed through from DoubleTick with the key added here while not yet archived. A
//! Bearer key or the reviewer desk's session cookie says who listens. Every playback is a row
//! of the access log, with its byte range.
use std::net::SocketAddr;
use std::ops::Range;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::TryStreamExt;

use super::Archive;
use crate::access::Gate;
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::AccessEntry;
use crate::store::ingest::Ingestor;
use crate::web::session::Sessions;

/// What playback needs.
#[derive(Clone, Debug)]
pub struct Playback {
    store: Store,
    gate: Gate,
    sessions: Sessions,
    ingestor: Ingestor,
    archive: Archive,
}

/// The playback route.
pub fn routes(
    store: Store,
    gate: Gate,
    sessions: Sessions,
    ingestor: Ingestor,
    archive: Archive,
) -> Router {
    Router::new()
        .route("/recordings/{call_id}", get(play))
        .with_state(Playback {
            store,
            gate,
            sessions,
            ingestor,
            archive,
        })
}

/// The path a call's recording plays from.
pub fn playback_path(call_id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(call_id.as_bytes()).collect();
    format!("/recordings/{}", encoded.replace('+', "%20"))
}

/// A `Range` header as asked: `bytes=a-b`, `bytes=a-` or `bytes=-n` (one range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    From(u64, Option<u64>),
    Suffix(u64),
}

impl Asked {
    /// The header's range, `None` when absent or not one byte range (then all is sent).
    pub fn parse(value: &str) -> Option<Asked> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        if start.is_empty() {
            return end.parse().ok().map(Asked::Suffix);
        }
        let start: u64 = start.parse().ok()?;
        if end.is_empty() {
            return Some(Asked::From(start, None));
        }
        let end: u64 = end.parse().ok()?;
        (end >= start).then_some(Asked::From(start, Some(end)))
    }

    /// The bytes of an object of `len` bytes this asks for, `None` when none can be sent (416).
    pub fn within(self, len: u64) -> Option<Range<u64>> {
        match self {
            Asked::From(start, _) if start >= len => None,
            Asked::From(start, end) => {
                Some(start..end.map_or(len, |e| e.saturating_add(1).min(len)))
            }
            Asked::Suffix(0) => None,
            Asked::Suffix(_) if len == 0 => None,
            Asked::Suffix(n) => Some(len.saturating_sub(n)..len),
        }
    }

    fn describe(self) -> String {
        match self {
            Asked::From(start, Some(end)) => format!("{start}-{end}"),
            Asked::From(start, None) => format!("{start}-"),
            Asked::Suffix(n) => format!("-{n}"),
        }
    }
}

async fn play(
    State(playback): State<Playback>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match answer(&playback, peer, &call_id, &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    playback: &Playback,
    peer: SocketAddr,
    call_id: &str,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    // A Bearer key when one is sent; otherwise the desk's session cookie (an `<audio>`
    // element sends no header of its own).
    let viewer = if headers.contains_key(header::AUTHORIZATION) || !Sessions::presented(headers) {
        playback.gate.viewer(headers).await?
    } else {
        playback
            .sessions
            .current(headers)
            .await?
            .ok_or(AppError::Unauthenticated)?
            .viewer
    };
    viewer.require_identity("recording")?;
    let call = playback
        .store
        .reader(viewer.scope.clone())
        .call(call_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let url = call.recording_url.ok_or(AppError::NotFound)?;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let asked = range_header.and_then(Asked::parse);
    if viewer.key_id.is_some() {
        let entry = AccessEntry {
            at: chrono::Utc::now(),
            key_id: viewer.key_id,
            key_name: viewer.key_name.clone(),
            role: viewer.role.as_str().to_owned(),
            surface: "recording".into(),
            operation_name: None,
            query_sha256: None,
            client_address: Some(peer.ip().to_string()),
            call_ids: vec![call.call_id.clone()],
            byte_range: Some(asked.map_or_else(|| "all".to_owned(), Asked::describe)),
        };
        playback.ingestor.log_access(entry).await.map_err(|e| {
            AppError::Unavailable(format!("the access log could not be written: {e:?}"))
        })?;
    }
    let status = playback.store.recording_status(&call.call_id, &url).await?;
    match status.archived {
        Some(archived) => from_archive(playback, &archived, asked).await,
        None => through_doubletick(playback, &url, range_header).await,
    }
}

async fn from_archive(
    playback: &Playback,
    archived: &crate::domain::recording::Archived,
    asked: Option<Asked>,
) -> Result<Response, AppError> {
    let len = u64::try_from(archived.bytes).unwrap_or(0);
    let etag = format!("\"{}\"", archived.sha256);
    let (status, range) = match asked {
        None => (StatusCode::OK, 0..len),
        Some(asked) => match asked.within(len) {
            Some(range) => (StatusCode::PARTIAL_CONTENT, range),
            None => {
                let mut response = AppError::RangeNotSatisfiable(len).into_response();
                insert(
                    &mut response,
                    header::CONTENT_RANGE,
                    &format!("bytes */{len}"),
                );
                insert(&mut response, header::ACCEPT_RANGES, "bytes");
                return Ok(response);
            }
        },
    };
    let stream = playback
        .archive
        .objects
        .read(&archived.sha256, Some(range.clone()))
        .await
        .map_err(|e| match e {
            AppError::NotFound => {
                AppError::Internal(format!("archived object {} is missing", archived.sha256))
            }
            other => other,
        })?;
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    insert(&mut response, header::CONTENT_TYPE, &archived.content_type);
    insert(
        &mut response,
        header::CONTENT_LENGTH,
        &(range.end - range.start).to_string(),
    );
    insert(&mut response, header::ACCEPT_RANGES, "bytes");
    insert(&mut response, header::ETAG, &etag);
    insert(
        &mut response,
        header::CACHE_CONTROL,
        "private, max-age=3600",
    );
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{len}", range.start, range.end - 1),
        );
    }
    Ok(response)
}

/// Not archived yet: the bytes from DoubleTick, the key added here and never shown.
async fn through_doubletick(
    playback: &Playback,
    url: &str,
    range: Option<&str>,
) -> Result<Response, AppError> {
    let Some(doubletick) = &playback.archive.doubletick else {
        return Err(AppError::Unavailable(
            "a recording not archived yet, and no DoubleTick key is configured to fetch it".into(),
        ));
    };
    let upstream =
        doubletick.get(url, range).send().await.map_err(|e| {
            AppError::Unavailable(format!("DoubleTick: {}", doubletick.describe(e)))
        })?;
    let status = upstream.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Err(AppError::NotFound);
    }
    if !(status.is_success() || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE) {
        return Err(AppError::Unavailable(format!(
            "DoubleTick answered {} for a recording",
            status.as_u16()
        )));
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK);
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
        header::ETAG,
    ] {
        if let Some(value) = upstream.headers().get(name.as_str())
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response.headers_mut().insert(name, value);
        }
    }
    let scrubber = doubletick.clone();
    let body = upstream
        .bytes_stream()
        .map_err(move |e| std::io::Error::other(scrubber.describe(e)));
    *response.body_mut() = Body::from_stream(body);
    Ok(response)
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_browsers_send_them() {
        let len = 1000;
        let within = |h: &str| Asked::parse(h).and_then(|a| a.within(len));
        assert_eq!(within("bytes=0-99"), Some(0..100));
        assert_eq!(within("bytes=500-"), Some(500..1000));
        assert_eq!(within("bytes=-100"), Some(900..1000));
        assert_eq!(within("bytes=-5000"), Some(0..1000));
        assert_eq!(within("bytes=990-2000"), Some(990..1000));
        assert_eq!(
            Asked::parse("bytes=1000-").map(|a| a.within(len)),
            Some(None)
        );
        assert_eq!(Asked::parse("bytes=-0").map(|a| a.within(len)), Some(None));
        assert_eq!(Asked::parse("bytes=0-1,5-6"), None);
        assert_eq!(Asked::parse("bytes=9-1"), None);
        assert_eq!(Asked::parse("items=0-1"), None);
        assert_eq!(playback_path("call 8/x"), "/recordings/call%208%2Fx");
    }
}
