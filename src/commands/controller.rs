//! One configured command at run time: requests in, one run at a time,
//! state out.
//!
//! [`start`] gives a [`CommandHandle`], which the sinks and automations
//! hold, and a [`CommandRunner`], the task that runs the programs. A request
//! names an [`Action`] and nothing else: the programs, their environment
//! and directory were resolved from the config when the command was built,
//! so nothing a request carries can reach a command line.
//!
//! - **One run at a time.** With `mode = "refuse"` (the default) a request
//!   while another is running or waiting is refused ([`Refused::Busy`], HTTP
//!   409 on the web side); with `mode = "queued"` it waits its turn, at most
//!   [`QUEUE_LIMIT`] of them.
//! - **Status.** A `status` program runs at start, every
//!   `status_interval_s`, and after each run of `on` or `off`; checks never
//!   overlap a run. Without `status`, a switch's state follows its last
//!   successful run.
//! - **State** ([`CommandState`]) is kept in a `watch` channel: readers take
//!   a snapshot or wait for changes; requests change it under the channel's
//!   lock, so two requests cannot both find the command idle.
//!
//! Programs run on tokio's blocking pool (`process::run` blocks); the stop
//! kills a running program's group through a [`Stop`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::process::{self, Finished, Invocation, Stop, KILL_GRACE};
use super::status::{self, Status};
use crate::config::{CommandConfig, CommandKind, Concurrency, Program};

/// Requests that may wait behind a run with `mode = "queued"`.
pub const QUEUE_LIMIT: usize = 8;

/// What a request may ask of a command: a closed set, each selecting one
/// configured program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A switch's `on`.
    On,
    /// A switch's `off`.
    Off,
    /// A button's `once`.
    Once,
}

impl Action {
    /// `on`, `off` or `once`, in any case, surrounding whitespace ignored;
    /// anything else is `None`.
    pub fn parse(text: &str) -> Option<Action> {
        let word = text.trim();
        [Action::On, Action::Off, Action::Once]
            .into_iter()
            .find(|action| word.eq_ignore_ascii_case(action.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Once => "once",
        }
    }
}

/// Why a request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a run is in progress; try again when it has finished")]
    Busy,
    #[error("{QUEUE_LIMIT} requests are already waiting")]
    QueueFull,
    #[error("this command has no `{}` (a switch takes on and off, a button once)", .0.as_str())]
    NotOffered(Action),
    #[error("the agent is stopping")]
    Stopped,
}

/// How a request was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// It runs now.
    Started,
    /// It runs after this many others (`mode = "queued"`).
    Queued { ahead: usize },
}

/// The run in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub action: Action,
    pub since: SystemTime,
}

/// The last finished run of an action (status checks are not runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub action: Action,
    pub finished: Finished,
    pub at: SystemTime,
}

/// What the API and the dashboard show of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    pub running: Option<Running>,
    /// Requests waiting, oldest first.
    pub queued: VecDeque<Action>,
    pub last_run: Option<LastRun>,
    /// A switch's state: from `status`, else from its last successful run;
    /// `Unknown` before either.
    pub status: Status,
    /// False while `status` cannot tell (it fails to run, times out or says
    /// something else); always true without `status`.
    pub available: bool,
    /// The last status check, when there is a `status`.
    pub last_check: Option<SystemTime>,
}

/// What sinks and automations hold: requests in, state out. Cheap to clone.
#[derive(Clone)]
pub struct CommandHandle {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    concurrency: Concurrency,
    /// Which actions have a program; fixed.
    offers: Vec<Action>,
    /// The state, and the lock under which requests are judged.
    state: watch::Sender<CommandState>,
    /// Wakes the runner for a new request.
    wake: Notify,
    /// Set when the runner has ended; later requests are refused.
    stopped: AtomicBool,
}

impl CommandHandle {
    /// The command's entity id.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether the command has a program for `action`.
    pub fn offers(&self, action: Action) -> bool {
        self.shared.offers.contains(&action)
    }

