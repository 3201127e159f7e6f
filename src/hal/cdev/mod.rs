//! The Linux GPIO character-device backend (uAPI v2 on `/dev/gpiochipN`):
//! how GPIO works on every kernel (Raspberry Pi OS and mainline, Pi 1 to 5,
//! other boards), with the kernel keeping track of who holds which line.
//!
//! Each claimed line is one request (one file descriptor) held until the pin
//! is dropped. Inputs ask the kernel for both edges, bias and active-low;
//! their events (with the kernel's timestamps) are read by a small tokio task
//! per input through `AsyncFd`, so no thread waits on a pin. The kernel's own
//! debounce is not requested: where a chip has none in hardware (no Pi's has)
//! the kernel debounces in software by holding each edge back for the whole
//! period, which is the delay `sources::inputs` avoids by debouncing on the
//! leading edge itself.
//!
//! It does not choose the chip (`select.rs` does) and knows nothing about
//! what is wired to the lines.

pub mod uapi;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    monotonic_ns, Edge, Gpio, HalError, I2cBus, InputPin, InputSettings, OutputPin, Pin, Pull, PwmChannel, PwmOutput,
};

/// The consumer name the kernel shows for our lines (`/sys/kernel/debug/gpio`,
/// `gpioinfo`), and that another program's error names.
pub const CONSUMER: &str = "majortom";

/// Events read from the kernel at a time.
const EVENTS_PER_READ: usize = 16;

/// An open GPIO chip.
pub struct Chip {
    pub path: PathBuf,
    pub label: String,
    pub lines: u32,
    fd: OwnedFd,
}

impl Chip {
    /// Opens `path` and asks it what it is; a file that is not a GPIO chip
    /// fails with ENOTTY.
    pub fn open(path: &Path) -> io::Result<Chip> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let fd = OwnedFd::from(file);
        let info = uapi::chip_info(&fd)?;
        Ok(Chip {
            path: path.to_owned(),
            label: info.label(),
            lines: info.lines,
            fd,
        })
    }

    /// `/dev/gpiochip0 (pinctrl-bcm2835, 54 lines)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({}, {} lines)", self.path.display(), self.label, self.lines)
    }

    pub fn line_info(&self, offset: u32) -> io::Result<uapi::LineInfo> {
        uapi::line_info(&self.fd, offset)
    }

    /// The offset of `pin` on this chip: a BCM number is the offset, a
    /// name is looked up among the lines' names.
    pub fn resolve(&self, pin: &Pin) -> Result<u32, HalError> {
        let missing = || HalError::NoSuchPin {
            pin: pin.to_string(),
            chip: self.describe(),
        };
        match pin {
            Pin::Bcm(n) if u32::from(*n) < self.lines => Ok(u32::from(*n)),
            Pin::Bcm(_) => Err(missing()),
            Pin::Name(name) => (0..self.lines)
                .find(|&offset| self.line_info(offset).is_ok_and(|info| info.name() == *name))
                .ok_or_else(missing),
        }
    }

    /// Requests `pin` for us; a line held elsewhere is refused, naming its
    /// consumer.
    fn request(&self, pin: &Pin, flags: u64, initial: Option<bool>) -> Result<OwnedFd, HalError> {
        let offset = self.resolve(pin)?;
        uapi::request_line(&self.fd, offset, CONSUMER, flags, initial).map_err(|error| {
            if error.raw_os_error() == Some(libc::EBUSY) {
                let consumer = self.line_info(offset).ok().map(|info| info.consumer());
                HalError::PinInUse {
                    pin: pin.to_string(),
                    consumer: consumer.filter(|c| !c.is_empty()),
                }
            } else {
                HalError::Gpio(format!("cannot request {pin} on {}: {error}", self.describe()))
            }
        })
    }
}

impl AsRawFd for Chip {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// The backend: one chip, and the root under which PWM sysfs is found.
pub struct CdevGpio {
    chip: Chip,
    root: PathBuf,
}

impl CdevGpio {
    pub fn new(chip: Chip, root: &Path) -> CdevGpio {
        CdevGpio {
            chip,
            root: root.to_owned(),
        }
    }

    pub fn chip(&self) -> &Chip {
        &self.chip
    }
}

impl Gpio for CdevGpio {
    fn backend(&self) -> &'static str {
        "cdev"
    }

