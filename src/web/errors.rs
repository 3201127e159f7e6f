//! Every error under `/api/` is JSON, `{"error": "..."}`, including the
//! ones axum writes itself: 405 for a method a route does not take (an empty
//! body), 413 for a body over the limit and 400 for a path that is not valid
//! percent-encoded UTF-8 (plain text). Handlers write their own JSON errors
//! (`error` below); this layer only rewrites what is not JSON yet, keeping the
//! status and headers (`Allow` on a 405).

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// A JSON error response: `{"error": "..."}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no such resource: {}", uri.path()))
}

/// The longest text of axum's own kept as the message.
const MAX_MESSAGE: usize = 512;

pub async fn json_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    if !api || !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let message = text.unwrap_or_else(|| fallback_message(status, &parts.headers));
    let json = error(status, &message);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in json.headers() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, json.into_body())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn fallback_message(status: StatusCode, headers: &HeaderMap) -> String {
    let allowed = headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
    match (status, allowed) {
        (StatusCode::METHOD_NOT_ALLOWED, Some(allowed)) => {
            format!("method not allowed here; this path takes {allowed}")
        }
        _ => status
            .canonical_reason()
            .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_lowercase),
    }
}
