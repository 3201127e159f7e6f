//! What one client may take, so that no single address can lock everyone
//! else out: connections and event streams per address (`PerIp`), failed
//! token attempts per address (`TokenFailures`), and which names a request
//! may give as its `Host` (`AllowedHosts`, against DNS rebinding).
//!
//! An "address" is an IPv4 address or an IPv6 /64: one host on IPv6 may
//! hold a whole /64. The server loop (`server.rs`) tells handlers who is
//! asking through a [`ClientIp`] request extension; a request without one
//! (a test calling the router directly) is not counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The peer address of the connection a request came on, set by the server
/// loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// One client, as the caps count it: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(u128);

impl Client {
    pub fn of(ip: IpAddr) -> Client {
        match canonical(ip) {
            IpAddr::V4(v4) => Client(u128::from(u32::from(v4))),
            // The top 64 bits, marked so that no /64 equals an IPv4 address.
            IpAddr::V6(v6) => Client((u128::from(v6) >> 64) | (1 << 127)),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
/// socket reports) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Counts what each client holds open (connections, event streams) and
/// refuses more than `limit` at once. The map holds only clients with
/// something open, so it is bounded by the global cap that comes first.
pub struct PerIp {
    limit: usize,
    /// A std mutex, held only to count.
    open: Mutex<HashMap<Client, usize>>,
}

/// One open thing of one client; dropping it gives the place back.
pub struct Slot {
    owner: Arc<PerIp>,
    client: Client,
}

impl PerIp {
    pub fn new(limit: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for `ip`, or `None` when it already holds `limit`.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let client = Client::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: self.clone(),
            client,
        })
    }

    #[cfg(test)]
    pub fn held(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&Client::of(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Wrong tokens a client may send before it must wait.
pub const TOKEN_FAILURES_ALLOWED: u32 = 5;
/// How long a client that used them up waits; also how long a failure is
/// remembered.
pub const TOKEN_LOCKOUT: Duration = Duration::from_secs(60);
/// Clients remembered at once; beyond, the oldest is forgotten (a flood of
/// addresses costs a bounded map, not memory without end).
const TOKEN_CLIENTS: usize = 1024;

/// Failed token attempts per client: after [`TOKEN_FAILURES_ALLOWED`], every
/// attempt (the right token too) is refused until [`TOKEN_LOCKOUT`] has
/// passed since the first failure.
#[derive(Default)]
pub struct TokenFailures {
    clients: HashMap<Client, (u32, Instant)>,
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; this many are left before the lockout.
    Counted { left: u32 },
    /// This failure used up the last one: locked out for this long.
    LockedOut(Duration),
}

impl TokenFailures {
    /// `Some(wait)` while `client` is locked out.
    pub fn locked(&mut self, client: Client, now: Instant) -> Option<Duration> {
        let (count, since) = *self.clients.get(&client)?;
        let until = since + TOKEN_LOCKOUT;
        if now >= until {
            self.clients.remove(&client);
            return None;
        }
        (count >= TOKEN_FAILURES_ALLOWED).then(|| until - now)
    }

    pub fn failed(&mut self, client: Client, now: Instant) -> Failure {
        if !self.clients.contains_key(&client) && self.clients.len() >= TOKEN_CLIENTS {
            self.clients
                .retain(|_, (_, since)| now.saturating_duration_since(*since) < TOKEN_LOCKOUT);
            if self.clients.len() >= TOKEN_CLIENTS {
                let oldest = self
                    .clients
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(c, _)| *c);
                if let Some(oldest) = oldest {
                    self.clients.remove(&oldest);
                }
            }
        }
        let (count, since) = self.clients.entry(client).or_insert((0, now));
        if now.saturating_duration_since(*since) >= TOKEN_LOCKOUT {
            (*count, *since) = (0, now);
        }
        *count += 1;
        if *count >= TOKEN_FAILURES_ALLOWED {
            Failure::LockedOut(*since + TOKEN_LOCKOUT - now)
        } else {
            Failure::Counted {
                left: TOKEN_FAILURES_ALLOWED - *count,
            }
        }
    }

    pub fn succeeded(&mut self, client: Client) {
        self.clients.remove(&client);
    }
}

/// The names a request's `Host` may give: the configured ones
/// (`WebConfig::allowed_hosts`), and besides them the address the client
/// connected to. A browser always sends the name in its address bar, so a
/// page on an attacker's name that DNS points at the Pi is refused.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Lowercase names and addresses, without ports.
    names: Vec<String>,
}

impl Default for AllowedHosts {
    /// `localhost` and the connection's own address.
    fn default() -> AllowedHosts {
        AllowedHosts::new(vec!["localhost".to_owned()])
    }
}

impl AllowedHosts {
    pub fn new(names: Vec<String>) -> AllowedHosts {
        AllowedHosts { names }
    }

    /// Whether `host` (a `Host` header, with or without a port) names this
    /// server, for a connection accepted on `local`. No `Host` at all is an
    /// HTTP/1.0 tool, never a browser: allowed.
    pub fn allows(&self, host: Option<&str>, local: IpAddr) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = strip_port(host.trim()).trim_end_matches('.').to_ascii_lowercase();
        match name.parse::<IpAddr>() {
            Ok(ip) => canonical(ip) == canonical(local) || self.names.iter().any(|n| n.parse::<IpAddr>() == Ok(ip)),
            Err(_) => self.names.contains(&name),
        }
    }
}

/// `name` of `name:port`, `v6` of `[v6]:port` or `[v6]`.
fn strip_port(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_client_should_be_an_ipv4_address_or_an_ipv6_slash_64() {
        assert_eq!(Client::of(ip("192.0.2.1")), Client::of(ip("::ffff:192.0.2.1")));
        assert_ne!(Client::of(ip("192.0.2.1")), Client::of(ip("192.0.2.2")));
        assert_eq!(Client::of(ip("2001:db8::1")), Client::of(ip("2001:db8::ffff:2")));
        assert_ne!(Client::of(ip("2001:db8::1")), Client::of(ip("2001:db8:0:1::1")));
        assert_ne!(Client::of(ip("::")), Client::of(ip("0.0.0.0")));
    }

    #[test]
    fn per_ip_slots_should_cap_each_client_and_free_on_drop() {
        let caps = PerIp::new(2);
        let a = caps.take(ip("10.0.0.1")).expect("first");
        let _b = caps.take(ip("10.0.0.1")).expect("second");
        assert!(caps.take(ip("10.0.0.1")).is_none(), "a third is refused");
        assert!(caps.take(ip("10.0.0.2")).is_some(), "another client is not");
        drop(a);
        assert!(caps.take(ip("10.0.0.1")).is_some());
        assert_eq!(caps.held(ip("10.0.0.2")), 0, "dropped slots leave no entry");
    }

    #[test]
    fn token_failures_should_lock_a_client_out_and_let_it_back_after_the_lockout() {
        let mut failures = TokenFailures::default();
        let (a, b) = (Client::of(ip("10.0.0.1")), Client::of(ip("10.0.0.2")));
        let start = Instant::now();
        for n in 1..TOKEN_FAILURES_ALLOWED {
            assert_eq!(
                failures.failed(a, start),
                Failure::Counted {
                    left: TOKEN_FAILURES_ALLOWED - n
                }
            );
            assert_eq!(failures.locked(a, start), None);
        }
        assert_eq!(failures.failed(a, start), Failure::LockedOut(TOKEN_LOCKOUT));
        let later = start + Duration::from_secs(20);
        assert_eq!(failures.locked(a, later), Some(TOKEN_LOCKOUT - Duration::from_secs(20)));
        assert_eq!(failures.locked(b, later), None, "others are not locked out");
        assert_eq!(failures.locked(a, start + TOKEN_LOCKOUT), None);
        assert_eq!(
            failures.failed(a, start + TOKEN_LOCKOUT),
            Failure::Counted {
                left: TOKEN_FAILURES_ALLOWED - 1
            },
            "a fresh count"
        );
        failures.succeeded(a);
        assert!(failures.clients.is_empty());
    }

    #[test]
    fn token_failures_should_remember_a_bounded_number_of_clients() {
        let mut failures = TokenFailures::default();
        let now = Instant::now();
        for n in 0..5_000u32 {
            failures.failed(
                Client::of(IpAddr::V4(n.into())),
                now + Duration::from_millis(u64::from(n)),
            );
        }
        assert_eq!(failures.clients.len(), TOKEN_CLIENTS);
    }

    #[test]
    fn the_host_should_name_this_server_or_its_address() {
        let hosts = AllowedHosts::new(vec![
            "localhost".into(),
            "pi".into(),
            "pi.local".into(),
            "192.168.1.50".into(),
        ]);
        let local = ip("10.0.0.5");
        for (host, allowed) in [
            (Some("pi"), true),
            (Some("PI.local:8080"), true),
            (Some("pi.local."), true),
            (Some("localhost:8080"), true),
            (Some("10.0.0.5:8080"), true),
            (Some("10.0.0.5"), true),
            (Some("192.168.1.50"), true),
            (None, true),
            (Some("evil.example"), false),
            (Some("evil.example:8080"), false),
            (Some("pi.evil.example"), false),
            (Some("10.0.0.6:8080"), false),
            (Some(""), false),
            (Some("[::1]:8080"), false),
        ] {
            assert_eq!(hosts.allows(host, local), allowed, "{host:?}");
        }
        assert!(hosts.allows(Some("[fd00::5]:8080"), ip("fd00::5")));
        assert!(hosts.allows(Some("127.0.0.1:8080"), ip("::ffff:127.0.0.1")));
    }
}
