//! The archive of call recordings: DoubleTick's links fetched with the account's key by
//! background workers, streamed through SHA-256 into an object store under their hash, and
//! played back from there (or streamed through from DoubleTick until archived) without the
//! key ever leaving calltrail.
//!
//! - `secret`: the key, which never prints.
//! - `doubletick`: requests to DoubleTick's media host with the key added, errors without URLs.
//! - `objects`: the object store (`file:<dir>` or `s3://bucket/prefix`), content-addressed.
//! - `archive`: one fetch attempt, streamed to a staged file and into the store.
//! - `worker`: the workers' loop, back-off and retry window, shutdown.
//! - `playback`: `GET /recordings/{callId}` with ranges.
//! - `cli`: `calltrail recordings backfill|verify`.
pub mod archive;
pub mod cli;
pub mod doubletick;
pub mod objects;
pub mod playback;
pub mod secret;
pub mod worker;

pub use doubletick::{DoubleTick, KeyPlacement};
pub use objects::Objects;
pub use secret::Secret;
pub use worker::{ArchiveCounters, Workers};

use std::time::Duration;

use crate::config::Settings;
use crate::error::AppError;
use crate::store::Store;

/// The archive as configured: the object store, DoubleTick's client when a key is given,
/// and how the workers fetch.
#[derive(Clone, Debug)]
pub struct Archive {
    pub objects: Objects,
    /// `None` without `--doubletick-api-key`: nothing is fetched, and a recording not yet
    /// archived says so (`NOT_CONFIGURED`).
    pub doubletick: Option<DoubleTick>,
    pub policy: worker::Policy,
    pub max_bytes: u64,
}

impl Archive {
    /// Opens the configured store (a `file:` directory is created if missing).
    pub fn open(settings: &Settings) -> Result<Archive, AppError> {
        let objects = Objects::open(&settings.recordings)?;
        let read_timeout = settings.archive_fetch_timeout.min(Duration::from_secs(60));
        let doubletick = settings
            .doubletick_api_key
            .clone()
            .map(|key| DoubleTick::new(key, settings.doubletick_key_in, read_timeout));
        Ok(Archive {
            objects,
            doubletick,
            policy: worker::Policy {
                workers: settings.archive_workers,
                attempt_timeout: settings.archive_fetch_timeout,
                retry_base: settings.archive_retry_base,
                retry_window: settings.archive_retry_window,
            },
            max_bytes: settings.max_recording_bytes,
        })
    }

    /// Whether recordings are fetched (a DoubleTick key is configured).
    pub fn configured(&self) -> bool {
        self.doubletick.is_some()
    }

    /// Starts the workers when a key is configured.
    pub fn start_workers(&self, store: &Store) -> Option<Workers> {
        let doubletick = self.doubletick.clone()?;
        let fetcher = archive::Fetcher {
            doubletick,
            objects: self.objects.clone(),
            max_bytes: self.max_bytes,
        };
        Some(Workers::start(store.clone(), fetcher, self.policy))
    }
}

/// `500ms`, `10s`, `30m`, `72h` or `10` (seconds), for the archive's settings.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60_000)
    } else if let Some(h) = text.strip_suffix('h') {
        (h, 3_600_000)
    } else {
        (text, 1000)
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 10s, 30m or 72h"))?;
    if n == 0 {
        return Err("must be more than zero".into());
    }
    Ok(Duration::from_millis(n.saturating_mul(scale)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_their_unit() {
        assert_eq!(parse_span("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_span("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_span("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_span("9"), Ok(Duration::from_secs(9)));
        assert!(parse_span("0s").is_err());
        assert!(parse_span("soon").is_err());
    }
}