    /// Asks for one run of `action` (see the module doc).
    pub fn request(&self, action: Action) -> Result<Accepted, Refused> {
        if !self.offers(action) {
            return Err(Refused::NotOffered(action));
        }
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Refused::Stopped);
        }
        let mut outcome = Err(Refused::Busy);
        self.shared.state.send_if_modified(|state| {
            let ahead = state.queued.len() + usize::from(state.running.is_some());
            outcome = match self.shared.concurrency {
                Concurrency::Refuse if ahead > 0 => Err(Refused::Busy),
                Concurrency::Queued if state.queued.len() >= QUEUE_LIMIT => Err(Refused::QueueFull),
                _ => {
                    state.queued.push_back(action);
                    Ok(if ahead == 0 {
                        Accepted::Started
                    } else {
                        Accepted::Queued { ahead }
                    })
                }
            };
            outcome.is_ok()
        });
        if outcome.is_ok() {
            self.shared.wake.notify_one();
        }
        outcome
    }

    /// A snapshot of the state.
    pub fn state(&self) -> CommandState {
        self.shared.state.borrow().clone()
    }

    /// Changes of the state, for the sinks.
    pub fn subscribe(&self) -> watch::Receiver<CommandState> {
        self.shared.state.subscribe()
    }
}

/// The task that runs one command's programs.
pub struct CommandRunner {
    shared: Arc<Shared>,
    is_switch: bool,
    on: Option<Arc<Invocation>>,
    off: Option<Arc<Invocation>>,
    once: Option<Arc<Invocation>>,
    status: Option<(Arc<Invocation>, Duration)>,
}

/// Builds a command from its config. `env` looks up the variables that
/// `env` names (and `PATH`) in the agent's environment, once, here.
pub fn start(config: &CommandConfig, env: &dyn Fn(&str) -> Option<OsString>) -> (CommandHandle, CommandRunner) {
    let invocation = |program: &Program| {
        Arc::new(
            Invocation::new(program.argv(), config.run.timeout, env)
                .inherit(&config.run.env, env)
                .working_dir(config.run.working_dir.clone()),
        )
    };
    let (on, off, once) = match &config.kind {
        CommandKind::Switch { on, off } => (Some(invocation(on)), Some(invocation(off)), None),
        CommandKind::Button { once } => (None, None, Some(invocation(once))),
    };
    let offers = [(Action::On, &on), (Action::Off, &off), (Action::Once, &once)]
        .into_iter()
        .filter(|(_, program)| program.is_some())
        .map(|(action, _)| action)
        .collect();
    let state = CommandState {
        running: None,
        queued: VecDeque::new(),
        last_run: None,
        status: Status::Unknown,
        available: config.status.is_none(),
        last_check: None,
    };
    let shared = Arc::new(Shared {
        name: config.name.clone(),
        concurrency: config.concurrency,
        offers,
        state: watch::Sender::new(state),
        wake: Notify::new(),
        stopped: AtomicBool::new(false),
    });
    let runner = CommandRunner {
        shared: shared.clone(),
        is_switch: matches!(config.kind, CommandKind::Switch { .. }),
        on,
        off,
        once,
        status: config
            .status
            .as_ref()
            .map(|check| (invocation(&check.program), check.interval)),
    };
    (CommandHandle { shared }, runner)
}

impl CommandRunner {
    /// Runs requests and status checks until `cancel`; a program running
    /// then is stopped (its group killed).
    pub async fn run(self, cancel: CancellationToken) {
        let name = self.shared.name.clone();
        let stop = match Stop::new() {
            Ok(stop) => Arc::new(stop),
            Err(error) => {
                warn!(command = %name, %error, "cannot set up the command; it will refuse every request");
                self.shared.stopped.store(true, Ordering::Release);
                return;
            }
        };
        let mut ticker = self.status.as_ref().map(|(_, interval)| {
            // On the shared grid: in the same wake-up as other rounds.
            crate::time::aligned_interval(*interval)
        });
        loop {
            // Requests before status checks; `Notify` keeps a wake-up that
            // arrives between this and the `select!`.
            if let Some(action) = self.next_request() {
                if !self.perform(action, &stop, &cancel).await {
                    break;
                }
                continue;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.shared.wake.notified() => {}
                _ = tick(&mut ticker) => {
                    if !self.check(&stop, &cancel).await {
                        break;
                    }
                }
            }
        }
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.state.send_modify(|state| {
            state.running = None;
            state.queued.clear();
        });
    }

