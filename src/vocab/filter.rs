//! Filters as the config writes them (`{ delta = 0.5 }`), and the check
//! that tells a usable one from one that is not. Running them is
//! `crate::filters`' job; the config only needs the words and the check.

use std::time::Duration;

use serde::Deserialize;

/// One filter as written in the config, e.g. `{ delta = 0.5 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterSpec {
    Offset(f64),
    Multiply(f64),
    /// Decimals to keep.
    Round(u8),
    Clamp {
        min: Option<f64>,
        max: Option<f64>,
    },
    SlidingWindow {
        size: usize,
        #[serde(default)]
        kind: WindowKind,
    },
    /// A number (absolute), or a string like `"5%"` (relative to the last
    /// value passed).
    Delta(DeltaSpec),
    /// Seconds.
    Throttle(f64),
    /// Seconds.
    Heartbeat(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    #[default]
    Average,
    Median,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DeltaSpec {
    Absolute(f64),
    Text(String),
}

/// Why a filter spec is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("offset and multiply take a finite number")]
    Number,
    #[error("round keeps at most 10 decimals")]
    Round,
    #[error("clamp needs a finite min and/or max, with min ≤ max")]
    Clamp,
    #[error("sliding_window size must be between 1 and 1000")]
    Window,
    #[error("delta must be a positive finite number or a percentage like \"5%\"")]
    Delta,
    #[error("throttle and heartbeat take a number of seconds above 0 and up to a year")]
    Seconds,
}

/// A filter whose parameters are checked: what a filter chain is built of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Checked {
    Offset(f64),
    Multiply(f64),
    Round(u8),
    Clamp(Option<f64>, Option<f64>),
    Window {
        size: usize,
        kind: WindowKind,
    },
    /// `percent`: the threshold is a percentage of the last value passed.
    Delta {
        threshold: f64,
        percent: bool,
    },
    Throttle(Duration),
    Heartbeat(Duration),
}

impl FilterSpec {
    /// The filter's parameters, checked; or why they are not usable.
    pub fn check(&self) -> Result<Checked, FilterError> {
        Ok(match self {
            FilterSpec::Offset(n) if n.is_finite() => Checked::Offset(*n),
            FilterSpec::Multiply(n) if n.is_finite() => Checked::Multiply(*n),
            FilterSpec::Offset(_) | FilterSpec::Multiply(_) => return Err(FilterError::Number),
            FilterSpec::Round(d) if *d <= 10 => Checked::Round(*d),
            FilterSpec::Round(_) => return Err(FilterError::Round),
            FilterSpec::Clamp { min, max } => match (min, max) {
                (None, None) => return Err(FilterError::Clamp),
                _ if min.iter().chain(max).any(|n| !n.is_finite()) => return Err(FilterError::Clamp),
                (Some(lo), Some(hi)) if lo > hi => return Err(FilterError::Clamp),
                _ => Checked::Clamp(*min, *max),
            },
            FilterSpec::SlidingWindow { size, kind } if (1..=1000).contains(size) => Checked::Window {
                size: *size,
                kind: *kind,
            },
            FilterSpec::SlidingWindow { .. } => return Err(FilterError::Window),
            FilterSpec::Delta(DeltaSpec::Absolute(n)) if *n > 0.0 && n.is_finite() => Checked::Delta {
                threshold: *n,
                percent: false,
            },
            FilterSpec::Delta(DeltaSpec::Text(text)) => {
                let number = text.trim().strip_suffix('%').ok_or(FilterError::Delta)?;
                let percent: f64 = number.trim().parse().map_err(|_| FilterError::Delta)?;
                if !percent.is_finite() || percent <= 0.0 {
                    return Err(FilterError::Delta);
                }
                Checked::Delta {
                    threshold: percent,
                    percent: true,
                }
            }
            FilterSpec::Delta(_) => return Err(FilterError::Delta),
            FilterSpec::Throttle(s) => Checked::Throttle(seconds(*s)?),
            FilterSpec::Heartbeat(s) => Checked::Heartbeat(seconds(*s)?),
        })
    }
}

/// Above 0 (also once in nanoseconds) and at most a year; NaN is refused.
fn seconds(value: f64) -> Result<Duration, FilterError> {
    if value > 0.0 && value <= 31_536_000.0 {
        Some(Duration::from_secs_f64(value))
            .filter(|d| !d.is_zero())
            .ok_or(FilterError::Seconds)
    } else {
        Err(FilterError::Seconds)
    }
}
