//! The HTTP server loop: accepts TCP connections and serves each with
//! hyper's HTTP/1 connection, under limits that keep a Pi Zero from being
//! worn down by slow or numerous clients.
//!
//! `axum::serve` has no timer, so hyper's header timeout never fires there: a
//! client that connects and sends nothing holds its socket and task forever.
//! This loop gives hyper a tokio timer, bounds how long a request's head and
//! the whole request may take, and caps the connections open at once.
//! Owns the sockets; knows nothing of routes (`mod.rs`) or handlers.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::web::errors::error;

/// How much a client may ask of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's head (request line and headers) must arrive within this,
    /// counted from when the connection is ready for it: a client that
    /// stalls mid-request, and an idle keep-alive connection, are closed then.
    pub header_read: Duration,
    /// A request must be read (body included) and answered within this; a
    /// client that trickles its body gets a 408. The event stream counts only
    /// until its first byte, so it may stay open.
    pub request: Duration,
    /// Connections open at once; more are answered 503 and closed at once.
    pub max_connections: usize,
    /// The largest request head hyper accepts (431 beyond).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            max_connections: 64,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// What a connection over the cap gets, written without waiting before the
/// socket is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 51\r\nconnection: close\r\nretry-after: 1\r\n\r\n\
{\"error\":\"too many connections; retry in a moment\"}";

/// How long to wait after `accept` fails for want of file descriptors or
/// memory, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning this often about refused connections or failed accepts.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `cancel` fires, then lets every open
/// connection finish its current response (the caller ends the event
/// streams) and returns when all are closed.
pub async fn run(listener: TcpListener, router: Router, limits: Limits, cancel: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_header_size(limits.max_header_bytes);
    let builder = Arc::new(builder);
    // One permit per open connection; all of them back means all closed.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut warned = RateLimit::default();
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Per-connection errors (reset before accept) need no pause;
                // running out of descriptors does, or the loop spins.
                if !is_connection_error(&error) {
                    if warned.due() {
                        warn!(%error, "cannot accept HTTP connections; retrying");
                    }
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if warned.due() {
                warn!(
                    limit = limits.max_connections,
                    "too many HTTP connections; refusing more"
                );
            }
            refuse(&stream);
            continue;
        };
        let builder = builder.clone();
        let router = TowerToHyperService::new(router.clone());
        let request_limit = limits.request;
        // The response future resolves with the response's head, so the
        // limit covers reading the body but not an event stream's life.
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let response = router.call(request);
            async move {
                match tokio::time::timeout(request_limit, response).await {
                    Ok(response) => response,
                    Err(_) => Ok::<_, Infallible>(error(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request took too long to arrive",
                    )),
                }
            }
        });
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                // Timeouts, resets and malformed requests: the client's
                // business, not the operator's.
                debug!(%error, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Tells a client over the cap why, if its socket takes the bytes at once,
/// and closes it.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(BUSY_RESPONSE);
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// True at most once per `WARN_EVERY`, so a flood is one line, not many.
#[derive(Default)]
struct RateLimit(Option<Instant>);

impl RateLimit {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        let due = self.0.is_none_or(|last| now.duration_since(last) >= WARN_EVERY);
        if due {
            self.0 = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    use super::*;
    use crate::hub::Value;
    use crate::web::{router, serve_with, AppState};

    /// Short enough that the tests do not wait long, long enough that a
    /// loaded machine does not cut a normal request.
    const HEADER_READ: Duration = Duration::from_millis(400);
    const REQUEST: Duration = Duration::from_millis(600);
    /// How much later than its bound a close may come on a busy machine.
    const SLACK: Duration = Duration::from_secs(3);

    fn state() -> AppState {
        crate::fixtures::web_state_with_one_sensor()
    }

    struct Server {
        addr: std::net::SocketAddr,
        state: AppState,
        cancel: CancellationToken,
        task: JoinHandle<()>,
    }

    async fn start(limits: Limits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = state();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve_with(listener, state.clone(), limits, cancel.clone()));
        Server {
            addr,
            state,
            cancel,
            task,
        }
    }

    fn short() -> Limits {
        Limits {
            header_read: HEADER_READ,
            request: REQUEST,
            ..Limits::default()
        }
    }

    /// Reads until the server closes the connection; what it sent and when
    /// it closed, or `None` if it was still open after `bound`.
    async fn until_closed(stream: &mut TcpStream, bound: Duration) -> Option<(Duration, String)> {
        let started = Instant::now();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let left = bound.checked_sub(started.elapsed())?;
            match tokio::time::timeout(left, stream.read(&mut buffer)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => {
                    return Some((started.elapsed(), String::from_utf8_lossy(&received).into_owned()))
                }
                Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            }
        }
    }

    /// Reads one response with a `content-length`; its head and body.
    async fn response(stream: &mut TcpStream) -> (String, String) {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return (head.to_owned(), body.to_owned());
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("a response within 5 s")
                .expect("read");
            assert!(n > 0, "closed before a full response: {text:?}");
            received.extend_from_slice(&buffer[..n]);
        }
    }

    /// Reads from a stream that stays open until `needle` arrived.
    async fn read_until(stream: &mut TcpStream, text: &mut String, needle: &str) {
        let mut buffer = [0u8; 8192];
        while !text.contains(needle) {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("data within 5 s")
                .expect("read");
            assert!(n > 0, "stream closed: {text}");
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        response(&mut stream).await
    }

    #[tokio::test]
    async fn a_client_that_stalls_mid_request_line_should_be_disconnected() {
        let server = start(short()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(b"GET /api/hea").await.expect("write");
        let (after, _) = until_closed(&mut stream, HEADER_READ + SLACK)
            .await
            .expect("closed within the header timeout");
        assert!(
            after >= HEADER_READ - Duration::from_millis(50),
            "closed too early: {after:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_or_stalls_in_the_headers_should_be_disconnected() {
        let server = start(short()).await;
        let mut silent = TcpStream::connect(server.addr).await.expect("connect");
        let mut slow = TcpStream::connect(server.addr).await.expect("connect");
        slow.write_all(b"GET /api/health HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        // A header a byte at a time does not reset the clock: the pacing is
        // the slow client under test.
        for byte in b"x-slow: 1" {
            tokio::time::sleep(HEADER_READ / 8).await;
            let _ = slow.write_all(&[*byte]).await;
        }
        assert!(until_closed(&mut silent, HEADER_READ + SLACK).await.is_some());
        assert!(until_closed(&mut slow, HEADER_READ + SLACK).await.is_some());
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_should_be_closed_after_the_header_timeout() {
        let server = start(short()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        for _ in 0..2 {
            stream
                .write_all(b"GET /api/health HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("write");
            let (head, body) = response(&mut stream).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(body.contains("\"status\":\"ok\""), "{body}");
        }
        let (after, _) = until_closed(&mut stream, HEADER_READ + SLACK)
            .await
            .expect("an idle connection is closed");
        assert!(after >= HEADER_READ - Duration::from_millis(50), "{after:?}");
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_body_should_get_a_json_408() {
        let server = start(short()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"POST /api/outputs/relay HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"state\"")
            .await
            .expect("write");
        let (after, text) = until_closed(&mut stream, REQUEST + SLACK)
            .await
            .expect("closed within the request timeout");
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("{\"error\":"), "{text}");
        assert!(after >= REQUEST - Duration::from_millis(50), "{after:?}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_should_be_refused_and_the_server_should_stay_up() {
        // Long timeouts: the held connections stay until dropped.
        let limits = Limits {
            header_read: Duration::from_secs(30),
            ..Limits::default()
        };
        let server = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(TcpStream::connect(server.addr).await.expect("connect"));
        }
        let probes: Vec<_> = held
            .into_iter()
            .map(|mut stream| {
                tokio::spawn(async move {
                    let closed = until_closed(&mut stream, Duration::from_millis(1500)).await;
                    (stream, closed)
                })
            })
            .collect();
        let mut held = Vec::new();
        let mut refused = 0;
        for probe in probes {
            let (stream, closed) = probe.await.expect("probe");
            if let Some((_, text)) = closed {
                assert!(text.starts_with("HTTP/1.1 503"), "{text}");
                refused += 1;
            }
            held.push(stream);
        }
        assert_eq!(refused, 100 - limits.max_connections);
        // While full, a new client hears so at once rather than hanging.
        let (head, body) = get(server.addr, "/api/health").await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(error["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many connections")));
        // Once they go, normal service resumes.
        drop(held);
        let deadline = Instant::now() + SLACK;
        loop {
            let (head, _) = get(server.addr, "/api/health").await;
            if head.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(Instant::now() < deadline, "still refused: {head}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_event_stream_should_outlive_the_header_and_request_timeouts() {
        let server = start(short()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut text = String::new();
        read_until(&mut stream, &mut text, "event: snapshot").await;
        // Past both timeouts: that the stream outlives them is the test.
        tokio::time::sleep(REQUEST + HEADER_READ).await;
        server.state.hub.set("temp", Value::Number(22.0));
        read_until(&mut stream, &mut text, "\"state\":\"22.0\"").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }

    #[tokio::test]
    async fn oversized_headers_should_get_431() {
        let server = start(short()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let big = "v".repeat(Limits::default().max_header_bytes + 1);
        let request = format!("GET /api/health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let (_, text) = until_closed(&mut stream, SLACK).await.expect("closed");
        assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    }

    #[tokio::test]
    async fn stopping_should_close_idle_connections_and_end_event_streams_promptly() {
        let server = start(Limits::default()).await;
        let _silent = TcpStream::connect(server.addr).await.expect("connect");
        let mut idle = TcpStream::connect(server.addr).await.expect("connect");
        idle.write_all(b"GET /api/health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        response(&mut idle).await;
        let mut events = TcpStream::connect(server.addr).await.expect("connect");
        events
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buffer = [0u8; 1024];
        let n = events.read(&mut buffer).await.expect("read");
        assert!(n > 0);
        server.cancel.cancel();
        tokio::time::timeout(SLACK, server.task)
            .await
            .expect("the server stops within the bound")
            .expect("no panic");
        assert!(TcpStream::connect(server.addr).await.is_err(), "no longer listening");
    }

    #[test]
    fn the_busy_response_should_be_well_formed() {
        let text = std::str::from_utf8(BUSY_RESPONSE).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert!(json["error"].is_string());
    }

    #[tokio::test]
    async fn event_streams_beyond_the_cap_should_get_a_json_503_until_one_closes() {
        use crate::web::events::MAX_CLIENTS;
        let state = state();
        let app = router(state.clone());
        let open = |app: axum::Router| async move {
            app.oneshot(Request::get("/api/events").body(Body::empty()).expect("request"))
                .await
                .expect("infallible")
        };
        let mut streams = Vec::new();
        for _ in 0..MAX_CLIENTS {
            let response = open(app.clone()).await;
            assert_eq!(response.status(), StatusCode::OK);
            streams.push(response);
        }
        let refused = open(app.clone()).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(refused.into_body(), 4096).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
        streams.pop();
        assert_eq!(state.sse_clients.load(Ordering::Acquire), MAX_CLIENTS - 1);
        assert_eq!(open(app).await.status(), StatusCode::OK);
    }
}
