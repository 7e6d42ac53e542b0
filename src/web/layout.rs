//! The page every desk page sits in (header, navigation, sign-out), the answer that carries
//! it, and the error page.
use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Session;
use crate::error::AppError;

/// Where a page sits in the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    SignIn,
    Find,
    Call,
    Day,
    Queue,
    Problem,
}

static STYLESHEET: LazyLock<String> =
    LazyLock::new(|| format!("/desk/assets/desk.css?v={}", assets::version()));
static SCRIPT: LazyLock<String> =
    LazyLock::new(|| format!("/desk/assets/desk.js?v={}", assets::version()));

/// What surrounds a page's content.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub title: &'a str,
    pub section: Section,
    /// The signed-in reader (navigation and sign-out), if any.
    pub session: Option<&'a Session>,
    /// The page was asked for without a time zone: the desk's script reloads it in the
    /// browser's (without the script it reads in UTC).
    pub zone_from_browser: bool,
}

impl<'a> Frame<'a> {
    pub fn new(title: &'a str, section: Section, session: Option<&'a Session>) -> Frame<'a> {
        Frame {
            title,
            section,
            session,
            zone_from_browser: false,
        }
    }
}

/// A whole page: its frame around `main`.
pub fn page(frame: Frame<'_>, main: Markup) -> Markup {
    let Frame {
        title,
        section,
        session,
        zone_from_browser,
    } = frame;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · calltrail desk" }
                link rel="stylesheet" href=(STYLESHEET.as_str());
                script src=(SCRIPT.as_str()) defer {}
            }
            body data-zone-from-browser=[zone_from_browser.then_some("yes")] {
                a.skip href="#main" { "Skip to the page" }
                header.top {
                    a.brand href="/calls" { "calltrail desk" }
                    @if let Some(session) = session {
                        nav aria-label="Desk" {
                            a href="/calls" aria-current=[(section == Section::Find).then_some("page")] { "Find calls" }
                            a href="/queue" aria-current=[(section == Section::Queue).then_some("page")] { "Review queue" }
                        }
                        div.who {
                            span {
                                "Signed in as " strong { (session.viewer.key_name) }
                                " (" (session.viewer.role.as_str()) ")"
                            }
                            form method="post" action="/sign-out" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (main)
                }
            }
        }
    }
}

/// An HTML answer.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// `303 See Other` to `to`.
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The page for `error`, in plain words: what went wrong and what to do. Internal detail is
/// logged, never shown.
pub fn problem(session: Option<&Session>, error: &AppError) -> Response {
    error.log();
    let (title, advice): (&str, String) = match error {
        AppError::NotFound => (
            "Not found",
            "There is no such call or page, or it is not one your key may see.".into(),
        ),
        AppError::Forbidden(why) => ("Not allowed", format!("Your key may not do this: {why}.")),
        AppError::BadUserInput { argument, message }
            if argument == "after" || argument == "before" =>
        {
            (
                "This link is out of date",
                format!(
                    "The page link no longer fits the search ({message}). Start the search again."
                ),
            )
        }
        AppError::BadUserInput { argument, message } => {
            ("Please check the search", format!("{argument}: {message}."))
        }
        AppError::Unauthenticated => (
            "Please sign in",
            "Your session has ended. Sign in again with your API key.".into(),
        ),
        AppError::Unavailable(_) | AppError::QueryTimeout(_) => {
            ("Try again in a moment", format!("{error}."))
        }
        _ => (
            "Something went wrong",
            format!("{error}. Try again, or tell your administrator."),
        ),
    };
    let body = html! {
        h1 { (title) }
        p.lead { (advice) }
        p { a href="/calls" { "Back to finding calls" } }
    };
    respond(
        error.status(),
        page(Frame::new(title, Section::Problem, session), body),
    )
}

/// 403 for a form without its CSRF token (or from another site).
pub fn forged(session: Option<&Session>) -> Response {
    let body = html! {
        h1 { "This form cannot be accepted" }
        p.lead {
            "The form was not sent from this desk, or it is out of date. Nothing was changed. "
            "Go back, reload the page and try again."
        }
        p { a href="/" { "Back to the desk" } }
    };
    respond(
        StatusCode::FORBIDDEN,
        page(Frame::new("Form refused", Section::Problem, session), body),
    )
}
