//! The desk's stylesheet and script, embedded in the binary and served by calltrail itself
//! (no CDN: the desk works offline, under a CSP that allows nothing from elsewhere).
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::AppError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 2] = [
    Asset {
        name: "desk.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/desk.css"),
    },
    Asset {
        name: "desk.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/desk.js"),
    },
];

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut digest = Sha256::new();
    for asset in &ASSETS {
        digest.update(asset.body);
    }
    hex::encode(&digest.finalize()[..8])
});

/// A digest of every asset: the pages name the files with it (`?v=`), so a browser may keep
/// them a year and never keeps a stale one.
pub fn version() -> &'static str {
    VERSION.as_str()
}

/// `GET /desk/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return AppError::NotFound.into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
