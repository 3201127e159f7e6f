//! The HTTP side: the embedded dashboard, the JSON API with its OpenAPI
//! document, the live event stream, and Prometheus metrics.
//!
//! Reads the hub and the agent status and sends [`Command`]s to their
//! targets; never touches hardware or MQTT. State changes need the token
//! (`auth.rs`, which also throttles wrong tokens per client). The simulated
//! backend's panel (`crate::sim_panel`) is routed when there is one,
//! through the [`SimPanel`] trait: flipping its inputs needs the token
//! whenever one is set (automations run on them), and this module does not
//! know what is behind it.
//! Handlers are in `api.rs`, the JSON they show in `views.rs`. Every error
//! under `/api/` is JSON (`errors.rs`). The server loop (`server.rs`) times
//! out slow clients, caps connections (per client too, `clients.rs`),
//! checks the `Host` and adds the security headers; it stops accepting on
//! cancellation, and every event stream ends then too, so the stop never
//! hangs on an open dashboard. No CORS headers are sent: another origin's
//! page can neither read the API nor send it the token.
//!
//! [`Command`]: crate::command::Command

pub mod api;
mod assets;
mod auth;
pub mod clients;
mod commands;
pub mod errors;
mod events;
mod metrics;
mod openapi;
mod server;
pub mod views;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::command::Commands;
use crate::commands::CommandHandle;
use crate::config::Secret;
use crate::fleet::Fleet;
use crate::hub::Hub;
use crate::status::AgentStatus;

pub use server::{Limits, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP};

use clients::{AllowedHosts, ClientIp, PerIp, TokenFailures};

/// Request bodies are tiny JSON objects; anything bigger is refused.
const MAX_BODY_BYTES: usize = 4096;

/// What every handler may read.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub status: Arc<AgentStatus>,
    /// The simulated backend's panel (`crate::sim_panel`), present only
    /// with that backend.
    pub sim_panel: Option<Arc<dyn SimPanel>>,
    /// Where `POST /api/outputs/…` sends commands; `None` without outputs.
    pub commands: Option<Commands>,
    /// The `[[commands]]`, for `/api/commands` (their state and last
    /// output); requests to them go through `commands` like any other.
    pub command_handles: Arc<[CommandHandle]>,
    /// `None`: the HTTP side is read-only.
    pub token: Option<Arc<Secret>>,
    /// Fires when the server stops; ends every event stream.
    pub shutdown: CancellationToken,
    /// Open event streams, capped (`events::MAX_CLIENTS`) and exported.
    pub sse_clients: Arc<AtomicUsize>,
    /// Open event streams per client (`events::MAX_CLIENTS_PER_IP`).
    pub sse_per_client: Arc<PerIp>,
    /// Each change as one SSE frame for every open stream (`events.rs`).
    pub sse_frames: Arc<events::Frames>,
    /// Wrong tokens per client (`auth.rs`); a std mutex held only to count.
    pub token_failures: Arc<std::sync::Mutex<TokenFailures>>,
    /// The names a request's `Host` may give (`server.rs`).
    pub allowed_hosts: Arc<AllowedHosts>,
    /// The last `/api/state` body and the hub version it shows.
    pub state_cache: Arc<std::sync::Mutex<Option<(u64, axum::body::Bytes)>>>,
    /// The other agents on the broker; `None` when the fleet is off.
    pub fleet: Option<Arc<Fleet>>,
}

impl AppState {
    pub fn new(
        hub: Arc<Hub>,
        status: Arc<AgentStatus>,
        sim_panel: Option<Arc<dyn SimPanel>>,
        commands: Option<Commands>,
        token: Option<Secret>,
    ) -> AppState {
        AppState {
            hub,
            status,
            sim_panel,
            commands,
            command_handles: Arc::new([]),
            token: token.map(Arc::new),
            shutdown: CancellationToken::new(),
            sse_clients: Arc::new(AtomicUsize::new(0)),
            sse_per_client: PerIp::new(events::MAX_CLIENTS_PER_IP),
            sse_frames: Arc::default(),
            token_failures: Arc::new(std::sync::Mutex::new(TokenFailures::default())),
            allowed_hosts: Arc::new(AllowedHosts::default()),
            state_cache: Arc::new(std::sync::Mutex::new(None)),
            fleet: None,
        }
    }

