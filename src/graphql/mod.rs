//! The GraphQL API: the only module that speaks async-graphql.
mod access;
mod access_log;
mod cost;
mod documents;
mod graphiql;
mod http;
mod inputs;
mod introspection;
mod query;
mod review;
mod scalars;
mod stats;
mod types;

use std::sync::Arc;

use async_graphql::{EmptySubscription, ErrorExtensions, Schema, ServerError};
use axum::extract::{ConnectInfo, FromRequest, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::access::Gate;
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::AccessEntry;
use crate::store::ingest::Ingestor;
use access::AccessTrail;
use documents::Documents;
pub use graphiql::asset;
use introspection::Asks;
pub use query::Query;
pub use review::Mutation;

/// The calltrail schema.
pub type CallSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest query accepted (a query asking only about the schema has its own bounds,
/// `introspection::MAX_DEPTH`).
pub const MAX_DEPTH: usize = 12;
/// Most costly query accepted (see `cost`: each field weighs what it costs; list fields
/// multiply by their page size).
pub const MAX_COMPLEXITY: usize = cost::MAX_COMPLEXITY;

/// Settings the resolvers read.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_page_size: u64,
    /// Recordings are archived (a DoubleTick key is configured); without, a recording not
    /// archived is `NOT_CONFIGURED`.
    pub archiving: bool,
}

/// What `/graphql` serves: the schema with its data (the store and the limits), the same
/// schema for requests that ask only about it, and the documents parsed so far.
#[derive(Clone)]
pub struct Api {
    schema: CallSchema,
    /// Answers introspection only, under `introspection::MAX_DEPTH` and `MAX_COMPLEXITY`.
    introspection: CallSchema,
    documents: Arc<Documents>,
    store: Store,
    gate: Gate,
    /// Writes the access log, through the webhook writer's group commit.
    ingestor: Ingestor,
}

impl Api {
    pub fn new(store: Store, limits: Limits, gate: Gate, ingestor: Ingestor) -> Api {
        let schema = Schema::build(Query, Mutation, EmptySubscription)
            .data(store.clone())
            .data(limits)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish();
        let introspection = Schema::build(Query, Mutation, EmptySubscription)
            .introspection_only()
            .limit_depth(introspection::MAX_DEPTH)
            .limit_complexity(introspection::MAX_COMPLEXITY)
            .finish();
        Api {
            schema,
            introspection,
            documents: Arc::default(),
            store,
            gate,
            ingestor,
        }
    }
}

/// The schema's SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .finish()
        .sdl()
}

/// What a GraphQL request was, put on its answer for the metrics: its operation's type and
/// name as the client sent them (the metrics bound the names), and its result code.
#[derive(Clone, Debug)]
pub struct Answered {
    /// `query`, `mutation`, `subscription`, or `unknown` (not parsed, or no such operation).
    pub operation_type: &'static str,
    pub operation_name: Option<String>,
    /// `OK`, or the first error's code.
    pub code: &'static str,
    /// A read was stopped at `--query-timeout`.
    pub timed_out: bool,
}

impl Answered {
    /// A request refused before it reached the schema, by its HTTP status.
    pub fn refused(status: axum::http::StatusCode) -> Answered {
        Answered {
            operation_type: "unknown",
            operation_name: None,
            code: match status.as_u16() {
                400 => "MALFORMED_BODY",
                401 => "UNAUTHENTICATED",
                405 => "METHOD_NOT_ALLOWED",
                413 => "PAYLOAD_TOO_LARGE",
                415 => "UNSUPPORTED_MEDIA_TYPE",
                503 => "SERVICE_UNAVAILABLE",
                _ => "INTERNAL_SERVER_ERROR",
            },
            timed_out: false,
        }
    }
}

/// The codes a GraphQL answer can carry (a label takes only these).
const CODES: [&str; 17] = [
    "OK",
    "MALFORMED_BODY",
    "INVALID_PAYLOAD",
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "SERVICE_UNAVAILABLE",
    "UNSTORABLE",
    "QUERY_TIMEOUT",
    "INTERNAL_SERVER_ERROR",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_DEEP",
    "GRAPHQL_VALIDATION_FAILED",
];

fn code_of(error: &ServerError) -> &'static str {
    let code = error.extensions.as_ref().and_then(|e| match e.get("code") {
        Some(async_graphql::Value::String(code)) => Some(code.as_str()),
        _ => None,
    });
    code.and_then(|code| CODES.iter().find(|known| **known == code).copied())
        .unwrap_or("OTHER")
}

