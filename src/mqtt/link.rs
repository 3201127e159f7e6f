//! The connection's decisions, without I/O: after each connection or failed
//! attempt, how long to wait, which protocol to speak next, whether to start
//! a clean session, and what the user must hear. The connection task
//! (`connection.rs`) tells it what happened (the [`Cause`] of each end) and
//! carries out the [`Retry`].
//!
//! - **Backoff** (0.5 s doubling to 30 s, with jitter) resets only after a
//!   connection has lasted one keepalive. A connection that something ends
//!   at once (a poison message, a clash) would otherwise be retried every
//!   0.5 s forever.
//! - **A clash**: two clients with one client id (two Pis cloned from one
//!   image) take the session from each other. An MQTT 5 broker says so
//!   (DISCONNECT 0x8E, [`Cause::TakenOver`]); under 3.1.1 it closes our
//!   connection without a word, shortly after CONNACK: three such closes
//!   in a row are taken for a clash. Either way the user is told, and the
//!   backoff grows to 5 minutes; it resets only after a connection has
//!   lasted 10 minutes, which a clash never allows (the other client comes
//!   back within the longest delay).
//! - **MQTT 5 refused** (the broker answers in 3.1.1, or hangs up before
//!   CONNACK): 3.1.1 is tried at once. If it connects, the rest of this run
//!   speaks 3.1.1: a broker gains MQTT 5 only with an upgrade, which
//!   restarts it, and trying 5 first at every reconnect would double the
//!   attempts and the log; the next start of majortom tries 5 again. If
//!   3.1.1 fails too, MQTT 5 is tried again after the backoff.
//! - **A packet over our limit** ended the connection: the next connection
//!   starts a clean session, so the broker forgets an oversized message it
//!   queued for us (a retained one keeps coming; the backoff bounds it).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Protocol;
use crate::mqtt::backoff::Backoff;

/// First and largest delay between connection attempts.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The largest delay while another client uses our client id.
pub const CLASH_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a connection must last to end a clash: twice the longest
/// delay, so the other client would have come back within it.
const CLASH_STEADY: Duration = Duration::from_secs(600);
/// Connections closed by the broker within a keepalive, in a row, that
/// make a clash under MQTT 3.1.1.
const SHORT_CLOSES_FOR_CLASH: u32 = 3;

/// How a connection or an attempt ended, as far as the next one cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// MQTT 5: the broker says another client took our session (0x8E).
    TakenOver,
    /// The broker closed the connection without a word.
    ClosedByBroker,
    /// The broker did not take our MQTT 5 CONNECT: it refused the version,
    /// or answered in a way only a 3.1.1 broker would.
    Mqtt5Refused,
    /// A packet over what we read.
    TooLarge,
    /// Anything else: no broker, refused credentials, TLS, a silent path.
    Other,
}

/// What the user must hear about, beside the failure itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Another client uses our client id.
    Clash,
    /// MQTT 5 was refused: trying 3.1.1 at once.
    TryingV311,
    /// 3.1.1 worked where 5 was refused: this run speaks 3.1.1.
    FellBack,
    /// A packet over our limit ended the connection; the next one starts
    /// a clean session.
    TooLarge,
}

/// What to do before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub delay: Duration,
    pub protocol: Protocol,
    /// Start a clean session: the broker forgets what it queued for us.
    pub clean_start: bool,
    pub notice: Option<Notice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// 3.1.1 was asked for: nothing to fall back to.
    Off,
    /// Speaking 5; 3.1.1 is tried if the broker refuses it.
    Ready,
    /// 5 was refused; this attempt is 3.1.1.
    Probing,
    /// 3.1.1 it is, for the rest of the run.
    Settled,
}

