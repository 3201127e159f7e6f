//! The write token: every state change over HTTP needs
//! `Authorization: Bearer <web.token>`. Without a configured token the HTTP
//! side is read-only and says so.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::web::errors::error;
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
        // The scheme's name is case-insensitive (RFC 7235).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start_matches(' '));
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

    #[test]
    fn the_scheme_should_be_matched_in_any_case_and_the_token_exactly() {
        let mut state = crate::fixtures::web_state_with_one_sensor();
        state.token = Some(std::sync::Arc::new(crate::config::Secret::new("s3cret-token".into())));
        for (header, allowed) in [
            ("Bearer s3cret-token", true),
            ("bearer s3cret-token", true),
            ("BEARER  s3cret-token", true),
            ("Bearer S3CRET-TOKEN", false),
            ("Basic s3cret-token", false),
            ("s3cret-token", false),
            ("Bearer", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, header.parse().expect("header"));
            assert_eq!(refusal(&state, &headers).is_none(), allowed, "{header:?}");
        }
    }
}
