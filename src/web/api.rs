//! JSON API handlers (the views they answer with are in `views.rs`). Errors are JSON objects with a message; an unknown
//! entity is a 404, a bad body a 400 or 422. Nothing here panics on input.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::command::{Action, Origin};
use crate::hub::HubEvent;
use crate::vocab::Component;
use crate::web::auth::{refusal, Need};
use crate::web::clients::ClientIp;
use crate::web::errors::error;
use crate::web::views::{fleet_nodes, fleet_view, health_view, history_points, EntityView, NodeView, StateView};
use crate::web::AppState;

/// How long `POST /api/outputs/…` waits for the output to echo its state.
const ECHO_WAIT: Duration = Duration::from_secs(2);

pub async fn health(State(state): State<AppState>) -> Response {
    Json(health_view(&state)).into_response()
}

/// `GET /api/fleet`: every agent on the broker, ours included, and what
/// is wrong with them.
pub async fn fleet(State(state): State<AppState>) -> Response {
    let nodes = fleet_nodes(&state);
    Json(fleet_view(&state, &nodes)).into_response()
}

/// `GET /api/state`. The body is rendered once per hub version and reused
/// until something changes: dashboards and scrapers poll far more often
/// than a Pi's values change.
pub async fn state(State(state): State<AppState>) -> Response {
    let cached = {
        let cache = state.state_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|(version, _)| *version == state.hub.version())
            .map(|(_, body)| body.clone())
    };
    let body = match cached {
        Some(body) => body,
        None => {
            let (version, snapshot) = state.hub.versioned_snapshot();
            let node = &state.status.node;
            let view = StateView {
                node: NodeView {
                    id: &node.id,
                    name: &node.name,
                    model: &node.model,
                    version: &node.sw_version,
                },
                entities: snapshot.into_iter().map(EntityView::from).collect(),
            };
            let body = match serde_json::to_vec(&view) {
                Ok(json) => Bytes::from(json),
                Err(e) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("cannot render the state: {e}"),
                    )
                }
            };
            *state.state_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, body.clone()));
            body
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn entity(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.hub.get(&id) {
        Some(entity) => Json(EntityView::from(entity)).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no entity `{id}`")),
    }
}

