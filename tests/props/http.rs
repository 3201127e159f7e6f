//! HTTP requests through the real router, in process (`Router::oneshot`):
//! arbitrary methods, paths, headers and bodies.
//!
//! The agent here has a sensor, a binary sensor, two outputs and the
//! simulated pins. Nothing may panic or answer 5xx (but the documented
//! 503s), every `/api` error is `{"error": "..."}`, and a command reaches
//! the outputs only from a well-formed request with the exact token.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::Router;
use majortom::command::{Action, Command, CommandReceiver, Commands, OutputId, Target, Targets};
use majortom::config::Secret;
use majortom::hal::sim::SimGpio;
use majortom::hal::{Edge, Gpio, InputPin, InputSettings, Pin};
use majortom::hub::{EntitySpec, Group, Hub, Value};
use majortom::node::NodeInfo;
use majortom::sim_panel::SimPins;
use majortom::status::AgentStatus;
use majortom::vocab::Component;
use majortom::vocab::Pull;
use majortom::web::{router, AppState};
use proptest::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::check;

const TOKEN: &str = "s3cret-token-for-fuzzing";
const BODY_LIMIT: usize = 4096;
const OUTPUTS: [&str; 2] = ["relay", "lamp"];

/// One agent's HTTP side, with what it may change watched.
struct Rig {
    runtime: Runtime,
    app: Router,
    state: AppState,
    commands: CommandReceiver,
    targets: Arc<Targets>,
    edges: mpsc::Receiver<Edge>,
    _input: Box<dyn InputPin>,
    sim: majortom::hal::sim::SimControl,
    read_only: bool,
}

fn runtime() -> Runtime {
    // Paused time: a command nobody echoes waits two virtual seconds.
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn rig(read_only: bool) -> Rig {
    let runtime = runtime();
    let hub = Hub::new(8);
    hub.register(EntitySpec::sensor("temp", "Temperature", Group::Sensors).unit("°C"));
    hub.register(EntitySpec::binary_sensor("door", "Door", Group::Inputs));
    hub.register(EntitySpec::output("relay", "Relay", Component::Switch));
    hub.register(EntitySpec::output("lamp", "Lamp", Component::Light));
    hub.set("temp", Value::Number(21.5));
    hub.set("door", Value::Bool(false));
    hub.set("relay", Value::Bool(false));
    hub.set("lamp", Value::Bool(true));
    let gpio = SimGpio::new();
    let (edge_tx, edges) = mpsc::channel(1024);
    let input = runtime
        .block_on(async {
            let settings = InputSettings {
                pull: Pull::Up,
                active_low: false,
            };
            gpio.input(&Pin::Bcm(17), settings, edge_tx)
        })
        .expect("claim input");
    let output = gpio.output(&Pin::Bcm(27), false).expect("claim output");
    drop(output);
    let sim = gpio.control();
    let pins = Arc::new(SimPins {
        control: sim.clone(),
        inputs: vec![("door".into(), 17)],
        outputs: vec![("relay".into(), 27)],
    });
    let node = NodeInfo {
        id: "pi".into(),
        name: "Pi".into(),
        model: "Raspberry Pi 4 Model B".into(),
        manufacturer: "Raspberry Pi Ltd".into(),
        sw_version: "0.0.0".into(),
        configuration_url: None,
    };
    let status = Arc::new(AgentStatus::new(
        node,
        Some("localhost:1883".into()),
        Some(("sim", "gpio.backend = \"sim\"".to_owned())),
    ));
    let (commands_tx, commands) = majortom::command::channel();
    let mut targets = Targets::new();
    targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
    targets.add("lamp", Component::Light, false, Target::Output(OutputId(1)));
    let targets = Arc::new(targets);
    let token = (!read_only).then(|| Secret::new(TOKEN.into()));
    let edge = Commands {
        targets: targets.clone(),
        sender: commands_tx,
    };
    let state = AppState::new(hub, status, Some(pins), Some(edge), token);
    Rig {
        runtime,
        targets,
        app: router(state.clone()),
        state,
        commands,
        edges,
        _input: input,
        sim,
        read_only,
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
    allow_origin: bool,
}

impl Rig {
    fn send(&self, request: Request<Body>) -> Answer {
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let allow_origin = response
                .headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-"));
            // An event stream never ends; its head is all there is to see.
            let body = if content_type.starts_with("text/event-stream") {
                Vec::new()
            } else {
                axum::body::to_bytes(response.into_body(), 4 << 20)
                    .await
                    .expect("body")
                    .to_vec()
            };
            Answer {
                status,
                content_type,
                body,
                allow_origin,
            }
        })
    }

    fn output_states(&self) -> Vec<Option<Value>> {
        OUTPUTS
            .iter()
            .map(|id| self.state.hub.get(id).and_then(|e| e.value))
            .collect()
    }
}

