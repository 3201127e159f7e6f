//! The state hub: the one place that knows every entity and its latest value.
//!
//! Sources register entities and set values here; sinks (MQTT, web) read
//! snapshots and follow the change broadcast. The hub owns no I/O and never
//! calls a sink: sources and sinks only meet through it. This file is the
//! store; `entity.rs` says what an entity and a value are.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::vocab::Press;

mod entity;
mod id_hasher;

pub use entity::{EntitySpec, Group, StateClass, Value};
use id_hasher::IdHash;

/// How many changes a slow sink may fall behind before it must resync from a
/// snapshot (it sees `RecvError::Lagged`).
const CHANGE_CHANNEL_CAPACITY: usize = 256;

/// How many numeric samples are kept per entity for sparklines.
pub const DEFAULT_HISTORY_LEN: usize = 120;

/// What sinks are told about. Every `set` is broadcast, changed or not, so
/// that a periodic source also refreshes the consumers' `expire_after`.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// A new entity exists (or an existing one was re-described).
    Registered(Arc<EntitySpec>),
    /// An entity got a value.
    Updated(Arc<EntitySpec>, Value),
    /// An entity with its own availability became available or not.
    Availability(Arc<EntitySpec>, bool),
    /// A button was pressed.
    Pressed(Arc<EntitySpec>, Press),
    /// An entity's attributes changed (an automation's last run).
    Attributes(Arc<EntitySpec>),
}

/// A point in time view of one entity.
#[derive(Debug, Clone)]
pub struct EntitySnapshot {
    pub spec: Arc<EntitySpec>,
    pub value: Option<Value>,
    pub updated: Option<SystemTime>,
    /// False while the entity's source cannot read it.
    pub available: bool,
    /// Extra facts shown beside the value (`last_run`).
    pub attributes: Vec<(&'static str, String)>,
}

/// One history sample of a numeric entity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: SystemTime,
    pub value: f64,
}

struct Entry {
    spec: Arc<EntitySpec>,
    value: Option<Value>,
    updated: Option<SystemTime>,
    available: bool,
    attributes: Vec<(&'static str, String)>,
    history: VecDeque<Sample>,
}

/// An entity by its id, or by its slot in `Inner::entries`.
#[derive(Clone, Copy)]
enum Key<'a> {
    Id(&'a str),
    Slot(usize),
}

struct Inner {
    /// In registration order, so that snapshots list entities the way
    /// sources declared them (and walk them without a lookup each).
    entries: Vec<Entry>,
    /// Where each id's entry is in `entries`.
    index: HashMap<String, usize, IdHash>,
    /// Counts every change, so readers can tell a snapshot is still current
    /// (the web side caches its rendered state with it).
    version: u64,
}

/// Latest value per entity, change broadcast and a short history ring.
pub struct Hub {
    /// A std mutex: it is held only for map lookups, never across `.await`.
    inner: Mutex<Inner>,
    changes: broadcast::Sender<HubEvent>,
    history_len: usize,
}

impl Hub {
    pub fn new(history_len: usize) -> Arc<Hub> {
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                index: HashMap::default(),
                version: 0,
            }),
            changes,
            history_len,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in
        // a way that matters more than losing every sink, so keep going.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an entity, or replaces the description of one with the same id
    /// (its value and history are kept).
    pub fn register(&self, mut spec: EntitySpec) -> Arc<EntitySpec> {
        let spec = {
            let mut inner = self.lock();
            inner.version += 1;
            let known = inner.index.get(&spec.id).copied();
            spec.slot = known.unwrap_or(inner.entries.len());
            let spec = Arc::new(spec);
            match known {
                Some(at) => inner.entries[at].spec = spec.clone(),
                None => {
                    inner.index.insert(spec.id.clone(), spec.slot);
                    inner.entries.push(Entry {
                        spec: spec.clone(),
                        value: None,
                        updated: None,
                        available: true,
                        attributes: Vec::new(),
                        history: VecDeque::new(),
                    });
                }
            }
            spec
        };
        // No receivers is fine: sinks may not have started yet.
        let _ = self.changes.send(HubEvent::Registered(spec.clone()));
        spec
    }

    /// Records a value for a registered entity and broadcasts it. Returns
    /// false (and records nothing) when the id is unknown.
    pub fn set(&self, id: &str, value: Value) -> bool {
        self.set_at(id, value, SystemTime::now())
    }