/// The connection's state between attempts.
#[derive(Debug, Clone)]
pub struct Link {
    protocol: Protocol,
    fallback: Fallback,
    keepalive: Duration,
    backoff: Backoff,
    /// When the current connection was accepted.
    connected_at: Option<Instant>,
    /// Connections in a row the broker closed within a keepalive.
    short_closes: u32,
    /// Another client is taking our session.
    clash: bool,
    /// The next connection starts a clean session.
    clean_next: bool,
}

impl Link {
    pub fn new(protocol: Protocol, keepalive: Duration, backoff: Backoff) -> Link {
        Link {
            protocol,
            fallback: match protocol {
                Protocol::V5 => Fallback::Ready,
                Protocol::V311 => Fallback::Off,
            },
            keepalive,
            backoff,
            connected_at: None,
            short_closes: 0,
            clash: false,
            clean_next: false,
        }
    }

    /// The protocol of the next attempt.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The broker accepted us (CONNACK).
    pub fn connected(&mut self, now: Instant) -> Option<Notice> {
        self.connected_at = Some(now);
        self.clean_next = false;
        if self.fallback == Fallback::Probing {
            self.fallback = Fallback::Settled;
            return Some(Notice::FellBack);
        }
        None
    }

    /// An accepted connection ended.
    pub fn lost(&mut self, now: Instant, cause: Cause) -> Retry {
        let lasted = self
            .connected_at
            .take()
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let mut notice = None;
        match cause {
            Cause::TakenOver => {
                self.clash = true;
                notice = Some(Notice::Clash);
            }
            Cause::ClosedByBroker if lasted < self.keepalive => {
                self.short_closes += 1;
                if self.short_closes >= SHORT_CLOSES_FOR_CLASH {
                    self.clash = true;
                    notice = Some(Notice::Clash);
                }
            }
            _ => self.short_closes = 0,
        }
        if cause == Cause::TooLarge {
            self.clean_next = true;
            notice = Some(Notice::TooLarge);
        }
        // A taken-over session proves nothing about steadiness, however
        // long it lasted.
        if cause != Cause::TakenOver {
            if lasted >= CLASH_STEADY {
                self.clash = false;
                self.short_closes = 0;
            }
            let steady = if self.clash { CLASH_STEADY } else { self.keepalive };
            if lasted >= steady {
                self.backoff.reset();
            }
        }
        self.retry(notice)
    }

    /// An attempt failed before the broker accepted it.
    pub fn failed(&mut self, cause: Cause) -> Retry {
        // The broker was away (a restart): not another client with our id,
        // which lets us back in at once. Quick closes around broker
        // restarts are no clash.
        self.short_closes = 0;
        match self.fallback {
            Fallback::Ready if matches!(cause, Cause::Mqtt5Refused | Cause::ClosedByBroker) => {
                self.fallback = Fallback::Probing;
                self.protocol = Protocol::V311;
                return Retry {
                    delay: Duration::ZERO,
                    protocol: self.protocol,
                    clean_start: self.clean_next,
                    notice: Some(Notice::TryingV311),
                };
            }
            Fallback::Probing => {
                // 3.1.1 failed too: the broker may simply be away.
                self.fallback = Fallback::Ready;
                self.protocol = Protocol::V5;
            }
            _ => {}
        }
        self.retry(None)
    }