    fn input(
        &self,
        pin: &Pin,
        settings: InputSettings,
        edges: mpsc::Sender<Edge>,
    ) -> Result<Box<dyn InputPin>, HalError> {
        let bias = match settings.pull {
            Pull::Up => uapi::FLAG_BIAS_PULL_UP,
            Pull::Down => uapi::FLAG_BIAS_PULL_DOWN,
            Pull::Off => uapi::FLAG_BIAS_DISABLED,
        };
        let active_low = if settings.active_low { uapi::FLAG_ACTIVE_LOW } else { 0 };
        let flags = uapi::FLAG_INPUT | uapi::FLAG_EDGE_RISING | uapi::FLAG_EDGE_FALLING | bias | active_low;
        let failed = |error: io::Error| HalError::Gpio(format!("cannot watch {pin} for edges: {error}"));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(failed(io::Error::other("no tokio runtime")));
        };
        let line = self.chip.request(pin, flags, None)?;
        set_nonblocking(&line).map_err(failed)?;
        // SAFETY: an OwnedFd stays open, and keeps returning the same fd,
        // until the AsyncFd that owns it is dropped.
        let registered = unsafe { AsyncFd::register_with_interest(line, Interest::READABLE) };
        let line = Arc::new(registered.map_err(|e| failed(e.into()))?);
        let reader = runtime.spawn(read_edges(line.clone(), edges));
        Ok(Box::new(CdevInput { line, reader }))
    }

    fn output(&self, pin: &Pin, initial_high: bool) -> Result<Box<dyn OutputPin>, HalError> {
        let line = self.chip.request(pin, uapi::FLAG_OUTPUT, Some(initial_high))?;
        Ok(Box::new(CdevOutput {
            line,
            pin: pin.to_string(),
        }))
    }

    fn pwm(&self, channel: PwmChannel) -> Result<Box<dyn PwmOutput>, HalError> {
        Ok(Box::new(super::pwm::SysfsPwm::open(&self.root, channel)?))
    }

    fn i2c(&self, bus: u8) -> Result<Box<dyn I2cBus>, HalError> {
        super::rpi::open_i2c(bus)
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forwards the kernel's edge events of one line until the receiver is gone
/// or the pin is dropped (which aborts this task).
async fn read_edges(line: Arc<AsyncFd<OwnedFd>>, edges: mpsc::Sender<Edge>) {
    let mut buffer = [0u8; uapi::EVENT_SIZE * EVENTS_PER_READ];
    loop {
        let Ok(mut ready) = line.readable().await else {
            return;
        };
        let read = ready.try_io(|fd| {
            // SAFETY: read(2) into a buffer we own, at most its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        let n = match read {
            Ok(Ok(n)) if n > 0 => n,
            // Spurious readiness: wait again.
            Err(_would_block) => continue,
            // EOF or an error: the line is gone.
            Ok(_) => return,
        };
        let (now_ns, now) = (monotonic_ns(), tokio::time::Instant::now());
        for chunk in buffer[..n].chunks_exact(uapi::EVENT_SIZE) {
            let Ok(bytes) = <&[u8; uapi::EVENT_SIZE]>::try_from(chunk) else {
                continue;
            };
            let event = uapi::decode_event(bytes);
            let age = Duration::from_nanos(now_ns.saturating_sub(event.timestamp_ns));
            let at = now.checked_sub(age).unwrap_or(now);
            // As with every backend, a full channel drops the edge: the
            // input reads the level when its window closes anyway.
            if let Err(mpsc::error::TrySendError::Closed(_)) = edges.try_send(Edge {
                active: event.rising,
                at,
            }) {
                return;
            }
        }
    }
}

struct CdevInput {
    line: Arc<AsyncFd<OwnedFd>>,
    reader: JoinHandle<()>,
}

impl InputPin for CdevInput {
    fn is_active(&self) -> Result<bool, HalError> {
        uapi::get_value(self.line.get_ref()).map_err(|e| HalError::Gpio(format!("cannot read input: {e}")))
    }
}

impl Drop for CdevInput {
    fn drop(&mut self) {
        // The task holds the other reference to the line; once it is gone
        // the request's fd closes and the kernel frees the line.
        self.reader.abort();
    }
}

struct CdevOutput {
    line: OwnedFd,
    pin: String,
}

impl OutputPin for CdevOutput {
    fn set(&mut self, high: bool) -> Result<(), HalError> {
        uapi::set_value(&self.line, high).map_err(|e| HalError::Gpio(format!("cannot set {}: {e}", self.pin)))
    }
}