    /// The names a request's `Host` may give (`config::WebConfig::allowed_hosts`);
    /// without this only `localhost` and the address connected to.
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> AppState {
        self.allowed_hosts = Arc::new(AllowedHosts::new(hosts));
        self
    }

    /// Shows the fleet (`/api/fleet`, events, metrics).
    pub fn with_fleet(mut self, fleet: Option<Arc<Fleet>>) -> AppState {
        self.fleet = fleet;
        self
    }
}

/// The simulated backend's two routes, as the web side sees them; the
/// panel answers them (`crate::sim_panel`), this module only routes.
pub trait SimPanel: Send + Sync {
    /// `PUT /api/sim/inputs/{name}`, with the request's body.
    fn set_input(&self, name: &str, body: &[u8]) -> Response;
    /// `GET /api/sim/pins`.
    fn pins(&self) -> Response;
}

/// Flipping a simulated input fires automations (their MQTT messages are
/// real), so it needs the token whenever one is set.
async fn sim_input(
    State(state): State<AppState>,
    Path(name): Path<String>,
    client: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = auth::refusal(&state, &headers, client.map(|c| c.0 .0), auth::Need::TokenIfSet) {
        return refused;
    }
    match &state.sim_panel {
        Some(panel) => panel.set_input(&name, &body),
        None => errors::error(StatusCode::NOT_FOUND, "the GPIO backend is not simulated"),
    }
}

async fn sim_pins(State(state): State<AppState>) -> Response {
    match &state.sim_panel {
        Some(panel) => panel.pins(),
        None => errors::error(StatusCode::NOT_FOUND, "the GPIO backend is not simulated"),
    }
}

/// All routes. `openapi.json` documents each one; a test holds them equal
/// (`openapi.rs`, through [`Routes::paths`]).
pub fn router(state: AppState) -> Router {
    routes(state.sim_panel.is_some())
        .router
        .fallback(errors::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(errors::json_errors))
        .with_state(state)
}

/// Every route, the sim panel's only when there is one.
fn routes(sim_panel: bool) -> Routes {
    let mut routes = Routes::default()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style_css))
        .route("/api", get(assets::api_page))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/health", get(api::health))
        .route("/api/state", get(api::state))
        .route("/api/entities/{id}", get(api::entity))
        .route("/api/history/{id}", get(api::history))
        .route("/api/outputs/{name}", post(api::set_output))
        .route("/api/commands", get(commands::list))
        .route("/api/commands/{name}", get(commands::get_one))
        .route("/api/commands/{name}", post(commands::run))
        .route("/api/events", get(events::events))
        .route("/api/fleet", get(api::fleet))
        .route("/metrics", get(metrics::metrics));
    if sim_panel {
        routes = routes
            .route("/api/sim/inputs/{name}", put(sim_input))
            .route("/api/sim/pins", get(sim_pins));
    }
    routes
}

/// The router being built, and (in test builds) the path of every route
/// given to it, so that the OpenAPI test learns from the router itself
/// what is routed. A release build keeps only the router.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    #[cfg(test)]
    paths: Vec<&'static str>,
}

impl Routes {
    /// `Router::route`, remembered.
    fn route(mut self, path: &'static str, method_router: MethodRouter<AppState>) -> Routes {
        #[cfg(test)]
        self.paths.push(path);
        self.router = self.router.route(path, method_router);
        self
    }

    /// Every routed path, the sim panel's included.
    #[cfg(test)]
    fn paths() -> Vec<&'static str> {
        routes(true).paths
    }
}

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, state: AppState, cancel: CancellationToken) {
    serve_with(listener, state, Limits::default(), cancel).await;
}

/// [`serve`] with other limits (tests use short timeouts).
pub async fn serve_with(listener: TcpListener, state: AppState, limits: Limits, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "dashboard listening");
    }
    // The event streams end with the server, or the connections carrying
    // them would never finish.
    let streams = state.shutdown.clone();
    let end_streams = async {
        cancel.cancelled().await;
        streams.cancel();
    };
    let hosts = state.allowed_hosts.clone();
    tokio::join!(
        server::run(listener, router(state), hosts, limits, cancel.clone()),
        end_streams
    );
}