    fn retry(&mut self, notice: Option<Notice>) -> Retry {
        self.backoff
            .set_max(if self.clash { CLASH_BACKOFF_MAX } else { BACKOFF_MAX });
        Retry {
            delay: self.backoff.next_delay(),
            protocol: self.protocol,
            clean_start: self.clean_next,
            notice,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Sequences of what happened, and what the link decides after each.

    use super::*;

    const KEEPALIVE: Duration = Duration::from_secs(30);

    fn link(protocol: Protocol) -> Link {
        Link::new(protocol, KEEPALIVE, Backoff::with_seed(BACKOFF_INITIAL, BACKOFF_MAX, 7))
    }

    /// What happened: a connection that lasted so long and ended so, or a
    /// failed attempt.
    #[derive(Clone, Copy)]
    enum Step {
        Lasted(u64, Cause),
        Failed(Cause),
    }
    use Step::{Failed, Lasted};

    /// Runs the steps from `start`; returns each retry.
    fn run(link: &mut Link, steps: &[Step]) -> Vec<Retry> {
        let mut now = Instant::now();
        steps
            .iter()
            .map(|step| match *step {
                Lasted(seconds, cause) => {
                    link.connected(now);
                    now += Duration::from_secs(seconds);
                    let retry = link.lost(now, cause);
                    now += retry.delay;
                    retry
                }
                Failed(cause) => link.failed(cause),
            })
            .collect()
    }

    /// Checks that the delay is within the backoff's jitter of `ceiling`.
    fn assert_delay(retry: &Retry, ceiling: Duration, what: &str) {
        assert!(
            retry.delay >= ceiling / 2 && retry.delay <= ceiling,
            "{what}: {:?} outside [{:?}, {ceiling:?}]",
            retry.delay,
            ceiling / 2
        );
    }

    #[test]
    fn the_backoff_should_reset_only_after_a_connection_lasted_one_keepalive() {
        // A poison message that drops every connection at once: the delays
        // grow (before, each CONNACK reset them: 0.5 s forever).
        let mut short = link(Protocol::V5);
        let retries = run(&mut short, &[Lasted(0, Cause::Other); 8]);
        let mut ceiling = BACKOFF_INITIAL;
        for (n, retry) in retries.iter().enumerate() {
            assert_delay(retry, ceiling, &format!("short connection {n}"));
            ceiling = (ceiling * 2).min(BACKOFF_MAX);
        }
        // A connection that lasted a keepalive starts again from 0.5 s.
        let retry = run(&mut short, &[Lasted(30, Cause::Other)])[0];
        assert_delay(&retry, BACKOFF_INITIAL, "after a steady connection");
        // Failed attempts never reset it.
        let retries = run(&mut link(Protocol::V311), &[Failed(Cause::Other); 3]);
        assert_delay(&retries[2], BACKOFF_INITIAL * 4, "third failed attempt");
    }

    #[test]
    fn a_session_taken_over_should_be_a_clash_with_a_growing_backoff() {
        let mut link = link(Protocol::V5);
        let retries = run(&mut link, &[Lasted(1, Cause::TakenOver); 12]);
        assert!(retries.iter().all(|r| r.notice == Some(Notice::Clash)));
        // It keeps growing past the usual 30 s, to 5 minutes.
        assert_delay(&retries[11], CLASH_BACKOFF_MAX, "twelfth takeover");
        // A takeover after a long connection does not reset it either (the
        // other client waited its own long delay).
        let retry = run(&mut link, &[Lasted(299, Cause::TakenOver)])[0];
        assert_delay(&retry, CLASH_BACKOFF_MAX, "takeover after 299 s");
        // A broker restart after a connection of 10 minutes: the clash is
        // over, and so is the long backoff.
        let retry = run(&mut link, &[Lasted(600, Cause::ClosedByBroker)])[0];
        assert_eq!(retry.notice, None);
        assert_delay(&retry, BACKOFF_INITIAL, "after 10 minutes connected");
    }

    #[test]
    fn three_quick_closes_in_a_row_under_3_1_1_should_be_taken_for_a_clash() {
        let table: &[(&str, Vec<Step>, Option<Notice>)] = &[
            (
                "two quick closes are not yet a clash",
                vec![Lasted(2, Cause::ClosedByBroker); 2],
                None,
            ),
            (
                "the third is",
                vec![Lasted(2, Cause::ClosedByBroker); 3],
                Some(Notice::Clash),
            ),
            (
                "a close after a keepalive breaks the row (a broker restart)",
                vec![
                    Lasted(2, Cause::ClosedByBroker),
                    Lasted(2, Cause::ClosedByBroker),
                    Lasted(31, Cause::ClosedByBroker),
                    Lasted(2, Cause::ClosedByBroker),
                ],
                None,
            ),
            (
                "so does a failed attempt between them (the broker was away: restarts)",
                vec![
                    Lasted(2, Cause::ClosedByBroker),
                    Failed(Cause::Other),
                    Lasted(2, Cause::ClosedByBroker),
                    Failed(Cause::Other),
                    Lasted(2, Cause::ClosedByBroker),
                ],
                None,
            ),
            (
                "so does another cause",
                vec![
                    Lasted(2, Cause::ClosedByBroker),
                    Lasted(2, Cause::ClosedByBroker),
                    Lasted(2, Cause::Other),
                    Lasted(2, Cause::ClosedByBroker),
                ],
                None,
            ),
        ];
        for (what, steps, notice) in table {
            let retries = run(&mut link(Protocol::V311), steps);
            assert_eq!(retries.last().and_then(|r| r.notice), *notice, "{what}");
        }
        // Once a clash, the backoff grows past 30 s.
        let retries = run(&mut link(Protocol::V311), &[Lasted(20, Cause::ClosedByBroker); 12]);
        assert_delay(&retries[11], CLASH_BACKOFF_MAX, "twelfth quick close");
    }

    #[test]
    fn a_refused_mqtt5_should_try_3_1_1_at_once_and_keep_it_once_it_works() {
        let mut link = link(Protocol::V5);
        let retry = link.failed(Cause::Mqtt5Refused);
        assert_eq!(
            (retry.delay, retry.protocol, retry.notice),
            (Duration::ZERO, Protocol::V311, Some(Notice::TryingV311))
        );
        assert_eq!(link.connected(Instant::now()), Some(Notice::FellBack));
        // Later losses and failures stay on 3.1.1, and say nothing more.
        let retries = run(
            &mut link,
            &[
                Lasted(40, Cause::ClosedByBroker),
                Failed(Cause::Other),
                Failed(Cause::ClosedByBroker),
            ],
        );
        assert!(retries
            .iter()
            .all(|r| r.protocol == Protocol::V311 && r.notice.is_none() && !r.delay.is_zero()));
    }

    #[test]
    fn when_3_1_1_fails_too_mqtt5_should_be_tried_again_after_the_backoff() {
        let mut link = link(Protocol::V5);
        // A broker that hangs up on our CONNECT, then is not there at all.
        assert_eq!(link.failed(Cause::ClosedByBroker).protocol, Protocol::V311);
        let retry = link.failed(Cause::Other);
        assert_eq!((retry.protocol, retry.notice), (Protocol::V5, None));
        assert_delay(&retry, BACKOFF_INITIAL, "after the probe");
        // Unreachable, refused credentials: no probe.
        let retry = link.failed(Cause::Other);
        assert_eq!(retry.protocol, Protocol::V5);
        assert!(!retry.delay.is_zero());
    }

    #[test]
    fn mqtt_3_1_1_asked_for_should_never_switch() {
        let mut link = link(Protocol::V311);
        let retries = run(&mut link, &[Failed(Cause::Mqtt5Refused), Failed(Cause::ClosedByBroker)]);
        assert!(retries
            .iter()
            .all(|r| r.protocol == Protocol::V311 && r.notice.is_none()));
    }

    #[test]
    fn an_oversized_packet_should_make_the_next_session_clean_once() {
        let mut link = link(Protocol::V311);
        let retry = run(&mut link, &[Lasted(0, Cause::TooLarge)])[0];
        assert_eq!((retry.clean_start, retry.notice), (true, Some(Notice::TooLarge)));
        // It stays so until a connection is made, then back to persistent.
        assert!(link.failed(Cause::Other).clean_start);
        let retry = run(&mut link, &[Lasted(0, Cause::Other)])[0];
        assert!(!retry.clean_start);
    }
}
