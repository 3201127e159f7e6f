//! Builds this agent's `info` from the hub's system figures and hands it to
//! the MQTT sink (a watch channel: only the newest counts). Rate-limited:
//! every `fleet.info_interval_s`, and sooner (checked every 5 s) when an
//! alert flag changes (throttling, under-voltage, a disk over 90 %).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fleet::info::{Info, DISK_ALERT_PCT};
use crate::hub::{Hub, Value};

/// How often the flags are looked at; also the least time between two
/// payloads.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Who we are, for the payload.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub model: String,
    pub url: Option<String>,
}

pub struct Publisher {
    hub: Arc<Hub>,
    identity: Identity,
    started: Instant,
    every: Duration,
    info: watch::Sender<Option<Vec<u8>>>,
}

impl Publisher {
    /// The publisher and the receiving end for the MQTT sink.
    pub fn new(hub: Arc<Hub>, identity: Identity, every: Duration) -> (Publisher, watch::Receiver<Option<Vec<u8>>>) {
        let (info, receiver) = watch::channel(None);
        let publisher = Publisher {
            hub,
            identity,
            started: Instant::now(),
            every,
            info,
        };
        (publisher, receiver)
    }

    /// Our `info` now.
    pub fn info(&self) -> Info {
        let number = |id: &str| match self.hub.get(id).and_then(|e| e.value) {
            Some(Value::Number(n)) if n.is_finite() => Some(n),
            _ => None,
        };
        let flag = |id: &str| match self.hub.get(id).and_then(|e| e.value) {
            Some(Value::Bool(on)) => Some(on),
            _ => None,
        };
        Info {
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            name: Some(self.identity.name.clone()),
            model: Some(self.identity.model.clone()),
            url: self.identity.url.clone(),
            uptime_s: Some(self.started.elapsed().as_secs() as f64),
            cpu_temp_c: number("cpu_temperature"),
            throttled: flag("throttled"),
            under_voltage: flag("under_voltage"),
            disk_pct: number("disk_used"),
            mem_pct: number("memory_used"),
            time: SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        // On the shared grid: in the same wake-up as the system round.
        let mut check = crate::time::aligned_interval(CHECK_EVERY.min(self.every));
        let mut last: Option<(Instant, Flags)> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = check.tick() => {
                    let info = self.info();
                    let flags = flags(&info);
                    let due = last.is_none_or(|(at, before)| at.elapsed() >= self.every || before != flags);
                    if due {
                        self.info.send_replace(Some(info.to_payload()));
                        last = Some((Instant::now(), flags));
                    }
                }
            }
        }
    }
}

/// What makes a new payload worth sending at once.
type Flags = (Option<bool>, Option<bool>, Option<bool>);

fn flags(info: &Info) -> Flags {
    (
        info.throttled,
        info.under_voltage,
        info.disk_pct.map(|d| d >= DISK_ALERT_PCT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{EntitySpec, Group, DEFAULT_HISTORY_LEN};

    #[tokio::test(start_paused = true)]
    async fn a_new_flag_should_go_out_within_seconds_and_figures_only_every_interval() {
        let hub = Hub::new(DEFAULT_HISTORY_LEN);
        hub.register(EntitySpec::sensor("disk_used", "Disk used", Group::System));
        hub.register(EntitySpec::binary_sensor(
            "under_voltage",
            "Under-voltage",
            Group::System,
        ));
        let identity = Identity {
            name: "Garage".into(),
            model: "Raspberry Pi 4".into(),
            url: Some("http://10.0.0.2:8080/".into()),
        };
        hub.set("disk_used", Value::Number(42.0));
        let (publisher, mut info) = Publisher::new(hub.clone(), identity, Duration::from_secs(60));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(publisher.run(cancel.clone()));
        info.changed().await.expect("first payload");
        let first = Info::parse(info.borrow_and_update().as_deref().expect("some")).expect("valid");
        assert_eq!(first.name.as_deref(), Some("Garage"));
        assert_eq!(first.disk_pct, Some(42.0));

        let start = tokio::time::Instant::now();
        hub.set("disk_used", Value::Number(50.0));
        info.changed().await.expect("periodic payload");
        assert!(
            start.elapsed() >= Duration::from_secs(55),
            "a figure alone waits for the interval"
        );
        let start = tokio::time::Instant::now();
        hub.set("under_voltage", Value::Bool(true));
        info.changed().await.expect("flag payload");
        assert!(start.elapsed() <= CHECK_EVERY, "{:?}", start.elapsed());
        let now = Info::parse(info.borrow_and_update().as_deref().expect("some")).expect("valid");
        assert_eq!((now.under_voltage, now.disk_pct), (Some(true), Some(50.0)));
        cancel.cancel();
        task.await.expect("ends on cancel");
    }
}
