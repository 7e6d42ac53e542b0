//! Running calltrail in production: metrics, probes, request ids and log setup, and the serve
//! loop (connection limits, timeouts, graceful shutdown with a deadline).
//!
//! - `metrics`: the Prometheus registry, bounded labels, `/metrics`.
//! - `probes`: `/healthz` and `/readyz`.
//! - `logs`: `--log-format`, the request span and its id, redacted URIs.
//! - `server`: the accept loop, per-connection timeouts, shutdown and background tasks.
pub mod logs;
pub mod metrics;
pub mod probes;
pub mod server;
