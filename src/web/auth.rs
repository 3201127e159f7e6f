//! The write token: every state change over HTTP needs
//! `Authorization: Bearer <web.token>`. Without a configured token the HTTP
//! side is read-only and says so (the simulated inputs stay open then).
//! Wrong tokens are counted per client address: after
//! `TOKEN_FAILURES_ALLOWED` of them the address gets 429 for a minute, and
//! each is logged (the logger limits the lines per call site).

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::warn;

use crate::web::clients::{Client, Failure};
use crate::web::errors::error;
use crate::web::AppState;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The token; without one configured the API is read-only (403).
    Token,
    /// The token when one is configured; otherwise nothing.
    TokenIfSet,
}

/// `None` when the request may go on; otherwise the response that refuses
/// it (403 read-only, 401 missing or wrong token, 429 too many wrong
/// tokens from `client`). `client` is the peer's address (none when the
/// router is called directly, in tests: nothing is counted then).
pub fn refusal(state: &AppState, headers: &HeaderMap, client: Option<IpAddr>, need: Need) -> Option<Response> {
    let Some(token) = &state.token else {
        return (need == Need::Token).then(|| {
            error(
                StatusCode::FORBIDDEN,
                "this agent's HTTP API is read-only: set web.token (or web.token_file, or $MAJORTOM_WEB_TOKEN) to allow changes",
            )
        });
    };
    let now = Instant::now();
    let counted = client.map(Client::of);
    let mut failures = state.token_failures.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(wait) = counted.and_then(|c| failures.locked(c, now)) {
        let seconds = wait.as_secs() + 1;
        let message = format!("too many wrong tokens from this address: retry in {seconds} s");
        let mut refused = error(StatusCode::TOO_MANY_REQUESTS, &message);
        refused.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        return Some(refused);
    }
    let presented = headers.get(header::AUTHORIZATION);
    let offered = presented
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 7235).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start_matches(' '));
    if constant_time_eq(offered.as_bytes(), token.expose().as_bytes()) {
        if let Some(client) = counted {
            failures.succeeded(client);
        }
        return None;
    }
    // A request without the header is a page that has no token yet, not a
    // guess: refused, not counted.
    if let (Some(client), Some(ip), Some(_)) = (counted, client, presented) {
        match failures.failed(client, now) {
            Failure::Counted { left } => warn!(client = %ip, left, "refusing a change over HTTP: wrong web token"),
            Failure::LockedOut(wait) => warn!(
                client = %ip,
                seconds = wait.as_secs(),
                "refusing a change over HTTP: wrong web token, too many times; refusing this address for a while"
            ),
        }
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
            assert_eq!(
                refusal(&state, &headers, None, Need::Token).is_none(),
                allowed,
                "{header:?}"
            );
        }
    }

    #[test]
    fn wrong_tokens_should_lock_out_their_address_only_and_a_missing_one_should_not_count() {
        use crate::web::clients::TOKEN_FAILURES_ALLOWED;
        let mut state = crate::fixtures::web_state_with_one_sensor();
        state.token = Some(std::sync::Arc::new(crate::config::Secret::new("s3cret-token".into())));
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
            headers
        };
        let (attacker, neighbour): (IpAddr, IpAddr) =
            ("10.0.0.66".parse().expect("ip"), "10.0.0.7".parse().expect("ip"));
        let status =
            |headers: &HeaderMap, ip: IpAddr| refusal(&state, headers, Some(ip), Need::Token).map(|r| r.status());
        for _ in 0..10 {
            assert_eq!(status(&HeaderMap::new(), attacker), Some(StatusCode::UNAUTHORIZED));
        }
        for _ in 0..TOKEN_FAILURES_ALLOWED {
            assert_eq!(status(&with("Bearer guess"), attacker), Some(StatusCode::UNAUTHORIZED));
        }
        let locked = refusal(&state, &with("Bearer s3cret-token"), Some(attacker), Need::Token).expect("refused");
        assert_eq!(
            locked.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the right token too, while locked"
        );
        assert!(locked.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(status(&with("Bearer s3cret-token"), neighbour), None);
        // A configured token is needed for Need::Token, not for TokenIfSet.
        state.token = None;
        let read_only = refusal(&state, &HeaderMap::new(), Some(neighbour), Need::Token).map(|r| r.status());
        assert_eq!(read_only, Some(StatusCode::FORBIDDEN));
        assert!(refusal(&state, &HeaderMap::new(), Some(neighbour), Need::TokenIfSet).is_none());
    }
}
