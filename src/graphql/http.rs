//! GraphQL over HTTP: a request read from `GET /graphql?query=…` or a JSON `POST`, and its
//! answer in the media type the client accepts, with the status codes the GraphQL-over-HTTP
//! specification sets (docs/graphql-http.md).
use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, Variables};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request as HttpRequest};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde_json::{Value, json};

use super::documents;
use crate::app::MAX_GRAPHQL_BODY_BYTES;
use crate::error::AppError;

/// The two media types a GraphQL answer is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/json`: every GraphQL answer is a 200, its errors in the body.
    Json,
    /// `application/graphql-response+json`: a request refused before it ran is a 400.
    GraphqlResponse,
}

impl Media {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Media::Json => "application/json; charset=utf-8",
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }

    /// The type the client prefers of the two: by quality, then the one it names over one
    /// that a wildcard matches. `application/json` when it names neither or sends no
    /// `Accept` (as the specification asks of servers for clients that predate the other).
    pub fn negotiate(headers: &HeaderMap) -> Media {
        let json = quality(headers, "application", "json");
        let graphql = quality(headers, "application", "graphql-response+json");
        match (json, graphql) {
            (_, None) => Media::Json,
            (None, Some(g)) if g.quality > 0.0 => Media::GraphqlResponse,
            (None, Some(_)) => Media::Json,
            (Some(j), Some(g)) if g.quality > j.quality => Media::GraphqlResponse,
            (Some(j), Some(g)) if g.quality == j.quality && g.quality > 0.0 && g.named => {
                Media::GraphqlResponse
            }
            (Some(_), Some(_)) => Media::Json,
        }
    }
}

/// How much a client's `Accept` wants one media type.
#[derive(Clone, Copy, Debug)]
pub struct Acceptance {
    pub quality: f32,
    /// The type was named, not matched by `type/*` or `*/*`.
    pub named: bool,
}

/// The quality `Accept` gives `kind/subtype`, from its most specific matching range; `None`
/// when no range matches (or there is no `Accept`).
pub fn quality(headers: &HeaderMap, kind: &str, subtype: &str) -> Option<Acceptance> {
    let mut best: Option<(u8, f32)> = None;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim();
            let Some((k, s)) = essence.split_once('/') else {
                continue;
            };
            let specificity = match (k.trim(), s.trim()) {
                ("*", "*") => 0,
                (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
                (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 2,
                _ => continue,
            };
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, q)| q.trim().parse::<f32>().unwrap_or(0.0));
            if best.is_none_or(|(most, _)| specificity > most) {
                best = Some((specificity, quality));
            }
        }
    }
    best.map(|(specificity, quality)| Acceptance {
        quality,
        named: specificity == 2,
    })
}

/// One GraphQL request as received, and how to answer it.
pub struct Operation {
    pub request: Request,
    pub reply: Reply,
}

/// How the answer to one request is sent.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    media: Media,
    over_get: bool,
}

impl<S: Send + Sync> FromRequest<S> for Operation {
    type Rejection = Refusal;

    async fn from_request(request: HttpRequest, state: &S) -> Result<Operation, Refusal> {
        let media = Media::negotiate(request.headers());
        let over_get = matches!(*request.method(), Method::GET | Method::HEAD);
        let parsed = if over_get {
            from_query_string(request.uri().query().unwrap_or_default())
        } else {
            from_body(request, state).await
        };
        match parsed {
            Ok(request) => Ok(Operation {
                request,
                reply: Reply { media, over_get },
            }),
            Err((kind, message)) => Err(Refusal::new(media, &kind, message)),
        }
    }
}

/// Why a request was not read: the kind (its status and code) and what to tell the client.
type Unread = (AppError, String);

fn malformed(message: impl Into<String>) -> Unread {
    let message = message.into();
    (AppError::MalformedBody(message.clone()), message)
}

/// `?query=…&variables=…&operationName=…&extensions=…`, the JSON ones as JSON text.
fn from_query_string(query_string: &str) -> Result<Request, Unread> {
    let (mut query, mut variables, mut operation_name, mut extensions) = (None, None, None, None);
    for (key, value) in form_urlencoded::parse(query_string.as_bytes()) {
        let slot = match key.as_ref() {
            "query" => &mut query,
            "variables" => &mut variables,
            "operationName" => &mut operation_name,
            "extensions" => &mut extensions,
            _ => continue,
        };
        if slot.is_some() {
            return Err(malformed(format!("`{key}` is given more than once")));
        }
        *slot = Some(value.into_owned());
    }
    let query = query.ok_or_else(|| malformed("a GET needs a `query` parameter"))?;
    let json = |name: &str, text: Option<String>| -> Result<Value, Unread> {
        match text.filter(|t| !t.trim().is_empty()) {
            None => Ok(Value::Null),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| malformed(format!("`{name}` is not JSON: {e}"))),
        }
    };
    let variables = json("variables", variables)?;
    let extensions = json("extensions", extensions)?;
    let operation_name = operation_name.filter(|n| !n.is_empty()).map(Value::String);
    build(
        Value::String(query),
        operation_name.unwrap_or(Value::Null),
        variables,
        extensions,
    )
}

