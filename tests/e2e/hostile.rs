//! Issue 15's reproductions on the agent's side of the LAN: what a careless
//! or hostile neighbour sends must not lock the dashboard out, forge or
//! flood the log, flip a simulated input without the token, read the API
//! through DNS rebinding, or pile up automation runs and relay switches.
//! Each test prints the figure it measures ("before" is main at `9ab1648`,
//! measured with the same test; docs/PERFORMANCE.md has both).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{free_port, test_config, wait_for, Agent, Broker, Observer, TEST_TOKEN};

/// A simulated relay and a door input.
const SIM: &str = "[system]\nenabled = false\n\n[gpio]\nbackend = \"sim\"\nstate_file = \"/dev/null/unused\"\n\n[[inputs]]\nname = \"door\"\npin = 17\ndebounce_ms = 0\n\n[[outputs]]\nname = \"relay\"\npin = 27\n";

/// Reproduction 5: 2,000 rejected payloads of 60 KB, each with a newline
/// and a forged log line in it. Main logged each whole and raw (118 MB in
/// 2 s, and the forged lines looked real).
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_bad_payloads_should_neither_forge_nor_flood_the_log() {
    // Mosquitto drops what it queues for a subscriber beyond 1,000
    // messages; all 2,000 must reach the agent for the count to add up.
    let broker = Broker::start_with(free_port(), "allow_anonymous true\nmax_queued_messages 5000\n");
    let mut agent = Agent::start(&test_config("flood", broker.port, SIM)).await;
    let observer = Observer::connect(broker.port, "majortom/flood/relay/state").await;
    observer
        .wait_for_message("majortom/flood/relay/state", Duration::from_secs(10), |m| {
            m.payload == "OFF"
        })
        .await;
    let forged = "2026-01-01T00:00:00.000Z  WARN majortom::app: FORGED";
    let payload = format!("ON\n{forged}\n{}", "x".repeat(60 * 1024 - 100));
    let before = agent.log().len();
    let started = Instant::now();
    for _ in 0..2_000 {
        observer.publish("majortom/flood/relay/set", &payload, false).await;
    }
    // Messages from one client arrive in order: once this one is echoed,
    // every bad one before it has been dealt with.
    observer.publish("majortom/flood/relay/set", "ON", false).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !observer
        .messages()
        .iter()
        .any(|m| m.topic.ends_with("/state") && m.payload == "ON" && !m.retain)
    {
        let log = agent.log();
        assert!(
            Instant::now() < deadline,
            "no echo of ON; the log's end:\n{}",
            &log[log.len().saturating_sub(3000)..]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flood_bytes = agent.log().len() - before;
    println!(
        "reproduction 5: 2,000 payloads of 60 KB wrote {flood_bytes} bytes of log in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    agent.signal(libc::SIGTERM);
    agent.wait_exit(Duration::from_secs(5)).await.expect("stops");
    let log = agent.log();
    assert!(
        !log.lines().any(|line| line.starts_with(forged)),
        "a payload forged a log line"
    );
    assert!(flood_bytes < 64 * 1024, "{flood_bytes} bytes of log for the flood");
    let rejected: Vec<&str> = log.lines().filter(|l| l.contains("ignoring command")).collect();
    assert!(
        rejected.len() >= 2 && rejected[0].contains("payload=ON\\n2026-01-01") && rejected[0].contains("…(+"),
        "the first rejections are logged, escaped and cut: {:?}",
        rejected.first()
    );
    // Every rejection is either a line or counted in a summary.
    let suppressed: u64 = log
        .lines()
        .filter(|l| l.contains("similar lines suppressed") && l.contains("mqtt"))
        .map(|l| {
            l.split(": ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .sum();
    assert_eq!(suppressed as usize + rejected.len(), 2_000, "{} lines", rejected.len());
}

/// One HTTP/1.1 exchange from `source` (another loopback address stands
/// for another machine on the LAN), `connection: close`: the status, head
/// and body, or `None` if no answer came within `timeout`.
async fn exchange(source: &str, addr: SocketAddr, request: &str, timeout: Duration) -> Option<(u16, String, String)> {
    let attempt = async {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(format!("{source}:0").parse().ok()?).ok()?;
        let mut stream = socket.connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.ok()?;
        let text = String::from_utf8_lossy(&received).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, head.to_owned(), body.to_owned()))
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

fn request(method: &str, path: &str, host: &str, headers: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// Reproduction 3: 64 clients that pipeline requests and never read held
/// every connection, and the dashboard answered 503 for as long as they
/// liked. Now one address holds at most 16, and a stalled write is cut.
#[tokio::test(flavor = "multi_thread")]
async fn clients_that_pipeline_and_never_read_should_not_lock_the_dashboard_out() {
    const ATTACK: Duration = Duration::from_secs(15);
    const PROBE_EVERY: Duration = Duration::from_millis(250);
    let broker = Broker::start();
    let agent = Agent::start(&test_config("lockout", broker.port, "")).await;
    let addr = agent.web.expect("web");
    let stop = Arc::new(AtomicBool::new(false));
    let pipelined = format!("GET /api/state HTTP/1.1\r\nhost: {addr}\r\n\r\n").repeat(500);
    let attackers: Vec<_> = (0..64)
        .map(|_| {
            let (stop, pipelined) = (stop.clone(), pipelined.clone());
            tokio::spawn(async move {
                // Connect, send requests without end, never read; when the
                // server closes the connection, come back.
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(mut stream) = TcpStream::connect(addr).await {
                        let flood = async {
                            while stream.write_all(pipelined.as_bytes()).await.is_ok() {}
                        };
                        tokio::select! {
                            () = flood => {}
                            () = async { while !stop.load(Ordering::SeqCst) { tokio::time::sleep(Duration::from_millis(100)).await } } => return,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    // Let them take their places, then look from another machine.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let (mut probes, mut refused) = (0u32, 0u32);
    while started.elapsed() < ATTACK {
        let probe = request("GET", "/api/health", &addr.to_string(), "", "");
        let answer = exchange("127.0.0.2", addr, &probe, Duration::from_secs(2)).await;
        probes += 1;
        if answer.as_ref().is_none_or(|(status, ..)| *status != 200) {
            refused += 1;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        let _ = attacker.await;
    }
    let locked_out = f64::from(refused) / f64::from(probes) * ATTACK.as_secs_f64();
    println!(
        "reproduction 3: locked out for {locked_out:.1} s of {} s ({refused} of {probes} probes refused or unanswered)",
        ATTACK.as_secs()
    );
    assert_eq!(refused, 0, "the dashboard was locked out for {locked_out:.1} s");
    assert!(agent.log().contains("too many HTTP connections from one address"));
}

/// Reproduction 4: with `web.token` set, anyone could flip a simulated
/// input (and fire the automations on it) without it.
#[tokio::test(flavor = "multi_thread")]
async fn simulated_inputs_should_need_the_token() {
    let broker = Broker::start();
    let agent = Agent::start(&test_config("simtoken", broker.port, SIM)).await;
    let addr = agent.web.expect("web");
    let flip = |authorization: &str| {
        request(
            "PUT",
            "/api/sim/inputs/door",
            &addr.to_string(),
            authorization,
            "{\"high\": false}",
        )
    };
    let timeout = Duration::from_secs(5);
    // Pulled up: ON until the wire goes low.
    assert_eq!(agent.get_json("/api/entities/door")["state"], "ON");
    let (status, ..) = exchange("127.0.0.1", addr, &flip(""), timeout).await.expect("answer");
    assert_eq!(status, 401, "no token");
    let (status, ..) = exchange("127.0.0.1", addr, &flip("authorization: Bearer nope\r\n"), timeout)
        .await
        .expect("answer");
    assert_eq!(status, 401, "a wrong token");
    assert_eq!(
        agent.get_json("/api/entities/door")["state"],
        "ON",
        "the input did not move"
    );
    let right = format!("authorization: Bearer {TEST_TOKEN}\r\n");
    let (status, ..) = exchange("127.0.0.1", addr, &flip(&right), timeout)
        .await
        .expect("answer");
    assert_eq!(status, 200);
    wait_for("the input to turn off", Duration::from_secs(5), || {
        (agent.get_json("/api/entities/door")["state"] == "OFF").then_some(())
    })
    .await;
}

/// Reproduction 9: the web server trusted any page: no Host check (DNS
/// rebinding read `/api/state`), no framing or sniffing headers, and wrong
/// tokens were neither throttled nor logged.
#[tokio::test(flavor = "multi_thread")]
async fn the_web_server_should_not_trust_any_page() {
    let broker = Broker::start();
    let config =
        test_config("rebind", broker.port, "").replace("[web]\n", "[web]\nallowed_hosts = [\"pi.example.org\"]\n");
    let mut agent = Agent::start(&config).await;
    let addr = agent.web.expect("web");
    let port = addr.port();
    let timeout = Duration::from_secs(5);
    let get = |host: &str| request("GET", "/api/state", host, "", "");

    // DNS rebinding: a page on evil.example whose name now points here.
    let (status, _, body) = exchange("127.0.0.1", addr, &get(&format!("evil.example:{port}")), timeout)
        .await
        .expect("answer");
    assert_eq!(status, 421, "{body}");
    assert!(!body.contains("entities"), "{body}");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "pi.example.org".into(),
    ] {
        let (status, head, body) = exchange("127.0.0.1", addr, &get(&host), timeout).await.expect("answer");
        assert_eq!(status, 200, "{host}: {body}");
        let head = head.to_ascii_lowercase();
        for header in [
            "content-security-policy: default-src 'self'; frame-ancestors 'none'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
        ] {
            assert!(head.contains(header), "no `{header}`: {head}");
        }
    }

    // Wrong tokens: counted per address, then that address waits.
    let switch = |authorization: &str| {
        request(
            "POST",
            "/api/outputs/restart",
            &addr.to_string(),
            &format!("authorization: Bearer {authorization}\r\n"),
            "{\"state\": \"PRESS\"}",
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, ..) = exchange("127.0.0.1", addr, &switch("guess"), timeout)
            .await
            .expect("answer");
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    let (status, head, _) = exchange("127.0.0.1", addr, &switch(TEST_TOKEN), timeout)
        .await
        .expect("answer");
    assert_eq!(status, 429, "the right token waits too, from that address");
    assert!(head.to_ascii_lowercase().contains("retry-after: "), "{head}");
    // Guesses from a hundred addresses: each is logged, up to the log's
    // limit per call site, then counted.
    for n in 0..100 {
        let (status, ..) = exchange(&format!("127.0.1.{}", n + 1), addr, &switch("guess"), timeout)
            .await
            .expect("answer");
        assert_eq!(status, 401);
    }
    agent.signal(libc::SIGTERM);
    agent.wait_exit(Duration::from_secs(5)).await.expect("stops");
    let log = agent.log();
    let logged = log.lines().filter(|l| l.contains("wrong web token")).count();
    assert!(
        (5..=majortom::logging::BURST as usize + 1).contains(&logged),
        "{logged} lines about wrong tokens"
    );
    assert!(log.contains("client=127.0.0.1"), "the address is logged");
    assert!(
        log.lines()
            .any(|l| l.contains("similar lines suppressed") && l.contains("web/auth.rs")),
        "the rest is counted"
    );
}

/// Reproduction 10, the relay's half: 5,000 TOGGLEs in 3 s switched a
/// relay 5,000 times. With `min_switch_interval_ms = 1000` it switches at
/// most once a second, and ends in the state commanded last.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_toggles_should_not_wear_out_a_relay() {
    let broker = Broker::start_with(free_port(), "allow_anonymous true\nmax_queued_messages 10000\n");
    let outputs = SIM.replace(
        "pin = 27\n",
        "pin = 27\nmin_switch_interval_ms = 1000\n\n[[outputs]]\nname = \"lamp\"\npin = 22\n",
    );
    let agent = Agent::start(&test_config("toggles", broker.port, &outputs)).await;
    let observer = Observer::connect(broker.port, "majortom/toggles/+/state").await;
    observer
        .wait_for_message("majortom/toggles/relay/state", Duration::from_secs(10), |m| {
            m.payload == "OFF"
        })
        .await;
    let writes = || {
        agent.get_json("/api/sim/pins")["outputs"]["relay"]["writes"]
            .as_u64()
            .expect("writes")
    };
    let before = writes();
    let started = Instant::now();
    for n in 0..5_000 {
        observer.publish("majortom/toggles/relay/set", "TOGGLE", false).await;
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    observer.publish("majortom/toggles/relay/set", "ON", false).await;
    // The lamp's echo comes after every command to the relay was applied
    // or merged (one client's messages arrive in order; one task owns both).
    observer.publish("majortom/toggles/lamp/set", "ON", false).await;
    observer
        .wait_for_message("majortom/toggles/lamp/state", Duration::from_secs(60), |m| {
            m.payload == "ON"
        })
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let switches = writes() - before;
    println!("reproduction 10: 5,000 TOGGLEs in {seconds:.1} s switched the relay {switches} times");
    assert!(
        switches as f64 <= seconds + 1.0,
        "{switches} switches in {seconds:.1} s"
    );
    // The merged commands end in the last one: ON.
    wait_for("the relay to end ON", Duration::from_secs(3), || {
        (agent.get_json("/api/sim/pins")["outputs"]["relay"]["high"] == true).then_some(())
    })
    .await;
}
