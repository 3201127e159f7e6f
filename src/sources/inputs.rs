//! GPIO inputs: buttons, reed switches, motion sensors. Each input is a task
//! that waits for edges from the hardware layer (no polling), debounces
//! them, publishes the level as ON/OFF, and, for buttons with
//! `events = true`, tells single, double and long presses apart.
//!
//! The debouncer and the press detector are plain state machines over
//! instants, so they are tested without hardware or a runtime.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::{InputConfig, PressTiming};
use crate::deadline::sleep_until;
use crate::hal::{Edge, Gpio, HalError, InputPin};
use crate::hub::{EntitySpec, Group, Hub, Value};
use crate::vocab::Press;

/// Edges buffered per input; more are dropped, and the level is read from
/// the pin when the input settles anyway.
const EDGE_CHANNEL_CAPACITY: usize = 64;

/// A claimed input, ready to run.
pub struct Input {
    config: InputConfig,
    pin: Box<dyn InputPin>,
    edges: mpsc::Receiver<Edge>,
}

impl Input {
    /// Claims the pin from the backend.
    pub fn claim(gpio: &dyn Gpio, config: InputConfig) -> Result<Input, HalError> {
        let (sender, edges) = mpsc::channel(EDGE_CHANNEL_CAPACITY);
        let debounce = (!config.debounce.is_zero()).then_some(config.debounce);
        let pin = gpio.input(config.pin, config.pull, debounce, sender)?;
        Ok(Input { config, pin, edges })
    }

    pub fn entity(&self) -> EntitySpec {
        let mut spec = EntitySpec::binary_sensor(&self.config.name, &self.config.label, Group::Inputs);
        spec.device_class = self.config.device_class;
        if self.config.presses.is_some() {
            spec = spec.press_events();
        }
        spec
    }

    /// The logical state of a raw level.
    fn logical(&self, high: bool) -> bool {
        high != self.config.inverted
    }

    /// Publishes the initial level, then every debounced change and press,
    /// until cancelled.
    pub async fn run(mut self, hub: Arc<Hub>, cancel: CancellationToken) {
        let id = self.config.name.clone();
        let mut published = match self.pin.is_high() {
            Ok(high) => {
                let on = self.logical(high);
                hub.set(&id, Value::Bool(on));
                Some(on)
            }
            Err(error) => {
                warn!(input = %id, %error, "cannot read input");
                None
            }
        };
        let mut debouncer = Debouncer::new(self.config.debounce);
        let mut presses = self.config.presses.map(PressDetector::new);
        loop {
            let settle_at = debouncer.deadline();
            let press_at = presses.as_ref().and_then(PressDetector::deadline);
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                edge = self.edges.recv() => {
                    let Some(edge) = edge else {
                        warn!(input = %id, "the GPIO backend stopped reporting edges");
                        break;
                    };
                    debug!(input = %id, high = edge.high, "edge");
                    debouncer.edge(edge.high, edge.at);
                }
                () = sleep_until(settle_at), if settle_at.is_some() => {}
                () = sleep_until(press_at), if press_at.is_some() => {}
            }
            let now = Instant::now();
            if let Some(high) = debouncer.settle(now) {
                // The pin itself is the truth: edges may have been dropped.
                let high = self.pin.is_high().unwrap_or(high);
                let on = self.logical(high);
                if published != Some(on) {
                    debug!(input = %id, on, "input changed");
                    hub.set(&id, Value::Bool(on));
                    published = Some(on);
                    if let Some(detector) = presses.as_mut() {
                        if let Some(press) = detector.change(on, now) {
                            hub.press(&id, press);
                        }
                    }
                }
            }
            if let Some(press) = presses.as_mut().and_then(|d| d.timeout(now)) {
                hub.press(&id, press);
            }
        }
    }
}

/// Accepts a level once it has been stable for the debounce time: every
/// edge restarts the wait, so chatter shorter than that is swallowed.
#[derive(Debug)]
pub struct Debouncer {
    debounce: Duration,
    pending: Option<(bool, Instant)>,
}

impl Debouncer {
    pub fn new(debounce: Duration) -> Debouncer {
        Debouncer {
            debounce,
            pending: None,
        }
    }

    pub fn edge(&mut self, high: bool, at: Instant) {
        self.pending = Some((high, at + self.debounce));
    }

    /// When the pending level settles, if one is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, at)| at)
    }

    /// The settled level, once its time has come.
    pub fn settle(&mut self, now: Instant) -> Option<bool> {
        match self.pending {
            Some((high, at)) if at <= now => {
                self.pending = None;
                Some(high)
            }
            _ => None,
        }
    }
}

