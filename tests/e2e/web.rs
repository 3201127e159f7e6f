//! The HTTP side through the real binary: Prometheus metrics checked by
//! promtool, HTTP without MQTT, and a stop with dashboards still connected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{find_program, free_port, test_config, wait_for, Agent, Broker};

const SIM_HARDWARE: &str = "[gpio]\nbackend = \"sim\"\nstate_file = \"/dev/null/unused\"\n\n[[inputs]]\nname = \"door\"\npin = 17\n\n[[outputs]]\nname = \"relay\"\npin = 27\n\n[[sensors]]\nkind = \"bme280\"\nname = \"outside\"\ninterval_s = 1\n";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_should_pass_promtool_and_carry_entities_and_process_figures() {
    let broker = Broker::start();
    let agent = Agent::start(&test_config(
        "prom",
        broker.port,
        &format!("[system]\ninterval_s = 1\n\n{SIM_HARDWARE}"),
    ))
    .await;
    // The CPU's second sample and the sensor's first reading: each comes
    // on its own task, in either order on a loaded machine.
    let (status, text) = wait_for("the second sample", Duration::from_secs(10), || {
        let (status, text) = agent.get("/metrics");
        // (Availability lines name every entity from the start: a value
        // line is what says it was sampled.)
        let sampled = ["cpu_usage", "outside_temperature"]
            .iter()
            .all(|id| text.contains(&format!("majortom_entity_value{{node=\"prom\",entity=\"{id}\"")));
        sampled.then_some((status, text))
    })
    .await;
    assert_eq!(status, 200);
    for needle in [
        "majortom_entity_value{node=\"prom\",entity=\"outside_temperature\"",
        "majortom_entity_on{node=\"prom\",entity=\"relay\"",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "majortom_mqtt_messages_published_total ",
        "majortom_sse_clients 0",
        "majortom_tasks ",
        "process_open_fds ",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    let mut promtool = Command::new(find_program("promtool", "prometheus", &[]))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = promtool.wait_with_output().expect("promtool ran");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_mqtt_the_agent_should_still_sample_and_serve_everything() {
    let port = free_port(); // nothing listens there, and nothing should try
    let config =
        test_config("nomqtt", port, "[system]\ninterval_s = 1\n").replace("[mqtt]\n", "[mqtt]\nenabled = false\n");
    let agent = Agent::start(&config).await;
    let health = agent.get_json("/api/health");
    assert_eq!(health["mqtt"]["enabled"], false);
    let state = wait_for("a CPU sample", Duration::from_secs(10), || {
        let state = agent.get_json("/api/state");
        let has_cpu = state["entities"]
            .as_array()?
            .iter()
            .any(|e| e["id"] == "cpu_usage" && e["value"].is_number());
        has_cpu.then_some(state)
    })
    .await;
    assert!(state["entities"].as_array().is_some_and(|e| e.len() >= 10));
    assert_eq!(agent.get("/metrics").0, 200);
    assert!(agent.log().contains("MQTT is disabled"));
    assert!(!agent.log().contains("cannot connect to MQTT"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_open_event_streams_should_close_them_and_exit_within_two_seconds() {
    let broker = Broker::start();
    let mut agent = Agent::start(&test_config("sse", broker.port, "")).await;
    let addr = agent.web.expect("web");
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("request");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("response head");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
        streams.push(stream);
    }
    assert_eq!(
        agent
            .get("/metrics")
            .1
            .lines()
            .find(|l| l.starts_with("majortom_sse_clients ")),
        Some("majortom_sse_clients 3")
    );
    let stopping = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(2)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "did not exit cleanly within 2 s; log: {}",
        agent.log()
    );
    eprintln!("stopped with 3 open streams in {:?}", stopping.elapsed());
    for mut stream in streams {
        let mut rest = Vec::new();
        // The server closed the stream: reading reaches the end.
        stream.read_to_end(&mut rest).expect("stream closed cleanly");
    }
}
