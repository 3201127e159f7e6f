//! A minimal blocking HTTP/1.1 GET client for `majortom update`, so that a
//! Pi needs no curl: HTTPS through the rustls (ring) already linked for
//! MQTT, trusting the system's CA file; redirects followed a few times
//! (GitHub's release downloads redirect to their CDN); `Content-Length`,
//! chunked and read-to-close bodies, capped in size; time-outs on every
//! step. Plain `http://` only when the caller allows it.
//!
//! Not a general client: one request per connection (`Connection: close`),
//! no proxies, no compression, no cookies, no authentication.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait for any read or write; a stalled server is an error.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Where to get and how far to trust.
pub struct Fetch<'a> {
    /// Plain `http://` allowed (`--insecure`).
    pub insecure: bool,
    /// The CA certificates (PEM) that HTTPS servers are checked against.
    pub ca_file: &'a Path,
    /// The largest body accepted, in bytes.
    pub limit: usize,
    /// The longest wait to connect and for each read or write; `None`: 15 s
    /// to connect, 30 s per read or write.
    pub timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error(
        "refusing `{0}`: plain HTTP can be altered on the way; use an https:// URL \
         (or --insecure, on a network you trust, with --sha256 or --sums)"
    )]
    Insecure(String),
    #[error("cannot resolve {host}: {source}; check the network and DNS (`.local` names are not resolved: use an IP address)")]
    Resolve { host: String, source: io::Error },
    #[error("cannot connect to {host}: {source}")]
    Connect { host: String, source: io::Error },
    #[error("cannot read CA certificates from {} ({reason}): install the ca-certificates package, or point SSL_CERT_FILE at a PEM file", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("TLS with {host} failed: {source}")]
    Tls { host: String, source: rustls::Error },
    #[error("the download from {host} failed: {source}")]
    Io { host: String, source: io::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: String },
    #[error("{host} sent a malformed HTTP answer ({what})")]
    Malformed { host: String, what: &'static str },
    #[error("more than {MAX_REDIRECTS} redirects from {0}")]
    TooManyRedirects(String),
    #[error("{url} is larger than {limit} bytes: not a majortom binary or release file")]
    TooLarge { url: String, limit: usize },
}