/// Tells single, double and long presses apart from debounced ON/OFF
/// changes (ON = pressed).
///
/// - Held for `long`: a long press, reported while still held; its release
///   reports nothing.
/// - Released before `long`, and no second press within `double`: single.
/// - A second press within `double` after the first release: double, on
///   its release (a second press held long is still a double).
#[derive(Debug)]
pub struct PressDetector {
    timing: PressTiming,
    state: PressState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PressState {
    Idle,
    /// First press down since `since`.
    Down {
        since: Instant,
    },
    /// Long press reported; waiting for the release.
    LongReported,
    /// Released after a short press; a single press unless another comes
    /// before `until`.
    Released {
        until: Instant,
    },
    /// Second press down.
    SecondDown,
}

impl PressDetector {
    pub fn new(timing: PressTiming) -> PressDetector {
        PressDetector {
            timing,
            state: PressState::Idle,
        }
    }

    /// When `timeout` has something to decide.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            PressState::Down { since } => Some(since + self.timing.long),
            PressState::Released { until } => Some(until),
            _ => None,
        }
    }

    /// A debounced change: pressed (`on`) or released.
    pub fn change(&mut self, on: bool, now: Instant) -> Option<Press> {
        // Decide anything whose time has passed first, so that a late
        // wake-up never merges two separate presses into a double.
        let expired = self.timeout(now);
        let (state, press) = match (self.state, on) {
            (PressState::Idle, true) => (PressState::Down { since: now }, None),
            (PressState::Down { .. }, false) => (
                PressState::Released {
                    until: now + self.timing.double,
                },
                None,
            ),
            (PressState::LongReported, false) => (PressState::Idle, None),
            (PressState::Released { .. }, true) => (PressState::SecondDown, None),
            (PressState::SecondDown, false) => (PressState::Idle, Some(Press::Double)),
            // Repeated levels change nothing.
            (state, _) => (state, None),
        };
        self.state = state;
        expired.or(press)
    }

    /// Whatever the passing of time decides: a long press, or a single press
    /// that got no second one.
    pub fn timeout(&mut self, now: Instant) -> Option<Press> {
        match self.state {
            PressState::Down { since } if now >= since + self.timing.long => {
                self.state = PressState::LongReported;
                Some(Press::Long)
            }
            PressState::Released { until } if now >= until => {
                self.state = PressState::Idle;
                Some(Press::Single)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn debouncer_should_swallow_chatter_shorter_than_the_debounce_time() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50));
        d.edge(true, t0);
        d.edge(false, t0 + ms(10));
        d.edge(true, t0 + ms(20));
        assert_eq!(
            d.settle(t0 + ms(60)),
            None,
            "not yet stable for 50 ms since the last edge"
        );
        assert_eq!(d.deadline(), Some(t0 + ms(70)));
        assert_eq!(d.settle(t0 + ms(70)), Some(true));
        assert_eq!(d.settle(t0 + ms(200)), None, "settled once");
    }

    #[test]
    fn zero_debounce_should_settle_at_once() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO);
        d.edge(false, t0);
        assert_eq!(d.settle(t0), Some(false));
    }

    /// Feeds (time ms, pressed) changes and ticks every 10 ms; returns the
    /// presses with the time they were reported.
    fn presses(changes: &[(u64, bool)], until_ms: u64) -> Vec<(u64, Press)> {
        let t0 = Instant::now();
        let mut detector = PressDetector::new(PressTiming {
            long: ms(800),
            double: ms(350),
        });
        let mut out = Vec::new();
        let mut changes = changes.iter().peekable();
        for now_ms in (0..=until_ms).step_by(10) {
            let now = t0 + ms(now_ms);
            while let Some((at, on)) = changes.next_if(|(at, _)| *at <= now_ms) {
                if let Some(p) = detector.change(*on, t0 + ms(*at)) {
                    out.push((now_ms, p));
                }
            }
            if let Some(p) = detector.timeout(now) {
                out.push((now_ms, p));
            }
        }
        out
    }

    #[test]
    fn a_short_press_should_be_a_single_once_the_double_window_passes() {
        assert_eq!(presses(&[(0, true), (100, false)], 2000), vec![(450, Press::Single)]);
    }

    #[test]
    fn two_short_presses_should_be_one_double() {
        assert_eq!(
            presses(&[(0, true), (100, false), (300, true), (400, false)], 2000),
            vec![(400, Press::Double)]
        );
    }

    #[test]
    fn holding_should_be_a_long_press_reported_while_held_and_nothing_on_release() {
        assert_eq!(presses(&[(0, true), (1500, false)], 3000), vec![(800, Press::Long)]);
    }

    #[test]
    fn presses_further_apart_than_the_double_window_should_be_two_singles() {
        assert_eq!(
            presses(&[(0, true), (100, false), (1000, true), (1100, false)], 3000),
            vec![(450, Press::Single), (1450, Press::Single)]
        );
    }

    #[test]
    fn a_long_press_after_a_single_should_be_reported_as_such() {
        assert_eq!(
            presses(&[(0, true), (100, false), (600, true), (1500, false)], 3000),
            vec![(450, Press::Single), (1400, Press::Long)]
        );
    }

    #[test]
    fn a_late_change_should_first_settle_what_expired() {
        // No tick between: the second press comes after the window closed.
        let t0 = Instant::now();
        let mut detector = PressDetector::new(PressTiming {
            long: ms(800),
            double: ms(350),
        });
        assert_eq!(detector.change(true, t0), None);
        assert_eq!(detector.change(false, t0 + ms(100)), None);
        assert_eq!(detector.change(true, t0 + ms(1000)), Some(Press::Single));
        assert_eq!(detector.change(false, t0 + ms(1100)), None);
        assert_eq!(detector.timeout(t0 + ms(1450)), Some(Press::Single));
    }
}

