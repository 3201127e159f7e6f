//! `GET /api/events`: the dashboard's live feed, as Server-Sent Events.
//!
//! A `snapshot` first (health and every entity with its history), then an
//! `entity` event per change, `press` per button press, and `health` every
//! few seconds. With the fleet on, `fleet_node` per changed node (its
//! `/api/fleet` entry) and `fleet_gone` (`{"id"}`) per node removed; a
//! client behind on those gets the whole `fleet` (as `/api/fleet`). A
//! client that falls behind gets a fresh snapshot. Every
//! stream ends when the server stops, so a graceful shutdown never waits
//! on an open dashboard; the browser's EventSource reconnects by itself.
//!
//! Each change is encoded once, into one SSE frame that every stream sends
//! as is (the changes waiting together, a sensor round's, share a frame):
//! [`Frames`] runs one encoder task while any stream is open (none runs
//! without a dashboard), and each stream only forwards its frames. Only
//! the snapshot is a stream's own, and it is serialized straight into its
//! frame: 50 dashboards opening at once leave the allocator little to keep.

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::json;
use tokio::sync::broadcast;

use crate::fleet::Change;
use crate::hub::{EntitySnapshot, HubEvent};
use crate::web::clients::{ClientIp, Slot};
use crate::web::errors::error;
use crate::web::views::{fleet_nodes, fleet_view, health_view, history_points, EntityView};
use crate::web::AppState;

/// More open streams than this are refused: each holds a socket and a
/// little memory (its connection's buffers), and a Pi Zero has few of both.
/// Room for 50 dashboards and a few more.
pub const MAX_CLIENTS: usize = 64;
/// Open streams one client address may hold (a browser with a few tabs),
/// so that one client cannot take them all.
pub const MAX_CLIENTS_PER_IP: usize = 8;
const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// Frames a stream may fall behind before it gets a fresh snapshot. The
/// channel keeps this many frames alive, so it stays small.
const FRAMES_BEHIND: usize = 64;
/// Changes waiting together go into one frame up to about this size.
const MAX_BATCH_BYTES: usize = 16 * 1024;

/// Counts open streams; the count drops when a stream is dropped.
struct ClientSlot(Arc<AtomicUsize>);

impl ClientSlot {
    fn take(counter: &Arc<AtomicUsize>) -> Option<ClientSlot> {
        let taken = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_CLIENTS).then_some(n + 1)
        });
        taken.ok().map(|_| ClientSlot(counter.clone()))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One SSE frame for every stream, or `None`: the encoder fell behind the
/// hub, and every stream sends a fresh snapshot instead.
type Frame = Option<Bytes>;

/// The hub's and the fleet's changes, and the health every few seconds,
/// each encoded once as an SSE frame and sent to every open stream.
#[derive(Default)]
pub struct Frames {
    /// The encoder's channel while it runs: it starts with the first
    /// stream and stops at shutdown or when it finds no stream left. A std
    /// mutex held only to subscribe, start or stop, so that a stream never
    /// subscribes to an encoder that is stopping.
    running: Mutex<Option<broadcast::Sender<Frame>>>,
    /// The last snapshot's length: the next one's buffer is sized from it.
    snapshot_len: AtomicUsize,
    /// Frames encoded, for the tests that hold "once per change".
    #[cfg(test)]
    encoded: AtomicUsize,
}

impl Frames {
    /// The frames from now on, starting the encoder if none runs. The
    /// encoder subscribes to the hub here, before the caller's snapshot,
    /// so no change falls between the two.
    fn subscribe(&self, state: &AppState) -> broadcast::Receiver<Frame> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(frames) = running.as_ref() {
            return frames.subscribe();
        }
        let (frames, receiver) = broadcast::channel(FRAMES_BEHIND);
        let encoder = Encoder {
            changes: state.hub.subscribe(),
            fleet: state.fleet.as_ref().map(|f| f.subscribe()),
            frames: frames.clone(),
            state: state.clone(),
        };
        *running = Some(frames);
        tokio::spawn(encoder.run());
        receiver
    }

    /// Called by the encoder before it stops: `true` (and the encoder is
    /// forgotten) unless `force` is false and a stream still listens.
    fn stop(&self, frames: &broadcast::Sender<Frame>, force: bool) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if !force && frames.receiver_count() > 0 {
            return false;
        }
        *running = None;
        true
    }
}

