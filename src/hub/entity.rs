//! What an entity is (its [`EntitySpec`]: id, name, component, unit, …)
//! and what value it can have ([`Value`]). Built by the sources at start;
//! the sinks derive discovery payloads and API output from it.

use std::time::Duration;

use crate::vocab::Component;

/// Which card of the dashboard an entity belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    System,
    Inputs,
    Outputs,
    Sensors,
    Automations,
    Commands,
}

/// Home Assistant's `state_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateClass {
    Measurement,
}

/// Everything that describes an entity apart from its value. Built once by a
/// source at start-up; sinks derive discovery payloads and API output from it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySpec {
    /// Stable id within the node: `[a-z0-9_]+`, used in topics and URLs.
    pub id: String,
    /// Human-readable name ("CPU usage").
    pub name: String,
    pub component: Component,
    pub group: Group,
    pub unit: Option<&'static str>,
    /// Home Assistant device class ("temperature", "problem", ...).
    pub device_class: Option<&'static str>,
    pub state_class: Option<StateClass>,
    /// True for values about the agent's host rather than the world
    /// (Home Assistant's `entity_category: diagnostic`).
    pub diagnostic: bool,
    pub icon: Option<&'static str>,
    /// Decimals shown and published for numbers.
    pub precision: u8,
    /// The source republishes at least this often; consumers may treat the
    /// entity as unavailable when it falls silent for longer.
    pub expire_after: Option<Duration>,
    /// The entity can be unavailable on its own (a sensor that fails to
    /// read) while the agent runs, so it gets its own availability topic.
    pub own_availability: bool,
    /// The entity emits press events (single, double, long), discovered as
    /// Home Assistant device triggers.
    pub press_events: bool,
    /// An output with a level (PWM): its value is the level in percent, 0
    /// when off, and it takes levels as commands.
    pub dimmable: bool,
    /// Where the hub keeps the entity, set by `Hub::register` (0 before)
    /// and kept when it is described again: a sink keeps its own state per
    /// entity at this index instead of hashing the id for every change.
    pub slot: usize,
}

impl EntitySpec {
    /// A numeric sensor with no unit, measurement state class and one decimal.
    pub fn sensor(id: &str, name: &str, group: Group) -> EntitySpec {
        EntitySpec {
            id: id.to_owned(),
            name: name.to_owned(),
            component: Component::Sensor,
            group,
            unit: None,
            device_class: None,
            state_class: Some(StateClass::Measurement),
            diagnostic: false,
            icon: None,
            precision: 1,
            expire_after: None,
            own_availability: false,
            press_events: false,
            dimmable: false,
            slot: 0,
        }
    }

    /// An output: a switch or a light, with ON/OFF state.
    pub fn output(id: &str, name: &str, component: Component) -> EntitySpec {
        EntitySpec {
            component,
            ..EntitySpec::binary_sensor(id, name, Group::Outputs)
        }
    }

    /// An on/off sensor.
    pub fn binary_sensor(id: &str, name: &str, group: Group) -> EntitySpec {
        EntitySpec {
            component: Component::BinarySensor,
            state_class: None,
            precision: 0,
            ..EntitySpec::sensor(id, name, group)
        }
    }

    pub fn unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    pub fn device_class(mut self, class: &'static str) -> Self {
        self.device_class = Some(class);
        self
    }

    pub fn icon(mut self, icon: &'static str) -> Self {
        self.icon = Some(icon);
        self
    }

    pub fn precision(mut self, decimals: u8) -> Self {
        self.precision = decimals;
        self
    }

    pub fn diagnostic(mut self) -> Self {
        self.diagnostic = true;
        self
    }

    pub fn expire_after(mut self, after: Duration) -> Self {
        self.expire_after = Some(after);
        self
    }

    pub fn own_availability(mut self) -> Self {
        self.own_availability = true;
        self
    }

    pub fn press_events(mut self) -> Self {
        self.press_events = true;
        self
    }

    /// An output whose value is its level in percent (0 = off).
    pub fn dimmable(mut self) -> Self {
        self.dimmable = true;
        self.precision = 0;
        self
    }
}

/// A value of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
}

impl Value {
    /// The text published on MQTT and shown in the API: numbers rounded to
    /// `precision` decimals, booleans as Home Assistant's `ON`/`OFF`.
    pub fn render(&self, precision: u8) -> String {
        match self {
            Value::Number(n) => {
                fixed_point(*n, precision).unwrap_or_else(|| format!("{:.*}", usize::from(precision), n))
            }
            Value::Bool(true) => "ON".to_owned(),
            Value::Bool(false) => "OFF".to_owned(),
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Bool(_) => None,
        }
    }
}

