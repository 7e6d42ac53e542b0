//! One archive attempt: the recording fetched with the key, streamed through SHA-256 into a
//! staged file (never held whole in memory; inside a `file:` store's directory, so storing it
//! is a rename), checked to be audio and under the size cap, then stored under its hash.
use futures_util::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{DoubleTick, Objects};
use crate::domain::recording::AttemptOutcome;

/// What an attempt needs.
#[derive(Clone, Debug)]
pub struct Fetcher {
    pub doubletick: DoubleTick,
    pub objects: Objects,
    pub max_bytes: u64,
}

/// The content type stored for a body whose own type is generic but whose first bytes are
/// audio, or `None` when they are not.
fn sniff_audio(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        Some("audio/mpeg")
    } else if head.starts_with(b"OggS") {
        Some("audio/ogg")
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        Some("audio/wav")
    } else if head.get(4..8) == Some(b"ftyp") {
        Some("audio/mp4")
    } else {
        None
    }
}

/// Whether a declared type may be audio: `audio/*`, or a generic binary type (then the first
/// bytes decide).
enum Declared {
    Audio(String),
    Generic,
    NotAudio(String),
}

fn declared(content_type: Option<&str>) -> Declared {
    let Some(full) = content_type else {
        return Declared::Generic;
    };
    let essence = full
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("audio/") {
        Declared::Audio(essence)
    } else if essence.is_empty()
        || essence == "application/octet-stream"
        || essence == "binary/octet-stream"
    {
        Declared::Generic
    } else {
        Declared::NotAudio(essence)
    }
}

impl Fetcher {
    /// Fetches `url` and archives it; never panics, never returns the key or the URL.
    pub async fn attempt(&self, url: &str) -> AttemptOutcome {
        let response = match self.doubletick.get(url, None).send().await {
            Ok(response) => response,
            Err(e) => return AttemptOutcome::Retry(self.doubletick.describe(e)),
        };
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return AttemptOutcome::Gone(format!(
                "DoubleTick answered {}: the recording is no longer there",
                status.as_u16()
            ));
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
        {
            return AttemptOutcome::Retry(format!("DoubleTick answered {}", status.as_u16()));
        }
        if !status.is_success() {
            return AttemptOutcome::Failed(format!("DoubleTick answered {}", status.as_u16()));
        }
        if let Some(length) = response.content_length()
            && length > self.max_bytes
        {
            return AttemptOutcome::Failed(format!(
                "the recording is {length} bytes, more than the {} bytes allowed (--max-recording-bytes)",
                self.max_bytes
            ));
        }
        let declared = declared(
            response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        if let Declared::NotAudio(essence) = &declared {
            return AttemptOutcome::Failed(format!("not audio: DoubleTick sent {essence}"));
        }
        let mut staged = match self.objects.stage() {
            Ok(staged) => staged,
            Err(e) => return AttemptOutcome::Retry(e.to_string()),
        };
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::with_capacity(16);
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return AttemptOutcome::Retry(self.doubletick.describe(e)),
            };
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return AttemptOutcome::Failed(format!(
                    "the recording is more than the {} bytes allowed (--max-recording-bytes)",
                    self.max_bytes
                ));
            }
            if head.len() < 16 {
                let take = (16 - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            if let Err(e) = staged.file.write_all(&chunk).await {
                return AttemptOutcome::Retry(format!("writing the staged file: {e}"));
            }
        }
        let content_type = match declared {
            Declared::Audio(essence) => essence,
            Declared::Generic => match sniff_audio(&head) {
                Some(kind) => kind.to_owned(),
                None => {
                    return AttemptOutcome::Failed(
                        "not audio: a generic content type and no audio signature in the first bytes"
                            .into(),
                    );
                }
            },
            Declared::NotAudio(essence) => {
                return AttemptOutcome::Failed(format!("not audio: DoubleTick sent {essence}"));
            }
        };
        if size == 0 {
            return AttemptOutcome::Retry("DoubleTick sent an empty body".into());
        }
        let sha256 = hex::encode(hasher.finalize());
        if let Err(e) = self.objects.put_staged(&sha256, size, staged).await {
            let detail = match &e {
                crate::error::AppError::Unavailable(d) | crate::error::AppError::Internal(d) => {
                    d.clone()
                }
                other => other.to_string(),
            };
            return AttemptOutcome::Retry(self.doubletick.scrub(&detail));
        }
        AttemptOutcome::Archived {
            sha256,
            bytes: size as i64,
            content_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_told_by_its_type_or_its_first_bytes() {
        assert!(matches!(declared(Some("audio/mpeg")), Declared::Audio(t) if t == "audio/mpeg"));
        assert!(matches!(
            declared(Some("Audio/MPEG; x=1")),
            Declared::Audio(_)
        ));
        assert!(matches!(
            declared(Some("application/octet-stream")),
            Declared::Generic
        ));
        assert!(matches!(declared(None), Declared::Generic));
        assert!(
            matches!(declared(Some("text/html; charset=utf-8")), Declared::NotAudio(t) if t == "text/html")
        );
        assert_eq!(sniff_audio(b"ID3\x04\x00"), Some("audio/mpeg"));
        assert_eq!(sniff_audio(&[0xFF, 0xFB, 0x90]), Some("audio/mpeg"));
        assert_eq!(sniff_audio(b"<html>"), None);
    }
}
