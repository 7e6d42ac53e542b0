//! A list of calls as the desk shows it (search results, the review queue, an agent's day):
//! one row per call, a card per call on a phone; customer identity only for the readers who
//! may see it.
use chrono_tz::Tz;
use maud::{Markup, html};

use super::format;
use crate::domain::desk::Thresholds;
use crate::domain::{Call, Direction};

/// Plain words for a direction.
pub fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Incoming => "Incoming",
        Direction::Outgoing => "Outgoing",
    }
}

/// Plain words for DoubleTick's status.
pub fn status(status: &str) -> String {
    match status {
        "END" | "ENDED" => "Ended".into(),
        "MISSED" => "Missed".into(),
        "REJECT" | "REJECTED" => "Rejected".into(),
        "FAILED" => "Failed".into(),
        other => other.to_owned(),
    }
}

/// The badges of a call: short, long, anomalies, recorded.
pub fn flags(call: &Call, thresholds: &Thresholds) -> Markup {
    html! {
        @if thresholds.is_short(call) { span.flag.short { "short" } }
        @if thresholds.is_long(call) { span.flag.long { "long" } }
        @if !call.anomalies.is_empty() {
            span.flag.anomaly title=(crate::domain::Anomaly::join(&call.anomalies)) {
                @if call.anomalies.len() == 1 { "1 anomaly" } @else { (call.anomalies.len()) " anomalies" }
            }
        }
        @if call.recording_url.is_some() { span.flag.ok { "recorded" } }
    }
}

/// Who the customer is, as this reader may see it.
pub fn customer(call: &Call, reveal: bool) -> Markup {
    html! {
        @if reveal {
            @if let Some(name) = &call.customer_name { (name) br; }
            span.muted { (call.customer_number) }
        } @else {
            span.muted { "hidden" }
        }
    }
}

/// The table of `calls`, read in `tz`, labelled `caption`.
pub fn table(
    caption: &str,
    calls: &[Call],
    reveal: bool,
    tz: Tz,
    thresholds: &Thresholds,
) -> Markup {
    html! {
        table.cards {
            caption { (caption) }
            thead {
                tr {
                    th scope="col" { "Ended" }
                    th scope="col" { "Direction" }
                    @if reveal { th scope="col" { "Customer" } }
                    th scope="col" { "Agent" }
                    th scope="col" { "Business number" }
                    th.num scope="col" { "Length" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Flags" }
                }
            }
            tbody {
                @for call in calls {
                    tr {
                        td data-label="Ended" {
                            a href=(format::call_link(&call.call_id, tz)) { (format::when(call.ended_at, tz)) }
                        }
                        td data-label="Direction" { (direction(call.direction)) }
                        @if reveal { td data-label="Customer" { (customer(call, true)) } }
                        td data-label="Agent" {
                            @match call.picked_by.as_deref().or(call.rejected_by.as_deref()) {
                                Some(agent) => {
                                    a href=(format::day_link(agent, format::local_date(call.ended_at, tz), tz)) { (agent) }
                                }
                                None => span.muted { "none" },
                            }
                        }
                        td data-label="Business number" { (call.waba_number) }
                        td.num data-label="Length" { (format::length(call.duration_seconds)) }
                        td data-label="Outcome" { (status(&call.status)) }
                        td data-label="Flags" { (flags(call, thresholds)) }
                    }
                }
            }
        }
    }
}