/// The one task that encodes; its `AppState` holds the same [`Frames`].
struct Encoder {
    state: AppState,
    changes: broadcast::Receiver<HubEvent>,
    /// The fleet's changes, when the fleet is on.
    fleet: Option<broadcast::Receiver<Change>>,
    frames: broadcast::Sender<Frame>,
}

impl Encoder {
    async fn run(mut self) {
        // On the shared grid: in the same wake-up as the system round.
        let mut health = crate::time::aligned_interval(HEALTH_EVERY);
        health.tick().await; // A new stream's snapshot carries the health already.
        let shutdown = self.state.shutdown.clone();
        loop {
            let frame = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                change = self.changes.recv() => match change {
                    Ok(change) => match self.encode_changes(change) {
                        // Entities gone meanwhile: nothing to send.
                        Some(frame) if frame.is_empty() => continue,
                        frame => frame,
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = health.tick() => Some(self.encode("health", &health_view(&self.state))),
                change = next_fleet(self.fleet.as_mut()) => match change {
                    Ok(Change::Node(node) | Change::Status { node, .. }) => Some(self.encode("fleet_node", &node)),
                    Ok(Change::Removed(id)) => Some(self.encode("fleet_gone", &json!({ "id": id }))),
                    // The node's own change, just before, shows it.
                    Ok(Change::Alert { .. }) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let nodes = fleet_nodes(&self.state);
                        Some(self.encode("fleet", &fleet_view(&self.state, &nodes)))
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.fleet = None;
                        continue;
                    }
                },
            };
            // No stream left: stop, unless one subscribed meanwhile (it
            // took its snapshot after this change, so it misses nothing).
            if self.frames.send(frame).is_err() && self.state.sse_frames.stop(&self.frames, false) {
                return;
            }
        }
        // Forgetting the channel closes it: every stream ends.
        self.state.sse_frames.stop(&self.frames, true);
    }

    /// `change` and every change already waiting behind it (a sensor
    /// round's, most often), encoded into one frame: each stream then
    /// queues and writes one buffer a round, not one per change. `None`
    /// if the encoder fell behind the hub meanwhile.
    fn encode_changes(&mut self, mut change: HubEvent) -> Frame {
        let mut frame = Vec::with_capacity(256);
        loop {
            match change {
                HubEvent::Registered(spec)
                | HubEvent::Updated(spec, _)
                | HubEvent::Availability(spec, _)
                | HubEvent::Attributes(spec) => {
                    if let Some(entity) = self.state.hub.get(&spec.id) {
                        self.encode_into(&mut frame, "entity", &EntityView::from(entity));
                    }
                }
                HubEvent::Pressed(spec, press) => {
                    let press = json!({ "id": spec.id, "press": press.as_str() });
                    self.encode_into(&mut frame, "press", &press);
                }
            }
            if frame.len() >= MAX_BATCH_BYTES {
                break;
            }
            change = match self.changes.try_recv() {
                Ok(change) => change,
                Err(broadcast::error::TryRecvError::Lagged(_)) => return None,
                Err(_) => break,
            };
        }
        Some(Bytes::from(frame))
    }

    fn encode(&self, name: &str, data: &impl serde::Serialize) -> Bytes {
        let mut frame = Vec::with_capacity(128);
        self.encode_into(&mut frame, name, data);
        Bytes::from(frame)
    }

    fn encode_into(&self, frame: &mut Vec<u8>, name: &str, data: &impl serde::Serialize) {
        #[cfg(test)]
        self.state.sse_frames.encoded.fetch_add(1, Ordering::Relaxed);
        write_event(frame, name, data);
    }
}

struct Feed {
    state: AppState,
    frames: broadcast::Receiver<Frame>,
    snapshot_due: bool,
    _slot: ClientSlot,
    /// The client's place (none without a known address).
    _client_slot: Option<Slot>,
}

