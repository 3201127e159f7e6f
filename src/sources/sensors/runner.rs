//! The runner every sensor kind shares: the entity per quantity, the
//! interval, calibration, filters and availability (a failed read marks
//! just that entity unavailable, logs once, and a later good read brings it
//! back). A reader runs on the runtime thread or on a reading thread of its
//! own, as it says (see "Where reads run" in the module doc of `sensors`);
//! this file owns that thread and the hand-off to it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{Calibration, Placement, Reading, SensorError, SensorReader};
use crate::filters::{Chain, FilterSpec};
use crate::hub::{EntitySpec, Group, Hub, Value};
use crate::vocab::Quantity;

/// Consumers treat an entity as gone after this long at least, even with a
/// short interval, so that one slow round does not flap it to unavailable.
const MIN_EXPIRE_AFTER: Duration = Duration::from_secs(10);

/// Bounds on the interval. tokio's `interval` panics on zero and on a
/// deadline that overflows `Instant`; config validation should reject such
/// values already, this keeps the runner panic-free regardless.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// A configured sensor: a reader, how often to read it, and how its values
/// become entities.
pub struct Sensor {
    /// Entity id for a one-quantity sensor; prefix (`<name>_temperature`)
    /// for several.
    pub name: String,
    /// Display name.
    pub label: String,
    pub interval: Duration,
    pub calibration: Calibration,
    /// Applied to each quantity after calibration (each its own state).
    pub filters: Vec<FilterSpec>,
    pub reader: Box<dyn SensorReader>,
}

/// The stack reserved for a reading thread. Reads parse a few short files
/// or wait for a program; the default 2 MiB would only take address space.
const READING_THREAD_STACK: usize = 256 * 1024;

/// Time for a reading thread to wake up from its read-ahead sleep, on top
/// of the last read's duration (see `lead`).
const READ_AHEAD_MARGIN: Duration = Duration::from_millis(5);

/// The runner's view of one entity.
struct Tracked {
    quantity: Quantity,
    id: String,
    /// Its slot on the hub (registered before the runner starts): set
    /// without hashing its id every round.
    slot: Option<usize>,
    filters: Chain,
    /// Whether the last read failed, so that a failure is logged when it
    /// starts and when it ends rather than every interval.
    failing: bool,
}

/// A change in whether an entity's reads fail: what gets logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Failed,
    Recovered,
}

impl Tracked {
    fn set(&self, hub: &Hub, value: Value) {
        match self.slot {
            Some(slot) => hub.set_slot(slot, value),
            None => hub.set(&self.id, value),
        };
    }

    fn set_available(&self, hub: &Hub, available: bool) {
        match self.slot {
            Some(slot) => hub.set_available_slot(slot, available),
            None => hub.set_available(&self.id, available),
        };
    }

    /// Records one read's outcome; returns the change to log, if any.
    fn record(&mut self, ok: bool) -> Option<Change> {
        let was_failing = std::mem::replace(&mut self.failing, !ok);
        match (was_failing, ok) {
            (false, false) => Some(Change::Failed),
            (true, true) => Some(Change::Recovered),
            _ => None,
        }
    }
}

impl Sensor {
    /// The entity id of `quantity`: `name` for a one-quantity sensor,
    /// `<name>_<suffix>` otherwise.
    pub fn entity_id(&self, quantity: Quantity) -> String {
        entity_id(&self.name, quantity, self.reader.quantities().len())
    }

    /// One entity per quantity of the reader, in the reader's order.
    pub fn entities(&self) -> Vec<EntitySpec> {
        let quantities = self.reader.quantities();
        // Filters are checked by the config; an empty chain is the fallback.
        let expire = Chain::new(&self.filters)
            .unwrap_or_default()
            .expiry(expire_after(self.interval));
        quantities
            .iter()
            .map(|&quantity| {
                let id = entity_id(&self.name, quantity, quantities.len());
                let name = if quantities.len() == 1 {
                    self.label.clone()
                } else {
                    format!("{} {}", self.label, quantity.suffix())
                };
                // The builder's defaults give state class measurement and a
                // non-diagnostic entity: these are readings of the house.
                let mut spec = EntitySpec::sensor(&id, &name, Group::Sensors)
                    .device_class(quantity.device_class())
                    .unit(quantity.unit())
                    .precision(quantity.precision())
                    .own_availability();
                spec.expire_after = expire;
                spec
            })
            .collect()
    }

