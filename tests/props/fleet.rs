//! The fleet: whatever neighbours publish on `<base>/+/status` and
//! `<base>/+/info` (any node id, any payload, any number of nodes), the
//! table stays within 64 nodes, keeps ours, holds only well-formed ids,
//! statuses from exactly `online`/`offline`, and `info` fields within their
//! bounds (a URL only if http or https).

use majortom::fleet::{Fleet, Kind, MAX_NODES};
use majortom::mqtt::topics::Topics;
use proptest::prelude::*;

use crate::check;

/// Node ids: mostly valid (so the table fills), some hostile.
fn node_id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,8}",
        1 => ".{0,70}",
        1 => "[a-z]{60,70}",
    ]
}

/// Payloads: valid statuses, JSON infos with random fields, random bytes.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let info = (
        ".{0,120}",
        prop_oneof![
            Just("http://h/".to_owned()),
            Just("javascript:x".to_owned()),
            ".{0,300}"
        ],
        any::<f64>(),
        -500.0..500.0f64,
        any::<bool>(),
    )
        .prop_map(|(name, url, disk, temp, flag)| {
            serde_json::json!({"name": name, "url": url, "disk_pct": disk, "cpu_temp_c": temp,
                "under_voltage": flag, "version": "1"})
            .to_string()
            .into_bytes()
        });
    prop_oneof![
        2 => prop_oneof![Just(b"online".to_vec()), Just(b"offline".to_vec()), Just(Vec::new())],
        2 => info,
        1 => proptest::collection::vec(any::<u8>(), 0..1500),
    ]
}

#[test]
fn whatever_neighbours_publish_the_table_stays_bounded_and_clean() {
    let topics = Topics::new("majortom", "homeassistant", "me");
    let message = (
        node_id(),
        prop_oneof![Just("status"), Just("info")],
        payload(),
        any::<bool>(),
    );
    check("fleet table", proptest::collection::vec(message, 1..150), |messages| {
        let fleet = Fleet::new("me");
        fleet.observe(Kind::Status, "me", b"online", false);
        for (node, kind, payload, retain) in &messages {
            // Through the topic parser, as the sink does.
            let topic = format!("majortom/{node}/{kind}");
            if let Some((node, kind)) = topics.fleet_message(&topic) {
                fleet.observe(kind, node, payload, *retain);
            }
        }
        let nodes = fleet.nodes();
        prop_assert!(nodes.len() <= MAX_NODES);
        prop_assert!(nodes.iter().any(|n| n.id == "me" && n.online == Some(true)));
        for node in &nodes {
            prop_assert!(
                (1..=64).contains(&node.id.len())
                    && node
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
                "{:?}",
                node.id
            );
            if let Some(info) = &node.info {
                prop_assert!(info
                    .url
                    .as_deref()
                    .is_none_or(|u| u.starts_with("http://") || u.starts_with("https://")));
                prop_assert!(info.disk_pct.is_none_or(|d| (0.0..=100.0).contains(&d)));
                prop_assert!(info.cpu_temp_c.is_none_or(|t| (-60.0..=200.0).contains(&t)));
                prop_assert!(info
                    .name
                    .as_deref()
                    .is_none_or(|n| n.len() <= 96 && !n.chars().any(char::is_control)));
            }
        }
        Ok(())
    });
}