pub async fn events(State(state): State<AppState>, client: Option<axum::Extension<ClientIp>>) -> Response {
    let client_slot = match client {
        Some(client) => match state.sse_per_client.take(client.0 .0) {
            Some(slot) => Some(slot),
            None => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many open dashboards from this address; close one and retry",
                )
            }
        },
        None => None,
    };
    let Some(slot) = ClientSlot::take(&state.sse_clients) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open dashboards; close one and retry",
        );
    };
    let feed = Feed {
        frames: state.sse_frames.subscribe(&state),
        state,
        snapshot_due: true,
        _slot: slot,
        _client_slot: client_slot,
    };
    // No keep-alive comments: the health every few seconds keeps the
    // connection busy.
    let body = Body::from_stream(stream::unfold(feed, |mut feed| async move {
        let frame = feed.next().await?;
        Some((Ok::<_, Infallible>(frame), feed))
    }));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

impl Feed {
    /// The next frame, or `None` when the server stops.
    async fn next(&mut self) -> Option<Bytes> {
        if std::mem::take(&mut self.snapshot_due) {
            return Some(self.snapshot());
        }
        tokio::select! {
            biased;
            () = self.state.shutdown.cancelled() => None,
            frame = self.frames.recv() => match frame {
                Ok(Some(frame)) => Some(frame),
                Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => Some(self.snapshot()),
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }

    /// The health and every entity with its history, serialized straight
    /// into the frame (no `serde_json::Value` tree: a node per point of
    /// every history, for each stream) and one entity at a time, into a
    /// buffer sized from the last snapshot, so that 50 streams opening at
    /// once leave the allocator little to keep.
    fn snapshot(&self) -> Bytes {
        let frames = &self.state.sse_frames;
        let view = SnapshotView {
            health: health_view(&self.state),
            entities: Entities {
                state: &self.state,
                list: RefCell::new(self.state.hub.snapshot()),
            },
        };
        let last = frames.snapshot_len.load(Ordering::Relaxed);
        let frame = sse_frame("snapshot", &view, last + last / 8 + 128);
        frames.snapshot_len.store(frame.len(), Ordering::Relaxed);
        frame
    }
}

#[derive(serde::Serialize)]
struct SnapshotView<'a> {
    health: serde_json::Value,
    entities: Entities<'a>,
}

/// The hub's entities, each with its history, made into a view only when
/// serialized: one history at a time in memory. Serialized once: the list
/// is handed over as it is written (a second time would write `[]`).
struct Entities<'a> {
    state: &'a AppState,
    list: RefCell<Vec<EntitySnapshot>>,
}

impl serde::Serialize for Entities<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let list = std::mem::take(&mut *self.list.borrow_mut());
        serializer.collect_seq(list.into_iter().map(|entity| {
            let history = history_points(self.state, &entity.spec.id);
            EntityView::from(entity).with_history(history)
        }))
    }
}

/// The next fleet change; pending forever without the fleet.
async fn next_fleet(fleet: Option<&mut broadcast::Receiver<Change>>) -> Result<Change, broadcast::error::RecvError> {
    match fleet {
        Some(fleet) => fleet.recv().await,
        None => std::future::pending().await,
    }
}

/// One event alone in a frame of `capacity` bytes to start with.
fn sse_frame(name: &str, data: &impl serde::Serialize, capacity: usize) -> Bytes {
    let mut frame = Vec::with_capacity(capacity);
    write_event(&mut frame, name, data);
    Bytes::from(frame)
}

/// Appends `event: {name}\ndata: {JSON}\n\n`. Compact JSON has no raw
/// newline, so one `data` line holds it all.
fn write_event(frame: &mut Vec<u8>, name: &str, data: &impl serde::Serialize) {
    let start = frame_head(frame, name);
    if serde_json::to_writer(&mut *frame, data).is_err() {
        frame.truncate(start);
        frame.extend_from_slice(b"null");
    }
    frame.extend_from_slice(b"\n\n");
}

