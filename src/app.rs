//! The HTTP application: the router, binding (port 0 allowed) and graceful shutdown.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::access::Gate;
use crate::config::Settings;
use crate::error::{AppError, RETRY_AFTER_SECONDS};
use crate::export::{self, ExportState};
use crate::graphql::{self, Limits};
use crate::ops;
use crate::ops::metrics::{Metrics, MetricsState};
use crate::ops::probes::ProbeState;
use crate::ops::server::{Background, Shutdown};
use crate::recordings::{self, Archive};
use crate::store::Store;
use crate::store::ingest::Ingestor;
use crate::web;
use crate::webhook::{self, WebhookState, auth::Tokens};

/// Largest GraphQL request body accepted.
pub const MAX_GRAPHQL_BODY_BYTES: usize = 64 * 1024;
/// Largest desk form accepted (a review's note is the longest field).
pub const MAX_DESK_FORM_BYTES: usize = 32 * 1024;

/// The router over an opened, migrated store; `gate` decides who reads, `ingestor` writes,
/// `metrics` counts (and is served at `/metrics` unless `--metrics-addr` gives it a listener of
/// its own), `archive` keeps and plays the recordings.
pub fn router(
    store: Store,
    settings: &Settings,
    gate: Gate,
    ingestor: Ingestor,
    metrics: Metrics,
    archive: &Archive,
) -> Router {
    let desk = web::Desk::new(
        store.clone(),
        gate.clone(),
        ingestor.clone(),
        settings,
        archive.configured(),
    );
    let recordings = recordings::playback::routes(
        store.clone(),
        gate.clone(),
        desk.sessions().clone(),
        ingestor.clone(),
        archive.clone(),
    );
    let webhook_state = WebhookState {
        tokens: Arc::new(Tokens::new(&settings.tokens())),
        ingestor: ingestor.clone(),
    };
    let api = graphql::Api::new(
        store.clone(),
        Limits {
            max_page_size: settings.max_page_size,
            archiving: archive.configured(),
        },
        gate.clone(),
        ingestor.clone(),
    );
    let webhooks = Router::new()
        .route(
            "/webhooks/doubletick",
            post(webhook::receive).fallback(webhook::method_not_allowed),
        )
        .with_state(webhook_state);
    let api = Router::new()
        .route(
            "/graphql",
            get(graphql::execute_or_graphiql)
                .post(graphql::execute)
                .fallback(webhook::method_not_allowed),
        )
        .route("/graphql/assets/{file}", get(graphql::asset))
        .layer(RequestBodyLimitLayer::new(MAX_GRAPHQL_BODY_BYTES))
        .with_state(api);
    let export_state = ExportState {
        store: store.clone(),
        gate: gate.clone(),
        ingestor: ingestor.clone(),
        archiving: archive.configured(),
        objects: archive.objects.clone(),
    };
    let exports = Router::new()
        .route("/export/calls.csv", get(export::calls_csv))
        .route("/export/calls.ndjson", get(export::calls_ndjson))
        .route("/export/stats.csv", get(export::stats_csv))
        .layer(CompressionLayer::new().gzip(true))
        .with_state(export_state.clone());
    // Not compressed: its recordings are compressed already, and its text is small beside them.
    let evidence = Router::new()
        .route("/export/evidence.zip", get(export::evidence::evidence_zip))
        .with_state(export_state);
    let desk = Router::new()
        .route("/", get(web::home))
        .route("/calls", get(web::find))
        .route("/calls/{call_id}", get(web::call))
        .route("/calls/{call_id}/reviews", post(web::review))
        .route("/agents/{agent}/{date}", get(web::agent_day))
        .route("/queue", get(web::queue))
        .route("/sign-in", post(web::sign_in))
        .route("/sign-out", post(web::sign_out))
        .route("/desk/assets/{file}", get(web::assets::asset))
        .layer(RequestBodyLimitLayer::new(MAX_DESK_FORM_BYTES))
        .layer(axum::middleware::map_response(web::secure))
        .with_state(desk);
    let probes = Router::new()
        .route("/healthz", get(ops::probes::healthz))
        .route("/readyz", get(ops::probes::readyz))
        .with_state(ProbeState {
            store: store.clone(),
            ingestor: ingestor.clone(),
            metrics: metrics.clone(),
        });
    let scrape = match settings.metrics_addr {
        None => metrics_router(&store, &ingestor, &metrics),
        Some(_) => Router::new(),
    };
    Router::new()
        .route("/health", get(health))
        .with_state((store, ingestor))
        .merge(webhooks)
        .merge(api)
        .merge(exports)
        .merge(evidence)
        .merge(probes)
        .merge(scrape)
        .merge(recordings)
        .merge(desk)
        .fallback(not_found)
        .layer(axum::middleware::map_request_with_state(
            settings.body_read_timeout,
            ops::server::body_read_timeout,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::map_response(retry_after_on_unavailable))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::Internal("a request handler panicked".into()).into_response()
        }))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            ops::metrics::observe,
        ))
        // A failed request is logged once, where its error is answered (`AppError`).
        .layer(axum::middleware::from_fn(ops::logs::trace_requests))
        .layer(tower::util::option_layer(cors(&settings.cors_origins)))
}