/// A parsed `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// As written, IPv6 literals without their brackets.
    pub host: String,
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Option<Url> {
        let (https, rest) = match text.split_once("://")? {
            (scheme, rest) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            (scheme, rest) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let path = path.split('#').next().unwrap_or("");
        let path = match path.starts_with('/') {
            true => path.to_owned(),
            false => format!("/{path}"),
        };
        if authority.contains('@') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']')?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(port) => port.parse().ok().filter(|p| *p != 0)?,
            None if https => 443,
            None => 80,
        };
        let valid_host = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        valid_host.then(|| Url {
            https,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The last segment of the path (the name `SHA256SUMS` lists).
    pub fn file_name(&self) -> &str {
        let path = self.path.split('?').next().unwrap_or("");
        path.rsplit('/').next().unwrap_or("")
    }

    /// Where a `Location` header points, relative to this URL.
    fn join(&self, location: &str) -> Option<Url> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let scheme = if self.https { "https" } else { "http" };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let path = match location.starts_with('/') {
            true => location.to_owned(),
            false => {
                let base = self.path.split('?').next().unwrap_or("/");
                let dir = &base[..base.rfind('/').map_or(0, |at| at + 1)];
                format!("{dir}{location}")
            }
        };
        Url::parse(&format!("{scheme}://{}{path}", self.authority()))
    }

    fn authority(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match (self.https, self.port) {
            (true, 443) | (false, 80) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Parses `text` and refuses plain HTTP unless `insecure`.
pub fn checked_url(text: &str, insecure: bool) -> Result<Url, HttpError> {
    let url = Url::parse(text).ok_or_else(|| HttpError::BadUrl(text.to_owned()))?;
    if !url.https && !insecure {
        return Err(HttpError::Insecure(text.to_owned()));
    }
    Ok(url)
}

/// GETs `url`, following redirects; the body, at most `fetch.limit` bytes.
pub fn get(url: &Url, fetch: &Fetch<'_>) -> Result<Vec<u8>, HttpError> {
    let mut tls: Option<Arc<ClientConfig>> = None;
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let stream = connect(&url, fetch, &mut tls)?;
        match exchange(stream, &url, fetch.limit)? {
            Answer::Body(body) => return Ok(body),
            Answer::Redirect(location) => url = follow(&url, &location, fetch.insecure)?,
        }
    }
    Err(HttpError::TooManyRedirects(url.to_string()))
}

/// Where a redirect from `url` to `location` goes: never from HTTPS down
/// to plain HTTP unless `insecure`.
fn follow(url: &Url, location: &str, insecure: bool) -> Result<Url, HttpError> {
    let next = url
        .join(location)
        .ok_or_else(|| HttpError::BadUrl(location.to_owned()))?;
    if !next.https && !insecure {
        return Err(HttpError::Insecure(next.to_string()));
    }
    Ok(next)
}

/// A connection, plain or TLS. An enum, not a `dyn Read + Write`: a trait
/// object would compile every default `Read` method for both kinds.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

fn connect(url: &Url, fetch: &Fetch<'_>, tls: &mut Option<Arc<ClientConfig>>) -> Result<Stream, HttpError> {
    let host = &url.host;
    let addrs = (host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| HttpError::Resolve {
            host: host.clone(),
            source,
        })?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, fetch.timeout.unwrap_or(CONNECT_TIMEOUT)) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(error) => last = error,
        }
    }
    let connect_error = |source| HttpError::Connect {
        host: url.authority(),
        source,
    };
    let tcp = tcp.ok_or_else(|| connect_error(last))?;
    let io_timeout = fetch.timeout.unwrap_or(IO_TIMEOUT);
    tcp.set_read_timeout(Some(io_timeout)).map_err(connect_error)?;
    tcp.set_write_timeout(Some(io_timeout)).map_err(connect_error)?;
    if !url.https {
        return Ok(Stream::Plain(tcp));
    }
    let config = match tls {
        Some(config) => config.clone(),
        None => tls.insert(client_config(fetch.ca_file)?).clone(),
    };
    let name = ServerName::try_from(host.clone()).map_err(|_| HttpError::BadUrl(url.to_string()))?;
    let connection = ClientConnection::new(config, name).map_err(|source| HttpError::Tls {
        host: host.clone(),
        source,
    })?;
    Ok(Stream::Tls(Box::new(StreamOwned::new(connection, tcp))))
}

fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, HttpError> {
    let ca_error = |reason: String| HttpError::Ca {
        path: ca_file.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(ca_error("no usable certificate".to_owned()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| HttpError::Tls {
            host: String::new(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

enum Answer {
    Body(Vec<u8>),
    Redirect(String),
}

/// One request and its answer on a fresh connection. A TLS failure comes
/// as an I/O error whose message is rustls's ("invalid peer certificate:
/// UnknownIssuer").
fn exchange(mut stream: Stream, url: &Url, limit: usize) -> Result<Answer, HttpError> {
    let io_error = |source: io::Error| HttpError::Io {
        host: url.host.clone(),
        source,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: majortom/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority(),
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(io_error)?;
    stream.flush().map_err(io_error)?;
    let mut reader = BufReader::new(stream);
    let malformed = |what| HttpError::Malformed {
        host: url.host.clone(),
        what,
    };
    let head = read_head(&mut reader)
        .map_err(io_error)?
        .ok_or(malformed("no header end"))?;
    let head = Head::parse(&head).ok_or(malformed("bad status line or header"))?;
    if (300..400).contains(&head.status) && head.status != 304 {
        let location = head
            .header("location")
            .ok_or(malformed("a redirect without Location"))?;
        return Ok(Answer::Redirect(location.to_owned()));
    }
    if head.status != 200 {
        return Err(HttpError::Status {
            url: url.to_string(),
            status: head.status_line,
        });
    }
    let too_large = || HttpError::TooLarge {
        url: url.to_string(),
        limit,
    };
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        if !read_chunked(&mut reader, &mut body, limit).map_err(io_error)? {
            return Err(too_large());
        }
    } else if let Some(length) = head.header("content-length") {
        let length: usize = length.parse().map_err(|_| malformed("bad Content-Length"))?;
        if length > limit {
            return Err(too_large());
        }
        if append(&mut reader, &mut body, length).map_err(io_error)? != length {
            return Err(malformed("body shorter than its Content-Length"));
        }
    } else {
        // Until the server closes: over TLS, rustls reports a close without
        // close_notify as an error, so a cut-off body cannot pass for whole.
        if append(&mut reader, &mut body, limit + 1).map_err(io_error)? > limit {
            return Err(too_large());
        }
    }
    Ok(Answer::Body(body))
}

/// Appends up to `count` bytes to `out`, fewer if the stream ends first;
/// how many. The one read loop of this client (each `Read` adapter would
/// compile its own).
fn append<R: Read>(reader: &mut BufReader<R>, out: &mut Vec<u8>, count: usize) -> io::Result<usize> {
    let mut appended = 0;
    while appended < count {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let take = available.len().min(count - appended);
        out.extend_from_slice(&available[..take]);
        reader.consume(take);
        appended += take;
    }
    Ok(appended)
}

/// Appends one line (through its `\n`) to `out`, at most `max` bytes;
/// false when the stream ended or the line is longer.
fn read_line<R: Read>(reader: &mut BufReader<R>, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    let start = out.len();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        out.extend_from_slice(&available[..take]);
        reader.consume(take);
        if out.len() - start > max {
            return Ok(false);
        }
        if done {
            return Ok(true);
        }
    }
}

/// The bytes up to the blank line that ends the head; `None` when the
/// connection ends first or the head is too big.
fn read_head<R: Read>(reader: &mut BufReader<R>) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        if !read_line(reader, &mut head, MAX_HEAD_BYTES - before)? {
            return Ok(None);
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            return Ok(Some(head));
        }
    }
}

/// A chunked body, appended to `body`; false when it grows past `limit`.
fn read_chunked<R: Read>(reader: &mut BufReader<R>, body: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunked body: {what}"));
    let mut line = Vec::new();
    loop {
        line.clear();
        if !read_line(reader, &mut line, 1024)? {
            return Err(malformed("size line"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| malformed("size line"))?;
        let size = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| malformed("size line"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if !read_line(reader, &mut line, 1024)? || line == b"\r\n" || line == b"\n" {
                    return Ok(true);
                }
            }
        }
        if body.len().saturating_add(size) > limit {
            return Ok(false);
        }
        line.clear();
        if append(reader, body, size)? != size || append(reader, &mut line, 2)? != 2 || line != b"\r\n" {
            return Err(malformed("cut off, or no CRLF after a chunk"));
        }
    }
}

/// The status line and headers of an answer.
struct Head {
    status: u16,
    status_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        let status_line = lines.next()?.trim_end();
        let mut parts = status_line.splitn(3, ' ');
        if !parts.next()?.starts_with("HTTP/1.") {
            return None;
        }
        let status = parts.next()?.parse().ok()?;
        let mut headers = Vec::new();
        for line in lines.map(str::trim_end).take_while(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Some(Head {
            status,
            status_line: status_line.split_once(' ').map_or("", |(_, rest)| rest).to_owned(),
            headers,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn urls_should_parse_scheme_host_port_and_path() {
        assert_eq!(
            url("https://github.com/o/r/releases/download/v1/SHA256SUMS"),
            Url {
                https: true,
                host: "github.com".into(),
                port: 443,
                path: "/o/r/releases/download/v1/SHA256SUMS".into()
            }
        );
        let local = url("http://127.0.0.1:8080");
        assert_eq!((local.https, local.port, local.path.as_str()), (false, 8080, "/"));
        let v6 = url("https://[::1]:8443/a?b=c#frag");
        assert_eq!((v6.host.as_str(), v6.port, v6.path.as_str()), ("::1", 8443, "/a?b=c"));
        assert_eq!(v6.to_string(), "https://[::1]:8443/a?b=c");
        for bad in [
            "ftp://x/y",
            "https://",
            "https://user@host/",
            "https://h:0/",
            "https://h:x/",
            "/local/file",
            "https://a b/",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_file_name_should_be_the_last_path_segment_without_the_query() {
        assert_eq!(
            url("https://h/d/v1/majortom-1.tar.gz?x=/y").file_name(),
            "majortom-1.tar.gz"
        );
        assert_eq!(url("https://h/").file_name(), "");
    }

    #[test]
    fn redirects_should_resolve_absolute_scheme_relative_rooted_and_relative_locations() {
        let base = url("https://github.com/o/r/releases/download/v1/a.tar.gz");
        assert_eq!(
            base.join("https://objects.example/x?sig=1").map(|u| u.to_string()),
            Some("https://objects.example/x?sig=1".into())
        );
        assert_eq!(base.join("//cdn.example/y").map(|u| u.host), Some("cdn.example".into()));
        assert_eq!(
            base.join("/other").map(|u| u.to_string()),
            Some("https://github.com/other".into())
        );
        assert_eq!(
            base.join("b.tar.gz").map(|u| u.path),
            Some("/o/r/releases/download/v1/b.tar.gz".into())
        );
    }

    #[test]
    fn plain_http_should_be_refused_unless_insecure() {
        let error = checked_url("http://example.com/majortom", false).expect_err("refused");
        assert!(error.to_string().contains("--insecure"), "{error}");
        assert!(checked_url("http://example.com/majortom", true).is_ok());
        assert!(matches!(
            checked_url("example.com/majortom", true),
            Err(HttpError::BadUrl(_))
        ));
    }

    /// Serves each of `answers` to one connection, in order, over plain HTTP.
    fn serve(answers: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in answers {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let head = read_head(&mut reader).expect("read").expect("head");
                requests.push(String::from_utf8(head).expect("utf-8"));
                stream.write_all(&answer).expect("answer");
            }
            requests
        });
        (port, server)
    }

    fn fetch(limit: usize) -> Fetch<'static> {
        Fetch {
            insecure: true,
            ca_file: Path::new("/nonexistent"),
            limit,
            timeout: None,
        }
    }

    #[test]
    fn a_chunked_answer_after_a_redirect_should_be_joined() {
        let (port, server) = serve(vec![
            b"HTTP/1.1 302 Found\r\nLocation: /real/file\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n"
                .to_vec(),
        ]);
        let body = get(&url(&format!("http://127.0.0.1:{port}/start")), &fetch(100)).expect("get");
        assert_eq!(body, b"hello world");
        let requests = server.join().expect("server");
        assert!(requests[0].starts_with("GET /start HTTP/1.1\r\n"), "{}", requests[0]);
        assert!(
            requests[1].starts_with("GET /real/file HTTP/1.1\r\n"),
            "{}",
            requests[1]
        );
        assert!(
            requests[1].contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{}",
            requests[1]
        );
    }

    #[test]
    fn bodies_over_the_limit_and_error_statuses_should_fail() {
        let (port, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n".to_vec(),
            b"HTTP/1.0 200 OK\r\n\r\nhello world".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]);
        let target = url(&format!("http://127.0.0.1:{port}/f"));
        for _ in 0..3 {
            let error = get(&target, &fetch(10)).expect_err("too large");
            assert!(matches!(error, HttpError::TooLarge { .. }), "{error}");
        }
        let error = get(&target, &fetch(10)).expect_err("404");
        assert!(error.to_string().ends_with("answered 404 Not Found"), "{error}");
        server.join().expect("server");
    }

    #[test]
    fn a_redirect_loop_and_a_redirect_to_plain_http_should_stop() {
        let hop = b"HTTP/1.1 301 Moved\r\nLocation: /again\r\n\r\n".to_vec();
        let (port, server) = serve(vec![hop; MAX_REDIRECTS + 1]);
        let error = get(&url(&format!("http://127.0.0.1:{port}/")), &fetch(10)).expect_err("loop");
        assert!(matches!(error, HttpError::TooManyRedirects(_)), "{error}");
        server.join().expect("server");

        let secure = url("https://github.com/o/r/releases/download/v1/a");
        let error = follow(&secure, "http://cdn.example/a", false).expect_err("downgrade");
        assert!(matches!(error, HttpError::Insecure(_)), "{error}");
        assert!(follow(&secure, "http://cdn.example/a", true).is_ok());
        assert!(follow(&secure, "https://cdn.example/a", false).is_ok());
    }

    #[test]
    fn heads_should_parse_and_refuse_garbage() {
        let head = Head::parse(b"HTTP/1.1 302 Found\r\nLocation:  /x \r\nX: a:b\r\n\r\n").expect("head");
        assert_eq!((head.status, head.status_line.as_str()), (302, "302 Found"));
        assert_eq!(head.header("location"), Some("/x"));
        assert_eq!(head.header("x"), Some("a:b"));
        assert!(Head::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_none());
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_none());
    }
}