/// `10^precision` for the precisions `fixed_point` renders.
const SCALES: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// `format!("{:.*}", precision, n)` without the formatter's exact decimal
/// expansion, for the numbers where plain arithmetic gives the same text
/// (issue 19: this was most of what rendering a value cost); `None` for
/// the rest, which `format!` then renders.
///
/// `format!` rounds the exact binary value of `n` to `precision` decimals.
/// Below 2^32, `|n| * 10^precision` is a float within `scaled * 2^-53`
/// (half an ulp) of the exact product, so where its fraction is further
/// than that from one half, the exact product rounds to the same integer:
/// that integer's digits, with the point put in, are the text. Near a half
/// (a tie, or too close to tell), and for NaN, infinities, numbers that
/// scale to 2^32 or more and more than 9 decimals, `None`. (`u32`, so that
/// 32-bit ARM does it in its own registers.)
fn fixed_point(n: f64, precision: u8) -> Option<String> {
    let scale = *SCALES.get(usize::from(precision))?;
    let scaled = n.abs() * scale;
    // `scaled` is not negative: this leaves out NaN, infinities and the
    // numbers too large (below `u32::MAX`, rounding up still fits).
    if scaled.is_nan() || scaled >= f64::from(u32::MAX) {
        return None;
    }
    // Truncation is the floor of a number that is not negative, and the
    // fraction is exact: `whole` and `scaled` are within 1 of each other.
    let whole = scaled as u32;
    let fraction = scaled - f64::from(whole);
    // At least half an ulp of `scaled` (and far below 1/4 here, where a
    // fraction below 1/4 is further than that from one half).
    let error = scaled * f64::EPSILON;
    if (fraction - 0.5).abs() <= error {
        return None;
    }
    let rounded = whole + u32::from(fraction > 0.5);

    // Digits from the right: the decimals, then at least one whole digit.
    let decimals = usize::from(precision);
    let mut digits = [b'0'; 24];
    let mut at = digits.len();
    let mut rest = rounded;
    let mut written = 0;
    while written < decimals + 1 || rest > 0 {
        if written == decimals && decimals > 0 {
            at -= 1;
            digits[at] = b'.';
        }
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        written += 1;
    }
    // `format!` writes the sign of every negative number, -0.0 and numbers
    // that round to zero included.
    if n.is_sign_negative() {
        at -= 1;
        digits[at] = b'-';
    }
    // ASCII, so this never falls back.
    std::str::from_utf8(&digits[at..]).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_should_round_numbers_and_spell_booleans_for_home_assistant() {
        assert_eq!(Value::Number(12.345).render(1), "12.3");
        assert_eq!(Value::Number(3.0).render(0), "3");
        assert_eq!(Value::Bool(true).render(0), "ON");
        assert_eq!(Value::Bool(false).render(0), "OFF");
    }

    #[test]
    fn readings_should_be_rendered_without_the_formatter_and_ties_with_it() {
        assert_eq!(fixed_point(12.345, 1).as_deref(), Some("12.3"));
        assert_eq!(fixed_point(-0.04, 1).as_deref(), Some("-0.0"));
        assert_eq!(fixed_point(3.0, 0).as_deref(), Some("3"));
        assert_eq!(fixed_point(0.52, 2).as_deref(), Some("0.52"));
        assert_eq!(fixed_point(2_000_000.0 / 3.0, 1).as_deref(), Some("666666.7"));
        assert_eq!(fixed_point(4_294_967_294.4, 0).as_deref(), Some("4294967294"));
        assert_eq!(fixed_point(4_294_967_295.0, 0), None, "beyond u32");
        assert_eq!(fixed_point(0.5, 0), None, "a tie");
        assert_eq!(fixed_point(f64::NAN, 1), None);
        assert_eq!(fixed_point(1.0, 10), None);
    }

    #[test]
    fn render_should_match_format_on_halves_and_edges() {
        let cases = [
            429_496_729.45,
            4_294_967_294.5,
            4_294_967_294.6,
            4_294_967_295.0,
            0.15,
            2.675,
            1.005,
            0.125,
            0.5,
            1.5,
            2.5,
            0.05,
            0.25,
            0.35,
            1.45,
            1e-7,
            9.995,
            99.95,
            0.0,
            -0.0,
            -0.04,
            -0.5,
            -1.5,
            -2.675,
            12.345,
            1e15,
            1e16,
            1125899906842623.5,
            1125899906842624.0,
            4503599627370495.5,
            9007199254740993.0,
            1e300,
            -1e300,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for n in cases {
            for precision in 0..=12u8 {
                assert_eq!(
                    Value::Number(n).render(precision),
                    format!("{:.*}", usize::from(precision), n),
                    "{n:?} at {precision}"
                );
            }
        }
    }

    #[test]
    fn render_should_match_format_for_every_f64() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        // Any bits (NaN, infinities, subnormals, huge), numbers near a
        // decimal half (`k / 10^p` plus a half step, off by a few ulps),
        // and readings as the sources make them.
        let near_half = (-1_000_000_000i64..1_000_000_000, 0u32..10, -4i64..=4).prop_map(|(k, p, ulps)| {
            let n = (k as f64 + 0.5) / 10f64.powi(p as i32);
            f64::from_bits(n.to_bits().wrapping_add_signed(ulps))
        });
        let numbers = prop_oneof![
            any::<f64>(),
            near_half,
            -1e6f64..1e6,
            -1e16f64..1e16,
            (0u64..1 << 53).prop_map(|n| n as f64 / 1024.0),
            4.2e9f64..4.4e9,
        ];
        let mut runner = TestRunner::new(Config {
            cases: 20_000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(numbers, 0u8..=12), |(n, precision)| {
                prop_assert_eq!(
                    Value::Number(n).render(precision),
                    format!("{:.*}", usize::from(precision), n),
                    "{:?} at {}",
                    n,
                    precision
                );
                Ok(())
            })
            .expect("render is format!'s text");
    }
}
