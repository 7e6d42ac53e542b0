//! Desk sessions: signing in with an API key opens a session, kept in the database (so every
//! calltrail instance on it knows it) by the SHA-256 of a random token the browser holds in an
//! `HttpOnly; SameSite=Strict` cookie. A session ends at sign-out, after the idle timeout, or
//! as soon as its key is revoked or expires. Each session has a CSRF token that every form
//! which changes something carries; the sign-in form, before any session, carries one from a
//! cookie of its own.
use std::time::Duration;

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::Gate;
use crate::domain::Viewer;
use crate::error::AppError;
use crate::store::Store;
use crate::store::sessions::NewSession;

/// The session cookie.
pub const SESSION_COOKIE: &str = "calltrail_desk";
/// The sign-in form's CSRF cookie (no session exists yet to hold its token).
pub const SIGN_IN_COOKIE: &str = "calltrail_desk_signin";

/// Opens, finds and ends desk sessions.
#[derive(Clone, Debug)]
pub struct Sessions {
    store: Store,
    gate: Gate,
    idle: Duration,
    always_secure: bool,
}

/// A signed-in browser: who it reads as, and the token its forms carry.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: i64,
    pub viewer: Viewer,
    pub csrf: String,
}

/// A fresh random token: 32 bytes, base64url.
pub fn token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `presented` is `expected`, compared in constant time.
pub fn tokens_match(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A form posted from another site: its `Origin` names a host other than the one asked.
/// Browsers send `Origin` on every POST; a request without one is not refused here (the CSRF
/// token still is checked).
pub fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

impl Sessions {
    pub fn new(store: Store, gate: Gate, idle: Duration, always_secure: bool) -> Sessions {
        Sessions {
            store,
            gate,
            idle,
            always_secure,
        }
    }

    fn idle(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.idle).unwrap_or(chrono::Duration::minutes(30))
    }

    /// How stale `last seen` may get before it is written again: a write per page would be a
    /// write per click, so it is written at most every minute (sooner under a short timeout).
    fn touch_every(&self) -> chrono::Duration {
        self.idle()
            .checked_div(4)
            .unwrap_or_default()
            .min(chrono::Duration::minutes(1))
    }

    /// Whether the request carries a session cookie at all.
    pub fn presented(headers: &HeaderMap) -> bool {
        cookie(headers, SESSION_COOKIE).is_some()
    }

    /// The request's live session, if it has one: none for an unknown, expired or signed-out
    /// token, or one whose key was revoked (the session is then deleted).
    pub async fn current(&self, headers: &HeaderMap) -> Result<Option<Session>, AppError> {
        let Some(token) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(stored) = self.store.session_by_token(&sha256_hex(token)).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        if stored.expires_at <= now {
            self.store.end_session(stored.id).await?;
            return Ok(None);
        }
        let viewer = match self.gate.viewer_of_key_id(stored.key_id).await {
            Ok(viewer) => viewer,
            Err(AppError::Unauthenticated) => {
                self.store.end_session(stored.id).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if now - stored.last_seen_at >= self.touch_every() {
            self.store
                .touch_session(stored.id, now, now + self.idle())
                .await?;
        }
        Ok(Some(Session {
            id: stored.id,
            viewer,
            csrf: stored.csrf_token,
        }))
    }

    /// Opens a session for the holder of API key `presented`; its cookie's token. 401 when the
    /// key is not a live key.
    pub async fn open(&self, presented: &str) -> Result<String, AppError> {
        let viewer = self.gate.viewer_of_key(presented.trim()).await?;
        let key_id = viewer.key_id.ok_or(AppError::Unauthenticated)?;
        let token = token();
        let now = Utc::now();
        if let Err(e) = self.store.end_expired_sessions(now).await {
            tracing::debug!(error = %e, "could not delete expired desk sessions");
        }
        self.store
            .open_session(NewSession {
                token_sha256: sha256_hex(&token),
                key_id,
                csrf_token: self::token(),
                now,
                expires_at: now + self.idle(),
            })
            .await?;
        Ok(token)
    }

    /// Ends `session` (sign-out).
    pub async fn close(&self, session: &Session) -> Result<(), AppError> {
        self.store.end_session(session.id).await
    }

    /// Whether cookies set in answer to this request are `Secure`.
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.always_secure
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// `Set-Cookie` for cookie `name` holding `value` (empty and expired: removes it).
    pub fn set_cookie(&self, headers: &HeaderMap, name: &str, value: &str) -> HeaderValue {
        let mut text = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
        if value.is_empty() {
            text.push_str("; Max-Age=0");
        }
        if self.secure(headers) {
            text.push_str("; Secure");
        }
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_tokens_are_read_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; calltrail_desk=tok; other=x"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
        assert!(tokens_match("abc", Some("abc")));
        assert!(!tokens_match("abc", Some("abd")));
        assert!(!tokens_match("abc", Some("ab")));
        assert!(!tokens_match("abc", None));
        assert!(!tokens_match("", Some("")));
        assert_ne!(token(), token());
        headers.insert(HOST, HeaderValue::from_static("desk.example:8080"));
        assert!(!cross_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("http://desk.example:8080"));
        assert!(!cross_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(cross_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_origin(&headers));
    }
}
