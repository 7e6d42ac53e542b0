//! Signing in with an API key and signing out.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;

use super::Desk;
use super::format;
use super::layout::{self, Frame, Section};
use super::session::{self, SESSION_COOKIE, SIGN_IN_COOKIE, Sessions};
use crate::error::AppError;

/// The fields of a posted form (`application/x-www-form-urlencoded`).
pub(super) fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Where to go after signing in: a path of this site, `/calls` otherwise.
fn next_page(asked: Option<&str>) -> &str {
    match asked {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 2000
                && !p.chars().any(|c| c.is_control()) =>
        {
            p
        }
        _ => "/calls",
    }
}

/// The sign-in page (`status` 200, or the refusal's), with `problem` said plainly.
pub(super) fn page(
    desk: &Desk,
    headers: &HeaderMap,
    query: Option<&str>,
    problem: Option<(StatusCode, &str)>,
) -> Response {
    let next = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    let csrf = session::cookie(headers, SIGN_IN_COOKIE)
        .map(str::to_owned)
        .unwrap_or_else(session::token);
    let body = html! {
        div.signin {
            h1 { "Sign in" }
            p.lead { "The desk finds calls, plays their recordings, shows an agent's day and records reviews." }
            @if let Some((_, problem)) = problem {
                p.error role="alert" #problem { (problem) }
            }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(next) = &next { input type="hidden" name="next" value=(next); }
                label for="key" { "Your API key" span.hint { "It starts with ct_. Your administrator makes one with calltrail keys create." } }
                input #key type="password" name="key" required autocomplete="off" spellcheck="false"
                    aria-describedby=[problem.is_some().then_some("problem")];
                div.actions { button type="submit" { "Sign in" } }
            }
            p.muted { "The session ends when you sign out, or after a while without use." }
        }
    };
    let status = problem.map_or(StatusCode::OK, |(s, _)| s);
    let mut response = layout::respond(
        status,
        layout::page(Frame::new("Sign in", Section::SignIn, None), body),
    );
    if session::cookie(headers, SIGN_IN_COOKIE).is_none() {
        let cookie = desk.sessions.set_cookie(headers, SIGN_IN_COOKIE, &csrf);
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /sign-in`: opens a session for a live API key.
pub async fn sign_in(State(desk): State<Desk>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form_fields(&body);
    let expected = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if session::cross_origin(&headers) || !session::tokens_match(expected, field(&fields, "csrf")) {
        return layout::forged(None);
    }
    let next = next_page(field(&fields, "next")).to_owned();
    let query = format!("next={}", format::segment(&next));
    let key = field(&fields, "key").unwrap_or("").trim();
    if key.is_empty() {
        return page(
            &desk,
            &headers,
            Some(&query),
            Some((StatusCode::BAD_REQUEST, "Type or paste your API key.")),
        );
    }
    match desk.sessions.open(key).await {
        Ok(token) => {
            let mut response = layout::redirect(&next);
            let sessions: &Sessions = &desk.sessions;
            let cookies = response.headers_mut();
            cookies.append(
                header::SET_COOKIE,
                sessions.set_cookie(&headers, SESSION_COOKIE, &token),
            );
            cookies.append(
                header::SET_COOKIE,
                sessions.set_cookie(&headers, SIGN_IN_COOKIE, ""),
            );
            response
        }
        Err(AppError::Unauthenticated) => page(
            &desk,
            &headers,
            Some(&query),
            Some((
                StatusCode::UNAUTHORIZED,
                "That key was not accepted: it is not a calltrail key, or it has been revoked or has expired.",
            )),
        ),
        Err(e) => layout::problem(None, &e),
    }
}

/// `POST /sign-out`: ends the session.
pub async fn sign_out(State(desk): State<Desk>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form_fields(&body);
    let session = match desk.sessions.current(&headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return layout::redirect("/"),
        Err(e) => return layout::problem(None, &e),
    };
    if session::cross_origin(&headers)
        || !session::tokens_match(&session.csrf, field(&fields, "csrf"))
    {
        return layout::forged(Some(&session));
    }
    if let Err(e) = desk.sessions.close(&session).await {
        return layout::problem(Some(&session), &e);
    }
    let mut response = layout::redirect("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        desk.sessions.set_cookie(&headers, SESSION_COOKIE, ""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn sign_in_returns_only_to_pages_of_this_site() {
        assert_eq!(next_page(Some("/calls/x?tz=UTC")), "/calls/x?tz=UTC");
        assert_eq!(next_page(Some("//evil.example/")), "/calls");
        assert_eq!(next_page(Some("/\\evil.example")), "/calls");
        assert_eq!(next_page(Some("https://evil.example/")), "/calls");
        assert_eq!(next_page(Some("/a\nb")), "/calls");
        assert_eq!(next_page(None), "/calls");
    }
}
