//! What the HTTP side shows: the JSON views of entities, history and
//! health, shared by the API handlers (`api.rs`) and the event stream
//! (`events.rs`). Pure: from the hub's and the status' data to JSON.

use std::time::UNIX_EPOCH;

use serde::Serialize;
use serde_json::json;

use crate::hub::{EntitySnapshot, Group, Value};
use crate::time::rfc3339;
use crate::vocab::Component;
use crate::web::AppState;

/// `/api/health`, also sent on the event stream.
pub fn health_view(state: &AppState) -> serde_json::Value {
    let status = &state.status;
    json!({
        "status": "ok",
        "version": status.node.sw_version,
        "node": status.node.id,
        "name": status.node.name,
        "model": status.node.model,
        "uptime_s": status.started.elapsed().as_secs(),
        "gpio": status.gpio.as_ref().map(|(backend, _)| *backend),
        "gpio_reason": status.gpio.as_ref().map(|(_, reason)| reason),
        "read_only": state.token.is_none(),
        "sim": state.sim_panel.is_some(),
        "mqtt": {
            "enabled": status.broker.is_some(),
            "connected": status.mqtt_connected(),
            "broker": status.broker,
            "connects": status.mqtt_connects(),
            "published": status.mqtt_published(),
        },
    })
}

#[derive(Serialize)]
pub(super) struct NodeView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub model: &'a str,
    pub version: &'a str,
}

/// One entity as the API shows it.
#[derive(Serialize)]
pub struct EntityView {
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
    /// False while the source cannot read it.
    available: bool,
    /// Seconds without an update after which the value is stale.
    expire_after_s: Option<u64>,
    /// RFC 3339, UTC; `null` before the first value.
    last_update: Option<String>,
    /// Extra facts (an automation's `last_run`); absent when there are none.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    attributes: serde_json::Map<String, serde_json::Value>,
    /// `[[unix ms, value], …]`: only in the event stream's snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<(u64, f64)>>,
}

impl EntityView {
    /// The view with its history, as the event stream's snapshot shows it.
    pub fn with_history(self, history: Option<Vec<(u64, f64)>>) -> EntityView {
        EntityView { history, ..self }
    }
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
            available: entity.available,
            expire_after_s: spec.expire_after.map(|d| d.as_secs()),
            last_update: entity.updated.map(rfc3339),
            attributes: entity
                .attributes
                .into_iter()
                .map(|(key, value)| (key.to_owned(), serde_json::Value::String(value)))
                .collect(),
            history: None,
        }
    }
}

pub(super) fn round(n: f64, decimals: u8) -> f64 {
    let scale = 10f64.powi(i32::from(decimals));
    (n * scale).round() / scale
}

/// `[[unix ms, value], …]`, oldest first.
pub fn history_points(state: &AppState, id: &str) -> Option<Vec<(u64, f64)>> {
    let samples = state.hub.history(id)?;
    Some(
        samples
            .iter()
            .map(|s| {
                let ms = s.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                (ms, s.value)
            })
            .collect(),
    )
}

/// The body of `/api/state`, serialized straight from these structs: going
/// through `json!` built a map per entity first and cost 837k instead of
/// 452k instructions per request (docs/PERFORMANCE.md).
#[derive(Serialize)]
pub(super) struct StateView<'a> {
    pub node: NodeView<'a>,
    pub entities: Vec<EntityView>,
}

/// The fleet as `/api/fleet` and the `fleet` event show it: `enabled`, our
/// node id, every node, and every alert as `{node, alert}`. Serialized
/// straight from the table's nodes (no `serde_json::Value` tree: with 64
/// nodes that tree alone cost more than the table).
#[derive(Serialize)]
pub struct FleetView<'a> {
    enabled: bool,
    node: &'a str,
    nodes: &'a [crate::fleet::Node],
    alerts: Vec<AlertView<'a>>,
}

#[derive(Serialize)]
struct AlertView<'a> {
    node: &'a str,
    alert: &'static str,
}

/// `nodes`: the fleet's, from `Fleet::nodes` (see [`fleet_nodes`]).
pub fn fleet_view<'a>(state: &'a AppState, nodes: &'a [crate::fleet::Node]) -> FleetView<'a> {
    FleetView {
        enabled: state.fleet.is_some(),
        node: &state.status.node.id,
        nodes,
        alerts: nodes
            .iter()
            .flat_map(|n| n.alerts.iter().map(|alert| AlertView { node: &n.id, alert }))
            .collect(),
    }
}

/// Every node of the fleet, none when it is off.
pub fn fleet_nodes(state: &AppState) -> Vec<crate::fleet::Node> {
    state.fleet.as_ref().map(|f| f.nodes()).unwrap_or_default()
}
