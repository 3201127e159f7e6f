//! GPIO inputs: buttons, reed switches, motion sensors. Each input is a task
//! that waits for edges from the hardware layer (no polling), debounces
//! them on the leading edge (the first edge is published at once, bounces
//! within `debounce_ms` are ignored, and the level is read again when the
//! window closes), publishes the level as ON/OFF, and, for buttons with
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
use crate::hal::{Edge, Gpio, HalError, InputPin, InputSettings};
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
        let settings = InputSettings {
            pull: config.pull,
            active_low: config.inverted,
        };
        let pin = gpio.input(&config.pin, settings, sender)?;
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

    /// Publishes the initial level, then every debounced change and press,
    /// until cancelled.
    pub async fn run(mut self, hub: Arc<Hub>, cancel: CancellationToken) {
        let id = self.config.name.clone();
        let mut published = match self.pin.is_active() {
            Ok(on) => {
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
            let window_end = debouncer.deadline();
            let press_at = presses.as_ref().and_then(PressDetector::deadline);
            // A level to publish now, and when it changed.
            let mut change = None;
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                edge = self.edges.recv() => {
                    let Some(edge) = edge else {
                        warn!(input = %id, "the GPIO backend stopped reporting edges");
                        break;
                    };
                    debug!(input = %id, active = edge.active, "edge");
                    // The leading edge goes out at once; bounces are not.
                    change = debouncer.edge(edge.active, edge.at).map(|on| (on, edge.at));
                }
                () = sleep_until(window_end), if window_end.is_some() => {
                    let now = Instant::now();
                    if debouncer.window_closed(now) {
                        // The pin is the truth: the last bounce may have
                        // moved it, and edges may have been dropped.
                        match self.pin.is_active() {
                            Ok(on) if published != Some(on) => {
                                debouncer.reopen(now);
                                change = Some((on, now));
                            }
                            Ok(_) => {}
                            Err(error) => debug!(input = %id, %error, "cannot read input"),
                        }
                    }
                }
                () = sleep_until(press_at), if press_at.is_some() => {}
            }
            if let Some((on, at)) = change.filter(|(on, _)| published != Some(*on)) {
                debug!(input = %id, on, "input changed");
                hub.set(&id, Value::Bool(on));
                published = Some(on);
                if let Some(detector) = presses.as_mut() {
                    // The press timing counts from when the contact moved.
                    if let Some(press) = detector.change(on, at.min(Instant::now())) {
                        hub.press(&id, press);
                    }
                }
            }
            if let Some(press) = presses.as_mut().and_then(|d| d.timeout(Instant::now())) {
                hub.press(&id, press);
            }
        }
    }
}

/// Leading-edge debounce: the first edge after a quiet period is accepted
/// at once and opens a window of `debounce`; edges inside the window are
/// bounces and ignored. When the window closes the caller reads the pin
/// again; a level that differs from the one published is a change too (the
/// contact was released within the window), which opens a new window.
#[derive(Debug)]
pub struct Debouncer {
    debounce: Duration,
    window_end: Option<Instant>,
}

impl Debouncer {
    pub fn new(debounce: Duration) -> Debouncer {
        Debouncer {
            debounce,
            window_end: None,
        }
    }

    /// An edge to `active` at `at`: the level to publish now when this edge
    /// leads, `None` for a bounce.
    pub fn edge(&mut self, active: bool, at: Instant) -> Option<bool> {
        if self.window_end.is_some_and(|end| at < end) {
            return None;
        }
        self.window_end = Some(at + self.debounce);
        Some(active)
    }

    /// When the open window closes, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.window_end
    }

    /// True once, when the open window has closed: time to read the pin.
    pub fn window_closed(&mut self, now: Instant) -> bool {
        match self.window_end {
            Some(end) if end <= now => {
                self.window_end = None;
                true
            }
            _ => false,
        }
    }

    /// A change found when the window closed opens a window of its own.
    pub fn reopen(&mut self, now: Instant) {
        self.window_end = Some(now + self.debounce);
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
    fn the_leading_edge_should_pass_at_once_and_bounces_within_the_window_should_not() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50));
        assert_eq!(d.edge(true, t0), Some(true), "published with no delay");
        assert_eq!(d.edge(false, t0 + ms(10)), None);
        assert_eq!(d.edge(true, t0 + ms(20)), None);
        assert_eq!(d.deadline(), Some(t0 + ms(50)), "the window runs from the first edge");
        assert!(!d.window_closed(t0 + ms(49)));
        assert!(d.window_closed(t0 + ms(50)), "time to read the pin again");
        assert!(!d.window_closed(t0 + ms(60)), "once");
        assert_eq!(d.edge(false, t0 + ms(200)), Some(false), "a new press after the quiet");
    }

    #[test]
    fn a_change_found_when_the_window_closes_should_open_a_new_window() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50));
        d.edge(true, t0);
        assert!(d.window_closed(t0 + ms(50)));
        d.reopen(t0 + ms(50));
        assert_eq!(d.edge(true, t0 + ms(60)), None, "the release's bounce");
        assert_eq!(d.deadline(), Some(t0 + ms(100)));
    }

    #[test]
    fn zero_debounce_should_pass_every_edge() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO);
        assert_eq!(d.edge(false, t0), Some(false));
        assert_eq!(d.edge(true, t0), Some(true));
        assert!(d.window_closed(t0));
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
            pin: crate::hal::Pin::Bcm(4),
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
        for _ in 0..4 {
            input.level(false, 5).await;
            input.level(true, 5).await;
        }
        input.level(false, 100).await;
        assert_eq!(input.seen(), vec!["ON"]);
        input.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_edge_should_be_published_without_waiting_for_the_window() {
        let mut input = run(button(50, false)).await;
        input.seen();
        input.level(false, 0).await;
        tokio::task::yield_now().await;
        assert_eq!(input.seen(), vec!["ON"], "at once, not after 50 ms");
        input.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_within_the_window_should_be_published_when_it_closes() {
        let mut input = run(button(50, false)).await;
        input.seen();
        // Pressed, bounced, released, all within 30 ms: ON at once, then
        // the level read when the window closes says OFF.
        input.level(false, 10).await;
        input.level(true, 10).await;
        input.level(false, 5).await;
        input.level(true, 5).await;
        assert_eq!(input.seen(), vec!["ON"]);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(input.seen(), vec!["OFF"], "the last state is right");
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