/// `GET /metrics` alone.
fn metrics_router(store: &Store, ingestor: &Ingestor, metrics: &Metrics) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics::scrape))
        .with_state(MetricsState {
            metrics: metrics.clone(),
            store: store.clone(),
            ingestor: ingestor.clone(),
        })
}

/// Lets pages on the `--cors-origin` origins call calltrail from a browser, with a key in
/// `Authorization`; without one, no cross-origin call is allowed (nor answered as a preflight).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// `GET /health`: 200 while the database answers and takes writes, with what the webhook writer
/// has done since the server started (its group commits: how many, the largest, and how many
/// failed as a whole and were retried delivery by delivery).
///
/// After the writer's last transaction failed (disk full, a read-only file, a lost database),
/// the answer is 503 with the reason until a write commits again: the writer's next commit, or
/// the one-row write this check then tries itself, so it turns 200 as soon as space is freed.
async fn health(
    axum::extract::State((store, ingestor)): axum::extract::State<(Store, Ingestor)>,
) -> Response {
    if let Some(fault) = ingestor.failing() {
        match store.probe_write().await {
            Ok(()) => ingestor.recovered(),
            Err(e) => {
                tracing::warn!(error = %e, "health check: the database still refuses writes");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({
                        "status": "unavailable",
                        "reason": format!("writes are failing: {fault}"),
                    })),
                )
                    .into_response();
            }
        }
    }
    if store.ping().await {
        let writer = ingestor.stats();
        axum::Json(json!({
            "status": "ok",
            "writer": {
                "batchesCommitted": writer.batches_committed,
                "largestBatch": writer.largest_batch,
                "batchesRetriedOneByOne": writer.batches_retried_one_by_one,
            },
        }))
        .into_response()
    } else {
        AppError::Unavailable("health check: database unreachable".into()).into_response()
    }
}

/// Every 503 tells the sender when to retry, the timeout layer's included.
async fn retry_after_on_unavailable(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

async fn not_found() -> Response {
    AppError::NotFound.into_response()
}

/// A server running in the background (used by `serve` and by the tests).
pub struct RunningApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `--metrics-addr` gives it a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<Shutdown>>,
}

impl RunningApp {
    /// Stops accepting, finishes in-flight requests, stops the background tasks, and waits
    /// (all within `--shutdown-timeout`).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops (after its shutdown signal): what the shutdown did.
    pub async fn wait(self) -> std::io::Result<Shutdown> {
        self.task
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
    }

