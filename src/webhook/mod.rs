//! REST ingestion of DoubleTick webhooks: authenticate, read, parse, log and store.
pub mod auth;
pub mod payload;

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::json;

use crate::error::AppError;
use crate::store::ingest::{Incoming, Ingestor, Outcome, Verdict};
use auth::Tokens;
use payload::{BodyFormat, Delivery};

/// Largest webhook body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the webhook route needs.
#[derive(Clone, Debug)]
pub struct WebhookState {
    pub tokens: Arc<Tokens>,
    pub ingestor: Ingestor,
}

/// What a delivery became (`stored`, `duplicate`, `rejected`...), put on its answer for the
/// metrics.
#[derive(Clone, Copy, Debug)]
pub struct Answered(pub &'static str);

/// `POST /webhooks/doubletick`: answers 2xx only once the delivery and its call are committed.
pub async fn receive(
    State(state): State<WebhookState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !state.tokens.admits(&headers, uri.query()) {
        return AppError::Unauthenticated.into_response();
    }
    let received_at = Utc::now();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (body, verdict, refusal) = match read_body(body).await {
        BodyRead::TooLarge(prefix) => {
            let error = AppError::PayloadTooLarge(MAX_BODY_BYTES);
            (prefix, rejected(&error, None, None), Some(error))
        }
        BodyRead::Broken(prefix, detail) => {
            let error = AppError::MalformedBody(format!("the body could not be read: {detail}"));
            (prefix, rejected(&error, None, None), Some(error))
        }
        BodyRead::Whole(bytes) => {
            let (verdict, refusal) = judge(content_type.as_deref(), &bytes, received_at).await;
            (bytes, verdict, refusal)
        }
    };
    let incoming = Incoming {
        received_at,
        content_type: content_type.unwrap_or_default(),
        body,
        verdict,
        replay_of: None,
    };
    // A refusal is answered only once it is logged; if it cannot be logged, 503 asks for it again.
    match (state.ingestor.submit(incoming).await, refusal) {
        (Err(e), _) => e.into_response(),
        (Ok(_), Some(refusal)) => {
            let mut response = refusal.into_response();
            response.extensions_mut().insert(Answered("rejected"));
            response
        }
        (Ok(receipt), None) => {
            let mut body = json!({
                "status": receipt.outcome.as_str(),
                "callId": receipt.call_id,
                "concluded": receipt.concluded,
                "deliveryId": receipt.delivery_id,
            });
            if receipt.outcome == Outcome::Ignored {
                body["concluded"] = serde_json::Value::Null;
            }
            let mut response = Json(body).into_response();
            response
                .extensions_mut()
                .insert(Answered(receipt.outcome.as_str()));
            response
        }
    }
}

/// A request body as far as it could be read.
enum BodyRead {
    Whole(Vec<u8>),
    /// Longer than [`MAX_BODY_BYTES`]: its first `MAX_BODY_BYTES` bytes, kept for the log.
    TooLarge(Vec<u8>),
    /// The client stopped sending: what had arrived, and why.
    Broken(Vec<u8>, String),
}

async fn read_body(body: Body) -> BodyRead {
    let mut stream = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Err(e) => return BodyRead::Broken(kept, e.to_string()),
            Ok(chunk) => {
                let room = MAX_BODY_BYTES - kept.len();
                if chunk.len() > room {
                    kept.extend_from_slice(&chunk[..room]);
                    return BodyRead::TooLarge(kept);
                }
                kept.extend_from_slice(&chunk);
            }
        }
    }
    BodyRead::Whole(kept)
}

/// Decides what a body that arrived at `arrived` is: a call event, another valid delivery,
/// or a refusal (with the error to answer).
pub async fn judge(
    content_type: Option<&str>,
    body: &[u8],
    arrived: DateTime<Utc>,
) -> (Verdict, Option<AppError>) {
    let format = match BodyFormat::from_content_type(content_type, body) {
        Ok(format) => format,
        Err(error) => return (rejected(&error, None, None), Some(error)),
    };
    match payload::parse(&format, body).await {
        Ok(Delivery::Call(mut event)) => {
            event.flag_implausible(arrived);
            (Verdict::Call(event), None)
        }
        Ok(Delivery::NotACall {
            event,
            call_id,
            reason,
        }) => (
            Verdict::NotACall {
                event,
                call_id,
                reason,
            },
            None,
        ),
        Err(r) => (rejected(&r.error, r.event, r.call_id), Some(r.error)),
    }
}

fn rejected(error: &AppError, event: Option<String>, call_id: Option<String>) -> Verdict {
    let reason =
        json!({ "code": error.code(), "message": error.to_string(), "details": error.details() });
    Verdict::Rejected {
        event,
        call_id,
        reason: reason.to_string(),
    }
}

/// Any other method on the webhook route.
pub async fn method_not_allowed() -> Response {
    AppError::MethodNotAllowed.into_response()
}
