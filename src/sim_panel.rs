//! The simulated GPIO backend's HTTP panel: flip an input, look at the
//! output pins (`PUT /api/sim/inputs/{name}`, `GET /api/sim/pins`).
//!
//! Its own part, not the web sink's: it is the one place on the HTTP side
//! that reaches into the hal, and only into the simulation (it plays the
//! wire to 3.3 V or ground; nothing real is behind it). `app` builds it only
//! with the sim backend and hands it to the web server as a
//! `web::SimPanel`, the two answers the web side routes to, so `web`
//! itself never imports the hal (an invariant in ARCHITECTURE.md, held by
//! the layering test).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::hal::sim::SimControl;
use crate::web::errors::error;
use crate::web::SimPanel;

/// The simulated pins, by the names the config gives them.
pub struct SimPins {
    pub control: SimControl,
    pub inputs: Vec<(String, u8)>,
    pub outputs: Vec<(String, u8)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Level {
    high: bool,
}

impl SimPanel for SimPins {
    /// `PUT /api/sim/inputs/{name}` with `{"high": true}`: sets the raw
    /// level of a simulated input, as a wire to 3.3 V or ground would. The
    /// answer's `edge_ns` is the edge's CLOCK_MONOTONIC time (null when
    /// the level was already that), where `cargo bench --bench
    /// edge_latency` starts its clock.
    fn set_input(&self, name: &str, body: &[u8]) -> Response {
        set_input(self, name, body)
    }

    /// `GET /api/sim/pins`: every simulated output's level and write count.
    fn pins(&self) -> Response {
        list(self)
    }
}

fn set_input(sim: &SimPins, name: &str, body: &[u8]) -> Response {
    let Some(pin) = sim.inputs.iter().find(|(n, _)| *n == name).map(|(_, pin)| *pin) else {
        return error(StatusCode::NOT_FOUND, &format!("no input named `{name}`"));
    };
    let level: Level = match serde_json::from_slice(body) {
        Ok(level) => level,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"high\": true|false}}: {e}"),
            )
        }
    };
    match sim.control.set_input(pin, level.high) {
        Ok(edge_ns) => {
            Json(json!({ "name": name, "pin": pin, "high": level.high, "edge_ns": edge_ns })).into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

fn list(sim: &SimPins) -> Response {
    let outputs: serde_json::Map<String, serde_json::Value> = sim
        .outputs
        .iter()
        .map(|(name, pin)| {
            let pin_state = json!({
                "pin": pin,
                "high": sim.control.output(*pin),
                "writes": sim.control.output_writes(*pin),
            });
            (name.clone(), pin_state)
        })
        .collect();
    Json(json!({ "outputs": outputs })).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tokio::sync::mpsc;
    use tower::ServiceExt;

    use super::*;
    use crate::hal::sim::SimGpio;
    use crate::hal::Gpio;
    use crate::vocab::Pull;

    /// A router with the sim panel over one input, and `token` if any;
    /// the edges its pin reports.
    fn panel_app(
        token: Option<&str>,
    ) -> (
        axum::Router,
        mpsc::Receiver<crate::hal::Edge>,
        Box<dyn crate::hal::InputPin>,
    ) {
        let gpio = SimGpio::new();
        let (edges, received) = mpsc::channel(8);
        let settings = crate::hal::InputSettings {
            pull: Pull::Up,
            active_low: false,
        };
        let pin = gpio.input(&crate::vocab::Pin::Bcm(17), settings, edges).expect("claim");
        let panel = Arc::new(SimPins {
            control: gpio.control(),
            inputs: vec![("door".into(), 17)],
            outputs: Vec::new(),
        }) as Arc<dyn SimPanel>;
        let mut state = crate::fixtures::web_state_with_one_sensor();
        state.sim_panel = Some(panel);
        state.token = token.map(|t| Arc::new(crate::config::Secret::new(t.into())));
        (crate::web::router(state), received, pin)
    }

    async fn flip(app: &axum::Router, authorization: Option<&str>) -> StatusCode {
        let mut request = Request::put("/api/sim/inputs/door").header("content-type", "application/json");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(Body::from(r#"{"high": false}"#)).expect("request");
        app.clone().oneshot(request).await.expect("infallible").status()
    }

    /// Reproduction 4 of issue 15: with a token set, anyone on the LAN
    /// flipped simulated inputs (and fired the automations on them).
    #[tokio::test]
    async fn flipping_a_simulated_input_should_need_the_token_whenever_one_is_set() {
        let (app, mut edges, _pin) = panel_app(Some("s3cret-token"));
        assert_eq!(flip(&app, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(flip(&app, Some("Bearer wrong")).await, StatusCode::UNAUTHORIZED);
        assert!(edges.try_recv().is_err(), "no edge without the token");
        assert_eq!(flip(&app, Some("Bearer s3cret-token")).await, StatusCode::OK);
        assert!(edges.try_recv().is_ok(), "the token flips it");
        // Without a token configured, the panel stays open (a laptop demo).
        let (app, mut edges, _pin) = panel_app(None);
        assert_eq!(flip(&app, None).await, StatusCode::OK);
        assert!(edges.try_recv().is_ok());
    }

    /// The answer tells when the edge happened (where the edge latency
    /// bench starts its clock), and that a level already set made none.
    #[tokio::test]
    async fn the_answer_should_carry_the_edges_monotonic_time_or_null() {
        let (app, _edges, _pin) = panel_app(None);
        let put = |high: bool| {
            let request = Request::put("/api/sim/inputs/door")
                .header("content-type", "application/json")
                .body(Body::from(format!(r#"{{"high": {high}}}"#)))
                .expect("request");
            let app = app.clone();
            async move {
                let answer = app.oneshot(request).await.expect("infallible");
                let body = axum::body::to_bytes(answer.into_body(), 1024).await.expect("body");
                serde_json::from_slice::<serde_json::Value>(&body).expect("json")
            }
        };
        let before = crate::hal::monotonic_ns();
        let edge = put(false).await; // pulled up: high → low is an edge
        let after = crate::hal::monotonic_ns();
        let at = edge["edge_ns"].as_u64().expect("edge_ns");
        assert!((before..=after).contains(&at), "{before} ≤ {at} ≤ {after}");
        assert_eq!(edge["high"], false);
        assert!(put(false).await["edge_ns"].is_null(), "no edge, no time");
    }
}
