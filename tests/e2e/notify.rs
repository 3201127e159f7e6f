//! The systemd notify protocol as systemd sees it: a datagram socket named
//! by `$NOTIFY_SOCKET` receives READY=1, then WATCHDOG=1 at half the
//! `$WATCHDOG_USEC` period, then STOPPING=1.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::{test_config, Agent, Broker};

fn receive_until(socket: &UnixDatagram, deadline: Instant, wanted: &str, seen: &mut Vec<String>) {
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
            let done = message.lines().any(|l| l == wanted);
            seen.push(message);
            if done {
                return;
            }
        }
    }
    panic!("no {wanted} before the deadline; got {seen:?}");
}

/// A datagram socket in `dir` standing in for systemd's notify socket.
fn notify_socket(dir: &std::path::Path) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    (socket, path)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_should_report_ready_ping_the_watchdog_and_report_stopping() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket, path) = notify_socket(dir.path());

    let mut agent = Agent::spawn_with_env(
        &test_config("notify", broker.port, ""),
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen = Vec::new();
    receive_until(&socket, Instant::now() + Duration::from_secs(10), "READY=1", &mut seen);
    // A 1 s watchdog means a ping every 0.5 s: three within 3 s.
    for _ in 0..3 {
        receive_until(
            &socket,
            Instant::now() + Duration::from_secs(3),
            "WATCHDOG=1",
            &mut seen,
        );
    }
    agent.signal(libc::SIGTERM);
    receive_until(
        &socket,
        Instant::now() + Duration::from_secs(5),
        "STOPPING=1",
        &mut seen,
    );
    assert!(agent
        .wait_exit(Duration::from_secs(5))
        .await
        .is_some_and(|s| s.success()));
    assert_eq!(
        seen.first().map(String::as_str),
        Some("READY=1"),
        "readiness comes first: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_watchdog_the_agent_should_only_report_ready_and_stopping() {
    // No WATCHDOG_USEC, and a zero one, which must not panic the ping timer.
    for watchdog in [None, Some("0")] {
        let broker = Broker::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, path) = notify_socket(dir.path());
        let mut env = vec![("NOTIFY_SOCKET", path.to_str().expect("utf-8"))];
        env.extend(watchdog.map(|usec| ("WATCHDOG_USEC", usec)));
        let agent = Agent::spawn_with_env(&test_config("nowd", broker.port, ""), &[], &env);
        let mut seen = Vec::new();
        receive_until(&socket, Instant::now() + Duration::from_secs(10), "READY=1", &mut seen);
        // An HTTP answer after READY=1: the agent runs on one thread, and
        // its main loop goes from READY=1 to its first wait without
        // yielding, past the first tick of a ping timer (which fires at
        // once). A ping that should not be sent would be on the socket
        // before this answer.
        let mut agent = agent.until_listening().await;
        agent.get_json("/api/health");
        agent.signal(libc::SIGTERM);
        receive_until(
            &socket,
            Instant::now() + Duration::from_secs(5),
            "STOPPING=1",
            &mut seen,
        );
        assert_eq!(
            seen,
            vec!["READY=1".to_owned(), "STOPPING=1".to_owned()],
            "WATCHDOG_USEC={watchdog:?}"
        );
        assert!(
            agent
                .wait_exit(Duration::from_secs(5))
                .await
                .is_some_and(|s| s.success()),
            "WATCHDOG_USEC={watchdog:?}"
        );
    }
}
