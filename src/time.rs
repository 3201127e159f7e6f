//! RFC 3339 timestamps without a date-time dependency, and the one tick
//! grid that every periodic task keeps to.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, Sleep};

use crate::hal::monotonic_ns;

thread_local! {
    /// Where [`aligned_interval`]'s grid starts: the first call's instant
    /// on this thread, and the same instant on the kernel's monotonic clock
    /// (a timerfd is armed in its nanoseconds). The agent's runtime is
    /// single-threaded, so that is one origin for all its tasks; each test,
    /// on its own thread, gets its own (and timings as if its first
    /// interval were a plain one).
    static GRID_ORIGIN: std::cell::Cell<Option<(Instant, u64)>> = const { std::cell::Cell::new(None) };
}

/// Whether [`aligned_interval`] ticks on timerfds; see [`use_timerfds`].
static TIMERFDS: AtomicBool = AtomicBool::new(false);

/// From now on [`aligned_interval`] ticks on timerfds. The agent's binary
/// says so (`main.rs`), its runtime having the I/O driver (tokio panics on
/// registering an fd without it) and the real clock. Without it, as in
/// tests that run the agent in-process in tokio's paused time (which moves
/// only tokio's timers), the ticks are tokio timers.
pub fn use_timerfds() {
    TIMERFDS.store(true, Ordering::Relaxed);
}

/// An interval that ticks at once, then on the multiples of `period`
/// counted from one origin shared by the runtime's tasks. Tasks with the
/// same period (or periods that are multiples of each other) then come due
/// in the same millisecond and wake the runtime once between them, instead
/// of each on its own phase: on an idle Pi, the wake-up costs more than the
/// work. A late tick (a slow read, a suspended Pi) fires once, and the next
/// is back on the grid.
///
/// The agent's intervals are timerfds that tokio's reactor watches. Tokio's
/// own timer wheel wakes the runtime twice for a deadline more than 64 ms
/// away: once at the start of the wheel's 64 ms slot that holds it, then
/// at the deadline; a timerfd wakes it once, at the deadline. Unless the
/// agent's binary asked for timerfds ([`use_timerfds`]), or where the
/// kernel gives none, it is a tokio `Sleep` moved along the grid.
pub fn aligned_interval(period: Duration) -> GridInterval {
    let (origin, origin_ns) = GRID_ORIGIN.with(|cell| {
        let origin = cell.get().unwrap_or_else(|| (Instant::now(), monotonic_ns()));
        cell.set(Some(origin));
        origin
    });
    if TIMERFDS.load(Ordering::Relaxed) {
        if let Some(on_timerfd) = GridInterval::on_timerfd(origin, origin_ns, period) {
            return on_timerfd;
        }
    }
    GridInterval::on_sleep(origin, period)
}

/// See [`aligned_interval`].
pub struct GridInterval {
    origin: Instant,
    period: Duration,
    /// The grid point (in periods from the origin) last returned; `None`
    /// before the first tick, which is at once.
    point: Option<u64>,
    timer: Timer,
}

enum Timer {
    /// Armed at the grid's next point, then every period.
    TimerFd(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    /// Reset to the next grid point at each tick (boxed once: a `Sleep` is
    /// `!Unpin`).
    Sleep(Pin<Box<Sleep>>),
}

impl GridInterval {
    fn on_sleep(origin: Instant, period: Duration) -> GridInterval {
        GridInterval {
            origin,
            period,
            point: None,
            timer: Timer::Sleep(Box::pin(tokio::time::sleep_until(origin))),
        }
    }

