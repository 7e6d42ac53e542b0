//! The reviewer's desk: server-rendered pages for the people who find a client's call, listen
//! to it, look at an agent's day and record what a review found (docs/desk.md). Signed in with
//! an API key (a session in the database, `session`), read through the same scope-narrowing
//! [`Reader`](crate::store::reader::Reader) as GraphQL and the exports, and every page that
//! shows a call's customer is a row of the access log.
pub mod assets;
mod call;
mod day;
mod format;
mod layout;
mod list;
mod queue;
mod review;
mod search;
pub mod session;
mod sign_in;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use maud::html;

pub use call::call;
pub use day::agent_day;
pub use queue::queue;
pub use review::record as review;
pub use sign_in::{sign_in, sign_out};

use crate::access::Gate;
use crate::config::Settings;
use crate::domain::Viewer;
use crate::domain::desk::Thresholds;
use crate::error::AppError;
use crate::store::Store;
use crate::store::access::AccessEntry;
use crate::store::ingest::Ingestor;
use crate::store::reader::Reader;
use layout::{Frame, Section};
use session::{Session, Sessions};

/// Everything the desk's pages share.
#[derive(Clone, Debug)]
pub struct Desk {
    store: Store,
    sessions: Sessions,
    ingestor: Ingestor,
    thresholds: Thresholds,
    /// Recordings are fetched (a DoubleTick key is configured): a recording not archived yet
    /// can still play, through DoubleTick.
    archiving: bool,
}

/// Scripts, styles, images and media from calltrail only; forms post only to it; no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; media-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

impl Desk {
    pub fn new(
        store: Store,
        gate: Gate,
        ingestor: Ingestor,
        settings: &Settings,
        archiving: bool,
    ) -> Desk {
        Desk {
            sessions: Sessions::new(
                store.clone(),
                gate,
                settings.desk_idle_timeout,
                settings.desk_secure_cookies,
            ),
            store,
            ingestor,
            thresholds: settings.thresholds(),
            archiving,
        }
    }

    /// The desk's sessions (the recordings route accepts them too).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The signed-in session of a page request; otherwise the answer to give: the sign-in
    /// page's address, with this page to come back to.
    async fn signed_in(&self, headers: &HeaderMap, uri: &Uri) -> Result<Session, Response> {
        match self.sessions.current(headers).await {
            Ok(Some(session)) => Ok(session),
            Ok(None) => {
                let back = uri.path_and_query().map_or("/", |p| p.as_str());
                Err(layout::redirect(&format!(
                    "/{}",
                    format::query(&[("next", back)])
                )))
            }
            Err(e) => Err(layout::problem(None, &e)),
        }
    }

    fn reader(&self, viewer: &Viewer) -> Reader {
        self.store.reader(viewer.scope.clone())
    }

    /// Writes the access-log row of a page before it is answered: the page asked for
    /// (`/calls?customer=…`) and the calls whose customer it shows. A page that cannot be
    /// logged is not shown (503).
    async fn log(
        &self,
        viewer: &Viewer,
        peer: SocketAddr,
        uri: &Uri,
        call_ids: Vec<String>,
    ) -> Result<(), AppError> {
        if viewer.key_id.is_none() {
            return Ok(());
        }
        let mut call_ids = call_ids;
        call_ids.sort_unstable();
        call_ids.dedup();
        let entry = AccessEntry {
            at: chrono::Utc::now(),
            key_id: viewer.key_id,
            key_name: viewer.key_name.clone(),
            role: viewer.role.as_str().to_owned(),
            surface: "desk".into(),
            operation_name: Some(
                uri.path_and_query()
                    .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            ),
            query_sha256: None,
            client_address: Some(peer.ip().to_string()),
            call_ids,
            byte_range: None,
        };
        self.ingestor
            .log_access(entry)
            .await
            .map(|_| ())
            .map_err(|e| {
                AppError::Unavailable(format!("the access log could not be written: {e:?}"))
            })
    }
}

type Peer = ConnectInfo<SocketAddr>;

/// `GET /`: the sign-in page, or the search once signed in.
pub async fn home(
    State(desk): State<Desk>,
    peer: Peer,
    headers: HeaderMap,
    uri: Uri,
    query: RawQuery,
) -> Response {
    match desk.sessions.current(&headers).await {
        Ok(Some(session)) => find_for(&desk, session, peer, &uri, query).await,
        Ok(None) => sign_in::page(&desk, &headers, query.0.as_deref(), None),
        Err(e) => layout::problem(None, &e),
    }
}