/// A JSON body `{"query", "operationName", "variables", "extensions"}`.
async fn from_body<S: Send + Sync>(request: HttpRequest, state: &S) -> Result<Request, Unread> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !is_utf8_json(&content_type) {
        let message = if content_type.is_empty() {
            "a POST needs `Content-Type: application/json`".to_owned()
        } else {
            format!("a POST needs `Content-Type: application/json`, not `{content_type}`")
        };
        return Err((AppError::UnsupportedMediaType(content_type), message));
    }
    let body = match Bytes::from_request(request, state).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let error = AppError::PayloadTooLarge(MAX_GRAPHQL_BODY_BYTES);
            let message = error.to_string();
            return Err((error, message));
        }
        Err(rejection) => return Err(malformed(rejection.body_text())),
    };
    let fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(Value::Array(_)) => {
            return Err(malformed(
                "batches are not accepted: send one operation per request",
            ));
        }
        Ok(_) => return Err(malformed("the body must be a JSON object with a `query`")),
        Err(e) => return Err(malformed(format!("the body is not JSON: {e}"))),
    };
    let field = |name: &str| fields.get(name).cloned().unwrap_or(Value::Null);
    build(
        field("query"),
        field("operationName"),
        field("variables"),
        field("extensions"),
    )
}

/// `application/json`, in UTF-8 if it names a charset at all.
fn is_utf8_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts
            .filter_map(|p| p.split_once('='))
            .all(|(name, value)| {
                !name.trim().eq_ignore_ascii_case("charset")
                    || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
}

/// The request from its four parameters, each checked for its JSON type. `extensions` is
/// accepted and ignored: calltrail reads none.
fn build(
    query: Value,
    operation_name: Value,
    variables: Value,
    extensions: Value,
) -> Result<Request, Unread> {
    let Value::String(query) = query else {
        return Err(malformed(match query {
            Value::Null => "the request has no `query`",
            _ => "`query` must be a string",
        }));
    };
    let mut request = Request::new(query);
    match operation_name {
        Value::Null => {}
        Value::String(name) => request = request.operation_name(name),
        _ => return Err(malformed("`operationName` must be a string or null")),
    }
    match variables {
        Value::Null => {}
        Value::Object(variables) => {
            request = request.variables(Variables::from_json(Value::Object(variables)));
        }
        _ => return Err(malformed("`variables` must be an object or null")),
    }
    if !matches!(extensions, Value::Null | Value::Object(_)) {
        return Err(malformed("`extensions` must be an object or null"));
    }
    Ok(request)
}

impl Reply {
    /// A GET may only query: it must change nothing (caches and crawlers replay GETs).
    /// A request that does not parse is left for the schema to report.
    pub fn permits(&self, request: &mut Request) -> Result<(), Refusal> {
        if !self.over_get {
            return Ok(());
        }
        let name = request.operation_name.clone();
        let Ok(document) = request.parsed_query() else {
            return Ok(());
        };
        let kind = match documents::operation(document, name.as_deref()).map(|o| o.node.ty) {
            None | Some(OperationType::Query) => return Ok(()),
            Some(OperationType::Mutation) => "a mutation",
            Some(OperationType::Subscription) => "a subscription",
        };
        Err(Refusal::new(
            self.media,
            &AppError::MethodNotAllowed,
            format!("{kind} is sent with POST, not GET"),
        )
        .allow(HeaderValue::from_static("POST")))
    }

    /// The GraphQL answer. A request that failed before it ran (it did not parse or
    /// validate, or its variables did not fit) has no `data` entry, and is a 400 in
    /// `application/graphql-response+json`; field errors leave a 200.
    pub fn answer(self, response: Response) -> HttpResponse {
        let refused_before_running = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        let mut body = match serde_json::to_value(&response) {
            Ok(body) => body,
            Err(e) => {
                return AppError::Internal(format!("a GraphQL answer did not serialise: {e}"))
                    .into_response();
            }
        };
        if refused_before_running && let Some(fields) = body.as_object_mut() {
            fields.remove("data");
        }
        let status = match self.media {
            Media::GraphqlResponse if refused_before_running => StatusCode::BAD_REQUEST,
            Media::GraphqlResponse | Media::Json => StatusCode::OK,
        };
        let mut answer = (status, body.to_string()).into_response();
        let headers = answer.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.media.content_type());
        if response.is_ok()
            && let Some(cache_control) = response.cache_control.value()
            && let Ok(value) = HeaderValue::from_str(&cache_control)
        {
            headers.insert(header::CACHE_CONTROL, value);
        }
        headers.extend(response.http_headers);
        answer
    }
}