// ---- requests ---------------------------------------------------------------

/// Percent-encodes everything but what a URI path takes as is.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "relay", "lamp", "temp", "door", "nope", "..", ".", "", "%2e%2e", "%2F", "%00", "%ff", "%",
            "%zz", "rel%61y", "RELAY", "relay%20", "relay;x", "relay.json", "*", "events", "{name}",
        ])
        .prop_map(str::to_owned),
        2 => "[a-zA-Z0-9._~-]{1,20}",
        1 => any::<String>().prop_map(|s| encode(&s)),
        1 => (1usize..20_000).prop_map(|n| "a".repeat(n)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "",
        "/",
        "/api",
        "/api/state",
        "/api/health",
        "/api/entities",
        "/api/history",
        "/api/outputs",
        "/api/sim/inputs",
        "/api/sim/pins",
        "/api/openapi.json",
        "/metrics",
        "/app.js",
        "/style.css",
        "//api",
        "/API",
        "/api/",
    ]);
    let query = prop::option::of(prop_oneof![
        Just("?".to_owned()),
        Just("?a=b&c".to_owned()),
        Just("?%zz=%".to_owned()),
        "\\?[a-z=&%0-9]{0,30}",
    ]);
    (prefix, prop::collection::vec(segment(), 0..4), query).prop_map(|(prefix, segments, query)| {
        let mut path = prefix.to_owned();
        for segment in segments {
            path.push('/');
            path.push_str(&segment);
        }
        if path.is_empty() {
            path.push('/');
        }
        path.push_str(&query.unwrap_or_default());
        path
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        3 => Just(Method::GET),
        4 => Just(Method::POST),
        2 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::PATCH),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::TRACE),
        1 => Just(Method::CONNECT),
        1 => "[A-Za-z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).expect("token")),
    ]
}

fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(format!("Bearer {TOKEN}").into_bytes()),
        1 => Just(format!("Bearer {TOKEN} ").into_bytes()),
        1 => Just(format!("bearer {TOKEN}").into_bytes()),
        1 => Just(format!("BEARER {TOKEN}").into_bytes()),
        1 => Just(format!("Bearer  {TOKEN}").into_bytes()),
        1 => Just(format!("Bearer {TOKEN}x").into_bytes()),
        1 => Just(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]).into_bytes()),
        1 => Just(format!("Bearer {}", TOKEN.to_uppercase()).into_bytes()),
        1 => Just(TOKEN.as_bytes().to_vec()),
        1 => Just(b"Bearer".to_vec()),
        1 => Just(b"Bearer ".to_vec()),
        1 => Just(b"Basic dXNlcjpwYXNz".to_vec()),
        1 => Just(format!("Bearer {}", TOKEN.replace('e', "\u{0435}")).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (1usize..70_000).prop_map(|n| format!("Bearer {}", "x".repeat(n)).into_bytes()),
    ]
}

fn header_pair() -> impl Strategy<Value = (String, Vec<u8>)> {
    let content_type = prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"application/json; charset=utf-8".to_vec()),
        Just(b"text/plain".to_vec()),
        Just(b"multipart/form-data; boundary=x".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop_oneof![
        4 => authorization().prop_map(|v| ("authorization".to_owned(), v)),
        2 => content_type.prop_map(|v| ("content-type".to_owned(), v)),
        1 => prop::sample::select(vec!["http://evil.example", "null", "http://127.0.0.1:8080"])
            .prop_map(|v| ("origin".to_owned(), v.as_bytes().to_vec())),
        1 => "[0-9]{1,25}".prop_map(|v| ("content-length".to_owned(), v.into_bytes())),
        1 => prop::sample::select(vec!["chunked", "gzip", "identity, chunked"])
            .prop_map(|v| ("transfer-encoding".to_owned(), v.as_bytes().to_vec())),
        1 => prop::sample::select(vec!["gzip", "br", "*", ""])
            .prop_map(|v| ("accept-encoding".to_owned(), v.as_bytes().to_vec())),
        2 => ("[a-z][a-z0-9-]{0,20}", prop::collection::vec(any::<u8>(), 0..100)),
        1 => ("[a-z][a-z0-9-]{0,20}", (1usize..70_000).prop_map(|n| vec![b'v'; n])),
    ]
}

