//! Filters for numeric values, applied in order between a source and the
//! hub: `offset`, `multiply`, `round`, `clamp`, `sliding_window` (average or
//! median), `delta` (publish only on a real change), `throttle` (at most
//! once per N s) and `heartbeat` (at least once per N s).
//!
//! Each sample flows through the chain as a value plus a "pass" flag: the
//! value filters change the value, the rate filters change the flag, and
//! only samples that leave the chain passing reach the hub. So the
//! dashboard, `/metrics` and the history all see the filtered value.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::vocab::filter::Checked;
pub use crate::vocab::filter::{DeltaSpec, FilterError, FilterSpec, WindowKind};

#[derive(Debug, Clone)]
enum Filter {
    Offset(f64),
    Multiply(f64),
    Round(u8),
    Clamp(Option<f64>, Option<f64>),
    Window {
        size: usize,
        kind: WindowKind,
        values: VecDeque<f64>,
        /// Scratch space for the median, kept so a sample allocates nothing.
        sorted: Vec<f64>,
    },
    Delta {
        threshold: f64,
        percent: bool,
        last: Option<f64>,
    },
    Throttle {
        every: Duration,
        last: Option<Instant>,
    },
    Heartbeat {
        every: Duration,
        last: Option<Instant>,
    },
}

/// A chain of filters for one entity.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    filters: Vec<Filter>,
    /// `apply`'s record of the value each rate filter saw, kept between
    /// samples so that a sample allocates nothing.
    seen: Vec<f64>,
}