    /// Registers nothing (the caller registers `entities()` on the hub
    /// before); reads immediately, then every `interval`, until `cancel`
    /// fires. A read in flight on the reading thread when `cancel` fires is
    /// abandoned: the thread finishes it (at most one conversion), then
    /// exits and drops the reader.
    pub async fn run(self, hub: Arc<Hub>, cancel: CancellationToken) {
        let Sensor {
            name,
            interval,
            calibration,
            filters,
            reader,
            ..
        } = self;
        let chain = Chain::new(&filters).unwrap_or_default();
        let sensor = reader.describe();
        let quantities = reader.quantities();
        let mut tracked: Vec<Tracked> = quantities
            .iter()
            .map(|&quantity| {
                let id = entity_id(&name, quantity, quantities.len());
                Tracked {
                    quantity,
                    slot: hub.slot(&id),
                    id,
                    filters: chain.clone(),
                    failing: false,
                }
            })
            .collect();
        // One round's results; its capacity is kept from round to round.
        let mut results: Vec<Reading> = Vec::with_capacity(quantities.len());

        let period = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        let mut place = match reader.placement() {
            Placement::Inline => Place::Inline(reader),
            Placement::Thread => match ReadingThread::start(reader, period) {
                Ok(thread) => Place::Thread(thread),
                Err(spawn_error) => {
                    error!(sensor, error = %spawn_error, "cannot start the sensor's reading thread; this sensor stops");
                    for entity in &tracked {
                        entity.set_available(&hub, false);
                    }
                    return;
                }
            },
        };

        // On the shared grid, so sensors (and the system round) with the
        // same interval come due in the same wake-up. After a stall (a slow
        // bus, a suspended Pi) one late round is enough; catch-up rounds
        // would only queue more conversions.
        let mut ticker = crate::time::aligned_interval(period);
        // Whether the reading thread has a round in hand: from the first
        // tick on it always has (asked for at the tick, then each read
        // ahead of its tick). And whether the tick has come and the runner
        // waits for that round's answer.
        let mut in_hand = false;
        let mut due = false;
        loop {
            tokio::select! {
                // Cancellation first, so a stop is never delayed by a round.
                biased;
                () = cancel.cancelled() => break,
                // No tick while the runner waits for a round: a read slower
                // than the interval delays the next round instead of
                // stacking them up.
                _ = ticker.tick(), if !due => match &mut place {
                    Place::Inline(reader) => {
                        results.clear();
                        reader.read_into(&mut results);
                        apply(&hub, &sensor, &calibration, &mut tracked, &mut results);
                    }
                    Place::Thread(thread) => {
                        if in_hand {
                            // Read ahead for this tick; if it has not begun,
                            // it should now.
                            thread.hurry();
                        } else {
                            thread.ask(&mut results, None);
                            in_hand = true;
                        }
                        match thread.try_take(&mut results) {
                            Answer::Ready => {
                                apply(&hub, &sensor, &calibration, &mut tracked, &mut results);
                                thread.ask(&mut results, Some(next_due(&ticker)));
                            }
                            // Not read yet: its answer wakes the runner.
                            Answer::Pending => due = true,
                            Answer::Gone => {
                                thread_gone(&hub, &sensor, &tracked);
                                break;
                            }
                        }
                    }
                },
                answered = answered(match &place {
                    Place::Thread(thread) => Some(thread),
                    Place::Inline(_) => None,
                }), if due => {
                    due = false;
                    if let (true, Place::Thread(thread)) = (answered, &place) {
                        thread.try_take(&mut results);
                        apply(&hub, &sensor, &calibration, &mut tracked, &mut results);
                        thread.ask(&mut results, Some(next_due(&ticker)));
                    } else {
                        thread_gone(&hub, &sensor, &tracked);
                        break;
                    }
                }
            }
        }
        debug!(sensor, "sensor stopped");
    }
}

/// Where a sensor's reader lives.
enum Place {
    /// On the runtime thread, read in the runner's loop.
    Inline(Box<dyn SensorReader>),
    Thread(ReadingThread),
}

/// Waits until the reading thread has answered the round asked for: `true`,
/// or `false` when the thread is gone (its reader panicked). Its `select!`
/// branch is disabled unless a round is in hand, so the `pending` arm is
/// never awaited in practice. (It borrows the thread, not the `Place`: a
/// reader is `Send` but not `Sync`.)
async fn answered(thread: Option<&ReadingThread>) -> bool {
    match thread {
        Some(thread) => thread.answered().await,
        None => std::future::pending().await,
    }
}

/// The reader panicked and is gone with its thread; without it there is
/// nothing to read.
fn thread_gone(hub: &Hub, sensor: &str, tracked: &[Tracked]) {
    error!(sensor, "sensor read panicked; this sensor stops");
    for entity in tracked {
        entity.set_available(hub, false);
    }
}

