//! The HTTP server loop: accepts TCP connections and serves each with
//! hyper's HTTP/1 connection, under limits that keep a Pi Zero from being
//! worn down, or one client from locking out the rest.
//!
//! `axum::serve` has no timer, so hyper's header timeout never fires there: a
//! client that connects and sends nothing holds its socket and task forever.
//! This loop gives hyper a tokio timer, bounds how long a request's head and
//! the whole request may take and how long a response write may stall (a
//! client that pipelines requests and never reads), caps the connections
//! open at once and per client address, turns on TCP keepalive (a client
//! that vanished is noticed), refuses a `Host` that does not name this
//! server (DNS rebinding), and adds the security headers to every answer.
//! Owns the sockets; knows nothing of routes (`mod.rs`) or handlers.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::web::clients::{AllowedHosts, ClientIp, PerIp};
use crate::web::errors::error;

/// Connections open at once, from everyone: every event stream
/// (`events::MAX_CLIENTS`) and room besides for the requests of the pages
/// that hold them.
pub const MAX_CONNECTIONS: usize = 96;
/// Connections one client (an IPv4 address, an IPv6 /64) may hold at once:
/// a sixth of all, so one client never takes every place.
pub const MAX_CONNECTIONS_PER_IP: usize = 16;

/// How much a client may ask of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's head (request line and headers) must arrive within this,
    /// counted from when the connection is ready for it: a client that
    /// stalls mid-request, and an idle keep-alive connection, are closed
    /// then (this is the idle timeout).
    pub header_read: Duration,
    /// A request must be read (body included) and answered within this; a
    /// client that trickles its body gets a 408. The event stream counts only
    /// until its first byte, so it may stay open.
    pub request: Duration,
    /// A write that makes no progress for this long (the client stopped
    /// reading: pipelined requests never read, a dashboard that vanished)
    /// closes the connection.
    pub write: Duration,
    /// Connections open at once; more are answered 503 and closed at once.
    pub max_connections: usize,
    /// Connections one client may hold at once; more are answered 503.
    pub max_connections_per_ip: usize,
    /// The largest request head hyper accepts (431 beyond).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            write: Duration::from_secs(10),
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// What a connection over the cap gets, written without waiting before the
/// socket is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 51\r\nconnection: close\r\nretry-after: 1\r\n\r\n\
{\"error\":\"too many connections; retry in a moment\"}";
/// What a connection over its client's cap gets.
const BUSY_CLIENT_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 62\r\nconnection: close\r\nretry-after: 1\r\n\r\n\
{\"error\":\"too many connections from your address; close some\"}";

/// Sent with every answer: no other site may frame the dashboard
/// (clickjacking) or have a response sniffed into another type, and no
/// address of the Pi leaks in a `Referer`. The page loads nothing but its
/// own files and has no inline script or style (`web/app.js`).
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// TCP keepalive: probes after 60 s of silence, every 10 s, 3 times; and
/// data unacknowledged for 30 s drops the connection. A client that
/// vanished (Wi-Fi gone, no FIN) frees its place within 90 s.
const KEEPALIVE_IDLE_S: libc::c_int = 60;
const KEEPALIVE_INTERVAL_S: libc::c_int = 10;
const KEEPALIVE_PROBES: libc::c_int = 3;
const USER_TIMEOUT_MS: libc::c_int = 30_000;

/// How long to wait after `accept` fails for want of file descriptors or
/// memory, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning this often about refused connections or failed accepts.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `cancel` fires, then lets every open
/// connection finish its current response (the caller ends the event
/// streams) and returns when all are closed. `hosts` are the names a
/// request may give as its `Host`.
pub async fn run(
    listener: TcpListener,
    router: Router,
    hosts: Arc<AllowedHosts>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_header_size(limits.max_header_bytes);
    let builder = Arc::new(builder);
    // One permit per open connection; all of them back means all closed.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = PerIp::new(limits.max_connections_per_ip);
    let mut warned = RateLimit::default();
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
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
            refuse(&stream, BUSY_RESPONSE);
            continue;
        };
        let Some(client_slot) = per_client.take(peer.ip()) else {
            if warned.due() {
                warn!(
                    client = %peer.ip(),
                    limit = limits.max_connections_per_ip,
                    "too many HTTP connections from one address; refusing more from it"
                );
            }
            refuse(&stream, BUSY_CLIENT_RESPONSE);
            continue;
        };
        keep_alive(&stream);
        let local = stream.local_addr().map_or(peer.ip(), |addr| addr.ip());
        let builder = builder.clone();
        let router = TowerToHyperService::new(router.clone());
        let hosts = hosts.clone();
        let request_limit = limits.request;
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            let host = host_of(request.headers(), request.uri());
            let response = if hosts.allows(host, local) {
                request.extensions_mut().insert(ClientIp(peer.ip()));
                Some(router.call(request))
            } else {
                warn!(
                    host = host.unwrap_or(""),
                    client = %peer.ip(),
                    "refusing a request for a host name that is not this agent's (add it to web.allowed_hosts if it is)"
                );
                None
            };
            // Boxed: hyper keeps room for the service's future in each
            // connection for its whole life (an event stream's too), so
            // it holds a pointer, not the future, which goes with the
            // answer's head.
            let answer: Pin<Box<dyn Future<Output = Result<_, Infallible>> + Send>> = Box::pin(async move {
                let mut response = match response {
                    None => error(
                        StatusCode::MISDIRECTED_REQUEST,
                        "this host name is not one of this agent's: add it to web.allowed_hosts",
                    ),
                    // The response future resolves with the response's head,
                    // so the limit covers reading the body but not an event
                    // stream's life.
                    Some(response) => match tokio::time::timeout(request_limit, response).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(infallible)) => match infallible {},
                        Err(_) => error(StatusCode::REQUEST_TIMEOUT, "the request took too long to arrive"),
                    },
                };
                secure(response.headers_mut());
                Ok::<_, Infallible>(response)
            });
            answer
        });
        let cancel = cancel.clone();
        let io = TokioIo::new(WriteStall::new(stream, limits.write));
        tokio::spawn(async move {
            let mut connection = pin!(builder.serve_connection(io, service));
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
            drop(client_slot);
            drop(slot);
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// The host a request names: its `Host` header, or the authority of an
/// absolute URI (which then wins, as RFC 9112 says). A header that is not
/// text names no host of ours.
fn host_of<'a>(headers: &'a HeaderMap, uri: &'a axum::http::Uri) -> Option<&'a str> {
    if let Some(authority) = uri.authority() {
        return Some(authority.as_str());
    }
    headers
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

fn secure(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Turns on TCP keepalive and the user timeout (see `KEEPALIVE_IDLE_S`).
/// Best effort: a socket that refuses keeps the kernel's defaults.
fn keep_alive(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    for (level, name, value) in [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KEEPALIVE_IDLE_S),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_PROBES),
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, USER_TIMEOUT_MS),
    ] {
        // SAFETY: `fd` is an open socket owned by `stream` for this call;
        // the option value is a c_int that lives across it, and its size
        // is given.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// A stream whose writes fail with `TimedOut` once one has made no progress
/// for `limit`: hyper waits for a write forever, and a client that sends
/// requests but never reads would otherwise hold its connection for good.
struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write cannot proceed; cleared when one does.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(inner: S, limit: Duration) -> WriteStall<S> {
        WriteStall {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the inner write's poll: clears the timer on progress; on
    /// `Pending`, waits on the timer too, and fails once it has fired.
    fn watch<T>(&mut self, polled: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has not read for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(polled, cx)
    }
}

/// Tells a client over the cap why, if its socket takes the bytes at once,
/// and closes it.
fn refuse(stream: &TcpStream, response: &[u8]) {
    let _ = stream.try_write(response);
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
        let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
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
        slow.write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
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
                .write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
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
            .write_all(b"POST /api/outputs/relay HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n{\"state\"")
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
            // The global cap alone: all of these come from one address.
            max_connections_per_ip: usize::MAX,
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
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
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
        let request = format!("GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: {big}\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let (_, text) = until_closed(&mut stream, SLACK).await.expect("closed");
        assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    }

    #[tokio::test]
    async fn stopping_should_close_idle_connections_and_end_event_streams_promptly() {
        let server = start(Limits::default()).await;
        let _silent = TcpStream::connect(server.addr).await.expect("connect");
        let mut idle = TcpStream::connect(server.addr).await.expect("connect");
        idle.write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        response(&mut idle).await;
        let mut events = TcpStream::connect(server.addr).await.expect("connect");
        events
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
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
    fn the_busy_responses_should_be_well_formed() {
        for response in [BUSY_RESPONSE, BUSY_CLIENT_RESPONSE] {
            let text = std::str::from_utf8(response).expect("ASCII");
            let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
            assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
            let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
            assert!(json["error"].is_string());
        }
    }

    /// A connection from another loopback address (Linux routes all of
    /// 127.0.0.0/8 to lo), standing for another machine on the LAN.
    async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(format!("{source}:0").parse().expect("addr")).expect("bind");
        socket.connect(addr).await.expect("connect")
    }

    async fn get_from(source: &str, addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut stream = connect_from(source, addr).await;
        let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        response(&mut stream).await
    }

    #[tokio::test]
    async fn one_client_should_hold_at_most_its_share_and_others_should_still_be_served() {
        let limits = Limits {
            header_read: Duration::from_secs(30),
            ..Limits::default()
        };
        let server = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..limits.max_connections {
            held.push(TcpStream::connect(server.addr).await.expect("connect"));
        }
        let mut refused = 0;
        for stream in &mut held {
            if let Some((_, text)) = until_closed(stream, Duration::from_millis(300)).await {
                assert!(text.contains("too many connections from your address"), "{text}");
                refused += 1;
            }
        }
        assert_eq!(refused, limits.max_connections - limits.max_connections_per_ip);
        let (head, _) = get_from("127.0.0.2", server.addr, "/api/health").await;
        assert!(head.starts_with("HTTP/1.1 200"), "another client is served: {head}");
    }

    #[tokio::test]
    async fn a_client_that_pipelines_and_never_reads_should_lose_its_connection_after_the_write_timeout() {
        let write = Duration::from_millis(500);
        let limits = Limits {
            write,
            header_read: Duration::from_secs(30),
            max_connections_per_ip: 1,
            ..Limits::default()
        };
        let server = start(limits).await;
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small buffer");
        let stream = socket.connect(server.addr).await.expect("connect");
        let (_reader, mut writer) = stream.into_split();
        let started = Instant::now();
        // Far more answers than the socket buffers hold; never read.
        let requests = "GET /api/state HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(20_000);
        let flood = tokio::spawn(async move {
            let _ = writer.write_all(requests.as_bytes()).await;
            writer
        });
        // While it holds the address's one place, the address is refused...
        let (head, _) = get(server.addr, "/api/health").await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        // ...until the stalled write times out and frees it.
        let deadline = Instant::now() + write + SLACK;
        loop {
            let (head, _) = get(server.addr, "/api/health").await;
            if head.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(Instant::now() < deadline, "still held after {:?}", started.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started.elapsed() >= write, "freed too early: {:?}", started.elapsed());
        flood.abort();
    }

    #[tokio::test]
    async fn every_answer_should_carry_the_security_headers() {
        let server = start(short()).await;
        for path in ["/", "/api/state", "/api/nothing", "/metrics"] {
            let (head, _) = get(server.addr, path).await;
            let head = head.to_ascii_lowercase();
            for line in [
                "content-security-policy: default-src 'self'; frame-ancestors 'none'",
                "x-frame-options: deny",
                "x-content-type-options: nosniff",
                "referrer-policy: no-referrer",
            ] {
                assert!(head.contains(line), "{path}: no `{line}` in {head}");
            }
        }
    }

    #[tokio::test]
    async fn a_request_naming_another_host_should_be_refused() {
        let server = start(short()).await;
        server.state.hub.set("temp", Value::Number(33.0));
        let port = server.addr.port();
        for (host, allowed) in [
            (format!("127.0.0.1:{port}"), true),
            (format!("localhost:{port}"), true),
            (format!("evil.example:{port}"), false),
            ("127.0.0.2".to_owned(), false),
        ] {
            let mut stream = TcpStream::connect(server.addr).await.expect("connect");
            let request = format!("GET /api/state HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let (head, body) = response(&mut stream).await;
            if allowed {
                assert!(
                    head.starts_with("HTTP/1.1 200") && body.contains("33"),
                    "{host}: {head}"
                );
            } else {
                assert!(head.starts_with("HTTP/1.1 421"), "{host}: {head}");
                assert!(!body.contains("33") && body.contains("web.allowed_hosts"), "{body}");
            }
        }
    }

    #[tokio::test]
    async fn accepted_connections_should_have_tcp_keepalive_on() {
        let server = start(short()).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        response(&mut stream).await;
        let client = stream.local_addr().expect("addr").port();
        // /proc/net/tcp: `local rem st tx:rx tr:when ...`, ports in hex; a
        // timer of 2 is keepalive's, on an idle connection that has it on.
        let table = std::fs::read_to_string("/proc/self/net/tcp").expect("read /proc/self/net/tcp");
        let accepted = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| {
                f.len() > 5
                    && f[1].ends_with(&format!(":{:04X}", server.addr.port()))
                    && f[2].ends_with(&format!(":{client:04X}"))
            })
            .unwrap_or_else(|| panic!("the server's side of the connection is not in:\n{table}"));
        assert!(accepted[5].starts_with("02:"), "no keepalive timer: {accepted:?}");
    }

    #[tokio::test]
    async fn one_client_should_not_hold_every_event_stream() {
        use crate::web::clients::ClientIp;
        use crate::web::events::{MAX_CLIENTS, MAX_CLIENTS_PER_IP};
        let state = state();
        let app = router(state.clone());
        let open = |app: axum::Router, ip: &str| {
            let request = Request::get("/api/events")
                .extension(ClientIp(ip.parse().expect("ip")))
                .body(Body::empty())
                .expect("request");
            async move { app.oneshot(request).await.expect("infallible") }
        };
        let mut streams = Vec::new();
        for _ in 0..MAX_CLIENTS_PER_IP {
            let response = open(app.clone(), "10.0.0.1").await;
            assert_eq!(response.status(), StatusCode::OK);
            streams.push(response);
        }
        let refused = open(app.clone(), "10.0.0.1").await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(open(app.clone(), "10.0.0.2").await.status(), StatusCode::OK);
        const { assert!(MAX_CLIENTS > MAX_CLIENTS_PER_IP) };
        streams.pop();
        assert_eq!(open(app, "10.0.0.1").await.status(), StatusCode::OK);
    }

    /// Opens `/api/events` from `source` and reads until the snapshot's
    /// first bytes (or an answer that is not 200) arrived.
    async fn open_stream_from(source: &str, addr: std::net::SocketAddr) -> (TcpStream, String) {
        let mut stream = connect_from(source, addr).await;
        stream
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while !received.windows(15).any(|w| w == b"event: snapshot") && !received.windows(3).any(|w| w == b"503") {
            let n = tokio::time::timeout(SLACK, stream.read(&mut buffer))
                .await
                .expect("an answer in time")
                .expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buffer[..n]);
        }
        (stream, String::from_utf8_lossy(&received).into_owned())
    }

    /// The footprint bench's "50 dashboards", through the real server loop:
    /// one dashboard open, then 50 more, each from its own loopback address
    /// (50 browsers); while one address still gets no more than its share.
    #[tokio::test]
    async fn fifty_dashboards_from_fifty_addresses_should_all_be_served_but_not_from_one() {
        use crate::web::events::MAX_CLIENTS_PER_IP;
        let server = start(Limits::default()).await;
        let mut open = Vec::new();
        for n in 1..=51 {
            let (stream, head) = open_stream_from(&format!("127.0.1.{n}"), server.addr).await;
            assert!(head.starts_with("HTTP/1.1 200"), "dashboard {n}: {head}");
            open.push(stream);
        }
        for _ in 0..MAX_CLIENTS_PER_IP {
            let (stream, head) = open_stream_from("127.0.2.1", server.addr).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            open.push(stream);
        }
        let (_, head) = open_stream_from("127.0.2.1", server.addr).await;
        assert!(head.starts_with("HTTP/1.1 503"), "one address beyond its share: {head}");
        assert_eq!(
            server.state.sse_clients.load(Ordering::Acquire),
            51 + MAX_CLIENTS_PER_IP
        );
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
