//! A small W3C WebDriver client: Debian's `chromedriver` as a child process
//! on a free port, driving a headless `chromium`, spoken to over HTTP/JSON
//! with `http_request_timeout` (ureq); screenshots decoded by `base64`. Just what the browser tests need:
//! navigate, find by CSS, click, type, run a script, screenshot, and
//! Chrome's DevTools commands for device emulation. Everything is killed on
//! drop. Not a general client: every failure panics with what went wrong.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use super::{find_program, free_port, http_request_timeout};

/// The key W3C WebDriver uses for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Starting Chromium is the slow call; the rest answer in milliseconds.
const NEW_SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// An element found on the page (valid until the page changes it away).
#[derive(Debug, Clone)]
pub struct Element(String);

/// One headless Chromium with its chromedriver. Dropping it ends the
/// session (Chromium quits), then kills chromedriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    /// Chromium's profile and chromedriver's log.
    dir: TempDir,
}

/// An error the driver reported (`value.error` of a W3C error response).
#[derive(Debug)]
pub struct DriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl Browser {
    /// A desktop-sized (1280×900) headless Chromium.
    pub fn start() -> Browser {
        let chromium = find_program("chromium", "chromium", &["/usr/bin/chromium"]);
        let chromedriver = find_program("chromedriver", "chromium-driver", &["/usr/bin/chromedriver"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            dir,
        };
        browser.wait_ready();
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            // This machine's network is closed: anything
                            // Chromium fetches on its own only hangs.
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            format!("--user-data-dir={}", profile.display()),
                            "--window-size=1280,900",
                        ],
                    },
                },
            },
        });
        let reply = browser
            .raw("POST", "/session", Some(&capabilities), NEW_SESSION_TIMEOUT)
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e:?}\n{}", browser.driver_log()));
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {reply}"))
            .to_owned();
        browser.call(
            "POST",
            "timeouts",
            json!({ "implicit": 0, "pageLoad": 15_000, "script": 10_000 }),
        );
        browser
    }

    /// Waits until chromedriver answers `GET /status`.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.driver.try_wait().expect("try_wait") {
                panic!("chromedriver exited at start ({status}):\n{}", self.driver_log());
            }
            if TcpStream::connect(self.addr).is_ok() {
                let (code, _) = http_request_timeout(self.addr, "GET", "/status", &[], "", CALL_TIMEOUT);
                if code == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {} within 10 s:\n{}",
                self.addr,
                self.driver_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn driver_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// One WebDriver command; `value` of the answer, or the driver's error.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Value, DriverError> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let (status, text) = http_request_timeout(self.addr, method, path, &[], &body, timeout);
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: chromedriver answered {status} with non-JSON ({e}): {text}"));
        let value = reply.get("value").cloned().unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        Err(DriverError {
            status,
            error: value["error"].as_str().unwrap_or("unknown error").to_owned(),
            message: value["message"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// A command on this session (`path` after `/session/<id>/`).
    pub fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, DriverError> {
        let body = (method != "GET" && method != "DELETE").then_some(&body);
        self.raw(method, &format!("/session/{}/{path}", self.session), body, CALL_TIMEOUT)
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {}: {}", e.error, e.message))
    }

    /// Navigates and waits for the page's load event.
    pub fn goto(&self, url: &str) {
        self.call("POST", "url", json!({ "url": url }));
    }

    pub fn refresh(&self) {
        self.call("POST", "refresh", json!({}));
    }

    /// The first element matching `css`, or `None`.
    pub fn find(&self, css: &str) -> Option<Element> {
        match self.try_call("POST", "element", json!({ "using": "css selector", "value": css })) {
            Ok(value) => Some(Element(element_id(&value))),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("finding {css}: {}: {}", e.error, e.message),
        }
    }

    /// Every element matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let value = self.call("POST", "elements", json!({ "using": "css selector", "value": css }));
        value
            .as_array()
            .map(|a| a.iter().map(|v| Element(element_id(v))).collect())
            .unwrap_or_default()
    }

    /// `find`, or a panic naming the selector.
    pub fn get(&self, css: &str) -> Element {
        self.find(css).unwrap_or_else(|| panic!("no element matches {css}"))
    }

    pub fn click(&self, element: &Element) {
        self.call("POST", &format!("element/{}/click", element.0), json!({}));
    }

    pub fn send_keys(&self, element: &Element, text: &str) {
        self.call("POST", &format!("element/{}/value", element.0), json!({ "text": text }));
    }

    /// The rendered text (empty for hidden elements).
    pub fn text(&self, element: &Element) -> String {
        let value = self.call("GET", &format!("element/{}/text", element.0), Value::Null);
        value.as_str().unwrap_or_default().to_owned()
    }

    pub fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        let value = self.call("GET", &format!("element/{}/attribute/{name}", element.0), Value::Null);
        value.as_str().map(str::to_owned)
    }

    pub fn is_enabled(&self, element: &Element) -> bool {
        let value = self.call("GET", &format!("element/{}/enabled", element.0), Value::Null);
        value.as_bool().unwrap_or(false)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.call("POST", "execute/sync", json!({ "script": script, "args": args }))
    }

    /// Sets the outer window size.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.call("POST", "window/rect", json!({ "width": width, "height": height }));
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call("POST", "goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
    }

    /// The viewport as PNG bytes.
    pub fn screenshot(&self) -> Vec<u8> {
        let value = self.call("GET", "screenshot", Value::Null);
        use base64::Engine as _;
        let encoded = value.as_str().expect("a base64 screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the screenshot is valid base64")
    }

    /// Takes a screenshot, checks that it is a PNG of some substance, and
    /// saves it to `path`.
    pub fn save_screenshot(&self, path: &Path) -> usize {
        let png = self.screenshot();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");
        assert!(
            png.len() > 10 * 1024,
            "a {} byte screenshot is suspiciously empty",
            png.len()
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create screenshot dir");
        }
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        png.len()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() && self.driver.try_wait().ok().flatten().is_none() {
            // Ends Chromium cleanly; chromedriver waits for it to quit.
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(|| self.raw("DELETE", &path, None, Duration::from_secs(10)));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn element_id(value: &Value) -> String {
    value[ELEMENT_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("not an element reference: {value}"))
        .to_owned()
}