/// The tick, on the real clock, of the round after this one: the reading
/// thread reads that round ahead of it (see `lead`).
fn next_due(ticker: &crate::time::GridInterval) -> std::time::Instant {
    // Exact: the thread expects the next round at this round's `due` and a
    // period (`serve`), and is not woken when the two agree.
    ticker.next_point().into_std()
}

/// How long before its tick the reading thread begins a round: as long as
/// the last read took, a quarter more, and a margin for its wake-up. The
/// runner's tick then finds the answer and puts it on the hub together
/// with whatever else came due on the grid (the system round, other
/// sensors): one wake-up of the runtime thread and one write to the broker,
/// instead of a wake-up for each sensor's answer. A read longer than the
/// interval begins as soon as the last is taken, as before.
fn lead(last_read: Duration) -> Duration {
    last_read + last_read / 4 + READ_AHEAD_MARGIN
}

/// When a round for the tick `due` begins, the last read having taken
/// `last_read`.
fn read_ahead_of(due: std::time::Instant, last_read: Duration) -> std::time::Instant {
    due.checked_sub(lead(last_read)).unwrap_or(due)
}

/// Whether the reading thread's round is there (see `try_take`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ready,
    Pending,
    Gone,
}

/// A reader on a thread of its own, for the sensor's life. Each round the
/// runner lends it the results vector (`ask`), saying when to begin; the
/// thread sleeps until then, reads into it and hands it back (`try_take`,
/// or `answered` when the runner had to wait): no allocation per round,
/// where `spawn_blocking` allocated a task each time. Dropping this (the
/// runner ends) tells the thread to stop once its read in flight, if any,
/// is over.
struct ReadingThread {
    shared: Arc<Handoff>,
}

/// What the runner and its reading thread share.
struct Handoff {
    /// The round's phase and its results; held only to hand them over,
    /// never during a read.
    slot: Mutex<Slot>,
    /// Wakes the thread: a round is asked for, or it must stop.
    asked: Condvar,
    /// Wakes the runner: the round is answered, or the thread is gone. A
    /// `Notify` keeps a wake-up that comes before the runner waits.
    answered: Notify,
}

struct Slot {
    phase: Phase,
    results: Vec<Reading>,
    /// The tick the round asked for is for, to be read `lead` ahead of it;
    /// `None`: read at once.
    due: Option<std::time::Instant>,
    /// The tick came before the round began: begin at once. `due` stays,
    /// so the thread still plans the next round's wake-up from it.
    hurried: bool,
    /// How long the last read took.
    last_read: Duration,
    /// The interval between rounds.
    period: Duration,
    /// When the thread wakes by itself, having answered a round: when it
    /// expects to begin the next, which the runner asks for at that round's
    /// tick without waking it (one wake-up a round, not two).
    wakes_at: Option<std::time::Instant>,
}

