//! The GraphQL API: the only module that speaks async-graphql.
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
use axum::extract::State;
use axum::response::{Html, IntoResponse};

use crate::error::AppError;
use crate::store::Store;
use documents::Documents;
pub use query::Query;

/// The calltrail schema.
pub type CallSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most costly query accepted (each field costs 1; list fields multiply by their page size).
pub const MAX_COMPLEXITY: usize = 20_000;

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
}

impl Api {
    pub fn new(store: Store, limits: Limits) -> Api {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .data(store)
            .data(limits)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish();
        Api {
            schema,
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

/// `POST /graphql`: one operation per request (batches are refused by the extractor).
pub async fn execute(State(api): State<Api>, request: GraphQLRequest) -> GraphQLResponse {
    let mut request = request.into_inner();
    api.documents.prepare(&mut request);
    let mut response = api.schema.execute(request).await;
    for error in &mut response.errors {
        ensure_code(error);
    }
    response.into()
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