    /// Takes the oldest request and marks it running.
    fn next_request(&self) -> Option<Action> {
        let mut next = None;
        self.shared.state.send_if_modified(|state| {
            next = state.queued.pop_front();
            if let Some(action) = next {
                state.running = Some(Running {
                    action,
                    since: SystemTime::now(),
                });
            }
            next.is_some()
        });
        next
    }

    /// One run of `action`, then a status check for a switch. False when
    /// the agent is stopping.
    async fn perform(&self, action: Action, stop: &Arc<Stop>, cancel: &CancellationToken) -> bool {
        let name = &self.shared.name;
        let invocation = match action {
            Action::On => &self.on,
            Action::Off => &self.off,
            Action::Once => &self.once,
        };
        // `request` only queues offered actions.
        let Some(invocation) = invocation.clone() else {
            return true;
        };
        let Some(finished) = execute(invocation, stop, cancel).await else {
            return false;
        };
        info!(command = %name, action = action.as_str(), ended = %finished.ended, duration_ms = finished.duration.as_millis() as u64, "command ran");
        let follows_run = self.status.is_none() && self.is_switch && finished.ended.success();
        self.shared.state.send_modify(|state| {
            state.running = None;
            if follows_run {
                state.status = if action == Action::On { Status::On } else { Status::Off };
            }
            state.last_run = Some(LastRun {
                action,
                finished,
                at: SystemTime::now(),
            });
        });
        if self.status.is_some() && action != Action::Once {
            return self.check(stop, cancel).await;
        }
        true
    }

    /// Runs `status` and records what it says. False when the agent is
    /// stopping.
    async fn check(&self, stop: &Arc<Stop>, cancel: &CancellationToken) -> bool {
        let Some((invocation, _)) = &self.status else {
            return true;
        };
        let Some(finished) = execute(invocation.clone(), stop, cancel).await else {
            return false;
        };
        let status = status::read(&finished);
        // Logged when it starts failing and when it works again, not at
        // every check.
        if self.shared.state.borrow().available != (status != Status::Unknown) {
            warn!(command = %self.shared.name, ended = %finished.ended, stdout = %finished.stdout.text().trim(),
                status = status.as_str(), "status check changed availability");
        }
        self.shared.state.send_modify(|state| {
            state.status = status;
            state.available = status != Status::Unknown;
            state.last_check = Some(SystemTime::now());
        });
        true
    }
}

/// Runs one program on the blocking pool. `None` when `cancel` fired: the
/// program's group is then killed (SIGTERM, SIGKILL after the grace), and
/// this waits a little longer than the grace for it.
async fn execute(invocation: Arc<Invocation>, stop: &Arc<Stop>, cancel: &CancellationToken) -> Option<Finished> {
    let stop_for_run = stop.clone();
    let mut run = tokio::task::spawn_blocking(move || process::run(&invocation, Some(&stop_for_run)));
    tokio::select! {
        // An error is only a panic in `process::run`, whose guard killed
        // the group.
        joined = &mut run => joined.ok(),
        () = cancel.cancelled() => {
            stop.trigger();
            let _ = tokio::time::timeout(KILL_GRACE + Duration::from_millis(200), run).await;
            None
        }
    }
}

