//! Messages on `/set` topics as commands: pure parsing, resolved once
//! through the command targets. The caller logs rejections and sends
//! commands.

use crate::command::{Action, Command, Origin, Targets};
use crate::vocab::Component;

/// Why a message on a `/set` topic was not turned into a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("it was retained; publish commands without the retain flag")]
    Retained,
    #[error("`{0}` is not an output")]
    NotAnOutput(String),
    #[error("expected ON, OFF or TOGGLE (or a level 0-100 for a PWM output)")]
    BadPayload,
    #[error("a button takes PRESS")]
    NotAPress,
}

/// A `/set` message for `entity` as a command, or why not.
pub fn parse_command(targets: &Targets, entity: &str, payload: &[u8], retain: bool) -> Result<Command, Rejection> {
    if retain {
        // A retained command would be replayed at every reconnect and undo
        // whatever happened since; commands are one-shot.
        return Err(Rejection::Retained);
    }
    let Some((_, component)) = targets.resolve(entity) else {
        return Err(Rejection::NotAnOutput(entity.to_owned()));
    };
    let wrong_payload = match component {
        Component::Button => Rejection::NotAPress,
        _ => Rejection::BadPayload,
    };
    let Some(action) = Action::parse(payload) else {
        return Err(wrong_payload);
    };
    targets.command(entity, action, Origin::Mqtt).map_err(|_| wrong_payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Button, OutputId, Target};

    #[test]
    fn incoming_command_should_toggle_relay_and_everything_else_should_be_rejected() {
        let mut targets = Targets::new();
        targets.add("relay", Component::Switch, false, Target::Output(OutputId(0)));
        targets.add("restart", Component::Button, false, Target::Button(Button::Restart));
        let command = parse_command(&targets, "relay", b"toggle", false).expect("valid");
        assert_eq!(
            (command.target, command.action),
            (Target::Output(OutputId(0)), Action::Toggle)
        );
        assert_eq!(parse_command(&targets, "relay", b"ON", true), Err(Rejection::Retained));
        assert_eq!(
            parse_command(&targets, "door", b"ON", false),
            Err(Rejection::NotAnOutput("door".into()))
        );
        assert_eq!(
            parse_command(&targets, "relay", b"50%", false),
            Err(Rejection::BadPayload)
        );
        assert_eq!(
            parse_command(&targets, "relay", b"PRESS", false),
            Err(Rejection::BadPayload)
        );
        assert_eq!(
            parse_command(&targets, "restart", b"ON", false),
            Err(Rejection::NotAPress)
        );
        assert!(parse_command(&targets, "restart", b"press", false).is_ok());
    }
}
