//! Prometheus metrics: what is counted, the bounded labels, and the `/metrics` answer.
//!
//! Labels carry only values from small fixed sets (outcomes, status codes, error codes,
//! operation types, pool names) and GraphQL operation names admitted by [`OperationNames`]:
//! never a call id, a customer, a key or a token.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::store::Store;
use crate::store::ingest::{Ingestor, WriterObserver};

/// Distinct GraphQL operation names given a label of their own; the rest count as `other`.
pub const MAX_OPERATION_NAMES: usize = 100;
/// Names seen once and waiting for a second request to be admitted (then forgotten).
const MAX_CANDIDATE_NAMES: usize = 1000;
/// Longest operation name given a label of its own.
const LONGEST_OPERATION_NAME: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphqlLabels {
    operation_type: &'static str,
    operation_name: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolNameLabels {
    pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Every metric of one running calltrail (tests run several in one process, each its own).
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    webhook_seconds: Histogram,
    batch_size: Histogram,
    queue_depth: Gauge,
    graphql_requests: Family<GraphqlLabels, Counter>,
    graphql_seconds: Histogram,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Family<PoolNameLabels, Gauge>,
    query_timeouts: Counter,
    access_log_writes: Family<ResultLabels, Counter>,
    ready: Gauge,
    writer_failing: Gauge,
    connections_open: Gauge,
    names: Mutex<OperationNames>,
    archive: ArchiveMetrics,
}

/// The recording archive: its queue, read at scrape time, and its workers' counters.
#[derive(Debug, Default)]
struct ArchiveMetrics {
    backlog: Gauge,
    oldest_pending_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    attempts: Counter,
    archived: Counter,
    failures: Counter,
    /// The running workers' counters (none without a DoubleTick key).
    workers: Mutex<Option<Arc<crate::recordings::ArchiveCounters>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("calltrail");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries answered, by outcome (stored, updated, merged, duplicate, ignored, rejected, unauthenticated, unavailable, error) and HTTP status",
            deliveries.clone(),
        );
        let webhook_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register_with_unit(
            "webhook_request_duration",
            "Time from a webhook request's arrival to its answer (2xx only after commit)",
            Unit::Seconds,
            webhook_seconds.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "writer_batch_size",
            "Jobs (deliveries and access-log entries) committed in one group-commit transaction",
            batch_size.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "writer_queue_depth",
            "Jobs waiting for the webhook writer",
            queue_depth.clone(),
        );
        let graphql_requests = Family::<GraphqlLabels, Counter>::default();
        registry.register(
            "graphql_requests",
            "GraphQL requests by operation type, operation name (named operations seen before, up to a cap; else `other`) and result code (`OK` or the first error's code)",
            graphql_requests.clone(),
        );
        let graphql_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register_with_unit(
            "graphql_request_duration",
            "Time from a GraphQL request's arrival to its answer",
            Unit::Seconds,
            graphql_seconds.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections open per pool (`readers`, `writers`), by state (`idle`, `in_use`)",
            pool_connections.clone(),
        );
        let pool_max = Family::<PoolNameLabels, Gauge>::default();
        registry.register(
            "db_pool_max_connections",
            "Most connections each database pool may open",
            pool_max.clone(),
        );
        let query_timeouts = Counter::default();
        registry.register(
            "query_timeouts",
            "GraphQL requests with a read stopped at --query-timeout (QUERY_TIMEOUT)",
            query_timeouts.clone(),
        );
        let access_log_writes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "access_log_writes",
            "Access-log entries written (`ok`) or not (`failed`, the read answered 503)",
            access_log_writes.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when the latest /readyz check found the database taking writes, else 0",
            ready.clone(),
        );
        let writer_failing = Gauge::default();
        registry.register(
            "writer_failing",
            "1 while the webhook writer's latest transaction failed (until one commits again)",
            writer_failing.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open on the main listener (at most --max-connections)",
            connections_open.clone(),
        );
        registry.register(
            "build",
            "The running calltrail's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let archive = ArchiveMetrics::default();
        registry.register(
            "recording_archive_backlog",
            "Recordings waiting to be archived (pending or retrying)",
            archive.backlog.clone(),
        );
        registry.register_with_unit(
            "recording_archive_oldest_pending",
            "Age of the oldest recording waiting to be archived; 0 when none waits",
            Unit::Seconds,
            archive.oldest_pending_seconds.clone(),
        );
        registry.register(
            "recording_archive_attempts",
            "Fetches of a recording tried by this instance's archive workers",
            archive.attempts.clone(),
        );
        registry.register(
            "recording_archive_archived",
            "Recordings this instance archived (fetched, hashed and stored)",
            archive.archived.clone(),
        );
        registry.register(
            "recording_archive_failures",
            "Fetches that did not archive (to be retried, failed or gone)",
            archive.failures.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                deliveries,
                webhook_seconds,
                batch_size,
                queue_depth,
                graphql_requests,
                graphql_seconds,
                pool_connections,
                pool_max,
                query_timeouts,
                access_log_writes,
                ready,
                writer_failing,
                connections_open,
                names: Mutex::default(),
                archive,
            }),
        }
    }

    /// The webhook writer's side of these metrics (batch sizes, access-log writes).
    pub fn writer_observer(&self) -> Arc<dyn WriterObserver> {
        Arc::new(self.clone())
    }

    /// Counts what the recording archive's workers do.
    pub fn register_archive(&self, counters: Arc<crate::recordings::ArchiveCounters>) {
        *self
            .inner
            .archive
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(counters);
    }

    /// Records the latest readiness answer.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.set(i64::from(ready));
    }

    /// A connection was accepted (`+1`) or closed (`-1`).
    pub fn connection(&self, delta: i64) {
        self.inner.connections_open.inc_by(delta);
    }

    /// The text exposition, with the values read at scrape time refreshed first.
    pub async fn render(&self, store: &Store, ingestor: &Ingestor) -> Result<String, String> {
        let inner = &self.inner;
        inner
            .queue_depth
            .set(i64::try_from(ingestor.queue_depth()).unwrap_or(i64::MAX));
        inner
            .writer_failing
            .set(i64::from(ingestor.failing().is_some()));
        for pool in store.pool_use() {
            let gauge = |state| {
                inner.pool_connections.get_or_create(&PoolLabels {
                    pool: pool.pool,
                    state,
                })
            };
            gauge("idle").set(i64::from(pool.idle));
            gauge("in_use").set(i64::from(pool.size.saturating_sub(pool.idle)));
            inner
                .pool_max
                .get_or_create(&PoolNameLabels { pool: pool.pool })
                .set(i64::from(pool.max));
        }
        let archive = &inner.archive;
        match store.recording_backlog().await {
            Ok(backlog) => {
                archive
                    .backlog
                    .set(i64::try_from(backlog.open).unwrap_or(i64::MAX));
                let age = backlog.oldest_queued_at.map_or(0.0, |t| {
                    (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
                });
                archive.oldest_pending_seconds.set(age);
            }
            Err(e) => tracing::debug!(error = %e, "metrics: the archive backlog could not be read"),
        }
        let workers = archive
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(workers) = workers {
            use std::sync::atomic::Ordering::Relaxed;
            for (counter, now) in [
                (&archive.attempts, workers.attempts.load(Relaxed)),
                (&archive.archived, workers.archived.load(Relaxed)),
                (&archive.failures, workers.failures.load(Relaxed)),
            ] {
                counter.inc_by(now.saturating_sub(counter.get()));
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &inner.registry)
            .map_err(|e| e.to_string())?;
        Ok(text)
    }

    fn delivery(&self, outcome: &'static str, status: StatusCode, seconds: f64) {
        self.inner
            .deliveries
            .get_or_create(&DeliveryLabels {
                outcome,
                status: status.as_u16(),
            })
            .inc();
        self.inner.webhook_seconds.observe(seconds);
    }

    fn graphql(&self, answered: &crate::graphql::Answered, seconds: f64) {
        let name = self
            .inner
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .label(answered.operation_name.as_deref());
        self.inner
            .graphql_requests
            .get_or_create(&GraphqlLabels {
                operation_type: answered.operation_type,
                operation_name: name,
                code: answered.code,
            })
            .inc();
        if answered.timed_out {
            self.inner.query_timeouts.inc();
        }
        self.inner.graphql_seconds.observe(seconds);
    }
}

impl WriterObserver for Metrics {
    fn batch_committed(&self, jobs: usize) {
        self.inner.batch_size.observe(jobs as f64);
    }

    fn access_logged(&self, written: bool) {
        let result = if written { "ok" } else { "failed" };
        self.inner
            .access_log_writes
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

/// Which GraphQL operation names get a label of their own: a name is admitted the second
/// time it is seen, while fewer than [`MAX_OPERATION_NAMES`] are; every other request counts
/// as `other` (unnamed, first seen, too long, or past the cap). A client cycling through
/// made-up names so fills only the bounded candidate set, never the label space.
#[derive(Debug, Default)]
pub struct OperationNames {
    admitted: HashSet<String>,
    seen_once: HashSet<String>,
}

impl OperationNames {
    pub fn label(&mut self, name: Option<&str>) -> String {
        const OTHER: &str = "other";
        let Some(name) = name.filter(|n| {
            !n.is_empty()
                && n.len() <= LONGEST_OPERATION_NAME
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && *n != OTHER
        }) else {
            return OTHER.into();
        };
        if self.admitted.contains(name) {
            return name.to_owned();
        }
        if self.admitted.len() >= MAX_OPERATION_NAMES {
            return OTHER.into();
        }
        if self.seen_once.remove(name) {
            self.admitted.insert(name.to_owned());
            return name.to_owned();
        }
        if self.seen_once.len() >= MAX_CANDIDATE_NAMES {
            self.seen_once.clear();
        }
        self.seen_once.insert(name.to_owned());
        OTHER.into()
    }
}

/// Times and counts webhook and GraphQL requests, from what their handlers put on the answer.
pub async fn observe(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    if path == "/webhooks/doubletick" {
        let outcome = match response.extensions().get::<crate::webhook::Answered>() {
            Some(answered) => answered.0,
            None => match response.status() {
                StatusCode::UNAUTHORIZED => "unauthenticated",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                _ => "error",
            },
        };
        metrics.delivery(outcome, response.status(), seconds);
    } else if path == "/graphql" {
        match response.extensions().get::<crate::graphql::Answered>() {
            Some(answered) => metrics.graphql(answered, seconds),
            // GraphiQL's page.
            None if response.status().is_success() => {}
            None => metrics.graphql(
                &crate::graphql::Answered::refused(response.status()),
                seconds,
            ),
        }
    }
    response
}

/// What `/metrics` needs.
#[derive(Clone, Debug)]
pub struct MetricsState {
    pub metrics: Metrics,
    pub store: Store,
    pub ingestor: Ingestor,
}

/// `GET /metrics`: the Prometheus text format (OpenMetrics 1.0).
pub async fn scrape(State(state): State<MetricsState>) -> Response {
    match state.metrics.render(&state.store, &state.ingestor).await {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Err(e) => {
            crate::error::AppError::Internal(format!("metrics did not encode: {e}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_get_a_label_from_their_second_request_and_never_past_the_cap() {
        let mut names = OperationNames::default();
        assert_eq!(names.label(Some("CallLog")), "other");
        assert_eq!(names.label(Some("CallLog")), "CallLog");
        assert_eq!(names.label(Some("CallLog")), "CallLog");
        assert_eq!(names.label(None), "other");
        assert_eq!(names.label(Some("bad-name")), "other");
        assert_eq!(names.label(Some(&"x".repeat(65))), "other");
        for i in 0..(MAX_OPERATION_NAMES * 2) {
            let name = format!("Op{i}");
            names.label(Some(&name));
            names.label(Some(&name));
        }
        assert_eq!(names.admitted.len(), MAX_OPERATION_NAMES);
        assert_eq!(names.label(Some("CallLog")), "CallLog");
        for i in 0..(MAX_CANDIDATE_NAMES * 3) {
            assert_eq!(names.label(Some(&format!("Fresh{i}"))), "other");
        }
        assert!(names.seen_once.len() <= MAX_CANDIDATE_NAMES);
    }
}