// The head apart from the generic part, so that each type framed adds
// only its `to_writer` (armv6 bytes).
#[inline(never)]
fn frame_head(frame: &mut Vec<u8>, name: &str) -> usize {
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(name.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    frame.len()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::hub::Value;
    use crate::web::router;

    fn state() -> AppState {
        crate::fixtures::web_state_with_one_sensor()
    }

    /// Reads frames until `want` complete SSE events arrived; returns them.
    async fn read_events(body: &mut Body, want: usize) -> Vec<String> {
        let mut text = String::new();
        while text.matches("\n\n").count() < want {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("an event within 5 s")
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        text.split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn stream_should_start_with_a_snapshot_then_send_each_change() {
        let state = state();
        let response = router(state.clone())
            .oneshot(Request::get("/api/events").body(Body::empty()).expect("req"))
            .await
            .expect("ok");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        let first = read_events(&mut body, 1).await;
        assert!(first[0].starts_with("event: snapshot\ndata: "), "{first:?}");
        assert!(first[0].contains("\"history\":[["), "{first:?}");
        state.hub.set("temp", Value::Number(21.0));
        let next = read_events(&mut body, 1).await;
        assert!(next[0].starts_with("event: entity\ndata: "), "{next:?}");
        assert!(next[0].contains("\"state\":\"21.0\""), "{next:?}");
        assert_eq!(state.sse_clients.load(Ordering::Acquire), 1);
        drop(body);
        assert_eq!(
            state.sse_clients.load(Ordering::Acquire),
            0,
            "a closed stream frees its slot"
        );
    }

    #[tokio::test]
    async fn stream_should_end_when_the_server_shuts_down() {
        let state = state();
        let response = router(state.clone())
            .oneshot(Request::get("/api/events").body(Body::empty()).expect("req"))
            .await
            .expect("ok");
        let mut body = response.into_body();
        read_events(&mut body, 1).await;
        state.shutdown.cancel();
        let end = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match body.frame().await {
                    None => return,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("stream error: {e}"),
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the stream must end on shutdown");
    }

    #[tokio::test]
    async fn fleet_changes_should_be_streamed_node_by_node() {
        let fleet = crate::fleet::Fleet::new("pi");
        let state = state().with_fleet(Some(fleet.clone()));
        let response = router(state)
            .oneshot(Request::get("/api/events").body(Body::empty()).expect("req"))
            .await
            .expect("ok");
        let mut body = response.into_body();
        read_events(&mut body, 1).await;
        fleet.observe(crate::fleet::Kind::Status, "garage", b"offline", false);
        let next = read_events(&mut body, 1).await;
        assert!(
            next[0].starts_with("event: fleet_node\ndata: {\"id\":\"garage\",\"online\":false,"),
            "{next:?}"
        );
        assert!(next[0].contains("\"alerts\":[\"offline\"]"), "{next:?}");
        fleet.observe(crate::fleet::Kind::Status, "garage", b"", true);
        let next = read_events(&mut body, 1).await;
        assert_eq!(next[0], "event: fleet_gone\ndata: {\"id\":\"garage\"}");
    }

    /// Opens a stream (from `ip` when given) and reads its snapshot.
    async fn open(state: &AppState, ip: Option<&str>) -> Response {
        let mut request = Request::get("/api/events");
        if let Some(ip) = ip {
            request = request.extension(ClientIp(ip.parse().expect("ip")));
        }
        router(state.clone())
            .oneshot(request.body(Body::empty()).expect("req"))
            .await
            .expect("ok")
    }

    fn encoded(state: &AppState) -> usize {
        state.sse_frames.encoded.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn fifty_streams_should_get_the_same_bytes_for_a_change_encoded_once() {
        let state = state();
        let mut bodies = Vec::new();
        for n in 1..=50 {
            let response = open(&state, Some(&format!("10.0.0.{n}"))).await;
            assert_eq!(response.status(), StatusCode::OK, "stream {n}");
            let mut body = response.into_body();
            read_events(&mut body, 1).await;
            bodies.push(body);
        }
        let before = encoded(&state);
        state.hub.set("temp", Value::Number(21.0));
        let mut frames = Vec::new();
        for body in &mut bodies {
            frames.push(read_events(body, 1).await.remove(0));
        }
        assert_eq!(encoded(&state) - before, 1, "one encoding for 50 streams");
        let view = EntityView::from(state.hub.get("temp").expect("temp"));
        let expected = format!("event: entity\ndata: {}", serde_json::to_string(&view).expect("json"));
        assert!(frames.iter().all(|f| *f == expected), "{expected}\n{frames:?}");
    }

    #[tokio::test]
    async fn one_address_should_get_no_more_than_its_share_of_streams() {
        let state = state();
        let mut held = Vec::new();
        for _ in 0..MAX_CLIENTS_PER_IP {
            let response = open(&state, Some("192.0.2.7")).await;
            assert_eq!(response.status(), StatusCode::OK);
            held.push(response);
        }
        assert_eq!(
            open(&state, Some("192.0.2.7")).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(open(&state, Some("192.0.2.8")).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_encoder_should_stop_with_the_last_stream_and_start_with_the_next() {
        let state = state();
        let mut body = open(&state, None).await.into_body();
        read_events(&mut body, 1).await;
        drop(body);
        // The encoder notices at its next frame that no stream is left.
        state.hub.set("temp", Value::Number(1.0));
        tokio::time::timeout(Duration::from_secs(5), async {
            while state.sse_frames.running.lock().expect("lock").is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the encoder stops");
        let mut body = open(&state, None).await.into_body();
        let snapshot = read_events(&mut body, 1).await;
        assert!(snapshot[0].contains("\"state\":\"1.0\""), "{snapshot:?}");
        state.hub.set("temp", Value::Number(2.0));
        let next = read_events(&mut body, 1).await;
        assert!(next[0].contains("\"state\":\"2.0\""), "{next:?}");
    }

    #[tokio::test]
    async fn changes_made_together_should_be_one_frame_with_each_change_encoded_once() {
        let state = state();
        let mut body = open(&state, None).await.into_body();
        read_events(&mut body, 1).await;
        let before = encoded(&state);
        // One task's changes, made before the encoder runs: a sensor round.
        for n in 1..=3 {
            state.hub.set("temp", Value::Number(f64::from(n)));
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("frame")
            .into_data()
            .expect("data");
        let text = String::from_utf8_lossy(&frame);
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        // Each shows the entity as the encoder found it: its latest value.
        let view = EntityView::from(state.hub.get("temp").expect("temp"));
        let expected = format!("event: entity\ndata: {}", serde_json::to_string(&view).expect("json"));
        assert!(expected.contains("\"state\":\"3.0\""), "{expected}");
        assert_eq!(events, vec![expected.as_str(); 3]);
        assert_eq!(encoded(&state) - before, 3, "each change encoded once");
    }

    /// The snapshot is serialized straight from the views: the same JSON
    /// as the `serde_json::Value` tree it was built as before.
    #[tokio::test]
    async fn the_snapshot_should_hold_the_health_and_every_entity_with_its_history() {
        let state = state();
        state.hub.set("temp", Value::Number(21.25));
        let mut body = open(&state, None).await.into_body();
        let snapshot = read_events(&mut body, 1).await.remove(0);
        let json = snapshot.strip_prefix("event: snapshot\ndata: ").expect("a snapshot");
        let got: serde_json::Value = serde_json::from_str(json).expect("JSON");
        let mut entity = serde_json::to_value(EntityView::from(state.hub.get("temp").expect("temp"))).expect("view");
        entity["history"] = json!(history_points(&state, "temp").expect("history"));
        assert_eq!(entity["history"].as_array().map(Vec::len), Some(2), "{entity}");
        let mut health = health_view(&state);
        health["uptime_s"] = got["health"]["uptime_s"].clone();
        assert_eq!(got, json!({ "health": health, "entities": [entity] }));
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_should_get_a_fresh_snapshot() {
        let state = state();
        let mut behind = open(&state, None).await.into_body();
        read_events(&mut behind, 1).await;
        // More frames than the channel keeps, each in a wake-up of its own,
        // while this stream reads nothing.
        for n in 0..FRAMES_BEHIND + 8 {
            let before = encoded(&state);
            state.hub.set("temp", Value::Number(100.0 + n as f64));
            tokio::time::timeout(Duration::from_secs(5), async {
                while encoded(&state) == before {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the encoder keeps up");
        }
        let next = read_events(&mut behind, 1).await;
        assert!(next[0].starts_with("event: snapshot\ndata: "), "{next:?}");
        let last = format!("\"state\":\"{:.1}\"", 100.0 + (FRAMES_BEHIND + 7) as f64);
        assert!(next[0].contains(&last), "{last} in {next:?}");
    }

    #[tokio::test]
    async fn clients_beyond_the_cap_should_get_503() {
        let state = state();
        state.sse_clients.store(MAX_CLIENTS, Ordering::Release);
        let response = router(state)
            .oneshot(Request::get("/api/events").body(Body::empty()).expect("req"))
            .await
            .expect("ok");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
