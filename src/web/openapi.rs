//! The OpenAPI 3 document (`web/openapi.json`, kept by hand) and the test
//! that holds it equal to the router's routes.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const DOCUMENT: &str = include_str!("../../web/openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(METHOD, path)` of every `.route(...)` in `web/mod.rs`.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let mut routes = BTreeSet::new();
        for piece in source.split(".route(\"").skip(1) {
            let Some((path, rest)) = piece.split_once('"') else {
                continue;
            };
            let method = rest
                .trim_start_matches(',')
                .trim()
                .split('(')
                .next()
                .unwrap_or("")
                .to_uppercase();
            routes.insert((method, path.to_owned()));
        }
        routes
    }

    fn documented() -> BTreeSet<(String, String)> {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        let mut routes = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
        routes
    }

    #[test]
    fn every_route_should_be_documented_and_nothing_else() {
        let routed = routed();
        assert!(routed.len() >= 14, "parsing the router found only {routed:?}");
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(missing.is_empty(), "routes missing from web/openapi.json: {missing:?}");
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }

    #[test]
    fn document_should_be_openapi_3_with_a_response_for_every_operation() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).expect("json");
        assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                assert!(operation["summary"].is_string(), "{method} {path} has no summary");
                assert!(
                    operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}"
                );
            }
        }
    }
}
