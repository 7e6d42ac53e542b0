//! The shared webhook secret, in any of the ways DoubleTick can send it, compared in constant time.
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header a DoubleTick webhook can be given as a custom header.
pub const TOKEN_HEADER: &str = "x-calltrail-token";

/// The accepted secrets (several while one is being rotated).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    pub fn new(tokens: &[String]) -> Tokens {
        Tokens {
            digests: tokens.iter().map(|t| digest(t.as_bytes())).collect(),
        }
    }

    /// No secret configured: every delivery is accepted (loopback only, enforced at start).
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether the request carries a configured secret as `Authorization: Bearer`,
    /// `Authorization: Basic` (the secret as the password), `X-Calltrail-Token`, or `?token=`.
    pub fn admits(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        if self.is_open() {
            return true;
        }
        candidates(headers, query)
            .iter()
            .any(|candidate| self.matches(candidate.as_bytes()))
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        let candidate = digest(candidate);
        // Every configured token is compared, so timing does not reveal which one matched.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, d| {
                found | d.ct_eq(&candidate)
            })
            .into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn candidates(headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    let mut found = Vec::new();
    for value in headers.get_all(AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            found.push(rest.to_owned());
        } else if scheme.eq_ignore_ascii_case("basic")
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest)
            && let Ok(text) = String::from_utf8(decoded)
        {
            let (_user, password) = text.split_once(':').unwrap_or(("", &text));
            found.push(password.to_owned());
        }
    }
    for value in headers.get_all(TOKEN_HEADER) {
        if let Ok(value) = value.to_str() {
            found.push(value.trim().to_owned());
        }
    }
    if let Some(query) = query {
        found.extend(
            form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned()),
        );
    }
    found
}
