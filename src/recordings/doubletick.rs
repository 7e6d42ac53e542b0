//! Requests to DoubleTick's media host: the recording link with the account's key added (as
//! `?token=` or as `Authorization`), and errors told without the URL, which would carry it.
use std::time::Duration;

use super::Secret;

/// Where the key goes on a recording request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyPlacement {
    /// `?token=<key>` appended to the link (the call-webhook reference).
    Query,
    /// `Authorization: <key>` (DoubleTick's media docs, for other media).
    Header,
}

/// A client for DoubleTick's recording links, holding the key.
#[derive(Clone, Debug)]
pub struct DoubleTick {
    client: reqwest::Client,
    key: Secret,
    placement: KeyPlacement,
}

impl DoubleTick {
    /// `connect_timeout` bounds connecting; `read_timeout` each wait for more bytes.
    pub fn new(key: Secret, placement: KeyPlacement, read_timeout: Duration) -> DoubleTick {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(read_timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        DoubleTick {
            client,
            key,
            placement,
        }
    }

    /// A GET of `url` with the key, and `range` (a `Range` header value) when given.
    pub fn get(&self, url: &str, range: Option<&str>) -> reqwest::RequestBuilder {
        let request = match self.placement {
            KeyPlacement::Query => {
                let joiner = if url.contains('?') { '&' } else { '?' };
                let key: String =
                    form_urlencoded::byte_serialize(self.key.expose().as_bytes()).collect();
                self.client.get(format!("{url}{joiner}token={key}"))
            }
            KeyPlacement::Header => self
                .client
                .get(url)
                .header(reqwest::header::AUTHORIZATION, self.key.expose()),
        };
        match range {
            Some(range) => request.header(reqwest::header::RANGE, range),
            None => request,
        }
    }

    /// What went wrong with a request, safe to store and show: no URL, no key.
    pub fn describe(&self, error: reqwest::Error) -> String {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "could not connect"
        } else if error.is_body() || error.is_decode() {
            "the body broke off"
        } else if error.is_redirect() {
            "too many redirects"
        } else {
            "request failed"
        };
        let detail = error.without_url().to_string();
        self.key.scrub(&format!("{kind}: {detail}"))
    }

    /// `text` with the key removed, for any message that might have met it.
    pub fn scrub(&self, text: &str) -> String {
        self.key.scrub(text)
    }
}