    /// `None` if the kernel gives no timerfd (or tokio's reactor will not
    /// watch it). The runtime must have its I/O driver (see
    /// [`use_timerfds`]).
    fn on_timerfd(origin: Instant, origin_ns: u64, period: Duration) -> Option<GridInterval> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let period_ns = Some(nanos(period)).filter(|&ns| ns > 0)?;
        // SAFETY: timerfd_create takes no pointers; a valid fd is owned
        // from here on.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // The grid point after now: the first tick is at once, the second
        // there, every later one a period on.
        let since_origin = monotonic_ns().saturating_sub(origin_ns);
        let first = origin_ns.checked_add((since_origin / period_ns + 1).checked_mul(period_ns)?)?;
        let spec = libc::itimerspec {
            it_interval: timespec(period_ns),
            it_value: timespec(first),
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        let armed = unsafe { libc::timerfd_settime(raw, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if armed != 0 {
            return None;
        }
        // SAFETY: an OwnedFd stays open, and keeps its number, until the
        // AsyncFd that owns it is dropped.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()?;
        Some(GridInterval {
            origin,
            period,
            point: None,
            timer: Timer::TimerFd(fd),
        })
    }

    /// Waits for the next tick; returns its grid point.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    // Polled by hand rather than an `async fn`: each caller's state
    // machine then holds only a borrow, and the code is here once (bytes
    // on armv6).
    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let point = match self.point {
            // The first tick: at once, at the grid point just passed.
            None => whole_periods(Instant::now().saturating_duration_since(self.origin), self.period),
            Some(last) => match &mut self.timer {
                Timer::TimerFd(fd) => match poll_expirations(fd, cx) {
                    // Several after a stall: one tick, at the latest point.
                    Poll::Ready(Some(expirations)) => last.saturating_add(expirations),
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        // The reactor is gone (a shutdown) or the fd broke:
                        // a `Sleep` from here on, still on the grid.
                        let next = self.at(last.saturating_add(1));
                        self.timer = Timer::Sleep(Box::pin(tokio::time::sleep_until(next)));
                        return self.poll_tick(cx);
                    }
                },
                Timer::Sleep(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Its point, even if late (a stall).
                    whole_periods(sleep.deadline().saturating_duration_since(self.origin), self.period)
                }
            },
        };
        self.point = Some(point);
        if matches!(self.timer, Timer::Sleep(_)) {
            let next = self.next_point();
            if let Timer::Sleep(sleep) = &mut self.timer {
                sleep.as_mut().reset(next);
            }
        }
        Poll::Ready(self.at(point))
    }

    /// The grid point of the tick after the last: the first point after
    /// now, so a stall skips the points it missed.
    pub fn next_point(&self) -> Instant {
        let passed = whole_periods(Instant::now().saturating_duration_since(self.origin), self.period);
        self.at(passed.max(self.point.unwrap_or(0)).saturating_add(1))
    }

    fn at(&self, point: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos(self.period).saturating_mul(point))
    }
}

