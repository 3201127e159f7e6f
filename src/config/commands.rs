//! `[[commands]]`: programs run on request, raw and validated, and the
//! program keys (`on`, `off`, `once`, `status`, a command sensor's
//! `command`) that command sensors share.
//!
//! A command is a switch (`on` + `off`) or a button (`once`); `status`
//! reports a switch's state and, for both, whether it is available.
//! `unit = "kodi.service"` writes a switch's three programs itself
//! (`systemctl start|stop|is-active --quiet`). Programs are argv arrays; one
//! string runs through `/bin/sh -c` only with `shell = true`, so a space or
//! a `;` never means a shell by accident (arrays are allowed either way).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// `timeout_s` when not given, for commands.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `status_interval_s` when not given.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(30);

// ---- typed ----------------------------------------------------------------

/// A program to run, as the config gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Run directly: `argv[0]` is looked up on `PATH` when it has no `/`.
    Argv(Vec<String>),
    /// One line for `/bin/sh -c`, only with `shell = true`.
    Shell(String),
}

impl Program {
    /// The argv that is executed.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Program::Argv(argv) => argv.clone(),
            Program::Shell(line) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
        }
    }
}

/// For logs and `majortom check`: the argv with spaces, or `sh -c '…'`.
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Program::Argv(argv) => f.write_str(&argv.join(" ")),
            Program::Shell(line) => write!(f, "sh -c '{line}'"),
        }
    }
}

/// What a command is in Home Assistant and on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    Switch { on: Program, off: Program },
    Button { once: Program },
}

/// Whether a request may wait while the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// A request while a run is going is refused (HTTP 409).
    Refuse,
    /// Requests wait their turn, a few at most.
    Queued,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCheck {
    pub program: Program,
    pub interval: Duration,
}

/// How every program of a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// After this, the program's whole process group is killed.
    pub timeout: Duration,
    /// Variables passed through from the agent's environment, besides `PATH`.
    pub env: Vec<String>,
    pub working_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    /// Entity id.
    pub name: String,
    pub label: String,
    pub kind: CommandKind,
    pub status: Option<StatusCheck>,
    pub run: RunSettings,
    pub concurrency: Concurrency,
    /// The systemd unit of `unit = …`, with its suffix (`kodi.service`):
    /// `install` lets the agent start and stop it through polkit.
    pub unit: Option<String>,
}

// ---- raw ------------------------------------------------------------------

/// An argv array, or one string (only valid with `shell = true`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawProgram {
    Argv(Vec<String>),
    Line(String),
}

/// By hand rather than `untagged`: the error then says what is expected.
impl<'de> Deserialize<'de> for RawProgram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProgramVisitor;
        impl<'de> Visitor<'de> for ProgramVisitor {
            type Value = RawProgram;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"an argv array such as ["systemctl", "start", "kodi"], or one string with `shell = true`"#,
                )
            }
            fn visit_str<E: de::Error>(self, line: &str) -> Result<RawProgram, E> {
                Ok(RawProgram::Line(line.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<RawProgram, A::Error> {
                let mut argv = Vec::new();
                while let Some(item) = items.next_element::<String>()? {
                    argv.push(item);
                }
                Ok(RawProgram::Argv(argv))
            }
        }
        deserializer.deserialize_any(ProgramVisitor)
    }
}

/// Types already used by other sections where possible (`Vec<String>`,
/// `Option<Spanned<String>>`, `bool`): every new field type costs its own
/// copy of the deserializer's code (docs/PERFORMANCE.md). `default` on the
/// optional fields: a missing one is then `None` directly, without serde's
/// per-type "missing field" path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommand {
    name: Spanned<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    on: Option<Spanned<RawProgram>>,
    #[serde(default)]
    off: Option<Spanned<RawProgram>>,
    #[serde(default)]
    once: Option<Spanned<RawProgram>>,
    #[serde(default)]
    status: Option<Spanned<RawProgram>>,
    #[serde(default)]
    unit: Option<Spanned<String>>,
    #[serde(default)]
    shell: bool,
    #[serde(default)]
    status_interval_s: Option<Spanned<f64>>,
    #[serde(default)]
    timeout_s: Option<Spanned<f64>>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    working_dir: Option<Spanned<PathBuf>>,
    /// `refuse` or `queued`.
    #[serde(default)]
    mode: Option<Spanned<String>>,
}

