//! A headless Chromium driven through WebDriver with `fantoccini`: Debian's
//! `chromedriver` as a child process on a free port, a session with the
//! options the browser tests need, and a few calls that panic with what
//! went wrong instead of returning errors (a test has nothing better to do
//! with them). Chrome's DevTools commands (device emulation) go through
//! chromedriver's `goog/cdp/execute` as a fantoccini custom command. Every
//! call is bounded by a timeout: a hung browser fails the test instead of
//! hanging it. Dropping the `Browser` ends the session (Chromium quits),
//! then kills chromedriver's process group.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::{Capabilities, TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::{find_program, free_port, wait_for};

/// Starting Chromium is the slow call; the rest answer in milliseconds.
const NEW_SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// One headless Chromium with its chromedriver.
pub struct Browser {
    client: Client,
    driver: Child,
    /// Chromium's profile and chromedriver's log.
    dir: TempDir,
}

impl Browser {
    /// A desktop-sized (1280×900) headless Chromium.
    pub async fn start() -> Browser {
        let chromium = find_program("chromium", "chromium", &["/usr/bin/chromium"]);
        let chromedriver = find_program("chromedriver", "chromium-driver", &["/usr/bin/chromedriver"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            // Its own process group, so that the drop can take Chromium
            // down with it even when the session could not be ended.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for("chromedriver to listen", Duration::from_secs(10), || {
            if let Some(status) = driver.try_wait().expect("try_wait") {
                panic!("chromedriver exited at start ({status}):\n{}", driver_log(&log));
            }
            TcpStream::connect(addr).ok().map(drop)
        })
        .await;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // This machine's network is closed: anything Chromium
                    // fetches on its own only hangs.
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                ],
            },
        });
        let capabilities: Capabilities = serde_json::from_value(capabilities).expect("capabilities are an object");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let connecting = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://{addr}"))
            .await;
        let client = match connecting {
            Ok(client) => client,
            Err(e) => {
                let _ = driver.kill();
                panic!("chromedriver could not start chromium: {e}\n{}", driver_log(&log))
            }
        };
        let browser = Browser { client, driver, dir };
        let timeouts = TimeoutConfiguration::new(
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(15)),
            Some(Duration::ZERO),
        );
        browser
            .bounded("setting the timeouts", browser.client.update_timeouts(timeouts))
            .await;
        browser
    }

    /// `call`'s answer, or a panic naming `what` (with chromedriver's last
    /// words) when it fails or takes longer than `CALL_TIMEOUT`.
    async fn bounded<T>(&self, what: &str, call: impl std::future::Future<Output = Result<T, CmdError>>) -> T {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("WebDriver: {what}: {e}\n{}", self.log()),
            Err(_) => panic!("WebDriver: {what}: no answer within {CALL_TIMEOUT:?}\n{}", self.log()),
        }
    }

    fn log(&self) -> String {
        driver_log(&self.dir.path().join("chromedriver.log"))
    }

    /// The fantoccini client, for what the calls below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates and waits for the page's load event.
    pub async fn goto(&self, url: &str) {
        self.bounded(&format!("going to {url}"), self.client.goto(url)).await;
    }

    pub async fn refresh(&self) {
        self.bounded("refreshing", self.client.refresh()).await;
    }

    /// The first element matching `css`, or `None`.
    pub async fn find(&self, css: &str) -> Option<Element> {
        match tokio::time::timeout(CALL_TIMEOUT, self.client.find(Locator::Css(css))).await {
            Ok(Ok(element)) => Some(element),
            Ok(Err(e)) if e.is_no_such_element() => None,
            Ok(Err(e)) => panic!("WebDriver: finding {css}: {e}\n{}", self.log()),
            Err(_) => panic!("WebDriver: finding {css}: no answer within {CALL_TIMEOUT:?}"),
        }
    }

    /// Every element matching `css`.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.bounded(&format!("finding every {css}"), self.client.find_all(Locator::Css(css)))
            .await
    }

    /// `find`, or a panic naming the selector.
    pub async fn get(&self, css: &str) -> Element {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    pub async fn click(&self, element: &Element) {
        self.bounded("clicking", element.click()).await;
    }

    pub async fn send_keys(&self, element: &Element, text: &str) {
        self.bounded("typing", element.send_keys(text)).await;
    }

    /// The rendered text (empty for hidden elements).
    pub async fn text(&self, element: &Element) -> String {
        self.bounded("reading a text", element.text()).await
    }

    /// The text of the element matching `css` (which must exist).
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.get(css).await;
        self.text(&element).await
    }

    pub async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        self.bounded(&format!("reading the attribute {name}"), element.attr(name))
            .await
    }

    pub async fn is_enabled(&self, element: &Element) -> bool {
        self.bounded("asking whether enabled", element.is_enabled()).await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(args) => args,
            other => vec![other],
        };
        self.bounded("running a script", self.client.execute(script, args))
            .await
    }

    /// Runs an asynchronous `script`, whose last argument is the callback
    /// that ends it with its value.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(args) => args,
            other => vec![other],
        };
        self.bounded(
            "running an asynchronous script",
            self.client.execute_async(script, args),
        )
        .await
    }

    /// Sets the outer window size.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.bounded("resizing the window", self.client.set_window_size(width, height))
            .await;
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let command = Cdp {
            cmd: cmd.to_owned(),
            params,
        };
        self.bounded(&format!("DevTools {cmd}"), self.client.issue_cmd(command))
            .await
    }

    /// The viewport as PNG bytes.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.bounded("taking a screenshot", self.client.screenshot()).await
    }

    /// Takes a screenshot, checks that it is a PNG of some substance, and
    /// saves it to `path`.
    pub async fn save_screenshot(&self, path: &Path) -> usize {
        let png = self.screenshot().await;
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
        // Ending the session makes chromedriver quit Chromium. The drop
        // cannot await, so it blocks this worker thread for the call (the
        // browser tests run on the multi-threaded runtime; elsewhere only
        // the process group is killed).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                let client = self.client.clone();
                tokio::task::block_in_place(|| {
                    let _ = runtime.block_on(tokio::time::timeout(Duration::from_secs(10), client.close()));
                });
            }
        }
        // Whatever is left of chromedriver and Chromium.
        // SAFETY: kill(2) on the process group of our own child has no
        // memory effects.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// The last 40 lines of chromedriver's log.
fn driver_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute`: a DevTools command.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}
