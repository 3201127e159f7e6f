//! Running one program to its end: the only place that starts, watches and
//! kills the processes of `[[commands]]` and command sensors.
//!
//! It owns: a cleared environment (only what the [`Invocation`] lists), the
//! working directory, stdin from `/dev/null`, the child in a process group
//! of its own, stdout and stderr captured up to a limit and drained beyond
//! it (a child never blocks on a full pipe), the timeout, and killing the
//! whole group: SIGTERM, then SIGKILL after [`KILL_GRACE`]. The child is
//! always reaped, so no zombie is left. It does not know what the output
//! means (the callers parse it) nor decide when to run (`controller.rs`).
//!
//! # Blocking
//!
//! [`run`] blocks its thread until the program has ended: callers put it on
//! tokio's blocking pool (`spawn_blocking`), as the sensor runner does for
//! every read. It needs nothing from the runtime, so a run that outlives the
//! runtime (a sensor read abandoned at shutdown) still ends cleanly. The
//! pipes and an optional [`Stop`] are waited on with `poll(2)`; the exit is
//! seen with `waitid(WNOWAIT)`, checked at every wake-up and at least every
//! [`EXIT_CHECK_MAX`] (no SIGCHLD handler, no pidfd: the same on every
//! kernel and under qemu-user).
//!
//! # What "the whole group" means
//!
//! The child gets a new process group (`setpgid(0, 0)`), which everything
//! it starts inherits. When the run ends (the main process exited, the
//! timeout passed, or the agent is stopping), every process left in that
//! group is killed, while the main process is still an unreaped zombie: its
//! pid, and so the group id, cannot be reused before the signal is sent. A
//! program that leaves the group on purpose (`setsid`, a daemon) escapes;
//! long-running services belong to systemd (`unit = …`).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `PATH` a program gets when the agent itself has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of stdout and of stderr is kept, each, for a `[[commands]]` run.
pub const OUTPUT_LIMIT: usize = 4096;

/// Between SIGTERM and SIGKILL when a run is cut short.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

/// The longest wait between two checks for the main process's exit while a
/// pipe stays open (a child that inherited it may outlive its parent).
const EXIT_CHECK_MAX: Duration = Duration::from_millis(100);
/// The first wait; it doubles up to `EXIT_CHECK_MAX`, so a short program
/// is seen to end within a few milliseconds.
const EXIT_CHECK_MIN: Duration = Duration::from_millis(1);

/// Everything a run needs, resolved once from the config. Nothing in it
/// comes from a request: the argv, the environment and the directory are
/// the config's.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `argv[0]` is looked up on the `PATH` in `env` when it has no `/`.
    pub argv: Vec<String>,
    /// The child's whole environment.
    pub env: Vec<(String, OsString)>,
    pub working_dir: PathBuf,
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr, each.
    pub output_limit: usize,
}

impl Invocation {
    /// `argv` with only `PATH` in its environment (the agent's, else
    /// [`DEFAULT_PATH`]), run in `/`, with [`OUTPUT_LIMIT`].
    pub fn new(argv: Vec<String>, timeout: Duration, lookup: &dyn Fn(&str) -> Option<OsString>) -> Invocation {
        Invocation {
            argv,
            env: vec![(
                "PATH".to_owned(),
                lookup("PATH").unwrap_or_else(|| OsString::from(DEFAULT_PATH)),
            )],
            working_dir: PathBuf::from("/"),
            timeout,
            output_limit: OUTPUT_LIMIT,
        }
    }

    /// Passes these variables through from the agent's environment (through
    /// `lookup`), when set there. `PATH` is always passed.
    pub fn inherit(mut self, names: &[String], lookup: &dyn Fn(&str) -> Option<OsString>) -> Invocation {
        for name in names {
            if self.env.iter().any(|(known, _)| known == name) {
                continue;
            }
            if let Some(value) = lookup(name) {
                self.env.push((name.clone(), value));
            }
        }
        self
    }

    pub fn working_dir(mut self, dir: PathBuf) -> Invocation {
        self.working_dir = dir;
        self
    }

