//! calltrail: DoubleTick "Call Ended" webhooks in, a permanent, queryable call record out.

/// Who is asking: API keys, roles and scopes, decided once per request.
pub mod access;
/// The binary's allocator: mimalloc for small blocks, the system's for large ones.
pub mod allocator;
/// The HTTP application: router, binding and graceful shutdown.
pub mod app;
/// Settings from flags and environment, and the command line.
pub mod config;
/// Pure call-record types and rules: events, lifecycle merging, filters.
pub mod domain;
/// The one error type, with HTTP status and stable code.
pub mod error;
/// CSV and NDJSON exports of calls and statistics, and the evidence bundle, streamed.
pub mod export;
/// The GraphQL API (the only async-graphql user).
pub mod graphql;
/// Running in production: metrics, probes, request ids and logs, the serve loop.
pub mod ops;
/// The archive of call recordings: fetch workers, the object store, playback.
pub mod recordings;
/// `calltrail replay`: re-processing logged deliveries.
pub mod replay;
/// Synthetic call traffic for `calltrail seed` and the benchmarks.
pub mod seed;
/// Persistence (the only sea-orm user): ingestion with group commit, queries.
pub mod store;
/// `calltrail verify`: checking the stored evidence (chains, bodies, calls, rollup).
pub mod verify;
/// The reviewer's desk: server-rendered pages to find, hear and review calls.
pub mod web;
/// REST ingestion of DoubleTick webhooks.
pub mod webhook;
