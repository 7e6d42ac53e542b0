//! GraphiQL served by calltrail itself: its page, and its scripts and styles vendored under
//! `assets/` and embedded in the binary (no CDN, so it works offline), all under a
//! Content-Security-Policy that allows nothing from elsewhere.
use std::sync::LazyLock;

use axum::extract::{Path, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::http;
use crate::error::AppError;

/// One file served under `/graphql/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files, as `assets/README.md` says where each comes from.
const ASSETS: [Asset; 6] = [
    Asset {
        name: "react.production.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("assets/react/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("assets/react-dom/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        body: include_bytes!("assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "calltrail-graphiql.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("assets/calltrail-graphiql.js"),
    },
    Asset {
        name: "calltrail-graphiql.css",
        content_type: CSS,
        body: include_bytes!("assets/calltrail-graphiql.css"),
    },
];

/// Scripts, styles and requests from calltrail only: no inline script, no `eval`, no CDN.
/// Fonts and images may also be `data:` URLs (GraphiQL's stylesheet embeds its fonts).
/// `<style>` elements may be inline: GraphiQL's dialogs add one that locks the page's scroll,
/// whose text varies with the scrollbar's width (so no hash fits) and which the bundle gives
/// no nonce; `style` attributes stay refused.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; style-src-elem 'self' 'unsafe-inline'; font-src 'self' data:; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The assets are named by version in the page (`?v=`), so a browser may keep them a year.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// The page, naming every asset with a digest of them all: a calltrail with other assets
/// names other URLs, so no browser keeps a stale file.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let mut digest = Sha256::new();
    for asset in &ASSETS {
        digest.update(asset.body);
    }
    let version = hex::encode(&digest.finalize()[..8]);
    include_str!("assets/graphiql.html").replace("{version}", &version)
});

/// A browser's `GET /graphql` with no `query` parameter: it wants the page, not an answer.
pub fn is_asked_for(request: &Request) -> bool {
    let asks_a_query = request
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(key, _)| key == "query"));
    let accepts_html = request.headers().get(header::ACCEPT).is_none()
        || http::quality(request.headers(), "text", "html").is_some_and(|a| a.quality > 0.0);
    !asks_a_query && accepts_html
}

/// The GraphiQL page.
pub fn page() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE.as_str(),
    )
        .into_response();
    secure(response.headers_mut(), "no-cache");
    response
}

/// `GET /graphql/assets/{file}`: one of GraphiQL's files.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return AppError::NotFound.into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response();
    secure(response.headers_mut(), ASSET_CACHE);
    response
}

fn secure(headers: &mut axum::http::HeaderMap, cache: &'static str) {
    let set = [
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_served_asset_and_nothing_else() {
        let named: Vec<&str> = PAGE
            .split("graphql/assets/")
            .skip(1)
            .filter_map(|rest| rest.split('?').next())
            .collect();
        let mut served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let mut named_sorted = named.clone();
        named_sorted.sort_unstable();
        served.sort_unstable();
        assert_eq!(named_sorted, served);
        assert!(!PAGE.contains("{version}"));
        assert!(!PAGE.contains("<script>"), "no inline script");
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
