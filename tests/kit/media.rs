//! A fake DoubleTick media host: a real HTTP server on a random port of 127.0.0.1 that demands
//! the account's key where calltrail is told to put it, answers each recording link by its
//! path, and counts the requests each link received.
//!
//! Paths are `/media/<behaviour>/<name>`; the behaviour is one of:
//! `mp3` (audio/mpeg bytes, `Range` honoured), `wav` and `silent-mp3` (real, playable audio), `octet` (the same bytes as
//! application/octet-stream), `missing` (404), `gone` (410), `error` (500), `flaky` (500 for
//! the first two requests, then mp3), `later` (503 once, then mp3), `hang` (never answers), `trickle` (the bytes a few at a
//! time), `html` (a text/html page), `huge` (declares more bytes than any cap),
//! `endless` (streams without a length until the client stops).
// Each test uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The key the fake host accepts.
pub const KEY: &str = "dtk_live_S3cr3tK3y_4f9a";

/// Where the fake host expects the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIn {
    Query,
    Header,
}

#[derive(Clone)]
struct Host {
    key_in: KeyIn,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Bytes of a recording of `mp3`/`octet`/`trickle` (default 64 KiB), per name.
    sizes: Arc<Mutex<HashMap<String, usize>>>,
}

/// A running fake host.
pub struct MediaHost {
    pub base: String,
    host: Host,
    task: tokio::task::JoinHandle<()>,
}

/// The bytes of recording `name`, `len` long: an MP3-looking header, then bytes that depend on
/// the name (so two names give two recordings, one name the same bytes each time).
pub fn audio_bytes(name: &str, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(b"ID3\x04\x00\x00\x00\x00\x00\x00");
    let mut block = Sha256::digest(name.as_bytes()).to_vec();
    while bytes.len() < len {
        block = Sha256::digest(&block).to_vec();
        bytes.extend_from_slice(&block);
    }
    bytes.truncate(len);
    bytes
}

/// Seconds of the `wav` recording.
pub const WAV_SECONDS: u32 = 4;

/// A real, playable recording: `seconds` of a 440 Hz tone, 8 kHz mono 16-bit PCM WAV.
pub fn wav_bytes(seconds: u32) -> Vec<u8> {
    let rate = 8_000u32;
    let samples = rate * seconds;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(rate);
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 8_000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

/// A real, playable MP3: `seconds` of silence, MPEG-1 Layer III, 128 kbit/s, 44.1 kHz mono.
/// Each frame is a header, zeroed side information (no main data: every granule silent) and
/// zero padding to the frame's 417 bytes, 1 152 samples.
pub fn mp3_bytes(seconds: u32) -> Vec<u8> {
    const FRAME: usize = 417;
    let frames = (seconds as usize * 44_100).div_ceil(1152);
    let mut out = Vec::with_capacity(frames * FRAME);
    for _ in 0..frames {
        let start = out.len();
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0xC0]);
        out.resize(start + FRAME, 0);
    }
    out
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl MediaHost {
    /// Starts the host on a random port, demanding [`KEY`] in `key_in`.
    pub async fn start(key_in: KeyIn) -> MediaHost {
        let host = Host {
            key_in,
            hits: Arc::default(),
            sizes: Arc::default(),
        };
        let app = Router::new()
            .route("/media/{behaviour}/{name}", get(serve))
            .with_state(host.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("media host binds");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MediaHost {
            base: format!("http://{addr}"),
            host,
            task,
        }
    }

    /// The link of recording `name` with `behaviour`.
    pub fn url(&self, behaviour: &str, name: &str) -> String {
        format!("{}/media/{behaviour}/{name}", self.base)
    }

    /// Makes recording `name` `len` bytes long.
    pub fn set_size(&self, name: &str, len: usize) {
        self.host
            .sizes
            .lock()
            .expect("sizes")
            .insert(name.to_owned(), len);
    }

    /// The bytes recording `name` answers with.
    pub fn bytes_of(&self, name: &str) -> Vec<u8> {
        audio_bytes(name, size_of(&self.host, name))
    }

    /// Requests that reached `behaviour/name` with the right key.
    pub fn hits(&self, behaviour: &str, name: &str) -> usize {
        self.host
            .hits
            .lock()
            .expect("hits")
            .get(&format!("{behaviour}/{name}"))
            .copied()
            .unwrap_or(0)
    }

    /// Requests refused for a missing or wrong key, over all paths.
    pub fn refused(&self) -> usize {
        self.host
            .hits
            .lock()
            .expect("hits")
            .get("refused")
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for MediaHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn size_of(host: &Host, name: &str) -> usize {
    host.sizes
        .lock()
        .expect("sizes")
        .get(name)
        .copied()
        .unwrap_or(64 * 1024)
}

fn has_key(host: &Host, query: Option<&str>, headers: &HeaderMap) -> bool {
    match host.key_in {
        KeyIn::Query => query.is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "token" && v == KEY)
        }),
        KeyIn::Header => {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                == Some(KEY)
        }
    }
}

