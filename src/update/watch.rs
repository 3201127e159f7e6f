//! Judging a restarted service from what `systemctl show` says, and the
//! agent's health from `/api/health`. Pure: `update` polls and asks.
//!
//! How READY is seen: the unit is `Type=notify`, so systemd keeps it
//! `activating/start` until the agent sends READY=1 and only then makes it
//! `active/running`. A new main pid in `active/running` is a new process
//! that reported READY. A crash shows as `failed`, as `auto-restart`
//! (`Restart=on-failure` waiting to start it again), or as a higher
//! `NRestarts`.

use std::net::SocketAddr;

/// The properties `update` asks for, in `systemctl show -p` order.
pub const PROPERTIES: &str = "ActiveState,SubState,ExecMainPID,NRestarts,Result";

/// What `systemctl show` says about the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub active: String,
    pub sub: String,
    pub main_pid: u32,
    pub restarts: u32,
    pub result: String,
}

impl ServiceState {
    /// `KEY=value` lines, as `systemctl show -p …` prints them.
    pub fn parse(text: &str) -> ServiceState {
        let mut state = ServiceState::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key {
                "ActiveState" => state.active = value.to_owned(),
                "SubState" => state.sub = value.to_owned(),
                "ExecMainPID" => state.main_pid = value.parse().unwrap_or(0),
                "NRestarts" => state.restarts = value.parse().unwrap_or(0),
                "Result" => state.result = value.to_owned(),
                _ => {}
            }
        }
        state
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.active, self.sub)?;
        if !self.result.is_empty() && self.result != "success" {
            write!(f, ", result {}", self.result)?;
        }
        Ok(())
    }
}

/// Where a restart stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not ready yet; what the service is doing.
    Waiting(String),
    /// A new process reported READY: its pid.
    Ready(u32),
    /// It will not become ready: why.
    Failed(String),
}

/// Judges `now` against the state `before` the restart was asked for.
pub fn judge(before: &ServiceState, now: &ServiceState) -> Progress {
    if now.restarts > before.restarts {
        return Progress::Failed(format!(
            "it stopped and systemd restarted it ({} restarts; {now})",
            now.restarts - before.restarts
        ));
    }
    match (now.active.as_str(), now.sub.as_str()) {
        ("failed", _) => Progress::Failed(format!("the service failed: {now}")),
        (_, "auto-restart") => Progress::Failed(format!("it exited and systemd is about to restart it: {now}")),
        ("inactive", _) if !now.result.is_empty() && now.result != "success" => {
            Progress::Failed(format!("the service stopped: {now}"))
        }
        ("active", "running") if now.main_pid != 0 && now.main_pid != before.main_pid => Progress::Ready(now.main_pid),
        ("active", "running") => Progress::Waiting("the old process is still running".to_owned()),
        _ => Progress::Waiting(now.to_string()),
    }
}

/// Where `/api/health` answers: the configured listen address, with an
/// unspecified one (`0.0.0.0`, `::`) replaced by loopback.
pub fn health_address(listen: SocketAddr) -> SocketAddr {
    let mut address = listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    address
}

/// Whether a `/api/health` body says the agent is healthy; its version.
/// The body is the agent's own compact JSON (`web::views`), so its string
/// fields are found by their `"key":"` prefix: a JSON parser into a
/// `Value` would cost the armv6 binary several KB for two fields.
pub fn healthy(body: &[u8]) -> Result<String, String> {
    let body = String::from_utf8_lossy(body);
    match string_field(&body, "status") {
        Some("ok") => Ok(string_field(&body, "version").unwrap_or("?").to_owned()),
        Some(status) => Err(format!("/api/health says status {status}")),
        None => Err("/api/health answered without a status".to_owned()),
    }
}

/// The value of the first `"key":"value"` in compact JSON (no escapes in
/// the value).
fn string_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let value = &json[start..];
    value.find(['"', '\\']).map(|end| &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: &str, sub: &str, pid: u32, restarts: u32, result: &str) -> ServiceState {
        ServiceState {
            active: active.into(),
            sub: sub.into(),
            main_pid: pid,
            restarts,
            result: result.into(),
        }
    }

    #[test]
    fn systemctl_show_output_should_parse_and_ignore_the_rest() {
        let text =
            "ActiveState=active\nSubState=running\nExecMainPID=4242\nNRestarts=3\nResult=success\nOther=x\nnoise\n";
        assert_eq!(
            ServiceState::parse(text),
            state("active", "running", 4242, 3, "success")
        );
        assert_eq!(ServiceState::parse("ExecMainPID=bogus\n").main_pid, 0);
    }

    #[test]
    fn a_new_pid_running_should_be_ready_and_the_old_one_should_be_waited_for() {
        let before = state("active", "running", 100, 0, "success");
        assert_eq!(
            judge(&before, &state("active", "running", 200, 0, "success")),
            Progress::Ready(200)
        );
        assert!(matches!(judge(&before, &before), Progress::Waiting(_)));
        let starting = judge(&before, &state("activating", "start", 200, 0, "success"));
        assert_eq!(starting, Progress::Waiting("activating (start)".into()));
        let stopped = state("inactive", "dead", 0, 0, "success");
        assert!(
            matches!(judge(&before, &stopped), Progress::Waiting(_)),
            "between stop and start"
        );
    }

    #[test]
    fn failures_restarts_and_auto_restarts_should_fail_with_the_reason() {
        let before = state("active", "running", 100, 1, "success");
        for (now, words) in [
            (
                state("failed", "failed", 0, 1, "exit-code"),
                "failed: failed (failed), result exit-code",
            ),
            (
                state("activating", "auto-restart", 0, 1, "exit-code"),
                "about to restart",
            ),
            (state("active", "running", 300, 2, "success"), "1 restarts"),
            (state("inactive", "dead", 0, 1, "signal"), "result signal"),
        ] {
            match judge(&before, &now) {
                Progress::Failed(why) => assert!(why.contains(words), "{why}"),
                other => panic!("{now:?} should fail, not {other:?}"),
            }
        }
    }

    #[test]
    fn health_should_be_asked_on_loopback_for_an_unspecified_address() {
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(health_address(any), "127.0.0.1:8080".parse().expect("addr"));
        let any6: SocketAddr = "[::]:8080".parse().expect("addr");
        assert_eq!(health_address(any6), "[::1]:8080".parse().expect("addr"));
        let lan: SocketAddr = "192.168.1.5:80".parse().expect("addr");
        assert_eq!(health_address(lan), lan);
    }

    #[test]
    fn health_bodies_should_be_judged_by_their_status() {
        assert_eq!(
            healthy(br#"{"status":"ok","version":"0.2.0","mqtt":{"status":"x"}}"#),
            Ok("0.2.0".into())
        );
        assert_eq!(healthy(br#"{"status":"ok"}"#), Ok("?".into()));
        let degraded = healthy(br#"{"status":"degraded"}"#).expect_err("not ok");
        assert!(degraded.contains("degraded"), "{degraded}");
        assert!(healthy(b"<html>").is_err());
        assert!(healthy(br#"{"status":"ok"#).is_err(), "cut off");
    }
}