    pub fn output_limit(mut self, bytes: usize) -> Invocation {
        self.output_limit = bytes;
        self
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The main process exited with this code.
    Exited(i32),
    /// The main process was killed by this signal, not by us.
    Signaled(i32),
    /// Still running at the timeout: the group was killed.
    TimedOut,
    /// The agent stopped it (shutting down): the group was killed.
    Stopped,
    /// It never ran; why, for the user.
    NotStarted(String),
}

impl Ended {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        *self == Ended::Exited(0)
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exit code {code}"),
            Ended::Signaled(signal) => write!(f, "killed by signal {signal}"),
            Ended::TimedOut => f.write_str("timed out; its process group was killed"),
            Ended::Stopped => f.write_str("stopped with the agent; its process group was killed"),
            Ended::NotStarted(why) => write!(f, "not started: {why}"),
        }
    }
}

/// The first bytes of an output stream, and how many more were thrown away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub discarded: u64,
}

impl Captured {
    fn keep(&mut self, data: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.bytes.len()).min(data.len());
        self.bytes.extend_from_slice(&data[..room]);
        self.discarded += (data.len() - room) as u64;
    }

    /// As text; invalid UTF-8 becomes U+FFFD.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// What a run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub ended: Ended,
    /// From the start to the reaping of the main process.
    pub duration: Duration,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// Lets another thread end a run early (the agent is stopping). A pipe, so
/// that `poll` wakes on it together with the child's pipes.
#[derive(Debug)]
pub struct Stop {
    read: OwnedFd,
    write: OwnedFd,
}

impl Stop {
    pub fn new() -> io::Result<Stop> {
        let (read, write) = pipe()?;
        Ok(Stop { read, write })
    }

    /// Ends the run(s) watching this: their groups are killed as at a
    /// timeout. Idempotent.
    pub fn trigger(&self) {
        // Non-blocking: once the pipe holds a byte, more add nothing.
        // SAFETY: writes one byte from a valid buffer to an fd we own.
        let _ = unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
}

/// Runs `invocation` to its end (see the module doc). `stop`, when given,
/// ends it early.
pub fn run(invocation: &Invocation, stop: Option<&Stop>) -> Finished {
    let started = Instant::now();
    let mut finished = Finished {
        ended: Ended::NotStarted(String::new()),
        duration: Duration::ZERO,
        stdout: Captured::default(),
        stderr: Captured::default(),
    };
    let mut child = match spawn(invocation) {
        Ok(child) => child,
        Err(why) => {
            finished.ended = Ended::NotStarted(why);
            finished.duration = started.elapsed();
            return finished;
        }
    };
    let mut pipes = [
        child.stdout.take().map(|out| Pipe::new(out.into())),
        child.stderr.take().map(|err| Pipe::new(err.into())),
    ];
    let mut group = Group { child, reaped: false };
    let deadline = started + invocation.timeout;
    let limit = invocation.output_limit;
    let mut check_in = EXIT_CHECK_MIN;

    // Until the main process exits, the timeout passes or we are stopped.
    let cut_short = loop {
        if group.exited() {
            break None;
        }
        let now = Instant::now();
        if now >= deadline {
            break Some(Ended::TimedOut);
        }
        let wait = (deadline - now).min(check_in);
        check_in = (check_in * 2).min(EXIT_CHECK_MAX);
        if wait_for_input(&mut pipes, stop, wait) {
            break Some(Ended::Stopped);
        }
        drain(&mut pipes, &mut finished, limit);
    };

    if let Some(reason) = &cut_short {
        // SIGTERM first, and a grace to act on it, reading meanwhile.
        group.signal(libc::SIGTERM);
        let grace_end = Instant::now() + KILL_GRACE;
        let mut check_in = EXIT_CHECK_MIN;
        while !group.exited() {
            let now = Instant::now();
            if now >= grace_end {
                break;
            }
            wait_for_input(&mut pipes, None, (grace_end - now).min(check_in));
            check_in = (check_in * 2).min(EXIT_CHECK_MAX);
            drain(&mut pipes, &mut finished, limit);
        }
        finished.ended = reason.clone();
    }
    // Whatever is left in the group (all of it when cut short; what the
    // program left behind when it exited) is killed before the main process
    // is reaped, so the group id still names this group.
    group.signal(libc::SIGKILL);
    drain(&mut pipes, &mut finished, limit);
    let status = group.reap();
    if cut_short.is_none() {
        finished.ended = match status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(signal)) => Ended::Signaled(signal),
                (None, None) => Ended::Signaled(0),
            },
            Err(error) => Ended::NotStarted(format!("cannot wait for it: {error}")),
        };
    }
    finished.duration = started.elapsed();
    finished
}