async fn serve(
    State(host): State<Host>,
    Path((behaviour, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !has_key(&host, query.as_deref(), &headers) {
        *host
            .hits
            .lock()
            .expect("hits")
            .entry("refused".into())
            .or_default() += 1;
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    let count = {
        let mut hits = host.hits.lock().expect("hits");
        let n = hits.entry(format!("{behaviour}/{name}")).or_default();
        *n += 1;
        *n
    };
    let bytes = audio_bytes(&name, size_of(&host, &name));
    match behaviour.as_str() {
        "mp3" => ranged(bytes, "audio/mpeg", &headers),
        "wav" => ranged(wav_bytes(WAV_SECONDS), "audio/wav", &headers),
        "silent-mp3" => ranged(mp3_bytes(WAV_SECONDS), "audio/mpeg", &headers),
        "octet" => ranged(bytes, "application/octet-stream", &headers),
        "missing" => (StatusCode::NOT_FOUND, "no such recording").into_response(),
        "gone" => (StatusCode::GONE, "expired").into_response(),
        "error" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke").into_response(),
        "flaky" if count <= 2 => (StatusCode::INTERNAL_SERVER_ERROR, "try later").into_response(),
        "flaky" => ranged(bytes, "audio/mpeg", &headers),
        "later" if count == 1 => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        "later" => ranged(bytes, "audio/mpeg", &headers),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        "trickle" => {
            let len = bytes.len();
            let chunks: Vec<Bytes> = bytes.chunks(4096).map(Bytes::copy_from_slice).collect();
            let stream = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
                let next = rest.next()?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Ok::<_, std::io::Error>(next), rest))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "audio/mpeg")
                .header(header::CONTENT_LENGTH, len)
                .body(Body::from_stream(stream))
                .expect("response")
        }
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body>Please log in</body></html>",
        )
            .into_response(),
        "huge" => {
            // Declares 2 GB, and would send them: the client should stop at the header.
            let chunk = Bytes::from(bytes);
            let stream =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::builder()
                .header(header::CONTENT_TYPE, "audio/mpeg")
                .header(header::CONTENT_LENGTH, 2_000_000_000u64)
                .body(Body::from_stream(stream))
                .expect("response")
        }
        "endless" => {
            let chunk = Bytes::from(audio_bytes(&name, 64 * 1024));
            let stream =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::builder()
                .header(header::CONTENT_TYPE, "audio/mpeg")
                .body(Body::from_stream(stream))
                .expect("response")
        }
        _ => (StatusCode::BAD_REQUEST, "unknown behaviour").into_response(),
    }
}

/// `bytes` whole, or the one range a `Range` header asks for.
fn ranged(bytes: Vec<u8>, content_type: &str, headers: &HeaderMap) -> Response {
    let len = bytes.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|spec| {
            let (a, b) = spec.split_once('-')?;
            if a.is_empty() {
                let n: usize = b.parse().ok()?;
                return Some(len.saturating_sub(n)..len);
            }
            let a: usize = a.parse().ok()?;
            let b: usize = if b.is_empty() {
                len - 1
            } else {
                b.parse().ok()?
            };
            Some(a..(b + 1).min(len))
        });
    match range {
        Some(r) if r.start < len => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{len}", r.start, r.end - 1),
            )
            .body(Body::from(bytes[r].to_vec()))
            .expect("response"),
        Some(_) => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty())
            .expect("response"),
        None => Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT_RANGES, "bytes")
            .body(Body::from(bytes))
            .expect("response"),
    }
}