/// The suffixes systemd gives unit names; a bare name means `.service`.
const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".timer",
    ".mount",
    ".automount",
    ".swap",
    ".path",
    ".slice",
    ".scope",
    ".device",
];

/// `kodi` → `kodi.service`; `None` for what is not a plain unit name. The
/// characters are systemd's, less `\` (its escapes), so that the name can
/// sit in the polkit rule's text as it is.
pub fn unit_name(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'@'))
        && !name.starts_with('.')
        && !name.starts_with('-');
    if !plain {
        return None;
    }
    if UNIT_SUFFIXES
        .iter()
        .any(|suffix| name.ends_with(suffix) && name.len() > suffix.len())
    {
        Some(name.to_owned())
    } else {
        Some(format!("{name}.service"))
    }
}

/// A name that can go into an environment: `[A-Za-z_][A-Za-z0-9_]*`.
fn env_name_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `systemctl <verb> <unit>`; `is-active` gets `--quiet`: exit 0 when
/// active, 3 when not, nothing on stdout, which `status` reads as on/off.
fn systemctl(verb: &str, unit: &str) -> Program {
    let mut argv = vec!["systemctl".to_owned(), verb.to_owned()];
    if verb == "is-active" {
        argv.push("--quiet".to_owned());
    }
    argv.push(unit.to_owned());
    Program::Argv(argv)
}

/// What went wrong: the span it is about, the key under the command, and
/// the message.
pub(super) type Problem = (std::ops::Range<usize>, &'static str, std::borrow::Cow<'static, str>);

