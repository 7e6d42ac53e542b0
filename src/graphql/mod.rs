//! The GraphQL API: the only module that speaks async-graphql.
mod documents;
mod graphiql;
mod http;
mod inputs;
mod introspection;
mod query;
mod scalars;
mod stats;
mod types;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, ErrorExtensions, Schema, ServerError};
use axum::extract::{FromRequest, State};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::store::Store;
use documents::Documents;
pub use graphiql::asset;
use introspection::Asks;
pub use query::Query;

/// The calltrail schema.
pub type CallSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Deepest query accepted (a query asking only about the schema has its own bounds,
/// `introspection::MAX_DEPTH`).
pub const MAX_DEPTH: usize = 12;
/// Most costly query accepted (each field costs 1; list fields multiply by their page size).
pub const MAX_COMPLEXITY: usize = 20_000;

/// Settings the resolvers read.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_page_size: u64,
}

/// What `/graphql` serves: the schema with its data (the store and the limits), the same
/// schema for requests that ask only about it, and the documents parsed so far.
#[derive(Clone)]
pub struct Api {
    schema: CallSchema,
    /// Answers introspection only, under `introspection::MAX_DEPTH` and `MAX_COMPLEXITY`.
    introspection: CallSchema,
    documents: Arc<Documents>,
}

impl Api {
    pub fn new(store: Store, limits: Limits) -> Api {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .data(store)
            .data(limits)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish();
        let introspection = Schema::build(Query, EmptyMutation, EmptySubscription)
            .introspection_only()
            .limit_depth(introspection::MAX_DEPTH)
            .limit_complexity(introspection::MAX_COMPLEXITY)
            .finish();
        Api {
            schema,
            introspection,
            documents: Arc::default(),
        }
    }
}

/// The schema's SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .finish()
        .sdl()
}

/// `POST /graphql` (and a query over GET): one operation per request (batches are refused).
pub async fn execute(State(api): State<Api>, operation: http::Operation) -> Response {
    let http::Operation { mut request, reply } = operation;
    api.documents.prepare(&mut request);
    if let Err(refusal) = reply.permits(&mut request) {
        return refusal.into_response();
    }
    let mut response = match introspection::classify(&mut request) {
        Ok(Asks::OnlySchema) => api.introspection.execute(request).await,
        Ok(Asks::Data) => api.schema.execute(request).await,
        Err(error) => async_graphql::Response::from_errors(vec![error]),
    };
    for error in &mut response.errors {
        ensure_code(error);
    }
    reply.answer(response)
}

/// `GET /graphql`: GraphiQL for a browser that sends no query; otherwise the query
/// (`?query=…&variables=…&operationName=…`), which may not be a mutation.
pub async fn execute_or_graphiql(api: State<Api>, request: axum::extract::Request) -> Response {
    if graphiql::is_asked_for(&request) {
        return graphiql::page();
    }
    match http::Operation::from_request(request, &()).await {
        Ok(operation) => execute(api, operation).await,
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
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "GRAPHQL_VALIDATION_FAILED");
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        let message = match self {
            AppError::Internal(_) | AppError::Unavailable(_) | AppError::Unstorable(_) => {
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
