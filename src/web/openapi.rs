//! The OpenAPI 3 document (`web/openapi.json`, kept by hand) and the tests
//! that hold it equal to the router's routes (which the router lists
//! itself in test builds: `web::Routes`).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const DOCUMENT: &str = include_str!("../../web/openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    //! The document against the real router: every documented operation is
    //! called, its answer must be one the document lists, and a JSON answer
    //! must fit the schema given for it. And the router's own list of paths
    //! (`web::Routes::paths`), each probed for the methods it serves, equals
    //! the document's operations: nothing routed is undocumented, nothing
    //! documented is unrouted.

    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value as Json;
    use tower::ServiceExt;

    use super::*;
    use crate::command::{Action, Commands, OutputId, Target, Targets};
    use crate::config::Secret;
    use crate::hal::sim::SimGpio;
    use crate::hal::Gpio;
    use crate::hub::{EntitySpec, Group, Hub, Value};
    use crate::sim_panel::SimPins;
    use crate::vocab::{Button, Component};
    use crate::web::{router, AppState};

    const TOKEN: &str = "openapi-token";

    fn document() -> Json {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// `(METHOD, path)` of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for (path, item) in document()["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
        routes
    }

    /// The methods a route may have.
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

    /// `(METHOD, path)` of every operation the router serves: the paths
    /// it was given (`Routes::paths`), each with the methods it does not
    /// refuse with 405.
    async fn routed(app: &axum::Router) -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for path in crate::web::Routes::paths() {
            for method in METHODS {
                let response = app
                    .clone()
                    .oneshot(request(method, path, true))
                    .await
                    .expect("infallible");
                if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                    routes.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        routes
    }

    /// A router over a hub with one entity of each kind, outputs that echo
    /// commands, a token and the sim panel: every route answers for real.
    fn app() -> (axum::Router, SimGpio) {
        let hub = Hub::new(8);
        hub.register(EntitySpec::sensor("temp", "Temp", Group::Sensors).unit("°C"));
        hub.register(EntitySpec::binary_sensor("door", "Door", Group::Inputs));
        hub.register(EntitySpec::output("relay", "Relay", Component::Switch));
        let mut automation = EntitySpec::output("automation_x", "Automation: x", Component::Switch);
        automation.group = Group::Automations;
        hub.register(automation);
        hub.register(EntitySpec::output(
            Button::Restart.id(),
            Button::Restart.name(),
            Component::Button,
        ));
        hub.set("temp", Value::Number(20.5));
        hub.set("temp", Value::Number(21.0));
        hub.set("door", Value::Bool(true));
        hub.set("relay", Value::Bool(false));
        let mut targets = Targets::new();
        targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
        let (sender, mut receiver) = crate::command::channel();
        let echo = hub.clone();
        tokio::spawn(async move {
            while let Some(command) = receiver.recv().await {
                echo.set("relay", Value::Bool(command.action == Action::On));
            }
        });
        let gpio = SimGpio::new();
        let (edges, _) = tokio::sync::mpsc::channel(8);
        let settings = crate::hal::InputSettings {
            pull: crate::vocab::Pull::Up,
            active_low: false,
        };
        let input = gpio.input(&crate::vocab::Pin::Bcm(17), settings, edges).expect("input");
        std::mem::forget(input);
        drop(gpio.output(&crate::vocab::Pin::Bcm(27), false).expect("output"));
        let panel: Arc<dyn crate::web::SimPanel> = Arc::new(SimPins {
            control: gpio.control(),
            inputs: vec![("door".into(), 17)],
            outputs: vec![("relay".into(), 27)],
        });
        let status = crate::status::AgentStatus::new(
            crate::fixtures::node(),
            Some("b:1883".into()),
            Some(("sim", "gpio.backend = \"sim\"".to_owned())),
        );
        let commands = Commands {
            targets: Arc::new(targets),
            sender,
        };
        let mut state = AppState::new(
            hub,
            Arc::new(status),
            Some(panel),
            Some(commands),
            Some(Secret::new(TOKEN.into())),
        )
        .with_fleet(Some(fleet()));
        // A command whose runner never runs: a request is queued, and
        // nothing is executed.
        let command = crate::config::CommandConfig {
            name: "relay".into(),
            label: "Relay".into(),
            kind: crate::config::CommandKind::Switch {
                on: crate::config::Program::Argv(vec!["true".into()]),
                off: crate::config::Program::Argv(vec!["true".into()]),
            },
            status: None,
            run: crate::config::RunSettings {
                timeout: std::time::Duration::from_secs(1),
                env: vec![],
                working_dir: "/".into(),
            },
            concurrency: crate::config::Concurrency::Refuse,
            unit: None,
        };
        let (handle, _runner) = crate::commands::start(&command, &|_| None);
        state.command_handles = Arc::new([handle]);
        (router(state), gpio)
    }

    /// A fleet with a node of every kind: online with every figure,
    /// offline, of unknown status.
    fn fleet() -> Arc<crate::fleet::Fleet> {
        use crate::fleet::{Fleet, Kind};
        let fleet = Fleet::new("pi");
        let info = br#"{"version":"1.2.3","name":"Pi","model":"Raspberry Pi 4","url":"http://10.0.0.2:8080/",
            "uptime_s":12,"cpu_temp_c":50.5,"throttled":false,"under_voltage":true,"disk_pct":95,"mem_pct":20,"time":1764460000}"#;
        fleet.observe(Kind::Info, "pi", info, true);
        fleet.observe(Kind::Status, "pi", b"online", false);
        fleet.observe(Kind::Status, "garage", b"offline", true);
        fleet.observe(Kind::Info, "shed", b"{}", true);
        fleet
    }

    /// The request a well-behaved client makes for an operation, its path
    /// parameters filled with `id` (an entity) or `name` (an output, a sim
    /// input).
    fn request(method: &str, path: &str, known: bool) -> Request<Body> {
        let (id, name) = if known { ("temp", "relay") } else { ("nope", "nope") };
        let name = if path.starts_with("/api/sim/") && known {
            "door"
        } else {
            name
        };
        let uri = path.replace("{id}", id).replace("{name}", name);
        let body = match method {
            "POST" if path.starts_with("/api/commands/") => r#"{"action": "on"}"#,
            "POST" => r#"{"state": "ON"}"#,
            "PUT" => r#"{"high": true}"#,
            _ => "",
        };
        Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            // The dashboard's assets are stored gzipped (406 without it).
            .header("accept-encoding", "gzip")
            .body(Body::from(body))
            .expect("request")
    }

    /// Where `value` does not fit `schema` (the subset of JSON Schema the
    /// document uses), as a path and a reason; empty when it fits.
    fn misfits(schema: &Json, value: &Json, at: &str, document: &Json, out: &mut Vec<String>) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &document["components"]["schemas"][name];
            assert!(target.is_object(), "{reference} is not in the document");
            return misfits(target, value, at, document, out);
        }
        if value.is_null() {
            if schema["nullable"] != true {
                out.push(format!("{at}: null, not nullable"));
            }
            return;
        }
        let fits = match schema["type"].as_str() {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_u64() || value.is_i64(),
            Some("number") => value.is_number(),
            Some(other) => panic!("{at}: the test knows no type {other}"),
        };
        if !fits {
            out.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                out.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().expect("required names");
            if value.get(key).is_none() {
                out.push(format!("{at}: `{key}` is missing"));
            }
        }
        if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object()) {
            for (key, property) in properties {
                if let Some(inner) = object.get(key) {
                    misfits(property, inner, &format!("{at}.{key}"), document, out);
                }
            }
            if schema["additionalProperties"] == false {
                for key in object.keys().filter(|k| !properties.contains_key(*k)) {
                    out.push(format!("{at}: `{key}` is not a documented property"));
                }
            }
        }
        if let Some(items) = value.as_array() {
            let len = items.len() as u64;
            if schema["minItems"].as_u64().is_some_and(|min| len < min)
                || schema["maxItems"].as_u64().is_some_and(|max| len > max)
            {
                out.push(format!("{at}: {len} items"));
            }
            for (index, item) in items.iter().enumerate() {
                misfits(&schema["items"], item, &format!("{at}[{index}]"), document, out);
            }
        }
    }

    /// Calls the operation and checks the answer against the document:
    /// a listed status, the listed content type, a body that fits.
    async fn probe(app: &axum::Router, method: &str, path: &str, known: bool) -> StatusCode {
        let document = document();
        let operation = &document["paths"][path][method.to_lowercase()];
        let response = app
            .clone()
            .oneshot(request(method, path, known))
            .await
            .expect("infallible");
        let status = response.status();
        let what = format!("{method} {path} ({})", if known { "known" } else { "unknown" });
        let listed = &operation["responses"][status.as_str()];
        assert!(
            listed.is_object(),
            "{what}: answered {status}, which the document does not list"
        );
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if let Some(content) = listed["content"].as_object() {
            assert!(
                content.keys().any(|listed| content_type.starts_with(listed.as_str())),
                "{what}: content type {content_type}, documented {:?}",
                content.keys().collect::<Vec<_>>()
            );
        }
        // An event stream never ends; its head is all there is to see.
        if content_type.starts_with("application/json") {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
            let body: Json = serde_json::from_slice(&bytes).expect("a JSON body");
            let schema = &listed["content"]["application/json"]["schema"];
            let mut problems = Vec::new();
            misfits(schema, &body, "body", &document, &mut problems);
            assert!(problems.is_empty(), "{what}: {problems:?}\n{body}");
        }
        status
    }

    #[tokio::test]
    async fn every_documented_operation_should_answer_as_documented() {
        let (app, _gpio) = app();
        let operations = documented();
        assert!(operations.len() >= 14, "the document lists only {operations:?}");
        for (method, path) in &operations {
            let status = probe(&app, method, path, true).await;
            assert!(status.is_success(), "{method} {path}: {status}");
            if path.contains('{') {
                let status = probe(&app, method, path, false).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path} for something unknown");
            }
        }
    }

    #[tokio::test]
    async fn the_router_and_the_document_should_list_the_same_operations() {
        let (app, _gpio) = app();
        let routed = routed(&app).await;
        assert!(routed.len() >= 14, "the router serves only {routed:?}");
        let documented = documented();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routed, but missing from web/openapi.json: {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(unrouted.is_empty(), "in web/openapi.json, but not routed: {unrouted:?}");
    }

    #[tokio::test]
    async fn the_router_should_tell_its_paths_and_their_methods() {
        // What the test above relies on: a path the router was given shows
        // up in `Routes::paths`, and its methods in `routed`.
        let paths = crate::web::Routes::paths();
        assert!(
            paths.contains(&"/api/sim/pins") && paths.contains(&"/metrics"),
            "{paths:?}"
        );
        let (app, _gpio) = app();
        let routed = routed(&app).await;
        assert!(routed.contains(&("POST".to_owned(), "/api/outputs/{name}".to_owned())));
        assert!(!routed.contains(&("GET".to_owned(), "/api/outputs/{name}".to_owned())));
    }

    #[test]
    fn the_schema_check_should_catch_a_misfit() {
        let document = document();
        let schema = serde_json::json!({ "$ref": "#/components/schemas/Entity" });
        let mut problems = Vec::new();
        let entity = serde_json::json!({ "id": 1, "component": "teapot", "available": true, "value": null });
        misfits(&schema, &entity, "body", &document, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn document_should_be_openapi_3_with_a_response_for_every_operation() {
        let document = document();
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
