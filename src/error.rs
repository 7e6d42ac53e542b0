//! The one error type: what went wrong, its HTTP status and its stable code.
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::FieldError;

/// Seconds a client should wait before retrying when storage is unavailable.
pub const RETRY_AFTER_SECONDS: u32 = 5;

#[derive(Clone, Debug, thiserror::Error)]
pub enum AppError {
    /// The body is not JSON nor a form, or not an object.
    #[error("{0}")]
    MalformedBody(String),
    /// The body parsed but is not a storable call: every field problem, at once.
    #[error("the delivery is not a storable call ({} problem(s))", .0.len())]
    InvalidPayload(Vec<FieldError>),
    /// A query argument is out of its domain.
    #[error("{argument}: {message}")]
    BadUserInput { argument: String, message: String },
    #[error("missing, unknown, revoked or expired credentials")]
    Unauthenticated,
    /// The reader's key may not read this (its role or its scope).
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A `Range` no byte of the object (this many bytes long) satisfies.
    #[error("the range asked for is outside the recording's {0} bytes")]
    RangeNotSatisfiable(u64),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error(
        "unsupported content type `{0}`: use application/json, application/x-www-form-urlencoded or multipart/form-data"
    )]
    UnsupportedMediaType(String),
    /// Storage cannot be reached or is full: nothing was acknowledged, retry later.
    #[error("storage is unavailable, retry later")]
    Unavailable(String),
    /// A read ran past `--query-timeout` and the database stopped it.
    #[error(
        "the query ran past the time limit; narrow it (fewer groups, a shorter range) or retry"
    )]
    QueryTimeout(String),
    /// The database refuses the values themselves (a constraint, a value too large, an invalid
    /// byte sequence): retrying the same data fails the same way. The detail is logged.
    #[error("the database refused the values as they are")]
    Unstorable(String),
    /// A bug or an unexpected failure; the detail is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn bad_input(argument: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            argument: argument.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            AppError::InvalidPayload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Unstorable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::QueryTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::MalformedBody(_) => "MALFORMED_BODY",
            AppError::InvalidPayload(_) => "INVALID_PAYLOAD",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound => "NOT_FOUND",
            AppError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            AppError::RangeNotSatisfiable(_) => "RANGE_NOT_SATISFIABLE",
            AppError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            AppError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            AppError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            AppError::Unstorable(_) => "UNSTORABLE",
            AppError::QueryTimeout(_) => "QUERY_TIMEOUT",
            AppError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Structured detail safe to show: the field problems, or the offending argument.
    pub fn details(&self) -> serde_json::Value {
        match self {
            AppError::InvalidPayload(errors) => json!(errors),
            AppError::BadUserInput { argument, .. } => json!({ "argument": argument }),
            _ => serde_json::Value::Null,
        }
    }

    /// Logs what the client is not shown.
    pub(crate) fn log(&self) {
        match self {
            AppError::Internal(detail) => tracing::error!(%detail, "internal error"),
            AppError::Unavailable(detail) => tracing::warn!(%detail, "storage unavailable"),
            AppError::Unstorable(detail) => tracing::warn!(%detail, "the database refused values"),
            AppError::QueryTimeout(detail) => tracing::warn!(%detail, "query timed out"),
            _ => {}
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = json!({
            "error": { "code": self.code(), "message": self.to_string(), "details": self.details() }
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, AppError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
