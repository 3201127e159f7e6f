//! The sink's two memories, pure data: the [`Outbox`] of retained messages
//! waiting for room in the client (only the latest payload per topic), and
//! the [`Refresh`] record that spares republishing unchanged periodic
//! values.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::hub::{EntitySpec, Value};

/// Retained messages waiting to be handed to the client, in first-queued
/// order, holding only the latest payload per topic. Everything the sink
/// retains is state, so an older payload for the same topic is worthless.
///
/// A plain queue, searched on `put`: in steady state it is empty when a
/// value comes (the driver flushes after every event), so a value costs no
/// hashing at all; after a reconnect it holds one message per topic of the
/// node (a hundred or so) for a moment.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<(String, Vec<u8>)>,
}

impl Outbox {
    pub fn put(&mut self, topic: String, payload: Vec<u8>) {
        match self.queue.iter_mut().find(|(waiting, _)| *waiting == topic) {
            Some((_, waiting)) => *waiting = payload,
            None => self.queue.push_back((topic, payload)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Takes the front message, to hand it over.
    pub fn pop_front(&mut self) -> Option<(String, Vec<u8>)> {
        self.queue.pop_front()
    }

    /// The payload waiting for `topic`, if any.
    pub fn get(&self, topic: &str) -> Option<&[u8]> {
        self.queue
            .iter()
            .find(|(waiting, _)| waiting == topic)
            .map(|(_, payload)| payload.as_slice())
    }

    /// The waiting topics, in order.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.queue.iter().map(|(topic, _)| topic.as_str())
    }
}

/// Skips republishing an unchanged value of a periodic entity (one with
/// `expire_after`) until a third of its expiry has passed: the retained
/// state is already right, and a Pi Zero's CPU and Wi-Fi are better spent
/// elsewhere. Entities without expiry (inputs, outputs) always publish:
/// there every update means something.
#[derive(Debug, Default)]
pub struct Refresh {
    /// At each entity's hub slot (`EntitySpec::slot`): no hashing of its
    /// id for every change.
    sent: Vec<Option<Sent>>,
}

/// What was last published for an entity, and when.
#[derive(Debug)]
struct Sent {
    payload: String,
    /// The value last seen: one equal to it renders the same payload, so
    /// it is not rendered again to find that out.
    value: Value,
    at: Instant,
}

impl Refresh {
    /// The payload to publish for `value`, or `None` while the retained one
    /// still says the same.
    pub fn payload(&mut self, spec: &EntitySpec, value: &Value, now: Instant) -> Option<String> {
        let Some(expire_after) = spec.expire_after else {
            return Some(value.render(spec.precision));
        };
        if self.sent.len() <= spec.slot {
            self.sent.resize_with(spec.slot + 1, || None);
        }
        let Some(sent) = self.sent.get_mut(spec.slot).and_then(Option::as_mut) else {
            let payload = value.render(spec.precision);
            let sent = Sent {
                payload: payload.clone(),
                value: value.clone(),
                at: now,
            };
            // In range: resized above.
            self.sent[spec.slot] = Some(sent);
            return Some(payload);
        };
        let fresh = now.duration_since(sent.at) < expire_after / 3;
        if fresh && sent.value == *value {
            return None;
        }
        let payload = value.render(spec.precision);
        sent.value = value.clone();
        if fresh && sent.payload == payload {
            return None;
        }
        // In place: no allocation once the entity has been sent.
        sent.payload.clear();
        sent.payload.push_str(&payload);
        sent.at = now;
        Some(payload)
    }

    pub fn clear(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::Group;

    #[test]
    fn unchanged_periodic_values_should_be_republished_only_every_third_of_their_expiry() {
        let periodic = EntitySpec::sensor("load_1m", "Load", Group::System)
            .precision(2)
            .expire_after(Duration::from_secs(30));
        let input = EntitySpec::binary_sensor("door", "Door", Group::Inputs);
        let mut refresh = Refresh::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let number = Value::Number;
        assert_eq!(refresh.payload(&periodic, &number(0.5), at(0)).as_deref(), Some("0.50"));
        assert_eq!(
            refresh.payload(&periodic, &number(0.5), at(1)),
            None,
            "unchanged, 1 s later"
        );
        assert_eq!(
            refresh.payload(&periodic, &number(0.501), at(1)),
            None,
            "another value with the same text"
        );
        assert_eq!(refresh.payload(&periodic, &number(0.5), at(1)), None, "and back");
        assert_eq!(
            refresh.payload(&periodic, &number(0.51), at(2)).as_deref(),
            Some("0.51"),
            "changed"
        );
        assert_eq!(refresh.payload(&periodic, &number(0.51), at(11)), None);
        assert_eq!(
            refresh.payload(&periodic, &number(0.51), at(12)).as_deref(),
            Some("0.51"),
            "10 s (a third of 30) since the last send"
        );
        assert!(
            refresh.payload(&input, &Value::Bool(true), at(12)).is_some()
                && refresh.payload(&input, &Value::Bool(true), at(12)).is_some(),
            "inputs always"
        );
        refresh.clear();
        assert!(
            refresh.payload(&periodic, &number(0.51), at(13)).is_some(),
            "after a reconnect everything goes out"
        );
    }

    #[test]
    fn each_entity_should_be_refreshed_on_its_own_by_its_hub_slot() {
        // Specs as sinks get them: registered on a hub, which gives each
        // its slot (a second registration keeps it).
        let hub = crate::hub::Hub::new(0);
        let periodic = |id: &str| {
            EntitySpec::sensor(id, id, Group::System)
                .precision(1)
                .expire_after(Duration::from_secs(30))
        };
        let cpu = hub.register(periodic("cpu"));
        let load = hub.register(periodic("load"));
        assert_ne!(cpu.slot, load.slot);
        assert_eq!(
            hub.register(periodic("cpu")).slot,
            cpu.slot,
            "described again: the same slot"
        );
        let mut refresh = Refresh::default();
        let now = Instant::now();
        let value = Value::Number(1.0);
        assert!(refresh.payload(&cpu, &value, now).is_some());
        assert!(
            refresh.payload(&load, &value, now).is_some(),
            "another entity with the same value is not held back by the first"
        );
        assert!(refresh.payload(&cpu, &value, now).is_none());
        assert!(refresh.payload(&load, &value, now).is_none());
    }

    #[test]
    fn outbox_should_keep_only_the_latest_payload_per_topic_in_first_queued_order() {
        let mut outbox = Outbox::default();
        outbox.put("a".into(), b"1".to_vec());
        outbox.put("b".into(), b"1".to_vec());
        outbox.put("a".into(), b"2".to_vec());
        assert_eq!(outbox.topics().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.pop_front(), Some(("a".to_owned(), b"2".to_vec())));
        assert_eq!(outbox.pop_front(), Some(("b".to_owned(), b"1".to_vec())));
        assert!(outbox.is_empty());
    }
}
