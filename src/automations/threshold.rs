//! Threshold triggers (a value crossing a limit, or a band with
//! hysteresis) and the conditions an automation checks before it runs.

use crate::config::Condition;
use crate::hub::{Hub, Value};

/// Tracks which side of the threshold a value is on; returns `Some(true)`
/// on entering "above", `Some(false)` on entering "below". With both
/// limits, values between them change nothing (hysteresis).
pub(super) fn crossing(band: &mut Option<bool>, value: f64, above: Option<f64>, below: Option<f64>) -> Option<bool> {
    let side = match (above, below) {
        (Some(high), Some(low)) => {
            if value > high {
                Some(true)
            } else if value < low {
                Some(false)
            } else {
                None
            }
        }
        (Some(high), None) => Some(value > high),
        (None, Some(low)) => Some(value >= low),
        (None, None) => None,
    }?;
    let changed = *band != Some(side);
    let first = band.is_none();
    *band = Some(side);
    match (above, below) {
        // A single limit fires on crossing it, not on the first reading.
        (Some(_), None) => (changed && !first && side).then_some(true),
        (None, Some(_)) => (changed && !first && !side).then_some(false),
        // A band fires on entering either side, the first reading included,
        // so a fan is put right at start.
        _ => changed.then_some(side),
    }
}

pub(super) fn holds(hub: &Hub, condition: &Condition) -> bool {
    match condition {
        Condition::State { entity, on } => hub.get(entity).and_then(|e| e.value) == Some(Value::Bool(*on)),
        Condition::Range { entity, above, below } => match hub.get(entity).and_then(|e| e.value) {
            Some(Value::Number(n)) => above.is_none_or(|a| n > a) && below.is_none_or(|b| n < b),
            _ => false,
        },
    }
}
