//! JSON API handlers. Errors are JSON objects with a message.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::hub::{Component, EntitySnapshot, Group, Value};
use crate::web::time::rfc3339;
use crate::web::AppState;

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    version: &'a str,
    node: &'a str,
    model: &'a str,
    uptime_s: u64,
    /// The GPIO backend ("rppal", "sim"), `null` when no pin is used.
    gpio: Option<&'a str>,
    mqtt: MqttHealth<'a>,
}

#[derive(Serialize)]
struct MqttHealth<'a> {
    enabled: bool,
    connected: bool,
    broker: Option<&'a str>,
    connects: u64,
    published: u64,
}

pub async fn health(State(state): State<AppState>) -> Response {
    let status = &state.status;
    Json(Health {
        status: "ok",
        version: &status.node.sw_version,
        node: &status.node.id,
        model: &status.node.model,
        uptime_s: status.started.elapsed().as_secs(),
        gpio: status.gpio,
        mqtt: MqttHealth {
            enabled: status.broker.is_some(),
            connected: status.mqtt_connected(),
            broker: status.broker.as_deref(),
            connects: status.mqtt_connects(),
            published: status.mqtt_published(),
        },
    })
    .into_response()
}

#[derive(Serialize)]
struct StateResponse<'a> {
    node: NodeView<'a>,
    entities: Vec<EntityView>,
}

#[derive(Serialize)]
struct NodeView<'a> {
    id: &'a str,
    name: &'a str,
    model: &'a str,
    version: &'a str,
}

/// One entity as the API shows it.
#[derive(Serialize)]
struct EntityView {
    id: String,
    name: String,
    component: Component,
    group: Group,
    /// A JSON number or boolean, `null` before the first value.
    value: serde_json::Value,
    /// The value as published on MQTT (`12.3`, `ON`).
    state: Option<String>,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    /// RFC 3339, UTC; `null` before the first value.
    last_update: Option<String>,
}

impl From<EntitySnapshot> for EntityView {
    fn from(entity: EntitySnapshot) -> EntityView {
        let spec = &entity.spec;
        let value = match &entity.value {
            Some(Value::Number(n)) => serde_json::Number::from_f64(round(*n, spec.precision))
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Some(Value::Bool(b)) => serde_json::Value::Bool(*b),
            None => serde_json::Value::Null,
        };
        EntityView {
            id: spec.id.clone(),
            name: spec.name.clone(),
            component: spec.component,
            group: spec.group,
            value,
            state: entity.value.as_ref().map(|v| v.render(spec.precision)),
            unit: spec.unit,
            device_class: spec.device_class,
            last_update: entity.updated.map(rfc3339),
        }
    }
}

fn round(n: f64, decimals: u8) -> f64 {
    let scale = 10f64.powi(i32::from(decimals));
    (n * scale).round() / scale
}

pub async fn state(State(state): State<AppState>) -> Response {
    let node = &state.status.node;
    Json(StateResponse {
        node: NodeView {
            id: &node.id,
            name: &node.name,
            model: &node.model,
            version: &node.sw_version,
        },
        entities: state.hub.snapshot().into_iter().map(EntityView::from).collect(),
    })
    .into_response()
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

/// A JSON error response: `{"error": "..."}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.to_owned(),
        }),
    )
        .into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no such resource: {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::hub::{EntitySpec, Hub};
    use crate::node::NodeInfo;
    use crate::status::AgentStatus;
    use crate::web::router;

    fn app() -> (axum::Router, Arc<Hub>) {
        let hub = Hub::new(8);
        hub.register(EntitySpec::sensor("cpu_usage", "CPU usage", Group::System).unit("%"));
        hub.register(EntitySpec::binary_sensor("throttled", "Throttled", Group::System));
        hub.register(EntitySpec::sensor("load_1m", "Load (1 min)", Group::System).precision(2));
        hub.set_at(
            "cpu_usage",
            Value::Number(12.345),
            UNIX_EPOCH + Duration::from_secs(86_400),
        );
        hub.set("throttled", Value::Bool(true));
        let node = NodeInfo {
            id: "pi".into(),
            name: "Pi".into(),
            model: "Raspberry Pi 4 Model B".into(),
            manufacturer: "Raspberry Pi Ltd".into(),
            sw_version: "9.9.9".into(),
            configuration_url: None,
        };
        let status = Arc::new(AgentStatus::new(node, Some("localhost:1883".into()), None));
        (
            router(crate::web::AppState {
                hub: hub.clone(),
                status,
                sim: None,
            }),
            hub,
        )
    }

    async fn get_json(router: axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn state_should_list_every_entity_with_value_unit_and_last_update() {
        let (router, _) = app();
        let (status, body) = get_json(router, "/api/state").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["node"]["id"], "pi");
        let entities = body["entities"].as_array().expect("array");
        assert_eq!(entities.len(), 3);
        assert_eq!(entities[0]["id"], "cpu_usage");
        assert_eq!(entities[0]["value"], 12.3);
        assert_eq!(entities[0]["state"], "12.3");
        assert_eq!(entities[0]["unit"], "%");
        assert_eq!(entities[0]["last_update"], "1970-01-02T00:00:00.000Z");
        assert_eq!(entities[1]["value"], true);
        assert_eq!(entities[1]["state"], "ON");
        assert_eq!(entities[1]["component"], "binary_sensor");
        assert!(entities[2]["value"].is_null() && entities[2]["last_update"].is_null());
    }

    #[tokio::test]
    async fn health_should_report_version_and_mqtt_state() {
        let (router, _) = app();
        let (status, body) = get_json(router, "/api/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], "9.9.9");
        assert_eq!(body["mqtt"]["enabled"], true);
        assert_eq!(body["mqtt"]["connected"], false);
        assert_eq!(body["mqtt"]["broker"], "localhost:1883");
    }

    #[tokio::test]
    async fn unknown_paths_should_get_a_json_404() {
        let (router, _) = app();
        let (status, body) = get_json(router, "/api/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no such resource: /api/nope");
    }

    #[tokio::test]
    async fn index_should_serve_the_embedded_page() {
        let (router, _) = app();
        let response = router
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        let page = String::from_utf8_lossy(&bytes);
        assert!(page.contains("/api/state"), "the page must load the state from the API");
    }
}
