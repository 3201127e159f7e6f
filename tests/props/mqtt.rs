//! MQTT command messages: every payload, retain flag, entity and topic.
//!
//! The oracle is written independently of `Action::parse`: a command is
//! exactly `on`, `off` or `toggle` in any ASCII case with whitespace around
//! it, or for a dimmable (PWM) output a level of 0 to 100 in decimal digits;
//! everything else is refused, and for the right reason.

use majortom::command::{Action, Origin, OutputId, Target, Targets};
use majortom::mqtt::command::{parse_command, Rejection};
use majortom::mqtt::topics::Topics;
use majortom::vocab::Component;
use proptest::prelude::*;

use crate::check;

/// What takes commands: two outputs. The door (an input) and the
/// temperature (a sensor) take none.
fn targets() -> Targets {
    let mut targets = Targets::new();
    targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
    targets.add("lamp", Component::Light, false, Target::Output(OutputId(1)));
    targets.add("fan", Component::Fan, true, Target::Output(OutputId(2)));
    targets
}

fn is_output(entity: &str) -> bool {
    matches!(entity, "relay" | "lamp" | "fan")
}

/// What a payload means, by the documented rule.
fn oracle(payload: &[u8]) -> Option<Action> {
    let text = std::str::from_utf8(payload).ok()?;
    let word: String = text
        .trim_matches(char::is_whitespace)
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match word.as_str() {
        "on" => Some(Action::On),
        "off" => Some(Action::Off),
        "toggle" => Some(Action::Toggle),
        "press" => Some(Action::Press),
        digits if !digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let level: u32 = digits.parse().ok()?;
            (level <= 100).then_some(Action::Level(level as u8))
        }
        _ => None,
    }
}

/// Payloads near the valid ones: a word (valid, truncated, padded, with a
/// look-alike character) in random case, between random whitespace.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        Just("on".to_owned()),
        Just("off".to_owned()),
        Just("toggle".to_owned()),
        Just("press".to_owned()),
        Just("onn".to_owned()),
        Just("of".to_owned()),
        Just("toggl".to_owned()),
        Just("o n".to_owned()),
        Just("0n".to_owned()),
        Just("ОN".to_owned()), // Cyrillic О
        Just("\u{212a}".to_owned()),
        Just("true".to_owned()),
        Just("1".to_owned()),
        Just("40".to_owned()),
        Just("100".to_owned()),
        Just("101".to_owned()),
        Just("007".to_owned()),
        Just("4.5".to_owned()),
        Just("-1".to_owned()),
        Just(String::new()),
        "[a-zA-Z]{1,8}",
    ];
    let case = prop::collection::vec(any::<bool>(), 8);
    let space = prop::collection::vec(
        prop_oneof![
            Just(' '),
            Just('\t'),
            Just('\n'),
            Just('\r'),
            Just('\u{0b}'),
            Just('\u{0c}'),
            Just('\u{a0}'),
            Just('\u{3000}'),
            Just('\u{200b}'), // zero width space: not whitespace
            Just('\0'),
        ],
        0..4,
    );
    let structured = (space.clone(), word, case, space).prop_map(|(before, word, case, after)| {
        let mut text: String = before.into_iter().collect();
        for (i, c) in word.chars().enumerate() {
            text.push(if case.get(i).copied().unwrap_or(false) {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        text.extend(after);
        text.into_bytes()
    });
    prop_oneof![
        4 => structured,
        2 => prop::collection::vec(any::<u8>(), 0..64),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..70_000),
    ]
}

fn entity() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("relay".to_owned()),
        2 => Just("lamp".to_owned()),
        2 => Just("fan".to_owned()),
        1 => Just("door".to_owned()),
        1 => Just("temp".to_owned()),
        1 => Just("RELAY".to_owned()),
        1 => any::<String>(),
    ]
}

#[test]
fn command_payloads_should_be_exactly_on_off_or_toggle_and_rejected_for_the_right_reason() {
    let targets = targets();
    check(
        "mqtt::parse_command",
        (entity(), payload(), any::<bool>()),
        |(entity, payload, retain)| {
            let parsed = parse_command(&targets, &entity, &payload, retain);
            let expected = if retain {
                Err(Rejection::Retained)
            } else if !is_output(&entity) {
                Err(Rejection::NotAnOutput(entity.clone()))
            } else {
                // The outputs here are switches, lights and a PWM fan:
                // PRESS is for buttons, levels only for the fan.
                oracle(&payload)
                    .filter(|a| *a != Action::Press)
                    .filter(|a| entity == "fan" || !matches!(a, Action::Level(_)))
                    .ok_or(Rejection::BadPayload)
            };
            match (&parsed, expected) {
                (Ok(command), Ok(action)) => {
                    prop_assert_eq!(command.action, action);
                    prop_assert_eq!(targets.id_of(command.target), Some(entity.as_str()));
                    prop_assert_eq!(command.origin, Origin::Mqtt);
                }
                (Err(rejection), Err(expected)) => {
                    prop_assert_eq!(rejection, &expected);
                    prop_assert!(!rejection.to_string().trim().is_empty());
                }
                (parsed, expected) => {
                    prop_assert!(false, "payload {payload:?}: got {parsed:?}, expected {expected:?}");
                }
            }
            // The web API parses states with the same function.
            prop_assert_eq!(Action::parse(&payload), oracle(&payload));
            Ok(())
        },
    );
}

/// Topic-safe prefixes and node ids, as the config allows them.
fn level() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,8}"
}

fn topic_for(base: &str, node: &str) -> impl Strategy<Value = String> {
    let own = format!("{base}/{node}");
    let parts = prop_oneof![
        Just(own.clone()),
        Just(format!("{own}x")),
        Just(base.to_owned()),
        Just(String::new()),
        "[a-z/+#]{0,6}",
    ];
    let middle = prop_oneof![
        Just("/relay".to_owned()),
        Just("/".to_owned()),
        Just(String::new()),
        Just("/a/b".to_owned()),
        Just("/+".to_owned()),
        Just("/#".to_owned()),
        "/[^/]{0,12}",
        any::<String>(),
    ];
    let tail = prop_oneof![
        Just("/set".to_owned()),
        Just("/set/".to_owned()),
        Just("/state".to_owned()),
        Just("set".to_owned()),
        Just(String::new()),
        "/[a-z]{0,4}",
    ];
    prop_oneof![
        4 => (parts, middle, tail).prop_map(|(p, m, t)| format!("{p}{m}{t}")),
        1 => any::<String>(),
    ]
}

#[test]
fn command_topics_should_name_one_of_our_entities_or_nothing() {
    let strategy = (level(), level(), level()).prop_flat_map(|(base, prefix, node)| {
        let topic = topic_for(&base, &node);
        (Just(base), Just(prefix), Just(node), topic, any::<bool>())
    });
    let targets = targets();
    check(
        "mqtt::command_target",
        strategy,
        |(base, prefix, node, topic, retain)| {
            let topics = Topics::new(&base, &prefix, &node);
            let own = format!("{base}/{node}/");
            let expected = topic
                .strip_prefix(&own)
                .and_then(|rest| rest.strip_suffix("/set"))
                .filter(|entity| !entity.is_empty() && !entity.contains('/'));
            let target = topics.command_target(&topic);
            prop_assert_eq!(target, expected, "topic {:?}", topic);
            if let Some(entity) = target {
                // The topic the sink subscribes to round-trips.
                prop_assert_eq!(topics.command(entity), topic.clone());
                // And whatever it names, the message is judged without panic.
                let _ = parse_command(&targets, entity, b"ON", retain);
            }
            Ok(())
        },
    );
}