pub async fn history(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(entity) = state.hub.get(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("no entity `{id}`"));
    };
    let points = history_points(&state, &id).unwrap_or_default();
    Json(json!({ "id": id, "unit": entity.spec.unit, "points": points })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputRequest {
    state: String,
}

/// `POST /api/outputs/{name}` with `{"state": "ON" | "OFF" | "TOGGLE"}`:
/// hands the command to the outputs and answers with the state the output
/// reports back.
pub async fn set_output(
    State(state): State<AppState>,
    Path(name): Path<String>,
    client: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&state, &headers, client.map(|c| c.0 .0), Need::Token) {
        return refused;
    }
    let Some((commands, component)) = state
        .commands
        .as_ref()
        .and_then(|commands| Some((commands, commands.targets.resolve(&name)?.1)))
    else {
        return error(StatusCode::NOT_FOUND, &format!("no output `{name}`"));
    };
    let expected = "expected {\"state\": \"ON\" | \"OFF\" | \"TOGGLE\"}";
    // An object, not whatever else serde would take for one (`["ON"]`);
    // parsed straight into the struct, which refuses a repeated `state`.
    let opens_an_object = body.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'{');
    if !opens_an_object {
        return error(StatusCode::BAD_REQUEST, &format!("{expected}: not a JSON object"));
    }
    let request: OutputRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("{expected}: {e}")),
    };
    let command = Action::parse(request.state.as_bytes())
        .and_then(|action| commands.targets.command(&name, action, Origin::Web).ok());
    let Some(command) = command else {
        let expected = if component == Component::Button {
            "PRESS"
        } else if state.hub.get(&name).is_some_and(|e| e.spec.dimmable) {
            "ON, OFF, TOGGLE or a level 0-100"
        } else {
            "ON, OFF or TOGGLE"
        };
        let message = format!("`{}` is not a state of `{name}`: use {expected}", request.state);
        return error(StatusCode::UNPROCESSABLE_ENTITY, &message);
    };
    // Subscribe before sending, so the echo cannot be missed.
    let mut changes = state.hub.subscribe();
    if commands.sender.send(command).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the outputs are stopping");
    }
    let echo = tokio::time::timeout(ECHO_WAIT, async {
        loop {
            match changes.recv().await {
                Ok(HubEvent::Updated(spec, value)) if spec.id == name => return Some(value),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    match echo {
        Ok(Some(value)) => Json(json!({ "id": name, "state": value.render(0) })).into_response(),
        _ => (
            StatusCode::ACCEPTED,
            Json(json!({ "id": name, "message": "command accepted; the output has not reported back yet" })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::command::{Commands, OutputId, Target, Targets};
    use crate::config::Secret;
    use crate::hub::{EntitySpec, Group, Hub, Value};
    use crate::node::NodeInfo;
    use crate::status::AgentStatus;
    use crate::web::router;

    struct App {
        state: AppState,
        commands: Option<crate::command::CommandReceiver>,
    }

    fn app(token: Option<&str>) -> App {
        let hub = Hub::new(8);
        hub.register(EntitySpec::sensor("cpu_usage", "CPU usage", Group::System).unit("%"));
        hub.register(EntitySpec::binary_sensor("throttled", "Throttled", Group::System));
        hub.register(EntitySpec::sensor("load_1m", "Load (1 min)", Group::System).precision(2));
        hub.register(EntitySpec::output("relay", "Relay", Component::Switch));
        hub.set_at(
            "cpu_usage",
            Value::Number(12.345),
            UNIX_EPOCH + Duration::from_secs(86_400),
        );
        hub.set_at(
            "cpu_usage",
            Value::Number(14.0),
            UNIX_EPOCH + Duration::from_secs(86_410),
        );
        hub.set("throttled", Value::Bool(true));
        hub.set("relay", Value::Bool(false));
        let node = NodeInfo {
            id: "pi".into(),
            name: "Pi".into(),
            model: "Raspberry Pi 4 Model B".into(),
            manufacturer: "Raspberry Pi Ltd".into(),
            sw_version: "9.9.9".into(),
            configuration_url: None,
        };
        let status = Arc::new(AgentStatus::new(node, Some("localhost:1883".into()), None));
        let (sender, receiver) = crate::command::channel();
        let mut targets = Targets::new();
        targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
        let commands = Commands {
            targets: Arc::new(targets),
            sender,
        };
        App {
            state: AppState::new(hub, status, None, Some(commands), token.map(|t| Secret::new(t.into()))),
            commands: Some(receiver),
        }
    }

    /// Plays the outputs task: echoes every command's state on the hub.
    fn echo_outputs(app: &mut App) {
        let mut receiver = app.commands.take().expect("receiver");
        let hub = app.state.hub.clone();
        tokio::spawn(async move {
            while let Some(command) = receiver.recv().await {
                assert_eq!(command.target, Target::Output(OutputId(0)), "only the relay");
                hub.set("relay", Value::Bool(command.action == Action::On));
            }
        });
    }

    async fn call(app: &App, request: Request<Body>) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = router(app.state.clone()).oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).expect("request")
    }

    fn post(path: &str, token: Option<&str>, body: &str) -> Request<Body> {
        let mut request = Request::post(path).header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Body::from(body.to_owned())).expect("request")
    }

    #[tokio::test]
    async fn state_should_list_every_entity_with_value_unit_and_last_update() {
        let app = app(None);
        let (status, _, body) = call(&app, get("/api/state")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["node"]["id"], "pi");
        let entities = body["entities"].as_array().expect("array");
        assert_eq!(entities.len(), 4);
        assert_eq!(entities[0]["id"], "cpu_usage");
        assert_eq!(entities[0]["value"], 14.0);
        assert_eq!(entities[0]["state"], "14.0");
        assert_eq!(entities[0]["unit"], "%");
        assert_eq!(entities[0]["available"], true);
        assert_eq!(entities[0]["last_update"], "1970-01-02T00:00:10.000Z");
        assert_eq!(entities[1]["value"], true);
        assert_eq!(entities[1]["state"], "ON");
        assert_eq!(entities[1]["component"], "binary_sensor");
        assert!(entities[2]["value"].is_null() && entities[2]["last_update"].is_null());
    }

    #[tokio::test]
    async fn the_cached_state_should_follow_every_change() {
        let app = app(None);
        let (_, _, first) = call(&app, get("/api/state")).await;
        let (_, _, again) = call(&app, get("/api/state")).await;
        assert_eq!(first, again);
        app.state.hub.set("cpu_usage", Value::Number(99.0));
        let (_, _, changed) = call(&app, get("/api/state")).await;
        assert_eq!(changed["entities"][0]["value"], 99.0);
        app.state.hub.set_available("load_1m", false);
        let (_, _, unavailable) = call(&app, get("/api/state")).await;
        assert_eq!(unavailable["entities"][2]["available"], false);
    }

    #[tokio::test]
    async fn one_entity_and_its_history_should_be_served_and_unknown_ids_404() {
        let app = app(None);
        let (status, _, body) = call(&app, get("/api/entities/throttled")).await;
        assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("ON")));
        let (status, _, body) = call(&app, get("/api/history/cpu_usage")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["points"], json!([[86_400_000u64, 12.345], [86_410_000u64, 14.0]]));
        for path in ["/api/entities/nope", "/api/history/nope"] {
            let (status, _, body) = call(&app, get(path)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body["error"], "no entity `nope`");
        }
    }

    #[tokio::test]
    async fn health_should_report_version_mqtt_state_and_read_only() {
        let app = app(None);
        let (status, _, body) = call(&app, get("/api/health")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], "9.9.9");
        assert_eq!(body["read_only"], true);
        assert_eq!(body["mqtt"]["connected"], false);
        assert_eq!(body["mqtt"]["broker"], "localhost:1883");
    }

    #[tokio::test]
    async fn unknown_paths_should_get_a_json_404() {
        let app = app(None);
        let (status, _, body) = call(&app, get("/api/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no such resource: /api/nope");
    }

    #[tokio::test]
    async fn without_a_configured_token_writes_should_be_403_with_an_explanation() {
        let app = app(None);
        let (status, _, body) = call(&app, post("/api/outputs/relay", Some("anything"), r#"{"state":"ON"}"#)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("web.token")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_missing_or_wrong_token_should_be_401() {
        let app = app(Some("s3cret-token"));
        for token in [None, Some("wrong-token"), Some("s3cret-token-but-longer"), Some("")] {
            let (status, headers, body) = call(&app, post("/api/outputs/relay", token, r#"{"state":"ON"}"#)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
            assert!(headers.contains_key("www-authenticate"));
            assert!(body["error"].is_string());
        }
    }

    #[tokio::test]
    async fn a_good_token_should_switch_the_output_and_answer_with_its_echo() {
        let mut app = app(Some("s3cret-token"));
        echo_outputs(&mut app);
        let (status, _, body) = call(
            &app,
            post("/api/outputs/relay", Some("s3cret-token"), r#"{"state":"on"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"id": "relay", "state": "ON"}));
    }

    #[tokio::test]
    async fn bad_output_requests_should_be_404_400_or_422() {
        let app = app(Some("s3cret-token"));
        let token = Some("s3cret-token");
        let cases = [
            ("/api/outputs/nope", r#"{"state":"ON"}"#, StatusCode::NOT_FOUND),
            ("/api/outputs/cpu_usage", r#"{"state":"ON"}"#, StatusCode::NOT_FOUND),
            ("/api/outputs/relay", "not json", StatusCode::BAD_REQUEST),
            ("/api/outputs/relay", r#"["ON"]"#, StatusCode::BAD_REQUEST),
            (
                "/api/outputs/relay",
                r#"{"state":"ON","state":"OFF"}"#,
                StatusCode::BAD_REQUEST,
            ),
            ("/api/outputs/relay", " \n[\"ON\"]", StatusCode::BAD_REQUEST),
            (
                "/api/outputs/relay",
                r#"{"state":"ON","extra":1}"#,
                StatusCode::BAD_REQUEST,
            ),
            ("/api/outputs/relay", r#"{"state":true}"#, StatusCode::BAD_REQUEST),
            (
                "/api/outputs/relay",
                r#"{"state":"DIM"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (path, body, expected) in cases {
            let (status, _, json) = call(&app, post(path, token, body)).await;
            assert_eq!(status, expected, "{path} {body}: {json}");
            assert!(json["error"].is_string(), "{path} {body}");
        }
    }

    #[tokio::test]
    async fn oversized_bodies_should_be_rejected() {
        let app = app(Some("s3cret-token"));
        let big = format!("{{\"state\":\"{}\"}}", "x".repeat(64 * 1024));
        let (status, _, _) = call(&app, post("/api/outputs/relay", Some("s3cret-token"), &big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