/// A request refused before GraphQL saw it, answered as a GraphQL error with its code.
#[derive(Debug)]
pub struct Refusal {
    media: Media,
    status: StatusCode,
    code: &'static str,
    message: String,
    allow: Option<HeaderValue>,
}

impl Refusal {
    fn new(media: Media, kind: &AppError, message: impl Into<String>) -> Refusal {
        Refusal {
            media,
            status: kind.status(),
            code: kind.code(),
            message: message.into(),
            allow: None,
        }
    }

    fn allow(self, methods: HeaderValue) -> Refusal {
        Refusal {
            allow: Some(methods),
            ..self
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> HttpResponse {
        let body = json!({
            "errors": [{ "message": self.message, "extensions": { "code": self.code } }]
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.media.content_type());
        if let Some(methods) = self.allow {
            headers.insert(header::ALLOW, methods);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn the_answer_is_in_the_type_the_client_prefers_and_json_by_default() {
        let cases = [
            ("application/json", Media::Json),
            ("application/graphql-response+json", Media::GraphqlResponse),
            (
                "application/graphql-response+json, application/json",
                Media::GraphqlResponse,
            ),
            (
                "application/json, application/graphql-response+json",
                Media::GraphqlResponse,
            ),
            (
                "application/graphql-response+json;q=0.9, application/json",
                Media::Json,
            ),
            ("application/json, multipart/mixed", Media::Json),
            ("*/*", Media::Json),
            ("application/*", Media::Json),
            (
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                Media::Json,
            ),
            ("text/html", Media::Json),
            ("application/graphql-response+json;q=0, */*", Media::Json),
        ];
        for (value, expected) in cases {
            assert_eq!(Media::negotiate(&accept(value)), expected, "{value}");
        }
        assert_eq!(Media::negotiate(&HeaderMap::new()), Media::Json);
    }

    #[test]
    fn only_json_in_utf8_is_read_from_a_post() {
        for ok in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/json;charset=\"utf-8\"",
        ] {
            assert!(is_utf8_json(ok), "{ok}");
        }
        for refused in [
            "",
            "text/plain",
            "application/graphql",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
        ] {
            assert!(!is_utf8_json(refused), "{refused}");
        }
    }

    #[test]
    fn query_string_parameters_are_read_with_their_json() {
        let request = from_query_string(
            "query=query%20Q(%24n%3A%20String!)%20%7B%20__type(name%3A%20%24n)%20%7B%20name%20%7D%20%7D&variables=%7B%22n%22%3A%22Call%22%7D&operationName=Q",
        )
        .expect("read");
        assert_eq!(
            request.query,
            "query Q($n: String!) { __type(name: $n) { name } }"
        );
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(
            request.variables.into_value().into_json().expect("json"),
            json!({ "n": "Call" })
        );

        for (query_string, problem) in [
            ("", "a GET needs a `query` parameter"),
            (
                "query=%7B__typename%7D&variables=%5B1%5D",
                "`variables` must be",
            ),
            (
                "query=%7B__typename%7D&variables=%7B",
                "`variables` is not JSON",
            ),
            ("query=a&query=b", "`query` is given more than once"),
        ] {
            let (kind, message) = from_query_string(query_string).expect_err("refused");
            assert_eq!(kind.code(), "MALFORMED_BODY");
            assert!(message.starts_with(problem), "{query_string}: {message}");
        }
    }

    #[test]
    fn each_parameter_must_have_its_json_type() {
        let query = || json!("{ __typename }");
        assert!(build(query(), Value::Null, Value::Null, Value::Null).is_ok());
        assert!(build(query(), json!("Q"), json!({ "a": 1 }), json!({ "x": 1 })).is_ok());
        for (query, name, variables, extensions) in [
            (Value::Null, Value::Null, Value::Null, Value::Null),
            (
                json!({ "obj": "ect" }),
                Value::Null,
                Value::Null,
                Value::Null,
            ),
            (query(), json!(0), Value::Null, Value::Null),
            (query(), Value::Null, json!("string"), Value::Null),
            (query(), Value::Null, json!(["array"]), Value::Null),
            (query(), Value::Null, Value::Null, json!(false)),
        ] {
            let shown = format!("{query} {name} {variables} {extensions}");
            assert!(
                build(query, name, variables, extensions).is_err(),
                "{shown}"
            );
        }
    }
}
