//! The sink's two memories, pure data: the [`Outbox`] of retained messages
//! waiting for room in the client (only the latest payload per topic), and
//! the [`Refresh`] record that spares republishing unchanged periodic
//! values.

use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use crate::hub::{EntitySpec, IdHash};

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

    /// The message to hand over next; it stays until `pop`.
    pub fn front(&self) -> Option<(&str, &[u8])> {
        self.queue
            .front()
            .map(|(topic, payload)| (topic.as_str(), payload.as_slice()))
    }

    /// Drops the front message (it was handed over).
    pub fn pop(&mut self) {
        self.queue.pop_front();
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
    /// By entity id, hashed as the hub hashes them (ids come only from the
    /// config and the sources).
    sent: HashMap<String, (String, Instant), IdHash>,
}

impl Refresh {
    pub fn due(&mut self, spec: &EntitySpec, payload: &str, now: Instant) -> bool {
        let Some(expire_after) = spec.expire_after else {
            return true;
        };
        match self.sent.get_mut(&spec.id) {
            Some((last, at)) => {
                if last == payload && now.duration_since(*at) < expire_after / 3 {
                    return false;
                }
                // In place: no allocation once the entity has been sent.
                last.clear();
                last.push_str(payload);
                *at = now;
            }
            None => {
                self.sent.insert(spec.id.clone(), (payload.to_owned(), now));
            }
        }
        true
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
        let periodic = EntitySpec::sensor("load_1m", "Load", Group::System).expire_after(Duration::from_secs(30));
        let input = EntitySpec::binary_sensor("door", "Door", Group::Inputs);
        let mut refresh = Refresh::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(refresh.due(&periodic, "0.50", at(0)));
        assert!(!refresh.due(&periodic, "0.50", at(1)), "unchanged, 1 s later");
        assert!(refresh.due(&periodic, "0.51", at(2)), "changed");
        assert!(!refresh.due(&periodic, "0.51", at(11)));
        assert!(
            refresh.due(&periodic, "0.51", at(12)),
            "10 s (a third of 30) since the last send"
        );
        assert!(
            refresh.due(&input, "ON", at(12)) && refresh.due(&input, "ON", at(12)),
            "inputs always"
        );
        refresh.clear();
        assert!(
            refresh.due(&periodic, "0.51", at(13)),
            "after a reconnect everything goes out"
        );
    }

    #[test]
    fn outbox_should_keep_only_the_latest_payload_per_topic_in_first_queued_order() {
        let mut outbox = Outbox::default();
        outbox.put("a".into(), b"1".to_vec());
        outbox.put("b".into(), b"1".to_vec());
        outbox.put("a".into(), b"2".to_vec());
        assert_eq!(outbox.topics().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(outbox.front(), Some(("a", &b"2"[..])));
        assert_eq!(outbox.len(), 2);
        outbox.pop();
        assert_eq!(outbox.front(), Some(("b", &b"1"[..])));
        outbox.pop();
        assert!(outbox.is_empty());
    }
}