    /// `set` with an explicit timestamp (for tests and replays).
    pub fn set_at(&self, id: &str, value: Value, at: SystemTime) -> bool {
        self.record(Key::Id(id), value, at)
    }

    /// Where a registered entity is kept (`EntitySpec::slot`): a source
    /// that sets the same entities every round looks each up once, then
    /// sets it by its slot (`set_slot`) without hashing its id each time.
    pub fn slot(&self, id: &str) -> Option<usize> {
        self.lock().index.get(id).copied()
    }

    /// `set` by the entity's slot (from `slot`).
    pub fn set_slot(&self, slot: usize, value: Value) -> bool {
        self.record(Key::Slot(slot), value, SystemTime::now())
    }

    /// `set_available` by the entity's slot (from `slot`).
    pub fn set_available_slot(&self, slot: usize, available: bool) -> bool {
        self.mark_available(Key::Slot(slot), available)
    }

    fn record(&self, key: Key<'_>, value: Value, at: SystemTime) -> bool {
        let spec = {
            let mut inner = self.lock();
            // Only a known id changes what readers see (and their caches).
            let Some(entry) = inner.find_mut(key) else {
                return false;
            };
            if let Value::Number(n) = value {
                if self.history_len > 0 {
                    if entry.history.len() == self.history_len {
                        entry.history.pop_front();
                    }
                    // The whole ring at once: later sets then allocate
                    // nothing (tests/alloc_per_cycle.rs).
                    entry.history.reserve_exact(self.history_len - entry.history.len());
                    entry.history.push_back(Sample { at, value: n });
                }
            }
            entry.value = Some(value.clone());
            entry.updated = Some(at);
            let spec = entry.spec.clone();
            inner.version += 1;
            spec
        };
        let _ = self.changes.send(HubEvent::Updated(spec, value));
        true
    }

    /// Marks an entity available or not; broadcasts only a change. Returns
    /// false for an unknown id.
    pub fn set_available(&self, id: &str, available: bool) -> bool {
        self.mark_available(Key::Id(id), available)
    }

    fn mark_available(&self, key: Key<'_>, available: bool) -> bool {
        let spec = {
            let mut inner = self.lock();
            let Some(entry) = inner.find_mut(key) else {
                return false;
            };
            if entry.available == available {
                return true;
            }
            entry.available = available;
            let spec = entry.spec.clone();
            inner.version += 1;
            spec
        };
        let _ = self.changes.send(HubEvent::Availability(spec, available));
        true
    }

    /// Sets one attribute of an entity and broadcasts it. Returns false for
    /// an unknown id.
    pub fn set_attribute(&self, id: &str, key: &'static str, value: String) -> bool {
        let spec = {
            let mut inner = self.lock();
            let Some(entry) = inner.entry_mut(id) else {
                return false;
            };
            match entry.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some((_, old)) => *old = value,
                None => entry.attributes.push((key, value)),
            }
            let spec = entry.spec.clone();
            inner.version += 1;
            spec
        };
        let _ = self.changes.send(HubEvent::Attributes(spec));
        true
    }

    /// Broadcasts a press of an entity's button. Returns false for an
    /// unknown id.
    pub fn press(&self, id: &str, press: Press) -> bool {
        let Some(spec) = self.lock().entry(id).map(|e| e.spec.clone()) else {
            return false;
        };
        let _ = self.changes.send(HubEvent::Pressed(spec, press));
        true
    }

    /// Follows registrations and updates from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.changes.subscribe()
    }

    /// Changes so far: equal versions mean equal snapshots.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Every entity in registration order, with the version it is of.
    pub fn versioned_snapshot(&self) -> (u64, Vec<EntitySnapshot>) {
        let inner = self.lock();
        let entities = inner.entries.iter().map(Entry::snapshot).collect();
        (inner.version, entities)
    }

    /// Every entity in registration order.
    pub fn snapshot(&self) -> Vec<EntitySnapshot> {
        self.versioned_snapshot().1
    }

    pub fn get(&self, id: &str) -> Option<EntitySnapshot> {
        self.lock().entry(id).map(Entry::snapshot)
    }

    /// The numeric history of an entity, oldest first; `None` for an unknown id.
    pub fn history(&self, id: &str) -> Option<Vec<Sample>> {
        self.lock()
            .entry(id)
            .map(|entry| entry.history.iter().copied().collect())
    }
}

