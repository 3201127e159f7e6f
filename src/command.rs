//! Commands: what flows back from the sinks (MQTT `/set` topics, the web
//! API) to the outputs. Sinks only send [`Command`]s; the outputs task owns
//! the pins and decides what happens.

use tokio::sync::mpsc;

/// What to do to an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    On,
    Off,
    Toggle,
}

impl Action {
    /// `ON`, `OFF` or `TOGGLE`, in any case, surrounding whitespace ignored.
    pub fn parse(payload: &[u8]) -> Option<Action> {
        let text = std::str::from_utf8(payload).ok()?.trim();
        if text.eq_ignore_ascii_case("on") {
            Some(Action::On)
        } else if text.eq_ignore_ascii_case("off") {
            Some(Action::Off)
        } else if text.eq_ignore_ascii_case("toggle") {
            Some(Action::Toggle)
        } else {
            None
        }
    }
}

/// Where a command came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Mqtt,
    Web,
    Automation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The output's entity id.
    pub output: String,
    pub action: Action,
    pub origin: Origin,
}

/// How sinks hand commands to the outputs task. Bounded: a flood of
/// commands waits rather than growing memory.
pub type CommandSender = mpsc::Sender<Command>;
pub type CommandReceiver = mpsc::Receiver<Command>;

pub fn channel() -> (CommandSender, CommandReceiver) {
    mpsc::channel(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_should_parse_case_insensitively_and_reject_anything_else() {
        let check =
            |payload: &[u8], expected: Option<Action>| assert_eq!(Action::parse(payload), expected, "{payload:?}");
        check(b"ON", Some(Action::On));
        check(b"on", Some(Action::On));
        check(b" Off\n", Some(Action::Off));
        check(b"ToGgLe", Some(Action::Toggle));
        for bad in [&b""[..], b"1", b"true", b"onn", b"{\"state\":\"ON\"}", b"\xff\xfe"] {
            check(bad, None);
        }
    }
}
