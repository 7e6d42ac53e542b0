//! The review queue: short or anomalous calls nobody has reviewed yet, oldest first.
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::html;

use super::layout::{self, Frame, Section};
use super::{Desk, Peer, format, list, search};
use crate::domain::{CallFilter, CallOrder, OrderField, PageFields, PageRequest, SortDirection};
use crate::error::AppError;

/// What a desk list reads of each call: the summary and the details (anomalies, who
/// rejected), never the raw body.
pub const FIELDS: PageFields = PageFields {
    rows: true,
    raw_payload: false,
    details: true,
    only: None,
};

/// `GET /queue`.
pub async fn queue(
    State(desk): State<Desk>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match desk.signed_in(&headers, &uri).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let mut tz = String::new();
    let mut after = String::new();
    let mut before = String::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "tz" => tz = v.into_owned(),
            "after" => after = v.into_owned(),
            "before" => before = v.into_owned(),
            _ => {}
        }
    }
    let answer = async {
        let zone = format::time_zone(&tz)?;
        let viewer = &session.viewer;
        let reader = desk.reader(viewer);
        let filter = unreviewed();
        let order = CallOrder {
            field: OrderField::EndedAt,
            direction: SortDirection::Asc,
        };
        let request = if before.is_empty() {
            PageRequest::Forward {
                first: search::PAGE_SIZE,
                after: (!after.is_empty()).then(|| after.clone()),
            }
        } else {
            PageRequest::Backward {
                last: search::PAGE_SIZE,
                before: Some(before.clone()),
            }
        };
        let short = desk.thresholds.short();
        let page = reader
            .flagged_page(&filter, short, order, &request, FIELDS)
            .await?;
        let total = reader
            .flagged_count_up_to(&filter, short, search::COUNT_CAP + 1)
            .await?;
        let reveal = viewer.may_see_identity();
        let calls: Vec<_> = page.items.iter().map(|(c, _)| c.clone()).collect();
        let shown = if reveal {
            calls.iter().map(|c| c.call_id.clone()).collect()
        } else {
            Vec::new()
        };
        desk.log(viewer, peer, &uri, shown).await?;
        let link = |after: &str, before: &str| {
            format!(
                "/queue{}",
                format::query(&[("tz", &tz), ("after", after), ("before", before)])
            )
        };
        let next = page
            .has_next_page
            .then(|| page.items.last().map(|(_, c)| link(c, "")))
            .flatten();
        let previous = page
            .has_previous_page
            .then(|| page.items.first().map(|(_, c)| link("", c)))
            .flatten();
        let body = html! {
            h1 { "Review queue" }
            p.lead {
                "Calls that need a listen: answered calls shorter than "
                (desk.thresholds.short_call_seconds) " seconds, and calls with anomalies, that nobody has reviewed yet. Oldest first."
            }
            p aria-live="polite" {
                strong {
                    @if total > search::COUNT_CAP { "More than " (super::thousands(search::COUNT_CAP)) }
                    @else { (super::thousands(total)) }
                }
                @if total == 1 { " call waits" } @else { " calls wait" }
                " for review. Times in " (zone.name()) "."
            }
            @if calls.is_empty() {
                p.notice { "Nothing waits for review." }
            } @else {
                (list::table("Calls waiting for review", &calls, reveal, zone, &desk.thresholds))
            }
            (super::pager(previous.as_deref(), next.as_deref()))
        };
        let frame = Frame {
            zone_from_browser: tz.is_empty(),
            ..Frame::new("Review queue", Section::Queue, Some(&session))
        };
        Ok::<_, AppError>(layout::respond(StatusCode::OK, layout::page(frame, body)))
    };
    match answer.await {
        Ok(page) => page,
        Err(e) => layout::problem(Some(&session), &e),
    }
}

/// The calls nobody has reviewed yet.
fn unreviewed() -> CallFilter {
    CallFilter {
        reviewed: Some(false),
        ..CallFilter::default()
    }
}