/// `GET /calls`: find calls.
pub async fn find(
    State(desk): State<Desk>,
    peer: Peer,
    headers: HeaderMap,
    uri: Uri,
    query: RawQuery,
) -> Response {
    match desk.signed_in(&headers, &uri).await {
        Ok(session) => find_for(&desk, session, peer, &uri, query).await,
        Err(answer) => answer,
    }
}

async fn find_for(
    desk: &Desk,
    session: Session,
    ConnectInfo(peer): Peer,
    uri: &Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let search = search::Search::parse(raw.as_deref());
    match find_page(desk, &session, peer, uri, &search).await {
        Ok(page) => page,
        Err(e @ AppError::BadUserInput { .. }) if e.status() == StatusCode::BAD_REQUEST => {
            let viewer = &session.viewer;
            let body = html! {
                h1 { "Find calls" }
                p.error role="alert" { "Please check the search: " (e) "." }
                (search::form(&search, viewer.may_see_identity(), &desk.thresholds, desk.archiving))
            };
            layout::respond(
                StatusCode::BAD_REQUEST,
                layout::page(
                    Frame::new("Find calls", Section::Find, Some(&session)),
                    body,
                ),
            )
        }
        Err(e) => layout::problem(Some(&session), &e),
    }
}

async fn find_page(
    desk: &Desk,
    session: &Session,
    peer: SocketAddr,
    uri: &Uri,
    search: &search::Search,
) -> Result<Response, AppError> {
    let viewer = &session.viewer;
    let asked = search.asked(&desk.thresholds, desk.archiving)?;
    viewer.check_filter(&asked.filter, "")?;
    let reader = desk.reader(viewer);
    let page = reader
        .page_in_order(&asked.filter, asked.order, &asked.request, queue::FIELDS)
        .await?;
    let total = reader
        .count_up_to(&asked.filter, search::COUNT_CAP + 1)
        .await?;
    let reveal = viewer.may_see_identity();
    let calls: Vec<_> = page.items.iter().map(|(c, _)| c.clone()).collect();
    let shown = if reveal {
        calls.iter().map(|c| c.call_id.clone()).collect()
    } else {
        Vec::new()
    };
    desk.log(viewer, peer, uri, shown).await?;
    let next = page
        .has_next_page
        .then(|| page.items.last().map(|(_, c)| search.link(c, "")))
        .flatten();
    let previous = page
        .has_previous_page
        .then(|| page.items.first().map(|(_, c)| search.link("", c)))
        .flatten();
    let body = html! {
        h1 { "Find calls" }
        (search::form(search, reveal, &desk.thresholds, desk.archiving))
        h2 #results { "Results" }
        p.lead aria-live="polite" {
            @if total > search::COUNT_CAP {
                "More than " (thousands(search::COUNT_CAP)) " calls match"
            } @else if total == 1 {
                "1 call matches"
            } @else {
                (thousands(total)) " calls match"
            }
            @if !search.narrows() { " (every call your key may see)" }
            ". Times in " (asked.tz.name()) "."
        }
        @if calls.is_empty() {
            p { "No call matches this search. Try fewer conditions or a wider date range." }
        } @else {
            (list::table("Matching calls", &calls, reveal, asked.tz, &desk.thresholds))
        }
        (pager(previous.as_deref(), next.as_deref()))
    };
    let frame = Frame {
        zone_from_browser: search.tz.is_empty(),
        ..Frame::new("Find calls", Section::Find, Some(session))
    };
    Ok(layout::respond(StatusCode::OK, layout::page(frame, body)))
}

/// Previous and next page links.
fn pager(previous: Option<&str>, next: Option<&str>) -> maud::Markup {
    html! {
        @if previous.is_some() || next.is_some() {
            nav.pager aria-label="Pages" {
                @if let Some(previous) = previous { a href=(previous) rel="prev" { "← Previous page" } }
                @if let Some(next) = next { a href=(next) rel="next" { "Next page →" } }
            }
        }
    }
}

/// `12 345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// Every desk answer: the CSP, no sniffing, no referrer to other sites, no framing; pages are not cached
/// (they show customers), the versioned assets are.
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it browsers send `Origin: null` with the desk's own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_in_groups_of_three() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(12_345), "12\u{202f}345");
        assert_eq!(super::thousands(1_000_000), "1\u{202f}000\u{202f}000");
    }
}
