//! The GraphQL API: the only module that speaks async-graphql.
mod access;
mod access_log;
mod cost;
mod documents;
mod inputs;
mod query;
mod scalars;
mod stats;
mod types;

use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use async_graphql::{EmptyMutation, EmptySubscription, ErrorExtensions, Schema, ServerError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::access::Gate;
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::AccessEntry;
use crate::store::ingest::Ingestor;
use access::AccessTrail;
use documents::Documents;
pub use query::Query;

/// The calltrail schema.
pub type CallSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most costly query accepted (see `cost`: each field weighs what it costs; list fields
/// multiply by their page size).
pub const MAX_COMPLEXITY: usize = cost::MAX_COMPLEXITY;

/// Settings the resolvers read.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_page_size: u64,
}

/// What `/graphql` serves: the schema with its data (the store and the limits), and the
/// documents parsed so far.
#[derive(Clone)]
pub struct Api {
    schema: CallSchema,
    documents: Arc<Documents>,
    store: Store,
    gate: Gate,
    /// Writes the access log, through the webhook writer's group commit.
    ingestor: Ingestor,
}

impl Api {
    pub fn new(store: Store, limits: Limits, gate: Gate, ingestor: Ingestor) -> Api {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .data(store.clone())
            .data(limits)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish();
        Api {
            schema,
            documents: Arc::default(),
            store,
            gate,
            ingestor,
        }
    }
}

/// The schema's SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .finish()
        .sdl()
}

/// `POST /graphql`: one operation per request (batches are refused by the extractor).
///
/// The reader is decided first (401 without a good key, unless reads are open); every call
/// read goes through the reader's scope; an authenticated read that touched calls is written
/// to the access log before its answer leaves, and is not answered (503) if it cannot be.
pub async fn execute(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let viewer = match api.gate.viewer(&headers).await {
        Ok(viewer) => viewer,
        Err(e) => return e.into_response(),
    };
    let mut request = request.into_inner();
    api.documents.prepare(&mut request);
    if let Err(error) = cost::check_root_fields(&mut request) {
        return GraphQLResponse::from(async_graphql::Response::from_errors(vec![error]))
            .into_response();
    }
    let query_sha256 = hex::encode(Sha256::digest(request.query.as_bytes()));
    let operation_name = cost::operation_name(&mut request);
    let trail = Arc::new(AccessTrail::default());
    let request = request
        .data(api.store.reader(viewer.scope.clone()))
        .data(viewer.clone())
        .data(Arc::clone(&trail));
    let mut response = api.schema.execute(request).await;
    for error in &mut response.errors {
        ensure_code(error);
    }
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
        };
        if let Err(e) = api.ingestor.log_access(entry).await {
            return AppError::Unavailable(format!("the access log could not be written: {e:?}"))
                .into_response();
        }
    }
    GraphQLResponse::from(response).into_response()
}

/// `GET /graphql`: GraphiQL.
pub async fn graphiql() -> impl IntoResponse {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
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
