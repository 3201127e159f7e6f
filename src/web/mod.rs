//! The HTTP side: a small embedded page and the JSON API.
//!
//! Reads the hub and the agent status; never touches hardware or MQTT.
//! The server stops accepting on cancellation and finishes open requests.

mod api;
mod assets;
pub mod sim;
mod time;

use std::sync::Arc;

use axum::routing::{get, put};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::hub::Hub;
use crate::status::AgentStatus;

/// What every handler may read.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub status: Arc<AgentStatus>,
    /// Present only with the simulated GPIO backend.
    pub sim: Option<Arc<sim::SimPins>>,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/", get(assets::index))
        .route("/api/health", get(api::health))
        .route("/api/state", get(api::state));
    if state.sim.is_some() {
        router = router
            .route("/api/sim/inputs/{name}", put(sim::set_input))
            .route("/api/sim/pins", get(sim::list));
    }
    router.fallback(api::not_found).with_state(state)
}

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, state: AppState, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "dashboard listening");
    }
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(error) = result {
        error!(%error, "web server failed");
    }
}
