//! The write token: every state change over HTTP needs
//! `Authorization: Bearer <web.token>`. Without a configured token the HTTP
//! side is read-only and says so.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::web::api::error;
use crate::web::AppState;

/// `None` when the request carries the configured token; otherwise the
/// response that refuses it (403 read-only, 401 missing or wrong token).
pub fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "this agent's HTTP API is read-only: set web.token (or web.token_file, or $MAJORTOM_WEB_TOKEN) to allow changes",
        ));
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(offered.as_bytes(), token.expose().as_bytes()) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"majortom\"")],
            Json(json!({ "error": "missing or wrong token: send `Authorization: Bearer <web.token>`" })),
        )
            .into_response(),
    )
}

/// Compares without an early exit, so the time taken does not tell how
/// much of a guess was right. (The length may leak; the content does not.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_should_match_only_equal_tokens() {
        assert!(constant_time_eq(b"s3cret-token", b"s3cret-token"));
        assert!(!constant_time_eq(b"s3cret-token", b"s3cret-tokem"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
