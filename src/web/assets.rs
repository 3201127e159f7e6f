//! The dashboard's files, gzipped at build time (`build.rs`) and embedded,
//! so there is nothing to install beside the binary and little to send over
//! a Pi Zero's Wi-Fi.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

struct Asset {
    gz: &'static [u8],
    content_type: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            gz: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".gz")),
            content_type: $type,
        }
    };
}

const INDEX_HTML: Asset = asset!("index.html", "text/html; charset=utf-8");
const APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const STYLE_CSS: Asset = asset!("style.css", "text/css; charset=utf-8");
const API_HTML: Asset = asset!("api.html", "text/html; charset=utf-8");

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if !accepts_gzip {
        // Every browser sends gzip; keeping only the compressed copy saves
        // space in a binary with a 2 MB budget.
        return (
            StatusCode::NOT_ACCEPTABLE,
            "the dashboard is served gzip-compressed: use a browser, or curl --compressed\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "Accept-Encoding"),
        ],
        asset.gz,
    )
        .into_response()
}

pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX_HTML, &headers)
}

pub async fn app_js(headers: HeaderMap) -> Response {
    serve(&APP_JS, &headers)
}

pub async fn style_css(headers: HeaderMap) -> Response {
    serve(&STYLE_CSS, &headers)
}

pub async fn api_page(headers: HeaderMap) -> Response {
    serve(&API_HTML, &headers)
}

/// Total size of the dashboard's files, uncompressed and compressed.
#[cfg(test)]
pub fn sizes() -> (usize, usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let raw = ["index.html", "app.js", "style.css", "api.html"]
        .iter()
        .map(|name| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len() as usize))
        .sum();
    let gz = [INDEX_HTML.gz, APP_JS.gz, STYLE_CSS.gz, API_HTML.gz]
        .iter()
        .map(|g| g.len())
        .sum();
    (raw, gz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_should_stay_within_its_50_kb_budget_and_compress() {
        let (raw, gz) = sizes();
        assert!(raw <= 50 * 1024, "web/ assets are {raw} bytes uncompressed");
        assert!(gz < raw, "gzip must pay: {gz} ≥ {raw}");
    }

    #[tokio::test]
    async fn assets_should_be_served_gzipped_or_refused_with_a_hint() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, "gzip, deflate, br".parse().expect("header"));
        let response = index(headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let response = index(HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    }
}
