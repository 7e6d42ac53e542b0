//! Recording a review from a call's page: a verdict and a note, appended (a later review adds
//! to the earlier ones, never replaces them), with the key that made it and the time.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono_tz::Tz;
use maud::{Markup, html};

use super::layout::{self, Frame, Section};
use super::session::{self, Session};
use super::sign_in::{field, form_fields};
use super::{Desk, format};
use crate::domain::review::{MAX_NOTE_CHARS, NewReview, Review, ReviewVerdict};
use crate::error::AppError;

/// What each verdict means, in the form's words.
fn words(verdict: ReviewVerdict) -> &'static str {
    match verdict {
        ReviewVerdict::Ok => "OK: nothing wrong",
        ReviewVerdict::Issue => "Issue: something was wrong (say what in the note)",
        ReviewVerdict::Escalate => "Escalate: needs someone senior (say why in the note)",
    }
}

/// The reviews of a call, oldest first.
pub fn list(reviews: &[Review], tz: Tz) -> Markup {
    html! {
        @if reviews.is_empty() {
            p #no-reviews { "Not reviewed yet." }
        } @else {
            ol.reviews {
                @for r in reviews {
                    li.review {
                        strong class=(format!("verdict-{}", r.verdict.as_str())) { (r.verdict.as_str()) }
                        " by " (r.key_name) ", " (format::when(r.reviewed_at, tz))
                        @if !r.note.is_empty() { p.note { (r.note) } }
                    }
                }
            }
        }
    }
}

/// The form that records a review of `call_id`, with `problem` said when the last try was
/// refused.
pub fn form(call_id: &str, session: &Session, tz: Tz, problem: Option<&str>, note: &str) -> Markup {
    html! {
        form #review-form method="post" action=(format!("/calls/{}/reviews", format::segment(call_id))) {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="tz" value=(format::zone_param(tz));
            @if let Some(problem) = problem {
                p.error role="alert" #review-problem { (problem) }
            }
            fieldset.radios {
                legend { "Verdict" }
                @for v in ReviewVerdict::ALL {
                    label {
                        input type="radio" name="verdict" value=(v.as_str()) required checked[v == ReviewVerdict::Ok];
                        (words(v))
                    }
                }
            }
            label for="note" { "Note" span.hint { "What you heard; needed for Issue and Escalate. At most " (MAX_NOTE_CHARS) " characters." } }
            textarea #note name="note" maxlength=(MAX_NOTE_CHARS) { (note) }
            div.actions { button type="submit" { "Record the review" } }
            p.muted { "A review is kept for good: a later review adds to it, never replaces it." }
        }
    }
}

/// `POST /calls/{id}/reviews`.
pub async fn record(
    State(desk): State<Desk>,
    headers: HeaderMap,
    uri: Uri,
    Path(call_id): Path<String>,
    body: Bytes,
) -> Response {
    let session = match desk.signed_in(&headers, &uri).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let fields = form_fields(&body);
    if session::cross_origin(&headers)
        || !session::tokens_match(&session.csrf, field(&fields, "csrf"))
    {
        return layout::forged(Some(&session));
    }
    let tz_text = field(&fields, "tz").unwrap_or("");
    let tz = format::time_zone(tz_text).unwrap_or(Tz::UTC);
    let back = format::call_link(&call_id, tz);
    let note = field(&fields, "note").unwrap_or("");
    let verdict = field(&fields, "verdict").and_then(ReviewVerdict::parse);
    let recorded = async {
        let verdict = verdict.ok_or_else(|| AppError::bad_input("verdict", "choose a verdict"))?;
        let review = NewReview::new(&call_id, verdict, note)?;
        desk.reader(&session.viewer)
            .record_review(&session.viewer, &review)
            .await
    };
    match recorded.await {
        Ok(_) => layout::redirect(&format!("{back}#reviews")),
        Err(AppError::BadUserInput { message, .. }) => {
            let body = html! {
                h1 { "The review was not recorded" }
                (form(&call_id, &session, tz, Some(&format!("Please check the review: {message}.")), note))
                p { a href=(back) { "Back to the call" } }
            };
            layout::respond(
                StatusCode::BAD_REQUEST,
                layout::page(
                    Frame::new("Review not recorded", Section::Call, Some(&session)),
                    body,
                ),
            )
        }
        Err(e) => layout::problem(Some(&session), &e),
    }
}
