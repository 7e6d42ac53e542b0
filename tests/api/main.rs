//! The integration tests, one binary: each module a real calltrail on a random port (or the
//! real binary as a child process), driven over HTTP, on SQLite and, with `TEST_DATABASE_URL`,
//! on PostgreSQL.

#[path = "../kit/mod.rs"]
mod kit;

mod access;
mod auth;
mod bad_inputs;
mod batching;
mod bundle;
mod call_stats;
mod delivery_log;
mod desk;
mod disk_full;
mod durability;
mod evidence;
mod exports;
mod fingerprints;
mod formats;
mod graphiql_http;
mod graphql_calls;
mod implausible;
mod lifecycle;
mod log_secrets;
mod name_search;
mod ops;
mod pg_outage;
mod pg_writer_faults;
mod properties;
mod reads_vs_writes;
mod recordings;
mod recordings_binary;
mod replay;
mod reviews;
mod rollup;
mod runtime_role;
mod schema_drift;
mod serving;
mod startup;
mod unstorable;
mod upgrade;
mod webhook_ingest;
