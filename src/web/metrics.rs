//! `GET /metrics`: Prometheus text format. Every numeric entity is a gauge
//! labelled with its node, id, name, group and unit; on/off entities are
//! 0/1 gauges; then the agent's own process metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::hub::Value;
use crate::web::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(&state),
    )
        .into_response()
}

fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    let node = &state.status.node.id;
    let snapshot = state.hub.snapshot();

    family(
        &mut out,
        "majortom_entity_value",
        "gauge",
        "Latest value of each numeric entity.",
    );
    for entity in &snapshot {
        if let Some(Value::Number(n)) = entity.value {
            let spec = &entity.spec;
            let group = format!("{:?}", spec.group).to_lowercase();
            let _ = writeln!(
                out,
                "majortom_entity_value{{node=\"{}\",entity=\"{}\",name=\"{}\",group=\"{}\",unit=\"{}\"}} {}",
                escape(node),
                escape(&spec.id),
                escape(&spec.name),
                group,
                escape(spec.unit.unwrap_or("")),
                number(n)
            );
        }
    }
    family(
        &mut out,
        "majortom_entity_on",
        "gauge",
        "1 when an on/off entity is ON, 0 when OFF.",
    );
    for entity in &snapshot {
        if let Some(Value::Bool(on)) = entity.value {
            let spec = &entity.spec;
            let group = format!("{:?}", spec.group).to_lowercase();
            let _ = writeln!(
                out,
                "majortom_entity_on{{node=\"{}\",entity=\"{}\",name=\"{}\",group=\"{}\"}} {}",
                escape(node),
                escape(&spec.id),
                escape(&spec.name),
                group,
                u8::from(on)
            );
        }
    }
    family(
        &mut out,
        "majortom_entity_available",
        "gauge",
        "0 while an entity's source cannot read it.",
    );
    for entity in &snapshot {
        let _ = writeln!(
            out,
            "majortom_entity_available{{node=\"{}\",entity=\"{}\"}} {}",
            escape(node),
            escape(&entity.spec.id),
            u8::from(entity.available)
        );
    }

    let status = &state.status;
    let version = escape(&status.node.sw_version);
    family(
        &mut out,
        "majortom_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    let _ = writeln!(out, "majortom_build_info{{version=\"{version}\"}} 1");
    family(
        &mut out,
        "majortom_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    let _ = writeln!(out, "majortom_uptime_seconds {}", status.started.elapsed().as_secs());
    family(
        &mut out,
        "majortom_mqtt_connected",
        "gauge",
        "1 while connected to the MQTT broker.",
    );
    let _ = writeln!(out, "majortom_mqtt_connected {}", u8::from(status.mqtt_connected()));
    family(
        &mut out,
        "majortom_mqtt_reconnects_total",
        "counter",
        "Connections to the broker after the first.",
    );
    let _ = writeln!(
        out,
        "majortom_mqtt_reconnects_total {}",
        status.mqtt_connects().saturating_sub(1)
    );
    family(
        &mut out,
        "majortom_mqtt_messages_published_total",
        "counter",
        "MQTT messages sent to the broker.",
    );
    let _ = writeln!(
        out,
        "majortom_mqtt_messages_published_total {}",
        status.mqtt_published()
    );
    family(
        &mut out,
        "majortom_sse_clients",
        "gauge",
        "Open dashboard event streams.",
    );
    let _ = writeln!(
        out,
        "majortom_sse_clients {}",
        state.sse_clients.load(Ordering::Acquire)
    );
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        family(&mut out, "majortom_tasks", "gauge", "Tasks alive on the async runtime.");
        let _ = writeln!(out, "majortom_tasks {}", runtime.metrics().num_alive_tasks());
    }

    if let Some(process) = ProcessStats::read() {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {}", process.rss_bytes);
        family(
            &mut out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", number(process.cpu_seconds));
        family(
            &mut out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        let _ = writeln!(out, "process_open_fds {}", process.open_fds);
        family(&mut out, "process_threads", "gauge", "Number of OS threads.");
        let _ = writeln!(out, "process_threads {}", process.threads);
    }
    if let Some(fleet) = &state.fleet {
        family(
            &mut out,
            "majortom_fleet_up",
            "gauge",
            "1 while a node of the fleet is online, 0 while offline (nodes of unknown status are left out).",
        );
        for node in fleet.nodes() {
            if let Some(online) = node.online {
                let _ = writeln!(
                    out,
                    "majortom_fleet_up{{node=\"{}\"}} {}",
                    escape(&node.id),
                    u8::from(online)
                );
            }
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(n: f64) -> String {
    if n.is_nan() {
        "NaN".to_owned()
    } else if n.is_infinite() {
        if n > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        n.to_string()
    }
}

/// This process's memory and CPU, from /proc/self.
struct ProcessStats {
    rss_bytes: u64,
    cpu_seconds: f64,
    open_fds: usize,
    threads: u64,
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        // SAFETY: sysconf only reads a system constant.
        let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
        let (page, ticks) = (u64::try_from(page).ok()?, u64::try_from(ticks).ok().filter(|t| *t > 0)?);
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised name, which may contain spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let threads: u64 = fields.get(17)?.parse().ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count());
        Some(ProcessStats {
            rss_bytes: resident * page,
            cpu_seconds: (utime + stime) as f64 / ticks as f64,
            open_fds,
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{EntitySpec, Group, Hub};

    #[test]
    fn each_node_of_the_fleet_should_have_an_up_gauge() {
        let fleet = crate::fleet::Fleet::new("pi");
        fleet.observe(crate::fleet::Kind::Status, "pi", b"online", true);
        fleet.observe(crate::fleet::Kind::Status, "garage", b"offline", false);
        fleet.observe(crate::fleet::Kind::Info, "shed", b"{}", true);
        let state = crate::fixtures::web_state(Hub::new(4)).with_fleet(Some(fleet));
        let text = render(&state);
        assert!(text.lines().any(|l| l == "majortom_fleet_up{node=\"pi\"} 1"), "{text}");
        assert!(
            text.lines().any(|l| l == "majortom_fleet_up{node=\"garage\"} 0"),
            "{text}"
        );
        assert!(!text.contains("node=\"shed\"}"), "unknown status: no gauge\n{text}");
        assert!(!render(&crate::fixtures::web_state(Hub::new(4))).contains("majortom_fleet_up"));
    }

    #[test]
    fn every_numeric_and_on_off_entity_should_be_a_labelled_gauge() {
        let hub = Hub::new(4);
        hub.register(EntitySpec::sensor("cpu_usage", "CPU \"usage\"", Group::System).unit("%"));
        hub.register(EntitySpec::binary_sensor("door", "Door", Group::Inputs));
        hub.register(EntitySpec::sensor("never", "Never read", Group::Sensors));
        hub.set("cpu_usage", Value::Number(12.5));
        hub.set("door", Value::Bool(true));
        hub.set_available("never", false);
        let state = crate::fixtures::web_state(hub);
        let text = render(&state);
        for line in [
            "majortom_entity_value{node=\"pi\",entity=\"cpu_usage\",name=\"CPU \\\"usage\\\"\",group=\"system\",unit=\"%\"} 12.5",
            "majortom_entity_on{node=\"pi\",entity=\"door\",name=\"Door\",group=\"inputs\"} 1",
            "majortom_entity_available{node=\"pi\",entity=\"never\"} 0",
            "majortom_build_info{version=\"1.2.3\"} 1",
            "majortom_sse_clients 0",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_open_fds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(!text.contains("entity=\"never\",name"), "no value yet: no gauge");
        let rss: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("rss");
        assert!(rss > 100_000, "{rss}");
    }
}
