//! An agent's day: the calls one agent picked up on one local date, on a 24-hour timeline
//! (each call a bar from its start, as wide as it lasted), with the day's figures and the days
//! before and after.
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::NaiveDate;
use chrono_tz::Tz;
use maud::{Markup, html};

use super::layout::{self, Frame, Section};
use super::session::Session;
use super::{Desk, Peer, format, list, queue};
use crate::domain::desk::{DaySummary, Thresholds, span};
use crate::domain::{
    Call, CallFilter, CallOrder, Direction, OrderField, PageRequest, SortDirection, TimeRange,
};
use crate::error::AppError;

/// Most calls one day shows.
const MAX_CALLS: u64 = 500;

/// `GET /agents/{agent}/{date}`.
pub async fn agent_day(
    State(desk): State<Desk>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    uri: Uri,
    Path((agent, date)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match desk.signed_in(&headers, &uri).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let tz = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "tz")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match page(&desk, &session, peer, &uri, &agent, &date, &tz).await {
        Ok(page) => page,
        Err(e) => layout::problem(Some(&session), &e),
    }
}

async fn page(
    desk: &Desk,
    session: &Session,
    peer: std::net::SocketAddr,
    uri: &Uri,
    agent: &str,
    date_text: &str,
    tz_text: &str,
) -> Result<Response, AppError> {
    let tz = format::time_zone(tz_text)?;
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d")
        .map_err(|_| AppError::bad_input("date", "a date like 2026-12-02"))?;
    let next_day = date.succ_opt().ok_or(AppError::NotFound)?;
    let previous_day = date.pred_opt().ok_or(AppError::NotFound)?;
    let start = format::day_start(date, tz);
    let end = format::day_start(next_day, tz);
    let viewer = &session.viewer;
    let filter = CallFilter {
        picked_by: Some(vec![agent.to_owned()]),
        ended_at: Some(TimeRange {
            from: Some(start),
            to: Some(end),
        }),
        ..CallFilter::default()
    };
    let order = CallOrder {
        field: OrderField::EndedAt,
        direction: SortDirection::Asc,
    };
    let page = desk
        .reader(viewer)
        .page(
            &filter,
            order,
            &PageRequest::Forward {
                first: MAX_CALLS,
                after: None,
            },
            queue::FIELDS,
        )
        .await?;
    let calls: Vec<Call> = page.items.into_iter().map(|(c, _)| c).collect();
    let reveal = viewer.may_see_identity();
    let shown = if reveal {
        calls.iter().map(|c| c.call_id.clone()).collect()
    } else {
        Vec::new()
    };
    desk.log(viewer, peer, uri, shown).await?;
    let summary = DaySummary::of(&calls, &desk.thresholds);
    let title = format!("{agent} on {}", date.format("%Y-%m-%d"));
    let body = html! {
        h1 { (agent) " on " (date.format("%A %-d %B %Y")) }
        nav.pager aria-label="Days" {
            a href=(format::day_link(agent, previous_day, tz)) rel="prev" { "← " (previous_day.format("%Y-%m-%d")) }
            a href=(format::day_link(agent, next_day, tz)) rel="next" { (next_day.format("%Y-%m-%d")) " →" }
            a href=(format!("/calls{}", format::query(&[("agent", agent), ("tz", format::zone_param(tz))]))) { "All of this agent's calls" }
        }
        p.muted { "Calls picked up by this agent that ended on this date, in " (tz.name()) "." }
        ul.totals aria-label="The day in figures" {
            li { strong { (summary.calls) } "calls" }
            li { strong { (summary.incoming) " / " (summary.outgoing) } "incoming / outgoing" }
            li { strong { (format::percent(summary.answer_rate())) } "answered" }
            li { strong { (format::length(summary.talk_seconds)) } "talk time" }
            li { strong { (summary.short) } "short (under " (desk.thresholds.short_call_seconds) " s)" }
            li { strong { (summary.anomalous) } "with anomalies" }
        }
        @if page.has_next_page {
            p.notice { "This day has more than " (MAX_CALLS) " calls; the first " (MAX_CALLS) " are shown." }
        }
        @if calls.is_empty() {
            p { "No call of this agent ended on this date." }
        } @else {
            (timeline(&calls, start, end, tz, &desk.thresholds))
            (list::table("The day's calls, in order", &calls, reveal, tz, &desk.thresholds))
        }
    };
    let frame = Frame {
        zone_from_browser: tz_text.is_empty(),
        ..Frame::new(&title, Section::Day, Some(session))
    };
    Ok(layout::respond(StatusCode::OK, layout::page(frame, body)))
}

/// The day as an SVG strip: x is seconds since local midnight (so a day with a clock change
/// is 23 or 25 hours wide), each call a rectangle of its class.
fn timeline(
    calls: &[Call],
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    tz: Tz,
    thresholds: &Thresholds,
) -> Markup {
    let width = (end - start).num_seconds().max(1);
    // A bar is at least 4 minutes wide, so that a short call can still be seen.
    let least = 240;
    html! {
        figure {
            svg.timeline viewBox=(format!("0 0 {width} 100")) preserveAspectRatio="none" role="img"
                aria-label=(format!("Timeline of {} calls between midnight and midnight", calls.len())) {
                @for h in 1..24 {
                    line.hour x1=(h * 3600) x2=(h * 3600) y1="0" y2="100" vector-effect="non-scaling-stroke" {}
                }
                @for call in calls {
                    @let s = span(call, start, end);
                    @let class = match (call.started_at.is_some(), call.direction) {
                        (false, _) => "missed",
                        (true, Direction::Incoming) => "call-in",
                        (true, Direction::Outgoing) => "call-out",
                    };
                    @let flagged = thresholds.is_short(call) || !call.anomalies.is_empty();
                    a href=(format::call_link(&call.call_id, tz)) {
                        rect class=(if flagged { format!("{class} flagged") } else { class.to_owned() })
                            x=(s.start.min(width - least).max(0)) y="15" width=(s.length.max(least)) height="70"
                            vector-effect="non-scaling-stroke" {
                            title {
                                (format::clock(call.started_at.unwrap_or(call.ended_at), tz)) ", "
                                (list::direction(call.direction).to_lowercase()) ", "
                                (format::length(call.duration_seconds)) ", "
                                (list::status(&call.status).to_lowercase())
                            }
                        }
                    }
                }
            }
            div.hours aria-hidden="true" {
                @for h in (0..24).step_by(3) { span { (format!("{h:02}:00")) } }
            }
            figcaption.legend {
                span { span.swatch.in {} "incoming, answered" }
                span { span.swatch.out {} "outgoing, answered" }
                span { span.swatch.missed {} "never answered" }
                span { span.swatch.flagged {} "short or with anomalies" }
            }
        }
    }
}