fn spawn(invocation: &Invocation) -> Result<Child, String> {
    let Some((program, args)) = invocation.argv.split_first() else {
        return Err("empty command".to_owned());
    };
    // std reports a missing directory as a bare "No such file or
    // directory", which reads as if the program were missing.
    if !invocation.working_dir.is_dir() {
        return Err(format!(
            "working directory {} does not exist or is not a directory",
            invocation.working_dir.display()
        ));
    }
    Command::new(program)
        .args(args)
        .env_clear()
        .envs(invocation.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&invocation.working_dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| match error.kind() {
            io::ErrorKind::NotFound if !program.contains('/') => {
                let path = invocation
                    .env
                    .iter()
                    .find(|(name, _)| name == "PATH")
                    .map(|(_, value)| value.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("`{program}` was not found on PATH ({path})")
            }
            _ => format!("cannot start `{program}`: {error}"),
        })
}

/// The child and its group, reaped exactly once.
struct Group {
    child: Child,
    reaped: bool,
}

impl Group {
    fn pid(&self) -> libc::pid_t {
        // Pids fit: the kernel's maximum is 2^22.
        self.child.id() as libc::pid_t
    }

    /// Whether the main process has ended, without reaping it (so its pid,
    /// the group's id, stays taken).
    fn exited(&self) -> bool {
        // SAFETY: a zeroed siginfo_t is valid; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` outlives the call; the pid is our unreaped child.
        let result = unsafe { libc::waitid(libc::P_PID, self.pid() as libc::id_t, &mut info, flags) };
        // With WNOHANG, si_pid stays 0 while the child runs.
        // SAFETY: reading the pid field of the siginfo waitid filled.
        result == 0 && unsafe { info.si_pid() } != 0
    }

    /// Sends `signal` to every process in the group, and to the main
    /// process itself in case it left the group.
    fn signal(&self, signal: libc::c_int) {
        debug_assert!(!self.reaped);
        // SAFETY: plain syscalls. The main process is not reaped yet, so
        // its pid and group id still name it and its group.
        unsafe {
            libc::kill(-self.pid(), signal);
            libc::kill(self.pid(), signal);
        }
    }

    fn reap(&mut self) -> io::Result<std::process::ExitStatus> {
        let status = self.child.wait();
        self.reaped = true;
        status
    }
}

impl Drop for Group {
    /// Only reached unreaped if `run` panicked: leave no group and no zombie.
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// One of the child's output pipes, non-blocking; `None` once closed.
struct Pipe {
    file: File,
}

impl Pipe {
    fn new(fd: OwnedFd) -> Pipe {
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Pipe { file: File::from(fd) }
    }
}

/// Waits up to `timeout` for output, a closed pipe or a stop. Returns
/// whether the stop was triggered.
fn wait_for_input(pipes: &mut [Option<Pipe>; 2], stop: Option<&Stop>, timeout: Duration) -> bool {
    let mut fds: Vec<libc::pollfd> = pipes
        .iter()
        .flatten()
        .map(|pipe| pipe.file.as_raw_fd())
        .chain(stop.map(|stop| stop.read.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Rounded up, so that a wait never becomes a busy loop of 0 ms polls.
    let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    ready > 0 && stop.is_some() && fds.last().is_some_and(|last| last.revents != 0)
}

/// Reads whatever the pipes hold now; a closed pipe is dropped.
fn drain(pipes: &mut [Option<Pipe>; 2], finished: &mut Finished, limit: usize) {
    let mut buffer = [0u8; 4096];
    for (slot, captured) in pipes.iter_mut().zip([&mut finished.stdout, &mut finished.stderr]) {
        let Some(pipe) = slot else { continue };
        loop {
            match pipe.file.read(&mut buffer) {
                Ok(0) => {
                    *slot = None;
                    break;
                }
                Ok(n) => captured.keep(&buffer[..n], limit),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: nothing more for now.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    *slot = None;
                    break;
                }
            }
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    fn env(name: &str) -> Option<OsString> {
        match name {
            "PATH" => std::env::var_os("PATH"),
            "MAJORTOM_TEST_KEPT" => Some("kept".into()),
            "MAJORTOM_TEST_DROPPED" => Some("dropped".into()),
            _ => None,
        }
    }

    fn sh(script: &str, timeout: Duration) -> Invocation {
        Invocation::new(vec!["/bin/sh".into(), "-c".into(), script.into()], timeout, &env)
    }

    const LONG: Duration = Duration::from_secs(30);

    /// Whether a process with this pid exists (a zombie counts).
    fn exists(pid: i32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Waits up to 5 s for `pid` to be gone (killed processes are reaped
    /// by init a moment later).
    fn gone(pid: i32) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if !exists(pid) {
                return true;
            }
            // A zombie whose parent is init is reaped at once; a zombie of
            // ours would stay, and `exists` would keep saying so.
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_program_should_get_its_argv_verbatim_and_its_output_and_exit_code_kept() {
        let finished = run(
            &Invocation::new(
                vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    r#"printf '%s|' "$@"; echo oops >&2; exit 3"#.into(),
                    "sh".into(),
                    "a b".into(),
                    "$(touch /tmp/never); `id`".into(),
                    "*".into(),
                ],
                LONG,
                &env,
            ),
            None,
        );
        assert_eq!(finished.ended, Ended::Exited(3));
        assert!(!finished.ended.success());
        assert_eq!(finished.stdout.text(), "a b|$(touch /tmp/never); `id`|*|");
        assert_eq!(finished.stderr.text(), "oops\n");
        assert!(finished.duration < LONG);
    }

    #[test]
    fn the_environment_should_hold_only_path_and_the_listed_names() {
        let invocation = Invocation::new(vec!["env".into()], LONG, &env)
            .inherit(&["MAJORTOM_TEST_KEPT".into(), "UNSET_NAME".into(), "PATH".into()], &env);
        let finished = run(&invocation, None);
        assert!(finished.ended.success(), "{:?}", finished);
        let mut lines: Vec<String> = finished.stdout.text().lines().map(str::to_owned).collect();
        lines.sort();
        let path = std::env::var("PATH").expect("tests run with a PATH");
        assert_eq!(
            lines,
            vec!["MAJORTOM_TEST_KEPT=kept".to_owned(), format!("PATH={path}")]
        );
    }

    #[test]
    fn without_a_path_in_the_agent_the_default_one_should_apply() {
        let invocation = Invocation::new(vec!["sh".into(), "-c".into(), "echo $PATH".into()], LONG, &|_| None);
        let finished = run(&invocation, None);
        assert_eq!(finished.stdout.text().trim(), DEFAULT_PATH);
    }

    #[test]
    fn it_should_run_in_the_working_directory_with_stdin_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let invocation = sh("pwd; cat; echo end", LONG).working_dir(dir.path().to_owned());
        let finished = run(&invocation, None);
        let canonical = dir.path().canonicalize().expect("canonical");
        assert_eq!(finished.stdout.text(), format!("{}\nend\n", canonical.display()));
    }

    #[test]
    fn a_missing_program_or_directory_should_say_so_and_not_run() {
        let finished = run(&Invocation::new(vec!["no-such-program-xyz".into()], LONG, &env), None);
        match &finished.ended {
            Ended::NotStarted(why) => assert!(why.contains("`no-such-program-xyz` was not found on PATH"), "{why}"),
            other => panic!("{other:?}"),
        }
        let finished = run(&sh("true", LONG).working_dir("/no/such/dir".into()), None);
        match &finished.ended {
            Ended::NotStarted(why) => assert!(why.contains("working directory /no/such/dir"), "{why}"),
            other => panic!("{other:?}"),
        }
        let finished = run(&Invocation::new(vec![], LONG, &env), None);
        assert!(matches!(finished.ended, Ended::NotStarted(_)));
    }

    #[test]
    fn output_beyond_the_limit_should_be_counted_and_dropped_without_blocking_the_child() {
        // 1 MiB on stdout and stderr each: far more than a pipe holds, so
        // the child finishes only if both are drained while it runs.
        let finished = run(
            &sh(
                "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2; echo done >&2",
                LONG,
            ),
            None,
        );
        assert_eq!(finished.ended, Ended::Exited(0));
        assert_eq!(finished.stdout.bytes.len(), OUTPUT_LIMIT);
        assert_eq!(finished.stdout.discarded, 1_048_576 - OUTPUT_LIMIT as u64);
        assert_eq!(finished.stderr.bytes.len(), OUTPUT_LIMIT);
        assert_eq!(finished.stderr.discarded, 1_048_576 + 5 - OUTPUT_LIMIT as u64);
        let small = sh("echo 123456789", LONG).output_limit(4);
        assert_eq!(run(&small, None).stdout.bytes, b"1234");
    }

    #[test]
    fn a_runaway_command_and_its_children_should_be_killed_at_the_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pids = dir.path().join("pids");
        // The shell ignores SIGTERM, so the SIGKILL after the grace is what
        // ends it; its grandchild sleeps in the background and one more
        // sleeps in the foreground.
        let script = format!(
            "trap '' TERM; sleep 1000 & echo $! > {pids}; echo $$ >> {pids}; sleep 1000; echo never",
            pids = pids.display()
        );
        let started = Instant::now();
        let finished = run(&sh(&script, Duration::from_millis(300)), None);
        let took = started.elapsed();
        assert_eq!(finished.ended, Ended::TimedOut);
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(!finished.stdout.text().contains("never"));
        let recorded = std::fs::read_to_string(&pids).expect("the script wrote its pids");
        let recorded: Vec<i32> = recorded.lines().map(|l| l.trim().parse().expect("a pid")).collect();
        let [grandchild, shell] = recorded[..] else {
            panic!("{recorded:?}")
        };
        // The shell was our child: reaped before `run` returned, so not
        // even a zombie is left of it.
        assert!(!exists(shell), "the shell {shell} is left as a zombie");
        assert!(gone(grandchild), "the grandchild {grandchild} survived the timeout");
    }

    #[test]
    fn a_command_that_honours_sigterm_should_end_before_the_grace() {
        let started = Instant::now();
        let finished = run(&sh("exec sleep 1000", Duration::from_millis(200)), None);
        assert_eq!(finished.ended, Ended::TimedOut);
        assert!(
            started.elapsed() < Duration::from_millis(200) + KILL_GRACE,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn what_a_command_leaves_behind_in_its_group_should_be_killed_when_it_exits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        // The background sleep keeps stdout open: the run must still end
        // when the shell exits, not when the pipe closes.
        let script = format!("sleep 1000 & echo $! > {}; echo started", pid_file.display());
        let finished = run(&sh(&script, LONG), None);
        assert_eq!(finished.ended, Ended::Exited(0));
        assert_eq!(finished.stdout.text(), "started\n");
        assert!(finished.duration < Duration::from_secs(5), "{:?}", finished.duration);
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("a pid");
        assert!(gone(pid), "the background child {pid} survived");
    }

    #[test]
    fn a_stop_should_kill_the_group_at_once() {
        let stop = std::sync::Arc::new(Stop::new().expect("pipe"));
        let runner = {
            let stop = stop.clone();
            std::thread::spawn(move || run(&sh("echo up; exec sleep 1000", LONG), Some(&stop)))
        };
        std::thread::sleep(Duration::from_millis(100));
        let asked = Instant::now();
        stop.trigger();
        stop.trigger();
        let finished = runner.join().expect("no panic");
        assert_eq!(finished.ended, Ended::Stopped);
        assert!(asked.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_signal_from_elsewhere_should_be_reported_as_such() {
        let finished = run(&sh("kill -USR1 $$", LONG), None);
        assert_eq!(finished.ended, Ended::Signaled(libc::SIGUSR1));
    }
}