impl Chain {
    /// Checks and builds a chain; an empty list passes everything.
    pub fn new(specs: &[FilterSpec]) -> Result<Chain, FilterError> {
        let filters = specs.iter().map(build).collect::<Result<Vec<_>, _>>()?;
        Ok(Chain {
            filters,
            seen: Vec::new(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// True when the chain may hold values back (delta, throttle) without a
    /// heartbeat: then a consumer cannot expect a value every interval.
    pub fn may_fall_silent(&self) -> bool {
        let holds_back = self
            .filters
            .iter()
            .any(|f| matches!(f, Filter::Delta { .. } | Filter::Throttle { .. }));
        holds_back && self.heartbeat().is_none()
    }

    /// The heartbeat period, if there is one.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.filters.iter().find_map(|f| match f {
            Filter::Heartbeat { every, .. } => Some(*every),
            _ => None,
        })
    }

    /// How long consumers may wait for a value, given the unfiltered
    /// `expire_after`: unchanged without rate filters, stretched to three
    /// heartbeats with one, and none when values may be held back forever.
    pub fn expiry(&self, unfiltered: Duration) -> Option<Duration> {
        if self.may_fall_silent() {
            return None;
        }
        Some(match self.heartbeat() {
            Some(every) => unfiltered.max(every.saturating_mul(3)),
            None => unfiltered,
        })
    }

    /// Runs one sample through the chain; `Some` when it is to be published.
    ///
    /// A sample that is, or that a value filter turns, non-finite (NaN, or
    /// infinite after an overflow) is dropped before any rate filter sees
    /// it: it is never published, remembered by `delta` or put in a window.
    pub fn apply(&mut self, value: f64, now: Instant) -> Option<f64> {
        // First the value filters, noting the value each rate filter sees.
        let mut value = value;
        self.seen.clear();
        for filter in &mut self.filters {
            if !value.is_finite() {
                return None;
            }
            match filter {
                Filter::Offset(offset) => value += *offset,
                Filter::Multiply(factor) => value *= *factor,
                Filter::Round(decimals) => {
                    let scale = 10f64.powi(i32::from(*decimals));
                    let scaled = value * scale;
                    // Too large to scale means already a whole number.
                    if scaled.is_finite() {
                        value = scaled.round() / scale;
                    }
                }
                Filter::Clamp(min, max) => {
                    if let Some(min) = min {
                        value = value.max(*min);
                    }
                    if let Some(max) = max {
                        value = value.min(*max);
                    }
                }
                Filter::Window {
                    size,
                    kind,
                    values,
                    sorted,
                } => {
                    if values.len() == *size {
                        values.pop_front();
                    }
                    values.push_back(value);
                    value = aggregate(values, *kind, sorted);
                }
                Filter::Delta { .. } | Filter::Throttle { .. } | Filter::Heartbeat { .. } => self.seen.push(value),
            }
        }
        if !value.is_finite() {
            return None;
        }
        // Then the rate filters, in order, each with the value it saw.
        let mut pass = true;
        let rate_filters = self.filters.iter_mut().filter(|f| {
            matches!(
                f,
                Filter::Delta { .. } | Filter::Throttle { .. } | Filter::Heartbeat { .. }
            )
        });
        for (filter, &seen) in rate_filters.zip(&self.seen) {
            match filter {
                Filter::Delta {
                    threshold,
                    percent,
                    last,
                } if pass => {
                    let moved = match *last {
                        None => true,
                        Some(previous) => {
                            let limit = if *percent {
                                previous.abs() * *threshold / 100.0
                            } else {
                                *threshold
                            };
                            let change = (seen - previous).abs();
                            // A percentage of 0 is 0: then any change counts.
                            if limit > 0.0 {
                                change >= limit
                            } else {
                                change > 0.0
                            }
                        }
                    };
                    if moved {
                        *last = Some(seen);
                    } else {
                        pass = false;
                    }
                }
                Filter::Throttle { every, last } if pass => {
                    if last.is_some_and(|at| now.duration_since(at) < *every) {
                        pass = false;
                    } else {
                        *last = Some(now);
                    }
                }
                Filter::Heartbeat { every, last } => {
                    if !pass && last.is_none_or(|at| now.duration_since(at) >= *every) {
                        pass = true;
                    }
                    if pass {
                        *last = Some(now);
                    }
                }
                _ => {}
            }
        }
        pass.then_some(value)
    }
}

fn aggregate(values: &VecDeque<f64>, kind: WindowKind, sorted: &mut Vec<f64>) -> f64 {
    match kind {
        WindowKind::Average => values.iter().sum::<f64>() / values.len().max(1) as f64,
        WindowKind::Median => {
            sorted.clear();
            sorted.extend(values.iter().copied());
            // Unstable: a stable sort takes a buffer for longer windows.
            sorted.sort_unstable_by(f64::total_cmp);
            let mid = sorted.len() / 2;
            if sorted.is_empty() {
                f64::NAN
            } else if sorted.len() % 2 == 1 {
                sorted[mid]
            } else {
                (sorted[mid - 1] + sorted[mid]) / 2.0
            }
        }
    }
}

fn build(spec: &FilterSpec) -> Result<Filter, FilterError> {
    Ok(match spec.check()? {
        Checked::Offset(n) => Filter::Offset(n),
        Checked::Multiply(n) => Filter::Multiply(n),
        Checked::Round(d) => Filter::Round(d),
        Checked::Clamp(min, max) => Filter::Clamp(min, max),
        Checked::Window { size, kind } => Filter::Window {
            size,
            kind,
            values: VecDeque::with_capacity(size),
            sorted: Vec::with_capacity(size),
        },
        Checked::Delta { threshold, percent } => Filter::Delta {
            threshold,
            percent,
            last: None,
        },
        Checked::Throttle(every) => Filter::Throttle { every, last: None },
        Checked::Heartbeat(every) => Filter::Heartbeat { every, last: None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(seconds, value)` samples; returns what is published.
    fn check(specs: &[FilterSpec], samples: &[(f64, f64)], expected: &[(f64, f64)]) {
        let mut chain = Chain::new(specs).expect("valid chain");
        let t0 = Instant::now();
        let published: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|(t, v)| {
                chain
                    .apply(*v, t0 + Duration::from_secs_f64(*t))
                    .map(|out| (*t, (out * 1e6).round() / 1e6))
            })
            .collect();
        assert_eq!(published, expected, "{specs:?}");
    }

    use FilterSpec::*;

    /// `(seconds, value)` samples published, as `check` expects them.
    type Published<'a> = &'a [(f64, f64)];

    fn series(values: &[f64]) -> Vec<(f64, f64)> {
        values.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect()
    }

    #[test]
    fn value_filters_should_transform_every_sample() {
        let table: &[(&[FilterSpec], f64, f64)] = &[
            (&[Offset(-1.5)], 20.0, 18.5),
            (&[Multiply(2.0)], 20.0, 40.0),
            (&[Round(1)], 20.04, 20.0),
            (&[Round(0)], 20.5, 21.0),
            (
                &[Clamp {
                    min: Some(0.0),
                    max: Some(100.0),
                }],
                120.0,
                100.0,
            ),
            (
                &[Clamp {
                    min: Some(0.0),
                    max: None,
                }],
                -3.0,
                0.0,
            ),
            (&[Offset(1.0), Multiply(10.0)], 2.0, 30.0),
            (&[Multiply(10.0), Offset(1.0)], 2.0, 21.0),
            // Too large to scale by 10^10: already a whole number.
            (&[Round(10)], 1e300, 1e300),
        ];
        for (specs, input, output) in table {
            check(specs, &[(0.0, *input)], &[(0.0, *output)]);
        }
    }

    #[test]
    fn sliding_windows_should_average_or_take_the_median_of_the_last_n() {
        let spikes = series(&[10.0, 10.0, 100.0, 10.0, 10.0]);
        let kind = WindowKind::Median;
        check(
            &[SlidingWindow { size: 3, kind }],
            &spikes,
            &series(&[10.0, 10.0, 10.0, 10.0, 10.0]),
        );
        let kind = WindowKind::Average;
        check(
            &[SlidingWindow { size: 2, kind }],
            &series(&[10.0, 20.0, 40.0]),
            &series(&[10.0, 15.0, 30.0]),
        );
    }

    #[test]
    fn delta_should_publish_only_real_changes_absolute_or_relative() {
        check(
            &[Delta(DeltaSpec::Absolute(0.5))],
            &series(&[20.0, 20.2, 20.4, 20.6, 19.0]),
            &[(0.0, 20.0), (3.0, 20.6), (4.0, 19.0)],
        );
        check(
            &[Delta(DeltaSpec::Text("10%".into()))],
            &series(&[100.0, 105.0, 111.0, 104.0, 99.0]),
            &[(0.0, 100.0), (2.0, 111.0), (4.0, 99.0)],
        );
    }

    #[test]
    fn a_percentage_delta_from_zero_should_publish_any_change_but_not_a_repeat() {
        let table: &[(&[f64], Published)] = &[
            (
                &[0.0, 0.0, -0.0, 0.001, 0.001, 0.0],
                &[(0.0, 0.0), (3.0, 0.001), (5.0, 0.0)],
            ),
            (&[5.0, 0.0, 0.0, 5.0], &[(0.0, 5.0), (1.0, 0.0), (3.0, 5.0)]),
        ];
        for (values, expected) in table {
            check(&[Delta(DeltaSpec::Text("10%".into()))], &series(values), expected);
        }
    }

    #[test]
    fn throttle_should_let_through_at_most_one_per_period() {
        check(
            &[Throttle(10.0)],
            &[
                (0.0, 1.0),
                (3.0, 2.0),
                (9.9, 3.0),
                (10.0, 4.0),
                (15.0, 5.0),
                (21.0, 6.0),
            ],
            &[(0.0, 1.0), (10.0, 4.0), (21.0, 6.0)],
        );
    }

    #[test]
    fn heartbeat_should_republish_an_unchanged_value_after_its_period() {
        check(
            &[Delta(DeltaSpec::Absolute(1.0)), Heartbeat(60.0)],
            &[
                (0.0, 20.0),
                (30.0, 20.1),
                (59.0, 20.1),
                (60.0, 20.2),
                (90.0, 25.0),
                (100.0, 25.0),
                (150.0, 25.1),
            ],
            &[(0.0, 20.0), (60.0, 20.2), (90.0, 25.0), (150.0, 25.1)],
        );
    }

    #[test]
    fn the_combination_users_write_should_calibrate_then_hold_back_then_refresh() {
        // A DS18B20 reading 0.5 °C high, rounded, published on a 0.2 °C
        // change, and at least every 5 minutes for Home Assistant.
        let chain = [
            Offset(-0.5),
            Round(1),
            Delta(DeltaSpec::Absolute(0.2)),
            Heartbeat(300.0),
        ];
        check(
            &chain,
            &[
                (0.0, 21.04),
                (30.0, 21.06),
                (60.0, 21.31),
                (90.0, 21.33),
                (400.0, 21.33),
                (430.0, 20.5),
            ],
            &[(0.0, 20.5), (60.0, 20.8), (400.0, 20.8), (430.0, 20.0)],
        );
        let built = Chain::new(&chain).expect("valid");
        assert!(!built.may_fall_silent(), "a heartbeat keeps it talking");
        assert_eq!(built.heartbeat(), Some(Duration::from_secs(300)));
        assert!(Chain::new(&chain[..3]).expect("valid").may_fall_silent());
        let ten = Duration::from_secs(10);
        assert_eq!(built.expiry(ten), Some(Duration::from_secs(900)));
        assert_eq!(Chain::new(&chain[..3]).expect("valid").expiry(ten), None);
        assert_eq!(Chain::new(&chain[..2]).expect("valid").expiry(ten), Some(ten));
    }

    #[test]
    fn not_a_number_should_never_be_published() {
        check(&[Heartbeat(1.0)], &[(0.0, f64::NAN), (5.0, 1.0)], &[(5.0, 1.0)]);
    }

    #[test]
    fn a_non_finite_sample_should_be_dropped_and_leave_no_trace() {
        let average = WindowKind::Average;
        let delta = Delta(DeltaSpec::Absolute(1.0));
        // 1e10 × 1e300 overflows to inf; × 0 after that is NaN.
        let table: &[(&[FilterSpec], &[f64], Published)] = &[
            (&[Multiply(1e300)], &[1e10, 2.0], &[(1.0, 2e300)]),
            (&[Multiply(1e300), Multiply(0.0)], &[1e10, 2.0], &[(1.0, 0.0)]),
            // Not remembered by delta: 1e300 is still the last value.
            (&[Multiply(1e300), delta.clone()], &[1.0, 1e10, 1.0], &[(0.0, 1e300)]),
            (
                &[Multiply(1e300), Multiply(0.0), delta.clone()],
                &[1.0, 1e10, 1.0],
                &[(0.0, 0.0)],
            ),
            (
                &[delta.clone(), Heartbeat(1.0)],
                &[1.0, f64::NAN, f64::INFINITY, 1.0],
                &[(0.0, 1.0), (3.0, 1.0)],
            ),
            // Not in the window.
            (
                &[SlidingWindow { size: 2, kind: average }],
                &[10.0, f64::NAN, 20.0],
                &[(0.0, 10.0), (2.0, 15.0)],
            ),
            (
                &[Multiply(1e300), SlidingWindow { size: 2, kind: average }],
                &[1.0, 1e10, 3.0],
                &[(0.0, 1e300), (2.0, 2e300)],
            ),
            // Not counted by a rate filter before the overflow.
            (&[Throttle(10.0), Multiply(1e300)], &[1e10, 1.0], &[(1.0, 1e300)]),
            (&[delta.clone(), Multiply(1e300)], &[1e10, 1.0], &[(1.0, 1e300)]),
        ];
        for (specs, values, expected) in table {
            check(specs, &series(values), expected);
        }
    }

    #[test]
    fn unusable_specs_should_be_refused_with_a_reason() {
        let bad: &[(FilterSpec, FilterError)] = &[
            (Round(11), FilterError::Round),
            (Clamp { min: None, max: None }, FilterError::Clamp),
            (
                Clamp {
                    min: Some(5.0),
                    max: Some(1.0),
                },
                FilterError::Clamp,
            ),
            (
                SlidingWindow {
                    size: 0,
                    kind: WindowKind::Average,
                },
                FilterError::Window,
            ),
            (Delta(DeltaSpec::Absolute(0.0)), FilterError::Delta),
            (Delta(DeltaSpec::Text("5".into())), FilterError::Delta),
            (Delta(DeltaSpec::Text("-5%".into())), FilterError::Delta),
            (Throttle(0.0), FilterError::Seconds),
            (Heartbeat(-1.0), FilterError::Seconds),
            (Offset(f64::NAN), FilterError::Number),
            (Multiply(f64::INFINITY), FilterError::Number),
            (
                Clamp {
                    min: Some(f64::NAN),
                    max: Some(1.0),
                },
                FilterError::Clamp,
            ),
            (
                Clamp {
                    min: None,
                    max: Some(f64::INFINITY),
                },
                FilterError::Clamp,
            ),
            (Delta(DeltaSpec::Absolute(f64::INFINITY)), FilterError::Delta),
            (Delta(DeltaSpec::Absolute(f64::NAN)), FilterError::Delta),
            (Delta(DeltaSpec::Text("inf%".into())), FilterError::Delta),
            (Delta(DeltaSpec::Text("NaN%".into())), FilterError::Delta),
            (Throttle(1e-12), FilterError::Seconds),
            (Throttle(f64::INFINITY), FilterError::Seconds),
            (Heartbeat(f64::NAN), FilterError::Seconds),
            (Heartbeat(31_536_001.0), FilterError::Seconds),
        ];
        for (spec, error) in bad {
            assert_eq!(
                Chain::new(std::slice::from_ref(spec)).map(|_| ()),
                Err(error.clone()),
                "{spec:?}"
            );
        }
    }
}
