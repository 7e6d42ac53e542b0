//! A call: every field, its recording (played from `/recordings/{callId}`), its reviews, its
//! earlier versions and the deliveries that made it, with links to the customer's other calls
//! and the agent's day.
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono_tz::Tz;
use maud::{Markup, html};

use super::layout::{self, Frame, Section};
use super::session::Session;
use super::{Desk, Peer, format, list, review};
use crate::domain::Call;
use crate::domain::recording::{RecordingStatus, Shown};
use crate::error::AppError;
use crate::recordings::playback::playback_path;
use crate::store::deliveries::DeliveryRow;

/// `GET /calls/{id}`.
pub async fn call(
    State(desk): State<Desk>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    uri: Uri,
    Path(call_id): Path<String>,
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
    match page(&desk, &session, peer, &uri, &call_id, &tz).await {
        Ok(page) => page,
        Err(e) => layout::problem(Some(&session), &e),
    }
}

async fn page(
    desk: &Desk,
    session: &Session,
    peer: std::net::SocketAddr,
    uri: &Uri,
    call_id: &str,
    tz_text: &str,
) -> Result<Response, AppError> {
    let tz = format::time_zone(tz_text)?;
    let viewer = &session.viewer;
    let reader = desk.reader(viewer);
    let call = reader.call(call_id).await?.ok_or(AppError::NotFound)?;
    let reveal = viewer.may_see_identity();
    let recording = reader.recording(&call).await?;
    let deliveries = reader.deliveries(&call).await?;
    let reviews = if reveal {
        reader.reviews(&call).await?
    } else {
        Vec::new()
    };
    let revisions = if reveal {
        reader.revisions(&call).await?
    } else {
        Vec::new()
    };
    let shown = if reveal {
        vec![call.call_id.clone()]
    } else {
        Vec::new()
    };
    desk.log(viewer, peer, uri, shown).await?;

    let title = format!("Call {}", call.call_id);
    let body = html! {
        h1 { "Call " code { (call.call_id) } }
        p.lead {
            (list::direction(call.direction)) ", " (list::status(&call.status).to_lowercase())
            ", " (format::length(call.duration_seconds)) ", ended " (format::when(call.ended_at, tz)) "."
            " " (list::flags(&call, &desk.thresholds))
        }
        (links(&call, reveal, tz))
        h2 #recording { "Recording" }
        (player(desk, &call, recording.as_ref(), reveal))
        h2 #reviews { "Reviews" }
        @if reveal {
            (review::list(&reviews, tz))
            h3 { "Record a review" }
            (review::form(&call.call_id, session, tz, None, ""))
        } @else {
            p.muted { "Reviews (their notes may name the customer) are not shown to analyst keys." }
        }
        h2 #details { "Every field" }
        (fields(&call, reveal, tz))
        @if reveal {
            h2 #revisions { "Earlier versions" }
            @if revisions.is_empty() {
                p { "None: no later delivery changed this call." }
            } @else {
                table.cards {
                    caption { "Versions replaced by a later delivery, oldest first" }
                    thead { tr {
                        th scope="col" { "Version" } th scope="col" { "Replaced" } th scope="col" { "Outcome" }
                        th.num scope="col" { "Length" } th scope="col" { "Agent" } th scope="col" { "Recording link" }
                    } }
                    tbody {
                        @for r in &revisions {
                            tr {
                                td data-label="Version" { (r.revision) }
                                td data-label="Replaced" { (format::when(r.replaced_at, tz)) }
                                td data-label="Outcome" { (list::status(&r.call.status)) }
                                td.num data-label="Length" { (format::length(r.call.duration_seconds)) }
                                td data-label="Agent" { (r.call.picked_by.as_deref().unwrap_or("none")) }
                                td data-label="Recording link" { (r.call.recording_url.as_deref().unwrap_or("none")) }
                            }
                        }
                    }
                }
            }
        }
        h2 #deliveries { "Deliveries" }
        (delivery_table(&deliveries, tz))
        @if reveal {
            h2 #raw { "Raw delivery" }
            details {
                summary { "The body of the latest delivery, exactly as DoubleTick sent it (" (call.raw_content_type) ")" }
                pre { (call.raw_payload) }
            }
        }
    };
    let frame = Frame {
        zone_from_browser: tz_text.is_empty(),
        ..Frame::new(&title, Section::Call, Some(session))
    };
    Ok(layout::respond(StatusCode::OK, layout::page(frame, body)))
}

fn links(call: &Call, reveal: bool, tz: Tz) -> Markup {
    let customer = format!(
        "/calls{}",
        format::query(&[
            ("customer", &call.customer_number),
            ("tz", format::zone_param(tz)),
        ])
    );
    html! {
        ul {
            @if reveal {
                li { a href=(customer) { "Every call of this customer" } }
            }
            @if let Some(agent) = &call.picked_by {
                li { a href=(format::day_link(agent, format::local_date(call.ended_at, tz), tz)) { (agent) "'s day" } }
            }
        }
    }
}

