//! The `info` payload every agent publishes (retained) beside its status:
//! who it is and its key health figures, as compact JSON. Built from our
//! own figures and read from neighbours'; what neighbours send is checked
//! field by field and anything doubtful is dropped. Pure; no I/O.

use serde::{Deserialize, Serialize};

/// A larger `info` payload is refused unread (ours is about 300 bytes).
pub const MAX_INFO_BYTES: usize = 1024;
/// Longest string kept per field; longer ones are refused.
const MAX_TEXT: usize = 96;
const MAX_URL: usize = 200;

/// One node's `info`. Every field is optional: an older or newer agent may
/// send fewer or more (unknown keys are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Info {
    pub version: Option<String>,
    pub name: Option<String>,
    pub model: Option<String>,
    /// The node's dashboard; only `http://` or `https://` is kept.
    pub url: Option<String>,
    pub uptime_s: Option<f64>,
    pub cpu_temp_c: Option<f64>,
    pub throttled: Option<bool>,
    pub under_voltage: Option<bool>,
    /// Disk and memory used, percent.
    pub disk_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    /// When the sender published it (Unix seconds, its own clock).
    pub time: Option<u64>,
}

/// Why a neighbour's `info` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    TooLarge,
    NotJson,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejection::TooLarge => "larger than 1024 bytes",
            Rejection::NotJson => "not a JSON object of the info layout",
        })
    }
}

/// The disk use from which a node is flagged, percent.
pub const DISK_ALERT_PCT: f64 = 90.0;

impl Info {
    /// Reads a neighbour's payload. Fields that are out of range, too long,
    /// or (for the URL) not a web address are dropped, not trusted.
    pub fn parse(payload: &[u8]) -> Result<Info, Rejection> {
        if payload.len() > MAX_INFO_BYTES {
            return Err(Rejection::TooLarge);
        }
        let mut info: Info = serde_json::from_slice(payload).map_err(|_| Rejection::NotJson)?;
        for text in [&mut info.version, &mut info.name, &mut info.model] {
            if text
                .as_ref()
                .is_some_and(|t| t.len() > MAX_TEXT || t.chars().any(char::is_control))
            {
                *text = None;
            }
        }
        let web = |url: &String| {
            url.len() <= MAX_URL
                && (url.starts_with("http://") || url.starts_with("https://"))
                && !url.chars().any(|c| c.is_control() || c.is_whitespace())
        };
        if !info.url.as_ref().is_some_and(web) {
            info.url = None;
        }
        let keep = |value: &mut Option<f64>, low: f64, high: f64| {
            if value.is_some_and(|v| !(low..=high).contains(&v)) {
                *value = None;
            }
        };
        keep(&mut info.uptime_s, 0.0, 1e10);
        keep(&mut info.cpu_temp_c, -60.0, 200.0);
        keep(&mut info.disk_pct, 0.0, 100.0);
        keep(&mut info.mem_pct, 0.0, 100.0);
        Ok(info)
    }

    /// Our own payload, compact JSON (absent figures are left out).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        value.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_payload_should_read_back_the_same() {
        let info = Info {
            version: Some("0.3.0".into()),
            name: Some("Garage".into()),
            model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            url: Some("http://192.168.1.5:8080/".into()),
            uptime_s: Some(3600.0),
            cpu_temp_c: Some(48.5),
            throttled: Some(false),
            under_voltage: Some(true),
            disk_pct: Some(41.0),
            mem_pct: Some(23.5),
            time: Some(1_764_460_000),
        };
        let payload = info.to_payload();
        assert!(payload.len() < 400, "{}", payload.len());
        assert_eq!(Info::parse(&payload), Ok(info));
        assert!(!String::from_utf8_lossy(&Info::default().to_payload()).contains("null"));
    }

    #[test]
    fn hostile_payloads_should_be_refused_or_cleaned() {
        assert_eq!(Info::parse(&vec![b' '; 2000]), Err(Rejection::TooLarge));
        assert_eq!(Info::parse(b"not json"), Err(Rejection::NotJson));
        assert_eq!(Info::parse(b"[1,2]"), Err(Rejection::NotJson));
        assert_eq!(Info::parse(b"{\"disk_pct\":\"full\"}"), Err(Rejection::NotJson));
        let info = Info::parse(
            br#"{"url":"javascript:alert(1)","name":"a\nb","disk_pct":250,"cpu_temp_c":-1e300,
                 "version":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                 "mem_pct":12,"extra":{"ignored":true}}"#,
        )
        .expect("parsed");
        assert_eq!(
            info,
            Info {
                mem_pct: Some(12.0),
                ..Info::default()
            }
        );
    }
}
