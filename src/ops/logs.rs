//! Logs an operator can use: text or JSON lines, and every request in a span carrying its id
//! (the client's `x-request-id` when sane, else a new one, returned in the answer), its
//! method and its path with secrets redacted.
//!
//! What is never logged, at any level: headers (keys and webhook secrets travel there), bodies
//! (customer names and numbers), query-string values (a webhook's `token`, a GraphQL GET's
//! query and variables, which may name a customer), and SQL with its bound values (statement
//! logging is off on every pool, `store::pool`).
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// The request id header, read and answered.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client request id kept; a longer or odd one is replaced.
const LONGEST_REQUEST_ID: usize = 128;

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the request's span fields (`id`, `method`, `path`).
    Json,
}

/// Installs the global subscriber: `RUST_LOG` (tracing's `EnvFilter` syntax, default `info`)
/// decides what is written, `format` how.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Gives the request its id, runs it inside a `request` span (so every line logged while it
/// is handled carries the id), and answers the id in `x-request-id`.
pub async fn trace_requests(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| is_sane(v))
        .cloned()
        .unwrap_or_else(new_id);
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let span = tracing::info_span!(
        "request",
        id = %String::from_utf8_lossy(id.as_bytes()),
        method = %request.method(),
        path = %redacted(request.uri()),
    );
    let started = Instant::now();
    let mut response = async {
        tracing::debug!("request received");
        let response = next.run(request).await;
        tracing::debug!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request answered"
        );
        response
    }
    .instrument(span)
    .await;
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// A client's id is kept when it is 1–128 characters of letters, digits and `-_.:`: it goes into
/// log lines, so nothing that could forge a line or hide a secret.
fn is_sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= LONGEST_REQUEST_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

fn new_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    HeaderValue::from_str(&hex::encode(bytes)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The path of `uri` and the names of its query parameters, every value replaced by
/// `REDACTED` (`token=` carries the webhook secret; a GraphQL GET's `query=` and `variables=`
/// may carry a customer's name or number).
pub fn redacted(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let names: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{}=REDACTED", plain_name(name)),
            None => plain_name(pair),
        })
        .collect();
    format!("{path}?{}", names.join("&"))
}

/// A parameter name as logged: up to 32 letters, digits and `_-.`, anything else dropped.
fn plain_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_values_are_never_logged_only_their_names() {
        let uri: Uri = "/webhooks/doubletick?a=1&token=s3cret&TOKEN=s3cret&%74oken=s3cret&b=2"
            .parse()
            .expect("uri");
        let logged = redacted(&uri);
        assert!(!logged.contains("s3cret"), "{logged}");
        assert_eq!(
            logged,
            "/webhooks/doubletick?a=REDACTED&token=REDACTED&TOKEN=REDACTED&74oken=REDACTED&b=REDACTED"
        );
        let get: Uri = "/graphql?query=%7Bcalls(filter%3A%7BcustomerName%3A%22Asha%22%7D)%7D"
            .parse()
            .expect("uri");
        assert_eq!(redacted(&get), "/graphql?query=REDACTED");
        assert_eq!(redacted(&"/graphql".parse().expect("uri")), "/graphql");
    }

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(is_sane(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!is_sane(&HeaderValue::from_static("")));
        assert!(!is_sane(&HeaderValue::from_static("a b")));
        assert!(!is_sane(&HeaderValue::from_static("a\"}{")));
        assert!(!is_sane(
            &HeaderValue::from_str(&"a".repeat(129)).expect("value")
        ));
        assert_eq!(new_id().len(), 32);
    }
}