/// Reads a timerfd's expirations once it is readable; `None` on an error.
fn poll_expirations(fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
    loop {
        let mut ready = match fd.poll_read_ready(cx) {
            Poll::Ready(Ok(ready)) => ready,
            Poll::Ready(Err(_)) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let mut expirations = [0u8; 8];
        match ready.try_io(|fd| {
            use std::os::fd::AsRawFd;
            // SAFETY: reads at most 8 bytes into an 8-byte buffer.
            let read = unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
            if read == 8 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }) {
            Ok(Ok(())) => {
                // Read out: not readable until the next expiry, whose edge
                // the reactor hears. Clearing spares the next tick a read
                // that finds nothing.
                ready.clear_ready();
                return Poll::Ready(Some(u64::from_ne_bytes(expirations)));
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return Poll::Ready(None),
            // Not due yet after all: readiness was cleared, wait again.
            Err(_would_block) => {}
        }
    }
}

/// Whole periods in `span` (in 64 bits: a 128-bit division is a library
/// call on 32-bit ARM).
fn whole_periods(span: Duration, period: Duration) -> u64 {
    nanos(span) / nanos(period).max(1)
}

fn nanos(span: Duration) -> u64 {
    u64::try_from(span.as_nanos()).unwrap_or(u64::MAX)
}

fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        // Seconds since boot fit every target's time_t, and under a
        // billion its c_long.
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

/// Before this (2025-01-01) the wall clock has not been set: a Pi has no
/// RTC and reads 1970 (or the last shutdown, with fake-hwclock) until NTP
/// sets it.
pub const CLOCK_SET_AFTER: u64 = 1_735_689_600;

/// True once the wall clock looks set.
pub fn clock_is_set(now: SystemTime) -> bool {
    now.duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() >= CLOCK_SET_AFTER)
}

/// `2026-11-23T12:34:56.789Z`; times before 1970 print as the epoch.
pub fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn aligned_intervals_started_apart_should_tick_at_once_then_together() {
        let period = Duration::from_secs(1);
        // Under a paused clock, waiting would move it: an unmoved clock
        // means the tick was ready at once.
        let started = Instant::now();
        let mut first = aligned_interval(period);
        first.tick().await;
        assert_eq!(Instant::now(), started, "the first tick is at once");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let mut second = aligned_interval(period);
        second.tick().await;
        assert_eq!(Instant::now(), started, "a later starter's first tick is at once too");
        let mut grid_point = started;
        for round in 1..=3 {
            let (a, b) = (first.tick().await, second.tick().await);
            assert_eq!(a, b, "round {round}: the two intervals come due at different instants");
            grid_point = a;
        }
        assert_eq!(first.next_point(), grid_point + period, "the next point after a tick");
        // A stall: one late tick at once, then back on the grid.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let stalled = Instant::now();
        assert_eq!(
            first.next_point(),
            grid_point + 3 * period,
            "the first point still ahead after a stall"
        );
        first.tick().await;
        assert_eq!(Instant::now(), stalled, "the late tick is at once");
        let next_point = first.next_point();
        let next = first.tick().await;
        assert_eq!(next, next_point, "the tick came at another point than announced");
        assert!(next > stalled && next - stalled < period, "{:?}", next - stalled);
        assert_eq!(
            (next - grid_point).as_nanos() % period.as_nanos(),
            0,
            "off the grid after a stall"
        );
    }

    /// What the agent's intervals run on (`aligned_interval` once the
    /// binary has called `use_timerfds`): real time, so it checks where the
    /// ticks fall, not how long they took.
    #[tokio::test]
    async fn timerfd_intervals_should_tick_together_on_the_grid_and_once_after_a_stall() {
        let period = Duration::from_millis(40);
        // In this order, as `aligned_interval` reads them: the timerfd's
        // origin is then no earlier than tokio's.
        let origin = Instant::now();
        let origin_ns = monotonic_ns();
        let on_grid = |at: Instant| (at - origin).as_nanos() % period.as_nanos() == 0;
        let mut first = GridInterval::on_timerfd(origin, origin_ns, period).expect("a timerfd");
        let at = first.tick().await;
        assert!(
            on_grid(at) && at <= Instant::now(),
            "the first tick is the grid point just passed"
        );
        tokio::time::sleep(period / 3).await;
        let mut second = GridInterval::on_timerfd(origin, origin_ns, period).expect("a timerfd");
        second.tick().await;
        let mut last = at;
        for round in 1..=3 {
            let (a, b) = (first.tick().await, second.tick().await);
            assert_eq!(a, b, "round {round}: the two intervals came due at different points");
            assert!(on_grid(a) && a > last, "round {round}: {:?} after the last", a - last);
            assert!(Instant::now() >= a, "round {round}: ticked before its grid point");
            last = a;
        }
        // A stall (the runtime thread blocked) of two and a half periods:
        // one tick, at the latest point passed, then the next on the grid.
        std::thread::sleep(period * 5 / 2);
        let late = first.tick().await;
        assert!(
            on_grid(late) && late >= last + 2 * period,
            "{:?} after the last",
            late - last
        );
        let next = first.tick().await;
        assert!(on_grid(next) && next > late && Instant::now() >= next);
    }

    #[test]
    fn timestamps_should_format_as_utc_rfc3339() {
        let check = |secs: u64, millis: u64, expected: &str| {
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            assert_eq!(rfc3339(at), expected);
        };
        check(0, 0, "1970-01-01T00:00:00.000Z");
        check(951_782_400, 5, "2000-02-29T00:00:00.005Z");
        check(1_795_437_296, 789, "2026-11-23T12:34:56.789Z");
        check(4_107_542_399, 999, "2100-02-28T23:59:59.999Z");
    }
}