    /// A sender that triggers graceful shutdown.
    pub fn take_shutdown(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// Opens and migrates the store, binds `settings.addr`, and serves in the background.
///
/// Refuses to listen on a non-loopback address without a webhook token: anyone could
/// otherwise forge calls.
pub async fn spawn(settings: &Settings) -> Result<RunningApp, AppError> {
    let listener = TcpListener::bind(&settings.addr)
        .await
        .map_err(|e| AppError::Internal(format!("cannot listen on {}: {e}", settings.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    if settings.tokens().is_empty() {
        if !addr.ip().is_loopback() {
            return Err(AppError::Internal(format!(
                "refusing to listen on {addr} without a webhook token: set CALLTRAIL_WEBHOOK_TOKEN (or --webhook-token), or bind a loopback address"
            )));
        }
        tracing::warn!(
            "NO WEBHOOK TOKEN CONFIGURED: anyone who can reach {addr} can post calls. Fine for local use; set CALLTRAIL_WEBHOOK_TOKEN before exposing calltrail."
        );
    }
    let store = Store::connect_with(&settings.database_url, settings.store_options()).await?;
    if settings.no_migrate {
        store.expect_migrated().await?;
    } else {
        store.migrate().await?;
    }
    let gate = Gate::new(store.clone(), addr.ip().is_loopback());
    if !gate.keys_exist().await? {
        if !addr.ip().is_loopback() {
            return Err(AppError::Internal(format!(
                "refusing to listen on {addr} while no API key exists: anyone could read every client's calls. Create one with `calltrail keys create --name NAME --role admin`, or bind a loopback address"
            )));
        }
        tracing::warn!(
            "NO API KEY EXISTS: anyone who can reach {addr} can read every call. Fine for local use; create a key (`calltrail keys create`) before exposing calltrail, and every read then needs one."
        );
    }
    let metrics_listener =
        match &settings.metrics_addr {
            None => None,
            Some(at) => Some(TcpListener::bind(at).await.map_err(|e| {
                AppError::Internal(format!("cannot listen on {at} for metrics: {e}"))
            })?),
        };
    let metrics_addr = match &metrics_listener {
        None => None,
        Some(l) => Some(
            l.local_addr()
                .map_err(|e| AppError::Internal(e.to_string()))?,
        ),
    };
    let metrics = Metrics::new();
    let ingestor = Ingestor::start_observed(
        store.clone(),
        settings.write_batches,
        metrics.writer_observer(),
    );
    // Stopped in this order once no request is left. The writer stops by itself once the
    // routers (the last holders of its handle) are gone, after committing what is queued.
    let archive = Archive::open(settings)?;
    let mut background = Vec::new();
    if let Some(workers) = archive.start_workers(&store) {
        metrics.register_archive(workers.counters.clone());
        background.push(Background::new("recording archive", || {}, workers.stop()));
    }
    background.push(Background::new("webhook writer", || {}, {
        let drained = ingestor.drained();
        drained.wait()
    }));
    let metrics_only = metrics_listener
        .is_some()
        .then(|| metrics_router(&store, &ingestor, &metrics));
    let app = router(
        store.clone(),
        settings,
        gate,
        ingestor,
        metrics.clone(),
        &archive,
    );
    let (shutdown, stopped) = oneshot::channel::<()>();
    let (stopping, signal) = watch::channel(false);
    let when = |mut signal: watch::Receiver<bool>| async move {
        let _ = signal.wait_for(|stop| *stop).await;
    };
    let limits = settings.connection_limits();
    let main = ops::server::serve(
        listener,
        app,
        limits,
        Some(metrics),
        background,
        when(signal.clone()),
    );
    let side = async move {
        match (metrics_listener, metrics_only) {
            (Some(listener), Some(router)) => {
                ops::server::serve(listener, router, limits, None, Vec::new(), when(signal))
                    .await
                    .map(|_| ())
            }
            _ => Ok(()),
        }
    };
    let task = tokio::spawn(async move {
        tokio::spawn(async move {
            let _ = stopped.await;
            let _ = stopping.send(true);
        });
        let (report, side) = tokio::join!(main, side);
        side?;
        report
    });
    Ok(RunningApp {
        addr,
        metrics_addr,
        store,
        shutdown: Some(shutdown),
        task,
    })
}
