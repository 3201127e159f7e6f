//! The HTTP side: a small embedded page and the JSON API.
//!
//! Reads the hub and the agent status; never touches hardware or MQTT.
//! The server stops accepting on cancellation and finishes open requests.

mod api;
mod assets;
mod time;

use std::sync::Arc;

use axum::routing::get;
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
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/api/health", get(api::health))
        .route("/api/state", get(api::state))
        .fallback(api::not_found)
        .with_state(state)
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
