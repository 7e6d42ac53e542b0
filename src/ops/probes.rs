//! Orchestrator probes: `/healthz` (the process serves) and `/readyz` (the database takes a
//! write right now). `/health`, older and kept as it is, lives in `app`.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::metrics::Metrics;
use crate::store::Store;
use crate::store::ingest::Ingestor;

/// What `/readyz` needs.
#[derive(Clone, Debug)]
pub struct ProbeState {
    pub store: Store,
    pub ingestor: Ingestor,
    pub metrics: Metrics,
}

/// `GET /healthz`: 200 whenever the process answers HTTP at all (a liveness probe: restart
/// the process only when this fails, never because the database is away).
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 only when the database accepts a write right now (SQLite: a write
/// transaction as large as a delivery's commits on the file; PostgreSQL: reachable, not in
/// recovery, a writer connection free), else 503 with the reason. While the webhook writer's
/// last transaction failed, a write is tried on PostgreSQL too, and one that commits clears
/// the writer's failure (as `/health` does).
pub async fn readyz(State(state): State<ProbeState>) -> Response {
    let mut verdict = state.store.ready().await;
    if verdict.is_ok() && state.ingestor.failing().is_some() {
        verdict = match state.store.probe_write().await {
            Ok(()) => Ok(()),
            Err(e) => Err(crate::store::write_refusal(&e)),
        };
    }
    match verdict {
        Ok(()) => {
            state.ingestor.recovered();
            state.metrics.set_ready(true);
            Json(json!({ "status": "ready" })).into_response()
        }
        Err(reason) => {
            state.metrics.set_ready(false);
            tracing::warn!(%reason, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": reason })),
            )
                .into_response()
        }
    }
}