/// The next status tick, or never without `status`.
async fn tick(ticker: &mut Option<crate::time::GridInterval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::{Path, PathBuf};

    use crate::config::{RunSettings, StatusCheck};

    /// A command whose programs are shell lines, run in `dir`.
    fn config(kind: CommandKind, status: Option<&str>, dir: &Path) -> CommandConfig {
        CommandConfig {
            name: "test".into(),
            label: "Test".into(),
            kind,
            status: status.map(|line| StatusCheck {
                program: sh(line),
                interval: Duration::from_secs(3600),
            }),
            run: RunSettings {
                timeout: Duration::from_secs(30),
                env: vec![],
                working_dir: dir.to_owned(),
            },
            concurrency: Concurrency::Refuse,
            unit: None,
        }
    }

    fn sh(line: &str) -> Program {
        Program::Argv(vec!["sh".into(), "-c".into(), line.into()])
    }

    fn switch(on: &str, off: &str) -> CommandKind {
        CommandKind::Switch {
            on: sh(on),
            off: sh(off),
        }
    }

    fn env(name: &str) -> Option<OsString> {
        (name == "PATH").then(|| std::env::var_os("PATH")).flatten()
    }

    struct Harness {
        handle: CommandHandle,
        states: watch::Receiver<CommandState>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn launch(config: &CommandConfig) -> Harness {
        let (handle, runner) = start(config, &env);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(runner.run(cancel.clone()));
        Harness {
            states: handle.subscribe(),
            handle,
            cancel,
            task,
        }
    }

    impl Harness {
        /// Waits (up to 10 s) for a state that satisfies `done`.
        async fn until(&mut self, what: &str, done: impl Fn(&CommandState) -> bool) -> CommandState {
            let waited = tokio::time::timeout(Duration::from_secs(10), self.states.wait_for(|s| done(s))).await;
            match waited {
                Ok(Ok(state)) => state.clone(),
                _ => panic!("no state where {what}: {:?}", self.handle.state()),
            }
        }

        /// Waits until `n` runs have finished in all, and nothing runs.
        async fn idle_after(&mut self, action: Action) -> CommandState {
            self.until("idle after the run", |s| {
                s.running.is_none() && s.queued.is_empty() && s.last_run.as_ref().is_some_and(|r| r.action == action)
            })
            .await
        }

        async fn stop(self) {
            self.cancel.cancel();
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("the runner stops promptly")
                .expect("no panic");
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn actions_should_parse_from_exact_words_only() {
        assert_eq!(Action::parse("on"), Some(Action::On));
        assert_eq!(Action::parse(" OFF\n"), Some(Action::Off));
        assert_eq!(Action::parse("Once"), Some(Action::Once));
        for hostile in [
            "on; reboot",
            "on && rm -rf /",
            "$(reboot)",
            "`id`",
            "on\0",
            "o n",
            "toggle",
            "",
            "onc",
        ] {
            assert_eq!(Action::parse(hostile), None, "{hostile:?}");
        }
    }

    #[tokio::test]
    async fn a_switch_without_status_should_follow_its_last_successful_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = launch(&config(
            switch("echo on >> log", "echo off >> log; exit 4"),
            None,
            dir.path(),
        ));
        assert_eq!(h.handle.state().status, Status::Unknown);
        assert!(h.handle.state().available);

        assert_eq!(h.handle.request(Action::On), Ok(Accepted::Started));
        let state = h.idle_after(Action::On).await;
        assert_eq!(state.status, Status::On);
        let last = state.last_run.expect("a run");
        assert_eq!(last.finished.ended, process::Ended::Exited(0));

        // `off` fails: the state stays on, the failure is kept.
        assert_eq!(h.handle.request(Action::Off), Ok(Accepted::Started));
        let state = h.idle_after(Action::Off).await;
        assert_eq!(state.status, Status::On);
        assert_eq!(state.last_run.expect("a run").finished.ended, process::Ended::Exited(4));
        assert_eq!(read(dir.path().join("log")), "on\noff\n");
        h.stop().await;
    }

    #[tokio::test]
    async fn a_switch_with_status_should_follow_a_file_its_commands_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = launch(&config(
            switch("touch running", "rm running"),
            Some("test -e running"),
            dir.path(),
        ));
        // The check at start: the file does not exist, so off.
        let state = h.until("checked", |s| s.last_check.is_some()).await;
        assert_eq!((state.status, state.available), (Status::Off, true));

        h.handle.request(Action::On).expect("accepted");
        h.until("on", |s| s.status == Status::On && s.running.is_none()).await;
        assert!(dir.path().join("running").exists());

        // Changed behind the agent's back: the next check sees it.
        std::fs::remove_file(dir.path().join("running")).expect("rm");
        h.handle.request(Action::Off).expect("accepted");
        let state = h.idle_after(Action::Off).await;
        // `rm` failed (the file was gone), but status says off.
        assert!(!state.last_run.expect("a run").finished.ended.success());
        let state = h.until("off", |s| s.status == Status::Off).await;
        assert!(state.available);
        h.stop().await;
    }

    #[tokio::test]
    async fn a_status_that_cannot_tell_should_make_the_command_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = launch(&config(
            CommandKind::Button { once: sh("true") },
            Some("echo maybe; exit 1"),
            dir.path(),
        ));
        let state = h.until("checked", |s| s.last_check.is_some()).await;
        assert_eq!((state.status, state.available), (Status::Unknown, false));
        h.stop().await;
    }

    #[tokio::test]
    async fn a_request_while_a_run_is_in_progress_should_be_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("go");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        // `on` blocks until the test writes to the fifo.
        let mut h = launch(&config(
            switch("read line < go; echo $line > ran", "true"),
            None,
            dir.path(),
        ));
        assert_eq!(h.handle.request(Action::On), Ok(Accepted::Started));
        assert_eq!(h.handle.request(Action::On), Err(Refused::Busy));
        h.until("running", |s| s.running.is_some()).await;
        assert_eq!(h.handle.request(Action::Off), Err(Refused::Busy));
        assert_eq!(h.handle.request(Action::Once), Err(Refused::NotOffered(Action::Once)));
        std::fs::write(&fifo, "released\n").expect("write the fifo");
        h.idle_after(Action::On).await;
        assert_eq!(read(dir.path().join("ran")), "released\n");
        // Idle again: taken.
        assert_eq!(h.handle.request(Action::Off), Ok(Accepted::Started));
        h.idle_after(Action::Off).await;
        h.stop().await;
    }

    #[tokio::test]
    async fn queued_requests_should_run_one_at_a_time_in_order_up_to_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("go");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success());
        // Each run notes its start and end; the first waits on the fifo, so
        // the others queue behind it.
        let once = "echo start >> log; [ -e released ] || { read l < go; touch released; }; echo end >> log";
        let mut cfg = config(CommandKind::Button { once: sh(once) }, None, dir.path());
        cfg.concurrency = Concurrency::Queued;
        let mut h = launch(&cfg);
        assert_eq!(h.handle.request(Action::Once), Ok(Accepted::Started));
        h.until("running", |s| s.running.is_some()).await;
        for ahead in 1..=QUEUE_LIMIT {
            assert_eq!(h.handle.request(Action::Once), Ok(Accepted::Queued { ahead }));
        }
        assert_eq!(h.handle.request(Action::Once), Err(Refused::QueueFull));
        assert_eq!(h.handle.state().queued.len(), QUEUE_LIMIT);
        std::fs::write(&fifo, "go\n").expect("write the fifo");
        h.until("all done", |s| s.running.is_none() && s.queued.is_empty())
            .await;
        let log = read(dir.path().join("log"));
        assert_eq!(log, "start\nend\n".repeat(QUEUE_LIMIT + 1), "runs overlapped");
        h.stop().await;
    }

    #[tokio::test]
    async fn the_configured_argv_should_run_verbatim_whatever_is_requested() {
        // The only thing a request carries is an `Action`: the argv is the
        // config's, shell metacharacters and all, passed as plain arguments.
        let dir = tempfile::tempdir().expect("tempdir");
        let args = Program::Argv(vec![
            "sh".into(),
            "-c".into(),
            r#"printf '%s\n' "$@" > args"#.into(),
            "sh".into(),
            "; touch pwned".into(),
            "$(touch pwned)".into(),
        ]);
        let mut h = launch(&config(CommandKind::Button { once: args }, None, dir.path()));
        h.handle.request(Action::Once).expect("accepted");
        h.idle_after(Action::Once).await;
        assert_eq!(read(dir.path().join("args")), "; touch pwned\n$(touch pwned)\n");
        assert!(!dir.path().join("pwned").exists());
        h.stop().await;
    }

    #[tokio::test]
    async fn stopping_the_agent_should_kill_a_running_command_and_refuse_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = launch(&config(
            CommandKind::Button {
                once: sh("echo $$ > pid; exec sleep 1000"),
            },
            None,
            dir.path(),
        ));
        h.handle.request(Action::Once).expect("accepted");
        h.until("running", |s| s.running.is_some()).await;
        let pid_file = dir.path().join("pid");
        let pid: i32 = loop {
            if let Ok(pid) = read(pid_file.clone()).trim().parse() {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let handle = h.handle.clone();
        h.stop().await;
        // The program was our runner's child: killed and reaped.
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{pid} is still there");
        assert_eq!(handle.request(Action::Once), Err(Refused::Stopped));
        assert!(handle.state().running.is_none());
    }
}
