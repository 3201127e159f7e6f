//! Playing with the simulated GPIO backend over HTTP: flip an input, look at
//! the output pins. Routed only when the backend is `sim`, so a real Pi never
//! exposes it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::hal::sim::SimControl;
use crate::web::api::error;
use crate::web::AppState;

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

fn pins(state: &AppState) -> Option<&Arc<SimPins>> {
    state.sim.as_ref()
}

/// `PUT /api/sim/inputs/{name}` with `{"high": true}`: sets the raw level of
/// a simulated input, as a wire to 3.3 V or ground would.
pub async fn set_input(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(sim) = pins(&state) else {
        return error(StatusCode::NOT_FOUND, "the GPIO backend is not simulated");
    };
    let Some(pin) = sim.inputs.iter().find(|(n, _)| *n == name).map(|(_, pin)| *pin) else {
        return error(StatusCode::NOT_FOUND, &format!("no input named `{name}`"));
    };
    let level: Level = match serde_json::from_slice(&body) {
        Ok(level) => level,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"high\": true|false}}: {e}"),
            )
        }
    };
    if let Err(e) = sim.control.set_input(pin, level.high) {
        return error(StatusCode::CONFLICT, &e.to_string());
    }
    Json(json!({ "name": name, "pin": pin, "high": level.high })).into_response()
}

/// `GET /api/sim/pins`: every simulated output's level and write count.
pub async fn list(State(state): State<AppState>) -> Response {
    let Some(sim) = pins(&state) else {
        return error(StatusCode::NOT_FOUND, "the GPIO backend is not simulated");
    };
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