#[cfg(test)]
mod task_tests {
    //! The whole input task on the simulated backend, in paused time.

    use super::*;
    use crate::hal::sim::SimGpio;
    use crate::hub::HubEvent;
    use crate::vocab::Pull;

    fn button(debounce_ms: u64, presses: bool) -> InputConfig {
        InputConfig {
            name: "button".into(),
            label: "Button".into(),
            pin: 4,
            pull: Pull::Up,
            inverted: true,
            debounce: Duration::from_millis(debounce_ms),
            device_class: None,
            presses: presses.then_some(PressTiming {
                long: Duration::from_millis(800),
                double: Duration::from_millis(350),
            }),
        }
    }

    struct Running {
        sim: crate::hal::sim::SimControl,
        events: tokio::sync::broadcast::Receiver<HubEvent>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    async fn run(config: InputConfig) -> Running {
        let gpio = SimGpio::new();
        let sim = gpio.control();
        let hub = Hub::new(4);
        let input = Input::claim(&gpio, config).expect("claim");
        hub.register(input.entity());
        let events = hub.subscribe();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(input.run(hub, cancel.clone()));
        tokio::task::yield_now().await;
        Running {
            sim,
            events,
            cancel,
            task,
        }
    }

    impl Running {
        /// Sets the raw level, then lets `ms` of paused time pass.
        async fn level(&mut self, high: bool, ms: u64) {
            self.sim.set_input(4, high).expect("claimed pin");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }

        fn seen(&mut self) -> Vec<String> {
            let mut seen = Vec::new();
            while let Ok(event) = self.events.try_recv() {
                match event {
                    HubEvent::Updated(_, Value::Bool(on)) => seen.push(if on { "ON" } else { "OFF" }.to_owned()),
                    HubEvent::Pressed(_, press) => seen.push(press.as_str().to_owned()),
                    _ => {}
                }
            }
            seen
        }

        async fn stop(self) {
            self.cancel.cancel();
            self.task.await.expect("task ends");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn chatter_within_the_debounce_time_should_publish_one_change() {
        let mut input = run(button(50, false)).await;
        assert_eq!(input.seen(), vec!["OFF"], "pulled up and inverted: released");
        for _ in 0..5 {
            input.level(false, 5).await;
            input.level(true, 5).await;
        }
        input.level(false, 100).await;
        assert_eq!(input.seen(), vec!["ON"]);
        input.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn presses_should_be_told_apart_in_paused_time() {
        let mut input = run(button(10, true)).await;
        input.seen();
        // Short press: a single once the double window has passed.
        input.level(false, 100).await;
        input.level(true, 500).await;
        assert_eq!(input.seen(), vec!["ON", "OFF", "single"]);
        // Two quick presses: a double.
        input.level(false, 100).await;
        input.level(true, 100).await;
        input.level(false, 100).await;
        input.level(true, 500).await;
        assert_eq!(input.seen(), vec!["ON", "OFF", "ON", "OFF", "double"]);
        // Held: a long press while still held.
        input.level(false, 900).await;
        assert_eq!(input.seen(), vec!["ON", "long"]);
        input.level(true, 500).await;
        assert_eq!(input.seen(), vec!["OFF"]);
        input.stop().await;
    }
}