impl Validator<'_> {
    /// `[[commands]]`. Names must not clash with `reserved` (the agent's own
    /// entities) or `names` (every other entity so far), and are added to
    /// `names`.
    pub(super) fn commands(
        &self,
        raw: Vec<RawCommand>,
        reserved: &[&str],
        names: &mut HashMap<String, String>,
    ) -> Result<Vec<CommandConfig>, ConfigError> {
        let mut commands = Vec::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let key = format!("commands[{i}]");
            if reserved.contains(&raw.name.get_ref().as_str()) {
                return Err(self.field_error(
                    raw.name.span(),
                    &key,
                    "name",
                    "is the name of one of the agent's own entities",
                ));
            }
            let name = self.entity_name(&raw.name, &key, names)?;
            let command = self
                .command(raw, name)
                .map_err(|(span, field, message)| self.field_error(span, &key, field, &message))?;
            commands.push(command);
        }
        Ok(commands)
    }

    /// One error path for every check below: a problem names its field.
    #[inline(never)]
    pub(super) fn field_error(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        field: &str,
        message: &str,
    ) -> ConfigError {
        let key = if field.is_empty() {
            key.to_owned()
        } else {
            format!("{key}.{field}")
        };
        self.error(&Spanned::new(span, ()), &key, message)
    }

    fn command(&self, raw: RawCommand, name: String) -> Result<CommandConfig, Problem> {
        let at_name = raw.name.span();
        let fields = [
            ("on", &raw.on),
            ("off", &raw.off),
            ("once", &raw.once),
            ("status", &raw.status),
        ];
        let mut programs: [Option<Program>; 4] = Default::default();
        for ((field, value), program) in fields.into_iter().zip(&mut programs) {
            if let Some(value) = value {
                if raw.unit.is_some() {
                    return Err((
                        value.span(),
                        field,
                        "does not go with `unit`, which sets on, off and status itself".into(),
                    ));
                }
                *program = Some(program_of(value, raw.shell).map_err(|message| (value.span(), field, message.into()))?);
            }
        }
        let [on, off, once, status] = programs;
        let (kind, status, unit) = match &raw.unit {
            Some(unit) => {
                let name = unit_name(unit.get_ref()).ok_or((
                    unit.span(),
                    "unit",
                    "must be a systemd unit name such as `kodi.service` (letters, digits, `:-_.@`)".into(),
                ))?;
                let kind = CommandKind::Switch {
                    on: systemctl("start", &name),
                    off: systemctl("stop", &name),
                };
                (kind, Some(systemctl("is-active", &name)), Some(name))
            }
            None => {
                let kind = match (on, off, once) {
                    (Some(on), Some(off), None) => CommandKind::Switch { on, off },
                    (None, None, Some(once)) => CommandKind::Button { once },
                    (Some(_), None, _) => return Err((at_name, "off", "`on` needs `off` too (a switch)".into())),
                    (None, Some(_), _) => return Err((at_name, "on", "`off` needs `on` too (a switch)".into())),
                    (Some(_), Some(_), Some(_)) => {
                        return Err((
                            at_name,
                            "once",
                            "a command is a switch (`on` and `off`) or a button (`once`), not both; make two commands"
                                .into(),
                        ))
                    }
                    (None, None, None) => {
                        return Err((
                            at_name,
                            "",
                            "needs `on` and `off` (a switch), `once` (a button) or `unit` (a systemd service)".into(),
                        ))
                    }
                };
                (kind, status, None)
            }
        };
        let seconds =
            |value: &Option<Spanned<f64>>, field, default, range: std::ops::RangeInclusive<f64>, message| match value {
                None => Ok(default),
                Some(value) if range.contains(value.get_ref()) => Ok(Duration::from_secs_f64(*value.get_ref())),
                Some(value) => Err((value.span(), field, std::borrow::Cow::Borrowed(message))),
            };
        let interval = seconds(
            &raw.status_interval_s,
            "status_interval_s",
            DEFAULT_STATUS_INTERVAL,
            1.0..=86_400.0,
            "must be between 1 and 86400 seconds",
        )?;
        let status = match (status, &raw.status_interval_s) {
            (None, Some(given)) => {
                return Err((
                    given.span(),
                    "status_interval_s",
                    "only applies with `status` (or `unit`)".into(),
                ))
            }
            (program, _) => program.map(|program| StatusCheck { program, interval }),
        };
        let timeout = seconds(
            &raw.timeout_s,
            "timeout_s",
            DEFAULT_TIMEOUT,
            0.1..=86_400.0,
            "must be between 0.1 and 86400 seconds",
        )?;
        if !raw.env.iter().all(|variable| env_name_ok(variable)) {
            return Err((
                at_name,
                "env",
                "lists names of environment variables (letters, digits, `_`); their values come from the agent's environment".into(),
            ));
        }
        let working_dir = match raw.working_dir {
            None => PathBuf::from("/"),
            Some(dir) if dir.get_ref().is_absolute() => dir.into_inner(),
            Some(dir) => return Err((dir.span(), "working_dir", "must be an absolute path".into())),
        };
        let concurrency = match raw.mode.as_ref().map(|mode| (mode, mode.get_ref().as_str())) {
            None | Some((_, "refuse")) => Concurrency::Refuse,
            Some((_, "queued")) => Concurrency::Queued,
            Some((mode, _)) => return Err((mode.span(), "mode", "must be `refuse` or `queued`".into())),
        };
        Ok(CommandConfig {
            label: raw.label.unwrap_or_else(|| super::hardware::label_from_name(&name)),
            name,
            kind,
            status,
            run: RunSettings {
                timeout,
                env: raw.env,
                working_dir,
            },
            concurrency,
            unit,
        })
    }
}