/// Bodies near `{"state": "ON"}` and `{"high": true}`.
fn near_json() -> impl Strategy<Value = Vec<u8>> {
    let state = prop_oneof![
        Just("ON"),
        Just("off"),
        Just("Toggle"),
        Just(" on "),
        Just("DIM"),
        Just(""),
        Just("\\u004fN"),
        Just("O\\u0000N"),
        Just("ON\\n"),
    ];
    let ws = prop::sample::select(vec!["", " ", "\n", "\t", "\r\n  "]);
    let shape = prop_oneof![
        Just(r#"{"state":"S"}"#),
        Just(r#"{W"state"W:W"S"W}"#),
        Just(r#"{"state":"S","extra":1}"#),
        Just(r#"{"state":"S","state":"OFF"}"#),
        Just(r#"{"State":"S"}"#),
        Just(r#"{"state":true}"#),
        Just(r#"{"state":null}"#),
        Just(r#"{"state":["S"]}"#),
        Just(r#"{"state":{"state":"S"}}"#),
        Just(r#"["S"]"#),
        Just(r#""S""#),
        Just("S"),
        Just(r#"{"state":"S""#),
        Just(r#"{"high":true}"#),
        Just(r#"{"high":1}"#),
        Just(r#"{"high":true,"low":false}"#),
        Just("{}"),
        Just("null"),
    ];
    (shape, state, ws).prop_map(|(shape, state, ws)| shape.replace('S', state).replace('W', ws).into_bytes())
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        4 => near_json(),
        2 => prop::collection::vec(any::<u8>(), 0..300),
        1 => (1usize..3_000, any::<bool>()).prop_map(|(depth, arrays)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"state\":", "}") };
            format!("{}\"ON\"{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }),
        1 => (BODY_LIMIT - 20..BODY_LIMIT + 20, any::<bool>()).prop_map(|(n, valid)| {
            if valid {
                format!("{{\"state\":\"ON\"{}}}", " ".repeat(n.saturating_sub(15))).into_bytes()
            } else {
                vec![b'x'; n]
            }
        }),
        1 => (BODY_LIMIT..200_000).prop_map(|n| format!("{{\"state\":\"{}\"}}", "O".repeat(n)).into_bytes()),
    ]
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Req> {
    (method(), path(), prop::collection::vec(header_pair(), 0..6), body()).prop_map(|(method, uri, headers, body)| {
        Req {
            method,
            uri,
            headers,
            body,
        }
    })
}

impl Req {
    /// The request as hyper would hand it over, or `None` where hyper itself
    /// refuses it (an invalid URI or header) before any routing.
    fn build(&self) -> Option<Request<Body>> {
        let uri = Uri::try_from(self.uri.as_str()).ok()?;
        let mut request = Request::builder().method(self.method.clone()).uri(uri);
        for (name, value) in &self.headers {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) else {
                continue;
            };
            request = request.header(name, value);
        }
        request.body(Body::from(self.body.clone())).ok()
    }

    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    /// The first `Authorization` header hyper would keep.
    fn has_exact_token(&self) -> bool {
        let first = self
            .headers
            .iter()
            .find(|(name, value)| name == "authorization" && HeaderValue::from_bytes(value).is_ok());
        // `<scheme> <token>`: the scheme in any case, spaces before the
        // token ignored, the token exact.
        first.is_some_and(|(_, value)| {
            std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.split_once(' '))
                .is_some_and(|(scheme, token)| {
                    scheme.eq_ignore_ascii_case("bearer") && token.trim_start_matches(' ') == TOKEN
                })
        })
    }

    /// The output a well-formed `POST /api/outputs/{name}` names, decoded as
    /// axum decodes path parameters.
    fn output(&self) -> Option<String> {
        let name = self.path().strip_prefix("/api/outputs/")?;
        if name.contains('/') {
            return None;
        }
        let decoded = percent_decode(name)?;
        OUTPUTS.contains(&decoded.as_str()).then_some(decoded)
    }

    /// The action of a body that is exactly `{"state": "<action>"}`.
    fn action(&self) -> Option<Action> {
        if self.body.len() > BODY_LIMIT {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let state = match &value {
            serde_json::Value::Object(object) if object.len() == 1 && !has_duplicate_keys(&self.body) => {
                object.get("state")?
            }
            _ => return None,
        };
        // The outputs here are switches: PRESS is for buttons.
        Action::parse(state.as_str()?.as_bytes()).filter(|a| *a != Action::Press)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// serde refuses `{"state": .., "state": ..}`; serde_json's `Value` keeps
/// the last. Good enough for the bodies generated here.
fn has_duplicate_keys(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).matches("\"state\"").count() > 1
}

fn is_json_error(answer: &Answer) -> bool {
    answer.content_type.starts_with("application/json")
        && serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(|e| !e.trim().is_empty()))
            .unwrap_or(false)
}

fn drain(rig: &mut Rig) -> Vec<Command> {
    let mut received = Vec::new();
    while let Ok(command) = rig.commands.try_recv() {
        received.push(command);
    }
    received
}

#[test]
fn arbitrary_requests_should_never_fail_the_server_or_change_state_without_the_token() {
    let rigs = [RefCell::new(rig(false)), RefCell::new(rig(true))];
    let before: Vec<_> = rigs.iter().map(|r| r.borrow().output_states()).collect();
    let sim_outputs = rigs[0].borrow().sim.output(27);
    let sim_input_changes = Cell::new(0usize);
    let commands_sent = Cell::new(0usize);
    // Requests with a URI or header hyper itself refuses before routing.
    let unroutable = Cell::new(0usize);
    let requests = prop_oneof![
        3 => request(),
        2 => (good_request(), mutation()).prop_map(|((req, _), mutation)| mutation.apply(req)),
        1 => sim_request(),
    ];
    check(
        "http::random_requests",
        (requests, any::<bool>()),
        |(req, read_only)| {
            let Some(built) = req.build() else {
                unroutable.set(unroutable.get() + 1);
                return Ok(());
            };
            let mut rig = rigs[usize::from(read_only)].borrow_mut();
            prop_assert_eq!(rig.read_only, read_only);
            let answer = rig.send(built);
            let shown = || {
                format!(
                    "{} {} → {} {} {:?}",
                    req.method,
                    req.uri,
                    answer.status,
                    answer.content_type,
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                )
            };
            // No server errors, but the documented 503s, which say why.
            prop_assert!(
                !answer.status.is_server_error()
                    || (answer.status == StatusCode::SERVICE_UNAVAILABLE && is_json_error(&answer)),
                "{}",
                shown()
            );
            // `/api` itself is the API's HTML page; below it, JSON.
            let api = req.path().starts_with("/api/");
            if api && answer.status.is_client_error() && req.method != Method::HEAD {
                prop_assert!(is_json_error(&answer), "not a JSON error: {}", shown());
            }
            prop_assert!(!answer.allow_origin, "CORS headers: {}", shown());
            // What changed.
            let received = drain(&mut rig);
            let expected = match (
                req.method == Method::POST,
                read_only,
                req.has_exact_token(),
                req.output(),
                req.action(),
            ) {
                (true, false, true, Some(output), Some(action)) => Some((output, action)),
                _ => None,
            };
            match (received.as_slice(), &expected) {
                ([], None) => {}
                ([command], Some((output, action))) => {
                    prop_assert_eq!(rig.targets.id_of(command.target), Some(output.as_str()));
                    prop_assert_eq!(command.action, *action);
                    prop_assert!(
                        answer.status == StatusCode::ACCEPTED || answer.status == StatusCode::OK,
                        "{}",
                        shown()
                    );
                }
                (received, expected) => {
                    prop_assert!(false, "sent {received:?}, expected {expected:?}: {}", shown());
                }
            }
            commands_sent.set(commands_sent.get() + received.len());
            prop_assert_eq!(rig.output_states(), before[usize::from(read_only)].clone());
            prop_assert_eq!(rig.sim.output(27), sim_outputs);
            while rig.edges.try_recv().is_ok() {
                sim_input_changes.set(sim_input_changes.get() + 1);
            }
            Ok(())
        },
    );
    println!(
        "  {} not routable (hyper refuses the URI); commands sent by requests with the token: {}; \
         simulated input edges: {}",
        unroutable.get(),
        commands_sent.get(),
        sim_input_changes.get()
    );
}

/// One change to a good request, which may or may not spoil it.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Method(Method),
    DropToken,
    Token(Vec<u8>),
    /// Another `Authorization` header before the good one.
    TokenBefore(Vec<u8>),
    Path(String),
    Body(Vec<u8>),
    Headers(Vec<(String, Vec<u8>)>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        1 => method().prop_map(Mutation::Method),
        1 => Just(Mutation::DropToken),
        2 => authorization().prop_map(Mutation::Token),
        1 => authorization().prop_map(Mutation::TokenBefore),
        1 => path().prop_map(Mutation::Path),
        2 => body().prop_map(Mutation::Body),
        1 => prop::collection::vec(header_pair(), 1..4).prop_map(Mutation::Headers),
    ]
}

impl Mutation {
    fn apply(self, mut req: Req) -> Req {
        match self {
            Mutation::None => {}
            Mutation::Method(method) => req.method = method,
            Mutation::DropToken => req.headers.retain(|(name, _)| name != "authorization"),
            Mutation::Token(value) => req.headers[0].1 = value,
            Mutation::TokenBefore(value) => req.headers.insert(0, ("authorization".to_owned(), value)),
            Mutation::Path(path) => req.uri = path,
            Mutation::Body(body) => req.body = body,
            Mutation::Headers(headers) => req.headers.extend(headers),
        }
        req
    }
}

/// `PUT /api/sim/inputs/…` with random headers and near-valid bodies.
fn sim_request() -> impl Strategy<Value = Req> {
    let body = prop_oneof![
        any::<bool>().prop_map(|high| format!("{{\"high\": {high}}}").into_bytes()),
        near_json(),
    ];
    (
        prop::sample::select(vec!["door", "nope", "relay", "d%6for"]),
        prop::collection::vec(header_pair(), 0..3),
        body,
    )
        .prop_map(|(name, headers, body)| Req {
            method: Method::PUT,
            uri: format!("/api/sim/inputs/{name}"),
            headers,
            body,
        })
}

/// A request that should work: the exact token, a valid state in any case
/// and spacing, and harmless extras (a query, other headers).
fn good_request() -> impl Strategy<Value = (Req, Action)> {
    let word = prop::sample::select(vec![
        ("on", Action::On),
        ("off", Action::Off),
        ("toggle", Action::Toggle),
    ]);
    let case = prop::collection::vec(any::<bool>(), 6);
    let ws = prop::sample::select(vec!["", " ", "\t", "\n "]);
    // Inside the JSON string, whitespace other than a space is escaped.
    let inner = prop::sample::select(vec!["", " ", "\\t", "\\n", "  "]);
    let extras = prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec!["text/plain", "application/json", "x/y"])
                .prop_map(|v| ("content-type".to_owned(), v.as_bytes().to_vec())),
            Just(("origin".to_owned(), b"http://evil.example".to_vec())),
            ("x-[a-z]{1,10}", "[ -~]{0,40}").prop_map(|(n, v)| (n, v.into_bytes())),
        ],
        0..3,
    );
    let query = prop::option::of("\\?[a-z=&]{0,10}");
    (
        prop::sample::select(OUTPUTS.to_vec()),
        word,
        case,
        (ws.clone(), ws, inner.clone(), inner),
        extras,
        query,
    )
        .prop_map(
            |(output, (word, action), case, (before, after, lead, trail), extras, query)| {
                let word: String = word
                    .chars()
                    .zip(case)
                    .map(|(c, upper)| if upper { c.to_ascii_uppercase() } else { c })
                    .collect();
                let mut headers = vec![("authorization".to_owned(), format!("Bearer {TOKEN}").into_bytes())];
                headers.extend(extras);
                let req = Req {
                    method: Method::POST,
                    uri: format!("/api/outputs/{output}{}", query.unwrap_or_default()),
                    headers,
                    body: format!("{before}{{{before}\"state\"{after}:{before}\"{lead}{word}{trail}\"{after}}}{after}")
                        .into_bytes(),
                };
                (req, action)
            },
        )
}

#[test]
fn good_requests_with_the_token_should_switch_outputs_and_report_the_echo() {
    let rig = rig(false);
    // Plays the outputs: applies each command to the hub, as the real
    // outputs task echoes the pin's state.
    let hub = rig.state.hub.clone();
    let targets = rig.targets.clone();
    let mut commands = rig.commands;
    let (seen_tx, seen) = std::sync::mpsc::channel();
    rig.runtime.spawn(async move {
        while let Some(command) = commands.recv().await {
            let output = targets.id_of(command.target).unwrap_or_default().to_owned();
            let now = hub.get(&output).and_then(|e| e.value) == Some(Value::Bool(true));
            let next = match command.action {
                Action::On => true,
                Action::Off => false,
                Action::Toggle => !now,
                // Never sent to a switch or an on/off light: the API
                // refuses them (422).
                Action::Press | Action::Level(_) => now,
            };
            let _ = seen_tx.send(command);
            hub.set(&output, Value::Bool(next));
        }
    });
    let app = rig.app.clone();
    check("http::good_requests", good_request(), |(req, action)| {
        let output = req.output().expect("an output");
        let before = rig.state.hub.get(&output).and_then(|e| e.value) == Some(Value::Bool(true));
        let request = req.build().expect("valid request");
        let (status, body) = rig.runtime.block_on(async {
            let response = app.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
            )
        });
        prop_assert_eq!(status, StatusCode::OK, "{:?} → {}", req, body);
        let command = seen.try_recv().expect("the command reached the outputs");
        prop_assert_eq!(rig.targets.id_of(command.target), Some(output.as_str()));
        prop_assert_eq!(command.action, action);
        let after = match action {
            Action::On => true,
            Action::Off => false,
            Action::Toggle => !before,
            Action::Press | Action::Level(_) => before,
        };
        prop_assert_eq!(&body["id"], output.as_str());
        prop_assert_eq!(&body["state"], if after { "ON" } else { "OFF" });
        Ok(())
    });
}

#[test]
fn the_event_stream_should_open_for_any_get_and_refuse_other_methods_in_json() {
    let rig = rig(false);
    let headers = prop::collection::vec(header_pair(), 0..4);
    let query = prop::option::of("\\?[a-z=&%0-9]{0,20}");
    let strategy = (method(), headers, query, body());
    check("http::event_stream", strategy, |(method, headers, query, body)| {
        let req = Req {
            method: method.clone(),
            uri: format!("/api/events{}", query.unwrap_or_default()),
            headers,
            body,
        };
        let Some(request) = req.build() else {
            return Ok(());
        };
        let answer = rig.send(request);
        if method == Method::GET || method == Method::HEAD {
            prop_assert_eq!(answer.status, StatusCode::OK);
            prop_assert!(answer.content_type.starts_with("text/event-stream"));
        } else {
            prop_assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
            prop_assert!(is_json_error(&answer), "{:?}", String::from_utf8_lossy(&answer.body));
        }
        prop_assert!(!answer.allow_origin);
        // Every stream that was opened is closed again.
        prop_assert_eq!(rig.state.sse_clients.load(std::sync::atomic::Ordering::Acquire), 0);
        Ok(())
    });
}

// ---- CORS -----------------------------------------------------------------

fn cors_request(method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("accept-encoding", "gzip")
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .body(Body::empty())
        .expect("request")
}

#[test]
fn cross_origin_reads_should_get_no_cors_allowance() {
    let rig = rig(false);
    for path in ["/api/state", "/api/health", "/api/entities/temp", "/metrics", "/"] {
        let response = rig
            .runtime
            .block_on(rig.app.clone().oneshot(cors_request(Method::GET, path)))
            .expect("ok");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            !response.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{path} allows another origin"
        );
    }
}

#[test]
fn a_preflight_for_a_write_should_not_be_allowed() {
    let rig = rig(false);
    for path in ["/api/outputs/relay", "/api/outputs/x", "/api/sim/inputs/door"] {
        let response = rig
            .runtime
            .block_on(rig.app.clone().oneshot(cors_request(Method::OPTIONS, path)))
            .expect("ok");
        assert!(!response.status().is_success(), "{path}: {}", response.status());
        for name in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ] {
            assert!(!response.headers().contains_key(&name), "{path} sends {name}");
        }
    }
    // So the browser never sends the POST; if one arrives anyway (no
    // preflight for a "simple" request), it still needs the token.
    let mut rig = rig;
    let simple = Request::post("/api/outputs/relay")
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"state":"ON"}"#))
        .expect("request");
    let answer = rig.send(simple);
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(drain(&mut rig).is_empty());
}
