//! `/api/commands`: the `[[commands]]` with their state and last output,
//! and `POST /api/commands/{name}` with `{"action": "on" | "off" | "once"}`
//! (behind the token). The body selects an action of a configured command
//! and nothing else: no text of it reaches a program.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::commands::{Accepted, Action, CommandHandle, Refused};
use crate::time::rfc3339;
use crate::web::auth::{refusal, Need};
use crate::web::clients::ClientIp;
use crate::web::errors::error;
use crate::web::AppState;

/// `GET /api/commands`.
pub async fn list(State(state): State<AppState>) -> Response {
    let views: Vec<Value> = state.command_handles.iter().map(|h| view(&state, h)).collect();
    Json(json!({ "commands": views })).into_response()
}

/// `GET /api/commands/{name}`.
pub async fn get_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match find(&state, &name) {
        Some(handle) => Json(view(&state, handle)).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no command `{name}`")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    action: String,
}

/// `POST /api/commands/{name}`: 202 when the run starts or is queued, 409
/// while another runs (or the queue is full), 422 for an action the command
/// does not have.
pub async fn run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    client: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&state, &headers, client.map(|c| c.0 .0), Need::Token) {
        return refused;
    }
    let Some(handle) = find(&state, &name) else {
        return error(StatusCode::NOT_FOUND, &format!("no command `{name}`"));
    };
    let expected = "expected {\"action\": \"on\" | \"off\" | \"once\"}";
    let opens_an_object = body.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'{');
    if !opens_an_object {
        return error(StatusCode::BAD_REQUEST, &format!("{expected}: not a JSON object"));
    }
    let request: RunRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("{expected}: {e}")),
    };
    let Some(action) = Action::parse(&request.action) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, expected);
    };
    match handle.request(action) {
        Ok(accepted) => {
            let ahead = match accepted {
                Accepted::Started => 0,
                Accepted::Queued { ahead } => ahead,
            };
            tracing::info!(command = %name, action = action.as_str(), origin = "web", "command requested");
            (
                StatusCode::ACCEPTED,
                Json(json!({ "name": name, "action": action.as_str(), "ahead": ahead })),
            )
                .into_response()
        }
        Err(refused) => {
            let status = match refused {
                Refused::Busy | Refused::QueueFull => StatusCode::CONFLICT,
                Refused::NotOffered(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Refused::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, &refused.to_string())
        }
    }
}

fn find<'a>(state: &'a AppState, name: &str) -> Option<&'a CommandHandle> {
    state.command_handles.iter().find(|h| h.name() == name)
}

/// A command as the API shows it.
fn view(state: &AppState, handle: &CommandHandle) -> Value {
    let now = handle.state();
    let label = state.hub.get(handle.name()).map(|e| e.spec.name.clone());
    let kind = if handle.offers(Action::Once) {
        "button"
    } else {
        "switch"
    };
    let last_run = now.last_run.as_ref().map(|last| {
        let code = match last.finished.ended {
            crate::commands::process::Ended::Exited(code) => Some(code),
            _ => None,
        };
        json!({
            "action": last.action.as_str(),
            "ended": last.finished.ended.to_string(),
            "success": last.finished.ended.success(),
            "exit_code": code,
            "duration_ms": u64::try_from(last.finished.duration.as_millis()).unwrap_or(u64::MAX),
            "at": rfc3339(last.at),
            "stdout": last.finished.stdout.text(),
            "stdout_discarded": last.finished.stdout.discarded,
            "stderr": last.finished.stderr.text(),
            "stderr_discarded": last.finished.stderr.discarded,
        })
    });
    json!({
        "name": handle.name(),
        "label": label,
        "kind": kind,
        "status": now.status.as_str(),
        "available": now.available,
        "running": now.running.as_ref().map(|r| json!({ "action": r.action.as_str(), "since": rfc3339(r.since) })),
        "queued": now.queued.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "last_check": now.last_check.map(rfc3339),
        "last_run": last_run,
    })
}