/// One program key: an argv array, or one string with `shell = true`.
pub(super) fn program_of(value: &Spanned<RawProgram>, shell: bool) -> Result<Program, &'static str> {
    let program = match (value.get_ref(), shell) {
        // An array is never ambiguous, with or without `shell`.
        (RawProgram::Argv(argv), _) => {
            if argv.first().is_none_or(|program| program.is_empty()) {
                return Err("must name a program: [\"program\", \"argument\", …]");
            }
            Program::Argv(argv.clone())
        }
        (RawProgram::Line(line), true) if line.trim().is_empty() => return Err("must not be empty"),
        (RawProgram::Line(line), true) => Program::Shell(line.clone()),
        (RawProgram::Line(_), false) => {
            return Err("one string runs through /bin/sh only with `shell = true`; or write an argv array such as [\"systemctl\", \"start\", \"kodi\"]")
        }
    };
    // execve takes C strings: a NUL would make every run fail.
    if program.argv().iter().any(|arg| arg.contains('\0')) {
        return Err("must not contain a NUL character");
    }
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::tests::parse_on_pi as parse;

    fn commands(text: &str) -> Vec<CommandConfig> {
        parse(text).unwrap_or_else(|e| panic!("{e}")).commands
    }

    /// The error's text, which must name `key` and say `says`.
    fn error(text: &str, key: &str, says: &str) {
        let message = match parse(text) {
            Ok(config) => panic!("accepted: {:?}", config.commands),
            Err(error) => error.to_string(),
        };
        assert!(message.contains(&format!("key `{key}`")), "{message}");
        assert!(message.contains(says), "{message}");
    }

    fn argv(items: &[&str]) -> Program {
        Program::Argv(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn a_switch_should_take_argv_arrays_with_defaults() {
        let parsed = commands(
            r#"
[[commands]]
name = "backup_disk"
on = ["/usr/local/bin/mount-backup", "--now"]
off = ["umount", "/mnt/backup"]
"#,
        );
        assert_eq!(
            parsed,
            vec![CommandConfig {
                name: "backup_disk".into(),
                label: "Backup disk".into(),
                kind: CommandKind::Switch {
                    on: argv(&["/usr/local/bin/mount-backup", "--now"]),
                    off: argv(&["umount", "/mnt/backup"]),
                },
                status: None,
                run: RunSettings {
                    timeout: DEFAULT_TIMEOUT,
                    env: vec![],
                    working_dir: "/".into(),
                },
                concurrency: Concurrency::Refuse,
                unit: None,
            }]
        );
    }

    #[test]
    fn a_button_should_take_every_key() {
        let parsed = commands(
            r#"
[[commands]]
name = "backup"
label = "Back up now"
once = "restic backup /home >> /var/lib/majortom/backup.log 2>&1"
shell = true
status = ["test", "-e", "/mnt/backup/ok"]
status_interval_s = 60
timeout_s = 3600
env = ["RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE"]
working_dir = "/var/lib/majortom"
mode = "queued"
"#,
        );
        let command = &parsed[0];
        assert_eq!(command.label, "Back up now");
        assert_eq!(
            command.kind,
            CommandKind::Button {
                once: Program::Shell("restic backup /home >> /var/lib/majortom/backup.log 2>&1".into())
            }
        );
        assert_eq!(
            command.status,
            Some(StatusCheck {
                program: argv(&["test", "-e", "/mnt/backup/ok"]),
                interval: Duration::from_secs(60)
            })
        );
        assert_eq!(command.run.timeout, Duration::from_secs(3600));
        assert_eq!(command.run.env, ["RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE"]);
        assert_eq!(command.run.working_dir, PathBuf::from("/var/lib/majortom"));
        assert_eq!(command.concurrency, Concurrency::Queued);
        assert_eq!(
            Program::Shell("echo a; echo b".into()).argv(),
            ["/bin/sh", "-c", "echo a; echo b"]
        );
    }

    #[test]
    fn unit_should_expand_to_systemctl_start_stop_and_is_active() {
        let parsed = commands(
            r#"
[[commands]]
name = "kodi"
unit = "kodi"
status_interval_s = 10
"#,
        );
        let command = &parsed[0];
        assert_eq!(
            command.kind,
            CommandKind::Switch {
                on: argv(&["systemctl", "start", "kodi.service"]),
                off: argv(&["systemctl", "stop", "kodi.service"]),
            }
        );
        assert_eq!(
            command.status,
            Some(StatusCheck {
                program: argv(&["systemctl", "is-active", "--quiet", "kodi.service"]),
                interval: Duration::from_secs(10),
            })
        );
        assert_eq!(command.unit.as_deref(), Some("kodi.service"));
        assert_eq!(unit_name("backup.timer").as_deref(), Some("backup.timer"));
        assert_eq!(unit_name("getty@tty1.service").as_deref(), Some("getty@tty1.service"));
        assert_eq!(unit_name(".service"), None);
        for bad in ["", "a b", "x\"y", "a\\x2d", "-x", "kodi;reboot", "k/odi"] {
            assert_eq!(unit_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mistakes_should_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "name = \"x\"\non = \"systemctl start kodi\"\noff = [\"true\"]",
                "commands[0].on",
                "only with `shell = true`",
            ),
            (
                "name = \"x\"\nonce = \"  \"\nshell = true",
                "commands[0].once",
                "must not be empty",
            ),
            ("name = \"x\"\nonce = []", "commands[0].once", "must name a program"),
            ("name = \"x\"\nonce = [\"\"]", "commands[0].once", "must name a program"),
            ("name = \"x\"\nonce = 5", "commands[0].once", "an argv array"),
            ("name = \"x\"\non = [\"true\"]", "commands[0].off", "`on` needs `off`"),
            ("name = \"x\"\noff = [\"true\"]", "commands[0].on", "`off` needs `on`"),
            (
                "name = \"x\"\non = [\"a\"]\noff = [\"b\"]\nonce = [\"c\"]",
                "commands[0].once",
                "not both",
            ),
            ("name = \"x\"", "commands[0]", "needs `on` and `off`"),
            (
                "name = \"x\"\nunit = \"kodi\"\non = [\"a\"]",
                "commands[0].on",
                "does not go with `unit`",
            ),
            (
                "name = \"x\"\nunit = \"kodi\"\nstatus = [\"a\"]",
                "commands[0].status",
                "does not go with `unit`",
            ),
            (
                "name = \"x\"\nunit = \"ko di\"",
                "commands[0].unit",
                "systemd unit name",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\nstatus_interval_s = 5",
                "commands[0].status_interval_s",
                "only applies with `status`",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\nstatus = [\"b\"]\nstatus_interval_s = 0",
                "commands[0].status_interval_s",
                "between 1 and 86400",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\ntimeout_s = 0",
                "commands[0].timeout_s",
                "between 0.1",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\nenv = [\"A=B\"]",
                "commands[0].env",
                "names of environment variables",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\nworking_dir = \"tmp\"",
                "commands[0].working_dir",
                "absolute path",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\nmode = \"parallel\"",
                "commands[0].mode",
                "`refuse` or `queued`",
            ),
            (
                "name = \"x\"\nonce = [\"a\"]\nargs = []",
                "commands[0].args",
                "unknown field",
            ),
            ("name = \"X y\"\nonce = [\"a\"]", "commands[0].name", "lowercase"),
            ("name = \"x\"\nonce = [\"a\\u0000\"]", "commands[0].once", "NUL"),
        ];
        for (body, key, says) in cases {
            error(&format!("[[commands]]\n{body}\n"), key, says);
        }
    }

    #[test]
    fn names_should_be_unique_across_entities_and_the_agent_itself() {
        error(
            "[[outputs]]\nname = \"kodi\"\npin = 17\n[[commands]]\nname = \"kodi\"\nunit = \"kodi\"\n",
            "commands[0].name",
            "already used",
        );
        error(
            "[[commands]]\nname = \"a\"\nonce = [\"x\"]\n[[commands]]\nname = \"a\"\nonce = [\"y\"]\n",
            "commands[1].name",
            "already used",
        );
        error(
            "[[commands]]\nname = \"reboot\"\nonce = [\"x\"]\n",
            "commands[0].name",
            "the agent's own",
        );
        error(
            "[[commands]]\nname = \"cpu_usage\"\nonce = [\"x\"]\n",
            "commands[0].name",
            "the agent's own",
        );
    }

    #[test]
    fn the_readme_examples_should_be_valid() {
        // Every ```toml block of the README that shows a command or a
        // command/file sensor parses: the documentation cannot drift.
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
            .filter(|block| {
                block.contains("[[commands]]")
                    || block.contains("kind = \"file\"")
                    || block.contains("kind = \"command\"")
            })
            .collect();
        assert!(blocks.len() >= 3, "{blocks:?}");
        for block in blocks {
            parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        }
    }

    #[test]
    fn the_default_config_should_parse_with_its_examples_uncommented() {
        // The commented [[commands]] examples of default.toml, uncommented,
        // are a valid config: the documentation cannot drift from the keys.
        let text: String = crate::config::DEFAULT_CONFIG_TOML
            .lines()
            .skip_while(|line| !line.starts_with("# [[commands]]"))
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.strip_prefix("# ").unwrap_or(line.trim_start_matches('#')))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(text.contains("[[commands]]"), "{text}");
        let parsed = commands(&text);
        assert!(parsed.len() >= 2, "{parsed:?}");
    }
}