fn player(desk: &Desk, call: &Call, recording: Option<&RecordingStatus>, reveal: bool) -> Markup {
    let Some(recording) = recording else {
        return html! { p { "This call has no recording." } };
    };
    let shown = Shown::of(recording.state, desk.archiving);
    let state = match shown {
        Shown::Archived => "Archived: kept by calltrail, with its checksum.",
        Shown::Pending => "Waiting to be archived; it plays from DoubleTick until then.",
        Shown::Retrying => {
            "Archiving failed for now and will be tried again; it plays from DoubleTick until then."
        }
        Shown::Failed => "Could not be archived.",
        Shown::Gone => "DoubleTick no longer has it, and it was not archived.",
        Shown::NotConfigured => "Not archived: calltrail has no DoubleTick key to fetch it with.",
    };
    let playable = match shown {
        Shown::Archived => true,
        Shown::Pending | Shown::Retrying => desk.archiving,
        Shown::Failed | Shown::Gone | Shown::NotConfigured => false,
    };
    html! {
        p { (state) }
        @if !reveal {
            p.muted { "Recordings are not played to analyst keys." }
        } @else if playable {
            audio controls preload="metadata" src=(playback_path(&call.call_id)) aria-label="Recording of the call" {
                "Your browser cannot play this recording. "
                a href=(playback_path(&call.call_id)) { "Download it" } "."
            }
            @if let Some(archived) = &recording.archived {
                p.muted { (archived.content_type) ", " (archived.bytes) " bytes, SHA-256 " code { (archived.sha256) } }
            }
        }
    }
}

/// Every field of the call, by its DoubleTick name; identity hidden from those who may not
/// see it. Destructured whole, so a new field does not compile until it is shown here.
fn fields(call: &Call, reveal: bool, tz: Tz) -> Markup {
    let Call {
        id: _,
        call_id,
        status,
        direction,
        customer_id,
        customer_name,
        customer_number,
        waba_number,
        picked_by,
        ended_by,
        rejected_by,
        device_id,
        chat_id,
        chat_message_id,
        channel,
        channel_number,
        pstn_from,
        pstn_to,
        failed_reason,
        started_at,
        ended_at,
        duration_seconds,
        recording_url,
        is_new_caller,
        is_chat_assigned,
        not_picked_count,
        anomalies,
        revision,
        received_at,
        updated_at,
        raw_content_type,
        raw_payload: _,
    } = call;
    let hidden = || "hidden (analyst key)".to_owned();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let identity = |v: String| if reveal { v } else { hidden() };
    let yes_no = |v: &Option<bool>| match v {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "not said".to_owned(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("callId", call_id.clone()),
        ("status", status.clone()),
        ("direction", direction.as_wire().to_owned()),
        ("customerName", identity(opt(customer_name))),
        ("customerNumber", identity(customer_number.clone())),
        ("customerId", identity(opt(customer_id))),
        ("wabaNumber (business)", waba_number.clone()),
        ("pickedBy", opt(picked_by)),
        ("endedBy", opt(ended_by)),
        ("rejectedBy", opt(rejected_by)),
        (
            "callStartedAt",
            started_at.map_or_else(|| "never answered".into(), |t| format::when(t, tz)),
        ),
        ("callEndedAt", format::when(*ended_at, tz)),
        (
            "durationInSeconds",
            format!("{duration_seconds} ({})", format::length(*duration_seconds)),
        ),
        ("recordingUrl", identity(opt(recording_url))),
        ("failedReason", opt(failed_reason)),
        ("channel", opt(channel)),
        ("channelNumber", opt(channel_number)),
        ("pstnFrom", opt(pstn_from)),
        ("pstnTo", opt(pstn_to)),
        ("deviceId", opt(device_id)),
        ("chatId", opt(chat_id)),
        ("chatMessageId", opt(chat_message_id)),
        ("isNewCaller", yes_no(is_new_caller)),
        ("isChatAssigned", yes_no(is_chat_assigned)),
        ("notPickedCount", not_picked_count.to_string()),
        (
            "anomalies",
            if anomalies.is_empty() {
                "none".into()
            } else {
                crate::domain::Anomaly::join(anomalies).replace(',', ", ")
            },
        ),
        ("revision", revision.to_string()),
        ("received", format::when(*received_at, tz)),
        ("last changed", format::when(*updated_at, tz)),
        ("content type", raw_content_type.clone()),
    ];
    html! {
        dl.fields-list {
            @for (name, value) in rows {
                dt { (name) }
                dd { (value) }
            }
        }
    }
}

fn delivery_table(rows: &[DeliveryRow], tz: Tz) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No delivery is logged for this call (it was loaded in bulk)." }
        } @else {
            table.cards {
                caption { "Every webhook delivery of this call, as logged, oldest first" }
                thead { tr {
                    th scope="col" { "Delivery" } th scope="col" { "Received" } th scope="col" { "Event" }
                    th scope="col" { "What became of it" } th scope="col" { "Body SHA-256" }
                } }
                tbody {
                    @for d in rows {
                        tr {
                            td data-label="Delivery" {
                                (d.id)
                                @if let Some(of) = d.replay_of { " (replay of " (of) ")" }
                            }
                            td data-label="Received" { (format::when(d.received_at, tz)) }
                            td data-label="Event" { (d.event.as_deref().unwrap_or("none")) }
                            td data-label="What became of it" {
                                (d.outcome)
                                @if let Some(reason) = &d.reason { ": " (reason) }
                            }
                            td data-label="Body SHA-256" { code { (d.sha256.get(..16).unwrap_or(&d.sha256)) "…" } }
                        }
                    }
                }
            }
        }
    }
}