/// `POST /graphql` (and a query over GET): one operation per request (batches are refused).
///
/// The reader is decided first (401 without a good key, unless reads are open); every call
/// read goes through the reader's scope; an authenticated read that touched calls is written
/// to the access log before its answer leaves, and is not answered (503) if it cannot be.
pub async fn execute(
    api: State<Api>,
    peer: ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    operation: http::Operation,
) -> Response {
    let mut answered = Answered::refused(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = run(api, peer, headers, operation, &mut answered).await;
    if answered.code == "INTERNAL_SERVER_ERROR" && response.status().as_u16() != 500 {
        answered.code = Answered::refused(response.status()).code;
    }
    response.extensions_mut().insert(answered);
    response
}

async fn run(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    operation: http::Operation,
    answered: &mut Answered,
) -> Response {
    let viewer = match api.gate.viewer(&headers).await {
        Ok(viewer) => viewer,
        Err(e) => {
            answered.code = e.code();
            return e.into_response();
        }
    };
    let http::Operation { mut request, reply } = operation;
    api.documents.prepare(&mut request);
    if let Err(refusal) = reply.permits(&mut request) {
        return refusal.into_response();
    }
    if let Err(error) = cost::check_root_fields(&mut request) {
        answered.code = code_of(&error);
        return reply.answer(async_graphql::Response::from_errors(vec![error]));
    }
    let query_sha256 = hex::encode(Sha256::digest(request.query.as_bytes()));
    let operation_name = cost::operation_name(&mut request);
    answered.operation_name = operation_name.clone();
    let asked = request.operation_name.clone();
    if let Ok(document) = request.parsed_query()
        && let Some(operation) = documents::operation(document, asked.as_deref())
    {
        answered.operation_type = match operation.node.ty {
            async_graphql::parser::types::OperationType::Query => "query",
            async_graphql::parser::types::OperationType::Mutation => "mutation",
            async_graphql::parser::types::OperationType::Subscription => "subscription",
        };
    }
    let trail = Arc::new(AccessTrail::default());
    let mut response = match introspection::classify(&mut request) {
        Ok(Asks::OnlySchema) => api.introspection.execute(request).await,
        Ok(Asks::Data) => {
            let request = request
                .data(api.store.reader(viewer.scope.clone()))
                .data(viewer.clone())
                .data(Arc::clone(&trail));
            api.schema.execute(request).await
        }
        Err(error) => async_graphql::Response::from_errors(vec![error]),
    };
    for error in &mut response.errors {
        ensure_code(error);
    }
    answered.code = response.errors.first().map_or("OK", code_of);
    answered.timed_out = response
        .errors
        .iter()
        .any(|e| code_of(e) == "QUERY_TIMEOUT");
    if viewer.key_id.is_some() && trail.was_read() {
        let entry = AccessEntry {
            at: chrono::Utc::now(),
            key_id: viewer.key_id,
            key_name: viewer.key_name.clone(),
            role: viewer.role.as_str().to_owned(),
            surface: "graphql".into(),
            operation_name,
            query_sha256: Some(query_sha256),
            client_address: Some(peer.ip().to_string()),
            call_ids: trail.call_ids(),
            byte_range: None,
        };
        if let Err(e) = api.ingestor.log_access(entry).await {
            answered.code = "SERVICE_UNAVAILABLE";
            return AppError::Unavailable(format!("the access log could not be written: {e:?}"))
                .into_response();
        }
    }
    reply.answer(response)
}

/// `GET /graphql`: GraphiQL for a browser that sends no query; otherwise the query
/// (`?query=…&variables=…&operationName=…`), which may not be a mutation.
pub async fn execute_or_graphiql(api: State<Api>, request: axum::extract::Request) -> Response {
    if graphiql::is_asked_for(&request) {
        return graphiql::page();
    }
    let headers = request.headers().clone();
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .cloned()
    else {
        return AppError::Internal("no client address on the request".into()).into_response();
    };
    match http::Operation::from_request(request, &()).await {
        Ok(operation) => execute(api, peer, headers, operation).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Parse and validation errors come from async-graphql without a code; give them one.
fn ensure_code(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if !has_code {
        // async-graphql's own limits say so only in words.
        let code = if error.message.contains("too complex") {
            "QUERY_TOO_COMPLEX"
        } else if error.message.contains("nested too deep") {
            "QUERY_TOO_DEEP"
        } else {
            "GRAPHQL_VALIDATION_FAILED"
        };
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        let message = match self {
            AppError::Internal(_)
            | AppError::Unavailable(_)
            | AppError::Unstorable(_)
            | AppError::QueryTimeout(_) => {
                tracing::error!(error = ?self, "query failed");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let code = self.code();
        let argument = match self {
            AppError::BadUserInput { argument, .. } => Some(argument.clone()),
            _ => None,
        };
        async_graphql::Error::new(message).extend_with(|_, e| {
            e.set("code", code);
            if let Some(argument) = &argument {
                e.set("argument", argument.as_str());
            }
        })
    }
}

/// Resolver results: an [`AppError`] becomes a GraphQL error with its code.
pub(crate) type GqlResult<T> = Result<T, async_graphql::Error>;

pub(crate) fn gql(e: AppError) -> async_graphql::Error {
    e.extend()
}