impl Inner {
    fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.get(*self.index.get(id)?)
    }

    fn entry_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.get_mut(*self.index.get(id)?)
    }

    fn find_mut(&mut self, key: Key<'_>) -> Option<&mut Entry> {
        match key {
            Key::Id(id) => self.entry_mut(id),
            Key::Slot(slot) => self.entries.get_mut(slot),
        }
    }
}

impl Entry {
    fn snapshot(&self) -> EntitySnapshot {
        EntitySnapshot {
            spec: self.spec.clone(),
            value: self.value.clone(),
            updated: self.updated,
            available: self.available,
            attributes: self.attributes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_with(ids: &[&str], history_len: usize) -> Arc<Hub> {
        let hub = Hub::new(history_len);
        for id in ids {
            hub.register(EntitySpec::sensor(id, id, Group::System));
        }
        hub
    }

    #[test]
    fn set_should_keep_only_the_latest_value() {
        let hub = hub_with(&["a"], 4);
        hub.set("a", Value::Number(1.0));
        hub.set("a", Value::Number(2.0));
        let a = hub.get("a").expect("registered");
        assert_eq!(a.value, Some(Value::Number(2.0)));
        assert!(a.updated.is_some());
    }

    #[test]
    fn set_on_unknown_entity_should_be_refused() {
        let hub = hub_with(&["a"], 4);
        assert!(!hub.set("nope", Value::Number(1.0)));
        assert!(hub.get("nope").is_none());
    }

    #[test]
    fn history_should_be_a_bounded_ring_of_numbers() {
        let hub = hub_with(&["a"], 3);
        for n in 0..5 {
            hub.set("a", Value::Number(f64::from(n)));
        }
        let values: Vec<f64> = hub.history("a").expect("known").iter().map(|s| s.value).collect();
        assert_eq!(values, vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn booleans_should_not_enter_history() {
        let hub = Hub::new(3);
        hub.register(EntitySpec::binary_sensor("b", "b", Group::System));
        hub.set("b", Value::Bool(true));
        assert_eq!(hub.history("b"), Some(vec![]));
    }

    #[test]
    fn snapshot_should_follow_registration_order_and_reregistration_keeps_value() {
        let hub = hub_with(&["z", "a", "m"], 3);
        hub.set("a", Value::Number(5.0));
        hub.register(EntitySpec::sensor("a", "renamed", Group::System));
        let snap = hub.snapshot();
        let ids: Vec<&str> = snap.iter().map(|e| e.spec.id.as_str()).collect();
        assert_eq!(ids, vec!["z", "a", "m"]);
        assert_eq!(snap[1].spec.name, "renamed");
        assert_eq!(snap[1].value, Some(Value::Number(5.0)));
    }

    #[tokio::test]
    async fn subscribers_should_see_every_update() {
        let hub = hub_with(&["a"], 3);
        let mut rx = hub.subscribe();
        hub.set("a", Value::Number(1.0));
        hub.set("a", Value::Number(1.0));
        for _ in 0..2 {
            match rx.recv().await.expect("event") {
                HubEvent::Updated(spec, value) => {
                    assert_eq!(spec.id, "a");
                    assert_eq!(value, Value::Number(1.0));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn availability_should_be_broadcast_only_when_it_changes() {
        let hub = hub_with(&["a"], 3);
        let mut rx = hub.subscribe();
        assert!(hub.set_available("a", true), "known id");
        hub.set_available("a", false);
        hub.set_available("a", false);
        hub.set_available("a", true);
        let mut seen = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let HubEvent::Availability(_, available) = event {
                seen.push(available);
            }
        }
        assert_eq!(seen, vec![false, true]);
        assert!(hub.get("a").expect("known").available);
        assert!(!hub.set_available("nope", false));
    }

    #[tokio::test]
    async fn presses_should_be_broadcast_for_known_entities_only() {
        let hub = hub_with(&["button"], 3);
        let mut rx = hub.subscribe();
        assert!(hub.press("button", Press::Long));
        assert!(!hub.press("nope", Press::Single));
        match rx.try_recv() {
            Ok(HubEvent::Pressed(spec, Press::Long)) => assert_eq!(spec.id, "button"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }
}