impl Slot {
    /// When the round asked for should begin; `None`: at once.
    fn begin_at(&self) -> Option<std::time::Instant> {
        let due = self.due.filter(|_| !self.hurried)?;
        Some(read_ahead_of(due, self.last_read))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Asked,
    Answered,
    Stop,
    /// The thread ended (its reader panicked) and will answer no more.
    Gone,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Nothing panics while the lock is held, so a poisoned lock still
        // holds a consistent slot.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReadingThread {
    fn start(reader: Box<dyn SensorReader>, period: Duration) -> std::io::Result<ReadingThread> {
        let shared = Arc::new(Handoff {
            slot: Mutex::new(Slot {
                phase: Phase::Idle,
                results: Vec::new(),
                due: None,
                hurried: false,
                last_read: Duration::ZERO,
                period,
                wakes_at: None,
            }),
            asked: Condvar::new(),
            answered: Notify::new(),
        });
        let for_thread = Arc::clone(&shared);
        // Detached: the thread ends by itself once told to stop.
        std::thread::Builder::new()
            .name("sensor".to_owned())
            .stack_size(READING_THREAD_STACK)
            .spawn(move || serve(&for_thread, reader))?;
        Ok(ReadingThread { shared })
    }

    /// Asks for a round, lending the thread `results` (emptied), for the
    /// tick `due` (or at once). The thread is woken only if it would not
    /// wake by itself in time.
    fn ask(&self, results: &mut Vec<Reading>, due: Option<std::time::Instant>) {
        let mut slot = self.shared.lock();
        results.clear();
        std::mem::swap(&mut slot.results, results);
        if slot.phase != Phase::Gone {
            slot.phase = Phase::Asked;
        }
        slot.due = due;
        slot.hurried = false;
        let in_time = matches!((slot.wakes_at, slot.begin_at()), (Some(wakes), Some(begin)) if wakes <= begin);
        drop(slot);
        if !in_time {
            self.shared.asked.notify_one();
        }
    }

    /// The round asked for ahead begins now if it has not yet.
    fn hurry(&self) {
        let mut slot = self.shared.lock();
        if slot.phase == Phase::Asked && slot.due.is_some() && !slot.hurried {
            slot.hurried = true;
            drop(slot);
            self.shared.asked.notify_one();
        }
    }

    /// Takes the answered round's results back into `results`, if the
    /// round is answered.
    fn try_take(&self, results: &mut Vec<Reading>) -> Answer {
        let mut slot = self.shared.lock();
        match slot.phase {
            Phase::Answered => {
                std::mem::swap(&mut slot.results, results);
                slot.phase = Phase::Idle;
                Answer::Ready
            }
            Phase::Gone => Answer::Gone,
            Phase::Idle | Phase::Asked | Phase::Stop => Answer::Pending,
        }
    }

    /// See [`answered`].
    async fn answered(&self) -> bool {
        loop {
            match self.shared.lock().phase {
                Phase::Answered => return true,
                Phase::Gone => return false,
                Phase::Idle | Phase::Asked | Phase::Stop => {}
            }
            self.shared.answered.notified().await;
        }
    }
}

impl Drop for ReadingThread {
    fn drop(&mut self) {
        let mut slot = self.shared.lock();
        if slot.phase != Phase::Gone {
            slot.phase = Phase::Stop;
        }
        drop(slot);
        self.shared.asked.notify_one();
    }
}

/// The reading thread's loop: a round each time one is asked for, until told
/// to stop. A panic in the reader ends the thread, and `Gone` tells the
/// runner.
fn serve(shared: &Handoff, mut reader: Box<dyn SensorReader>) {
    /// Marks the thread gone however it ends, a panic included.
    struct Farewell<'a>(&'a Handoff);
    impl Drop for Farewell<'_> {
        fn drop(&mut self) {
            self.0.lock().phase = Phase::Gone;
            self.0.answered.notify_one();
        }
    }
    let _farewell = Farewell(shared);
    let mut results = Vec::new();
    loop {
        {
            let mut slot = shared.lock();
            loop {
                let now = std::time::Instant::now();
                // Asleep until a round is asked for and should begin, the
                // time it expects that (`wakes_at`), or a stop.
                let until = match slot.phase {
                    Phase::Stop | Phase::Gone => return,
                    Phase::Asked => match slot.begin_at().filter(|&at| at > now) {
                        Some(at) => Some(at),
                        None => break,
                    },
                    Phase::Idle | Phase::Answered => slot.wakes_at.filter(|&at| at > now),
                };
                slot.wakes_at = until;
                slot = match until {
                    Some(at) => {
                        shared
                            .asked
                            .wait_timeout(slot, at - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => shared.asked.wait(slot).unwrap_or_else(PoisonError::into_inner),
                };
            }
            slot.wakes_at = None;
            std::mem::swap(&mut slot.results, &mut results);
        }
        let began = std::time::Instant::now();
        reader.read_into(&mut results);
        let took = began.elapsed();
        let mut slot = shared.lock();
        if slot.phase != Phase::Asked {
            return;
        }
        std::mem::swap(&mut slot.results, &mut results);
        slot.phase = Phase::Answered;
        slot.last_read = took;
        // The next round is likely asked for the tick a period after this
        // one's: sleep until it should begin, not until it is asked for.
        let next_due = slot.due.and_then(|due| due.checked_add(slot.period));
        slot.wakes_at = next_due.map(|due| read_ahead_of(due, took));
        drop(slot);
        // Wakes the runner only if it waits (its tick came first); else
        // the runner finds the answer at its tick.
        shared.answered.notify_one();
    }
}

fn entity_id(name: &str, quantity: Quantity, quantity_count: usize) -> String {
    if quantity_count == 1 {
        name.to_owned()
    } else {
        format!("{name}_{}", quantity.suffix())
    }
}

/// How long consumers may wait for a value before treating the entity as
/// unavailable: three missed rounds, but never less than 10 s. This covers
/// what availability cannot: a read stuck in the kernel, or a stuck agent.
fn expire_after(interval: Duration) -> Duration {
    interval
        .clamp(MIN_INTERVAL, MAX_INTERVAL)
        .checked_mul(3)
        .unwrap_or(Duration::MAX)
        .max(MIN_EXPIRE_AFTER)
}

/// Puts one round's results on the hub: a good value is calibrated, set and
/// makes its entity available; a failure makes just that entity unavailable.
fn apply(hub: &Hub, sensor: &str, calibration: &Calibration, tracked: &mut [Tracked], results: &mut Vec<Reading>) {
    for (quantity, result) in results.drain(..) {
        let Some(entity) = tracked.iter_mut().find(|entity| entity.quantity == quantity) else {
            debug!(
                sensor,
                ?quantity,
                "reader returned a quantity it did not declare; ignored"
            );
            continue;
        };
        let result = result.and_then(|value| {
            // A NaN or infinity would be published as text Home Assistant
            // cannot parse; treat it like any other bad read.
            if value.is_finite() {
                Ok(value)
            } else {
                Err(SensorError::Device(format!("not a finite number: {value}")))
            }
        });
        match result {
            Ok(value) => {
                let calibrated = calibration.apply(quantity, value);
                if let Some(filtered) = entity.filters.apply(calibrated, tokio::time::Instant::now()) {
                    entity.set(hub, Value::Number(filtered));
                }
                entity.set_available(hub, true);
                if entity.record(true) == Some(Change::Recovered) {
                    info!(sensor, entity = %entity.id, "sensor reading recovered");
                }
            }
            Err(error) => {
                entity.set_available(hub, false);
                if entity.record(false) == Some(Change::Failed) {
                    warn!(
                        sensor,
                        entity = %entity.id,
                        %error,
                        "sensor read failed; the entity is unavailable until a read succeeds"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::mpsc;

    // Tokio's clock, so that the tests with paused time read it too.
    use tokio::time::Instant;

    use crate::hub::HubEvent;

    type Script = Vec<(Quantity, Result<f64, SensorError>)>;

    /// A reader whose every `read` takes the next scripted round from a
    /// channel, blocking until the test sends it: the test decides when each
    /// round happens and what it returns. It records when it was read.
    struct Scripted {
        quantities: Vec<Quantity>,
        rounds: mpsc::Receiver<Script>,
        reads: mpsc::Sender<Instant>,
        placement: Placement,
    }

    impl SensorReader for Scripted {
        fn describe(&self) -> String {
            "scripted".to_owned()
        }

        fn quantities(&self) -> Vec<Quantity> {
            self.quantities.clone()
        }

        fn placement(&self) -> Placement {
            self.placement
        }

        fn read(&mut self) -> Script {
            let _ = self.reads.send(Instant::now());
            // A closed channel (the test is over) reads as a failure.
            self.rounds.recv().unwrap_or_else(|_| {
                self.quantities
                    .iter()
                    .map(|&q| (q, Err(SensorError::Device("script ended".to_owned()))))
                    .collect()
            })
        }
    }

    struct Harness {
        hub: Arc<Hub>,
        rounds: mpsc::Sender<Script>,
        reads: mpsc::Receiver<Instant>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn sensor(name: &str, quantities: &[Quantity]) -> (Sensor, mpsc::Sender<Script>, mpsc::Receiver<Instant>) {
        placed_sensor(name, quantities, Placement::Thread)
    }

    fn placed_sensor(
        name: &str,
        quantities: &[Quantity],
        placement: Placement,
    ) -> (Sensor, mpsc::Sender<Script>, mpsc::Receiver<Instant>) {
        let (rounds_tx, rounds_rx) = mpsc::channel();
        let (reads_tx, reads_rx) = mpsc::channel();
        let sensor = Sensor {
            name: name.to_owned(),
            label: "Living room".to_owned(),
            interval: Duration::from_secs(600),
            calibration: Calibration::default(),
            filters: Vec::new(),
            reader: Box::new(Scripted {
                quantities: quantities.to_vec(),
                rounds: rounds_rx,
                reads: reads_tx,
                placement,
            }),
        };
        (sensor, rounds_tx, reads_rx)
    }

    fn start(sensor: Sensor, rounds: mpsc::Sender<Script>, reads: mpsc::Receiver<Instant>) -> Harness {
        let hub = Hub::new(8);
        for spec in sensor.entities() {
            hub.register(spec);
        }
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sensor.run(hub.clone(), cancel.clone()));
        Harness {
            hub,
            rounds,
            reads,
            cancel,
            task,
        }
    }

    impl Harness {
        fn value(&self, id: &str) -> Option<f64> {
            self.hub.get(id).and_then(|e| e.value).and_then(|v| v.as_number())
        }

        fn available(&self, id: &str) -> bool {
            self.hub.get(id).is_some_and(|e| e.available)
        }

        /// Plays one round and waits until the runner has applied it. The
        /// runner applies a whole round without yielding, so the first hub
        /// event of the round means all of it is there. (A round must change
        /// something: a value, or an availability.)
        async fn round(&self, script: Script) {
            let mut events = self.hub.subscribe();
            self.rounds.send(script).expect("runner alive");
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match events.recv().await {
                        Ok(HubEvent::Updated(..) | HubEvent::Availability(..)) => break,
                        Ok(_) => {}
                        Err(error) => panic!("hub closed: {error}"),
                    }
                }
            })
            .await
            .expect("the round is applied within 5 s");
        }

        async fn stop(self) {
            self.cancel.cancel();
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("stops promptly")
                .expect("does not panic");
        }
    }

    #[test]
    fn one_quantity_should_give_one_entity_named_after_the_sensor() {
        let (sensor, _, _) = sensor("kitchen", &[Quantity::Temperature]);
        let specs = sensor.entities();
        assert_eq!(specs.len(), 1);
        let spec = &specs[0];
        assert_eq!((spec.id.as_str(), spec.name.as_str()), ("kitchen", "Living room"));
        assert_eq!(spec.group, Group::Sensors);
        assert_eq!(spec.device_class, Some("temperature"));
        assert_eq!(spec.unit, Some("°C"));
        assert_eq!(spec.state_class, Some(crate::hub::StateClass::Measurement));
        assert_eq!(spec.precision, 1);
        assert!(spec.own_availability);
        assert!(!spec.diagnostic);
        assert_eq!(sensor.entity_id(Quantity::Temperature), "kitchen");
    }

    #[test]
    fn several_quantities_should_give_suffixed_ids_and_names() {
        let (sensor, _, _) = sensor(
            "attic",
            &[Quantity::Temperature, Quantity::Humidity, Quantity::Pressure],
        );
        let specs = sensor.entities();
        let ids: Vec<(&str, &str, Option<&str>)> =
            specs.iter().map(|s| (s.id.as_str(), s.name.as_str(), s.unit)).collect();
        assert_eq!(
            ids,
            vec![
                ("attic_temperature", "Living room temperature", Some("°C")),
                ("attic_humidity", "Living room humidity", Some("%")),
                ("attic_pressure", "Living room pressure", Some("hPa")),
            ]
        );
        assert!(specs.iter().all(|s| s.own_availability && s.group == Group::Sensors));
        assert_eq!(sensor.entity_id(Quantity::Pressure), "attic_pressure");
    }

    #[test]
    fn entities_should_expire_after_three_intervals_but_not_under_ten_seconds() {
        let (mut sensor, _, _) = sensor("s", &[Quantity::Temperature]);
        sensor.interval = Duration::from_secs(60);
        assert_eq!(sensor.entities()[0].expire_after, Some(Duration::from_secs(180)));
        sensor.interval = Duration::from_secs(2);
        assert_eq!(sensor.entities()[0].expire_after, Some(MIN_EXPIRE_AFTER));
    }

    #[tokio::test]
    async fn values_should_reach_the_hub_calibrated() {
        let (mut s, rounds, reads) = sensor("attic", &[Quantity::Temperature, Quantity::Humidity]);
        s.calibration = Calibration::default()
            .with_offset(Quantity::Temperature, -1.5)
            .with_scale(Quantity::Humidity, 1.1);
        let h = start(s, rounds, reads);
        h.round(vec![(Quantity::Temperature, Ok(21.5)), (Quantity::Humidity, Ok(40.0))])
            .await;
        assert_eq!(h.value("attic_temperature"), Some(20.0));
        assert_eq!(h.value("attic_humidity"), Some(40.0 * 1.1));
        assert!(h.available("attic_temperature") && h.available("attic_humidity"));
        h.stop().await;
    }

    #[tokio::test]
    async fn a_failure_should_mark_only_that_entity_unavailable_until_a_read_succeeds() {
        let (mut s, rounds, reads) = sensor("attic", &[Quantity::Temperature, Quantity::Humidity]);
        // Short, so that the test does not wait long for each round.
        s.interval = MIN_INTERVAL;
        let h = start(s, rounds, reads);
        h.round(vec![(Quantity::Temperature, Ok(21.0)), (Quantity::Humidity, Ok(40.0))])
            .await;

        h.round(vec![
            (Quantity::Temperature, Ok(22.0)),
            (Quantity::Humidity, Err(SensorError::Device("EIO".to_owned()))),
        ])
        .await;
        assert!(h.available("attic_temperature"));
        assert_eq!(h.value("attic_temperature"), Some(22.0));
        assert!(!h.available("attic_humidity"));
        // The last good value stays; only its availability changed.
        assert_eq!(h.value("attic_humidity"), Some(40.0));

        // Still failing: still unavailable (and logged only once).
        h.round(vec![
            (Quantity::Temperature, Ok(22.5)),
            (Quantity::Humidity, Err(SensorError::Crc)),
        ])
        .await;
        assert!(!h.available("attic_humidity"));

        h.round(vec![(Quantity::Temperature, Ok(23.0)), (Quantity::Humidity, Ok(41.0))])
            .await;
        assert!(h.available("attic_humidity"));
        assert_eq!(h.value("attic_humidity"), Some(41.0));
        h.stop().await;
    }

    #[test]
    fn a_failure_should_be_reported_when_it_starts_and_when_it_ends_only() {
        // What `apply` logs: a warning on `Failed`, a note on `Recovered`.
        let mut entity = Tracked {
            quantity: Quantity::Humidity,
            id: "h".to_owned(),
            slot: None,
            filters: Chain::default(),
            failing: false,
        };
        let changes: Vec<Option<Change>> = [true, false, false, false, true, true, false]
            .into_iter()
            .map(|ok| entity.record(ok))
            .collect();
        assert_eq!(
            changes,
            vec![
                None,
                Some(Change::Failed),
                None,
                None,
                Some(Change::Recovered),
                None,
                Some(Change::Failed)
            ]
        );
    }

    #[tokio::test]
    async fn a_value_that_is_not_finite_should_count_as_a_failure() {
        let (s, rounds, reads) = sensor("t", &[Quantity::Temperature]);
        let h = start(s, rounds, reads);
        h.round(vec![(Quantity::Temperature, Ok(f64::NAN))]).await;
        assert!(!h.available("t"));
        assert_eq!(h.value("t"), None);
        h.stop().await;
    }

    // The two tests with paused time read inline: tokio's paused clock would
    // jump ahead while a reading thread, which it does not know of, reads.

    #[tokio::test(start_paused = true)]
    async fn it_should_read_at_once_and_not_again_before_the_interval() {
        let (s, rounds, reads) = placed_sensor("t", &[Quantity::Temperature], Placement::Inline);
        let started = tokio::time::Instant::now();
        let h = start(s, rounds, reads);
        h.round(vec![(Quantity::Temperature, Ok(20.0))]).await;
        h.reads.try_recv().expect("one read");
        assert_eq!(started.elapsed(), Duration::ZERO, "read at once");
        // The next round's answer is ready, so a read never blocks (which
        // would hold paused time still). The interval is 10 minutes:
        // nothing in the first 9:59 of paused time (it passes once the
        // runner waits)...
        h.rounds
            .send(vec![(Quantity::Temperature, Ok(21.0))])
            .expect("runner alive");
        tokio::time::sleep(Duration::from_secs(599)).await;
        assert!(h.reads.try_recv().is_err(), "read again before the interval");
        assert_eq!(h.value("t"), Some(20.0));
        // ...and the second round at 10:00.
        let mut events = h.hub.subscribe();
        tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .expect("the second round at the interval")
            .expect("hub alive");
        h.reads.try_recv().expect("the second read");
        assert_eq!(h.value("t"), Some(21.0));
        assert_eq!(started.elapsed(), Duration::from_secs(600));
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_should_be_an_interval_apart() {
        let (mut s, rounds, reads) = placed_sensor("t", &[Quantity::Temperature], Placement::Inline);
        s.interval = Duration::from_millis(150);
        // Every round's answer is there before it is asked for, so no read
        // blocks (a blocked read would hold paused time still).
        for n in 0..4 {
            rounds
                .send(vec![(Quantity::Temperature, Ok(f64::from(n)))])
                .expect("runner alive");
        }
        let started = Instant::now();
        let h = start(s, rounds, reads);
        let mut events = h.hub.subscribe();
        tokio::time::timeout(Duration::from_secs(5), async {
            while h.value("t") != Some(3.0) {
                events.recv().await.expect("hub alive");
            }
        })
        .await
        .expect("four rounds within 5 s");
        let at: Vec<Duration> = h.reads.try_iter().map(|read| read - started).collect();
        // Paused time: each round exactly one interval after the last, the
        // first at once. (In real time a loaded machine made this flaky.)
        assert_eq!(
            at[..4],
            [0, 150, 300, 450].map(Duration::from_millis),
            "when the rounds were read"
        );
        h.stop().await;
    }

    /// A round whose tick came before it began (the thread woke late, or
    /// the machine was busy) is read at once, and the thread still plans
    /// its next wake-up from that tick: the runner's next request then
    /// finds it in time and need not wake it (one wake-up a round).
    #[tokio::test]
    async fn a_hurried_round_should_be_read_at_once_and_the_next_wake_up_still_planned() {
        let (sensor, rounds, _reads) = sensor("t", &[Quantity::Temperature]);
        let period = Duration::from_secs(600);
        let thread = ReadingThread::start(sensor.reader, period).expect("a reading thread");
        let mut results = Vec::new();
        // For a tick a minute away: the thread would sleep until just before.
        let due = std::time::Instant::now() + Duration::from_secs(60);
        thread.ask(&mut results, Some(due));
        thread.hurry();
        rounds
            .send(vec![(Quantity::Temperature, Ok(21.0))])
            .expect("the reader listens");
        tokio::time::timeout(Duration::from_secs(10), thread.answered())
            .await
            .expect("hurried: read at once, not a minute later");
        assert_eq!(thread.try_take(&mut results), Answer::Ready);
        assert_eq!(results.len(), 1);
        let slot = thread.shared.lock();
        assert_eq!(
            slot.wakes_at,
            Some(due + period - lead(slot.last_read)),
            "the next round's wake-up, a period after the hurried tick"
        );
    }

    #[test]
    fn a_read_ahead_should_begin_by_the_last_read_and_a_margin_before_its_tick() {
        let ms = Duration::from_millis;
        // The last read took 40 ms: begin 40 + 10 + 5 ms before the tick.
        assert_eq!(lead(ms(40)), ms(55));
        assert_eq!(lead(Duration::ZERO), READ_AHEAD_MARGIN);
    }

    #[tokio::test]
    async fn cancel_should_stop_even_while_a_read_is_in_flight() {
        let (s, rounds, reads) = sensor("t", &[Quantity::Temperature]);
        let h = start(s, rounds, reads);
        // The first read blocks until a round is sent, which never happens.
        let read = tokio::task::spawn_blocking({
            let reads = h.reads;
            move || reads.recv_timeout(Duration::from_secs(5))
        });
        read.await.expect("joined").expect("the read started");
        h.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), h.task)
            .await
            .expect("stops without waiting for the read")
            .expect("does not panic");
        // Dropping the sender ends the abandoned read on its thread.
        drop(h.rounds);
    }

    #[tokio::test]
    async fn the_reading_thread_should_end_and_drop_its_reader_when_the_sensor_stops() {
        // The reader holds a sender; its receiver hears of the drop.
        struct Steady {
            _alive: mpsc::Sender<()>,
        }
        impl SensorReader for Steady {
            fn describe(&self) -> String {
                "steady".to_owned()
            }
            fn quantities(&self) -> Vec<Quantity> {
                vec![Quantity::Temperature]
            }
            fn read(&mut self) -> Script {
                vec![(Quantity::Temperature, Ok(20.0))]
            }
        }
        let (alive, dropped) = mpsc::channel::<()>();
        let sensor = Sensor {
            name: "s".to_owned(),
            label: "S".to_owned(),
            interval: MIN_INTERVAL,
            calibration: Calibration::default(),
            filters: Vec::new(),
            reader: Box::new(Steady { _alive: alive }),
        };
        let hub = Hub::new(8);
        for spec in sensor.entities() {
            hub.register(spec);
        }
        let mut events = hub.subscribe();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sensor.run(hub.clone(), cancel.clone()));
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.get("s").and_then(|e| e.value).is_none() {
                events.recv().await.expect("hub alive");
            }
        })
        .await
        .expect("a value from the reading thread");
        cancel.cancel();
        task.await.expect("does not panic");
        let heard = tokio::task::spawn_blocking(move || dropped.recv_timeout(Duration::from_secs(5)))
            .await
            .expect("joined");
        assert_eq!(
            heard,
            Err(mpsc::RecvTimeoutError::Disconnected),
            "the reader was dropped, so its thread ended"
        );
    }

    #[tokio::test]
    async fn a_reader_that_panics_should_make_its_entities_unavailable_and_stop() {
        struct Panics;
        impl SensorReader for Panics {
            fn describe(&self) -> String {
                "panics".to_owned()
            }
            fn quantities(&self) -> Vec<Quantity> {
                vec![Quantity::Temperature]
            }
            fn read(&mut self) -> Script {
                panic!("a bug in a reader");
            }
        }
        let sensor = Sensor {
            name: "p".to_owned(),
            label: "P".to_owned(),
            interval: MIN_INTERVAL,
            calibration: Calibration::default(),
            filters: Vec::new(),
            reader: Box::new(Panics),
        };
        let hub = Hub::new(8);
        for spec in sensor.entities() {
            hub.register(spec);
        }
        let task = tokio::spawn(sensor.run(hub.clone(), CancellationToken::new()));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the runner ends by itself")
            .expect("the panic stays in the reading thread");
        assert!(!hub.get("p").expect("registered").available);
    }
}
