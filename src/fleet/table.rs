//! The fleet table: what this agent knows of every node on the broker (its
//! own included), bounded to [`MAX_NODES`]. Pure: messages and the time
//! come in, the change (if any) goes out.
//!
//! Neighbours can send anything, so a node id must look like one of ours
//! (`[a-z0-9_-]`, 1–64), a status is exactly `online` or `offline`, an
//! `info` is checked by [`Info::parse`], and when the table is full the
//! node offline longest makes room (then one of unknown status, then the
//! one heard from least recently); our own entry is never evicted.

use serde::Serialize;

use crate::fleet::info::{Info, Rejection, DISK_ALERT_PCT};

/// At most this many nodes are kept (about 64 × 0.5 KB).
pub const MAX_NODES: usize = 64;

/// One node as known here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    /// `None` until a status is heard.
    pub online: Option<bool>,
    /// When its status last changed, as seen here (Unix seconds); `None`
    /// when it was already so when we subscribed (a retained status).
    pub since: Option<u64>,
    pub info: Option<Info>,
    /// What is wrong: `offline`, `under_voltage`, `throttled`, `disk_full`.
    pub alerts: Vec<&'static str>,
    /// Order of the last message heard from it (eviction order).
    #[serde(skip)]
    heard: u64,
}

impl Node {
    fn new(id: &str) -> Node {
        Node {
            id: id.to_owned(),
            online: None,
            since: None,
            info: None,
            alerts: Vec::new(),
            heard: 0,
        }
    }

    fn update_alerts(&mut self) {
        self.alerts.clear();
        if self.online == Some(false) {
            self.alerts.push("offline");
        }
        if let Some(info) = &self.info {
            if info.under_voltage == Some(true) {
                self.alerts.push("under_voltage");
            }
            if info.throttled == Some(true) {
                self.alerts.push("throttled");
            }
            if info.disk_pct.is_some_and(|d| d >= DISK_ALERT_PCT) {
                self.alerts.push("disk_full");
            }
        }
    }

    /// The eviction key: the smallest goes first.
    fn eviction_rank(&self) -> (u8, u64) {
        match self.online {
            Some(false) => (0, self.since.unwrap_or(0)),
            None => (1, self.heard),
            Some(true) => (2, self.heard),
        }
    }
}

/// What a message changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The node's entry is new or different (status or info).
    Node(Node),
    /// The status went `online`/`offline` live (not a retained message
    /// delivered on subscribe): what automations trigger on.
    Status { node: Node, online: bool },
    /// An alert other than `offline` appeared in a live `info` (one of
    /// `vocab::FLEET_ALERTS`), after the node's `Node` change.
    Alert { node: String, alert: &'static str },
    /// The node is gone (its retained messages were cleared, or it was
    /// evicted to make room).
    Removed(String),
}

/// Why a message was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    BadNodeId,
    BadStatus,
    BadInfo(Rejection),
    /// `offline` (or nothing) on our own status topic: a Last Will of an
    /// earlier run still retained, or a neighbour's message.
    OwnStatus,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::BadNodeId => f.write_str("the node id is not 1-64 of [a-z0-9_-]"),
            Ignored::BadStatus => f.write_str("the status is neither `online` nor `offline`"),
            Ignored::BadInfo(why) => write!(f, "the info is {why}"),
            Ignored::OwnStatus => f.write_str("it says this agent, which is running, is not online"),
        }
    }
}

pub struct Table {
    own: String,
    nodes: Vec<Node>,
    capacity: usize,
    /// Counts messages, to order nodes by when they were last heard.
    clock: u64,
}

impl Table {
    pub fn new(own: &str) -> Table {
        Table::with_capacity(own, MAX_NODES)
    }

    pub fn with_capacity(own: &str, capacity: usize) -> Table {
        Table {
            own: own.to_owned(),
            nodes: Vec::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn get(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// `<base>/<node>/status`. `live`: not a retained message from the
    /// broker's store. An empty payload (a cleared retained status) forgets
    /// the status. Appends what changed to `changes` (an eviction, then the
    /// node).
    pub fn status(
        &mut self,
        node: &str,
        payload: &[u8],
        live: bool,
        now: u64,
        changes: &mut Vec<Change>,
    ) -> Result<(), Ignored> {
        check_node_id(node)?;
        let online = match payload {
            b"online" => Some(true),
            b"offline" => Some(false),
            b"" => None,
            _ => return Err(Ignored::BadStatus),
        };
        // While this agent runs it is online, whatever the broker holds
        // for it or a neighbour says on its topic.
        if node == self.own && online != Some(true) {
            return Err(Ignored::OwnStatus);
        }
        if online.is_none() {
            self.forget(node, |n| n.online = None, changes);
            return Ok(());
        }
        let Some(entry) = self.entry(node, changes) else {
            return Ok(());
        };
        if entry.online == online {
            return Ok(());
        }
        entry.online = online;
        entry.since = live.then_some(now);
        entry.update_alerts();
        let node = entry.clone();
        changes.push(match (live, online) {
            (true, Some(online)) => Change::Status { node, online },
            _ => Change::Node(node),
        });
        Ok(())
    }

    /// `<base>/<node>/info`; an empty payload forgets the info.
    pub fn info(&mut self, node: &str, payload: &[u8], live: bool, changes: &mut Vec<Change>) -> Result<(), Ignored> {
        check_node_id(node)?;
        if payload.is_empty() {
            self.forget(node, |n| n.info = None, changes);
            return Ok(());
        }
        let info = Info::parse(payload).map_err(Ignored::BadInfo)?;
        let Some(entry) = self.entry(node, changes) else {
            return Ok(());
        };
        if entry.info.as_ref() != Some(&info) {
            let before = std::mem::take(&mut entry.alerts);
            entry.info = Some(info);
            entry.update_alerts();
            changes.push(Change::Node(entry.clone()));
            if live {
                for alert in entry.alerts.iter().filter(|a| **a != "offline" && !before.contains(a)) {
                    changes.push(Change::Alert {
                        node: entry.id.clone(),
                        alert,
                    });
                }
            }
        }
        Ok(())
    }

    /// The node's entry, made (evicting one if full) when new, marked as
    /// heard now.
    fn entry(&mut self, node: &str, changes: &mut Vec<Change>) -> Option<&mut Node> {
        self.clock += 1;
        let at = match self.nodes.iter().position(|n| n.id == node) {
            Some(at) => at,
            None => {
                if self.nodes.len() >= self.capacity {
                    let victim = self
                        .nodes
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.id != self.own)
                        .min_by_key(|(_, n)| n.eviction_rank())
                        .map(|(at, _)| at)?;
                    changes.push(Change::Removed(self.nodes.swap_remove(victim).id));
                }
                self.nodes.push(Node::new(node));
                self.nodes.len() - 1
            }
        };
        let entry = &mut self.nodes[at];
        entry.heard = self.clock;
        Some(entry)
    }

    /// Clears part of a node; a node with neither status nor info is gone.
    fn forget(&mut self, node: &str, clear: impl FnOnce(&mut Node), changes: &mut Vec<Change>) {
        let Some(at) = self.nodes.iter().position(|n| n.id == node) else {
            return;
        };
        let entry = &mut self.nodes[at];
        clear(entry);
        if entry.online.is_none() && entry.info.is_none() {
            changes.push(Change::Removed(self.nodes.swap_remove(at).id));
        } else {
            entry.update_alerts();
            changes.push(Change::Node(entry.clone()));
        }
    }
}

fn check_node_id(id: &str) -> Result<(), Ignored> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Ignored::BadNodeId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(table: &mut Table, node: &str, payload: &str, live: bool, now: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        table
            .status(node, payload.as_bytes(), live, now, &mut changes)
            .expect("accepted");
        changes
    }

    fn ids(table: &Table) -> Vec<&str> {
        let mut ids: Vec<&str> = table.nodes().iter().map(|n| n.id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_live_offline_should_be_a_status_change_with_its_time_and_a_retained_one_should_not() {
        let mut table = Table::new("me");
        let changes = status(&mut table, "garage", "offline", false, 100);
        assert!(matches!(&changes[..], [Change::Node(n)] if n.since.is_none() && n.alerts == ["offline"]));
        let changes = status(&mut table, "garage", "online", true, 200);
        assert!(matches!(&changes[..], [Change::Status { online: true, node }] if node.since == Some(200)));
        assert!(
            status(&mut table, "garage", "online", true, 250).is_empty(),
            "no change"
        );
        let changes = status(&mut table, "garage", "offline", true, 300);
        assert!(matches!(&changes[..], [Change::Status { online: false, node }] if node.since == Some(300)));
    }

    #[test]
    fn the_node_offline_longest_should_make_room_and_our_own_never() {
        let mut table = Table::with_capacity("me", 4);
        status(&mut table, "me", "online", false, 1);
        status(&mut table, "a", "offline", true, 50);
        status(&mut table, "b", "offline", true, 10);
        status(&mut table, "c", "online", true, 5);
        let changes = status(&mut table, "d", "online", true, 60);
        assert_eq!(changes[0], Change::Removed("b".into()));
        assert_eq!(ids(&table), ["a", "c", "d", "me"]);
        status(&mut table, "e", "online", true, 61);
        assert_eq!(ids(&table), ["c", "d", "e", "me"], "a (offline) before any online node");
        // All online but us: the one heard from least recently goes.
        status(&mut table, "c", "online", true, 62);
        let mut changes = Vec::new();
        table.info("f", b"{}", true, &mut changes).expect("accepted");
        assert_eq!(changes[0], Change::Removed("d".into()));
        assert_eq!(table.nodes().len(), 4);
    }

    #[test]
    fn our_own_row_should_stay_online_whatever_the_broker_holds_or_a_neighbour_says() {
        let mut table = Table::new("me");
        status(&mut table, "me", "online", true, 10);
        let mut changes = Vec::new();
        for (payload, live) in [(&b"offline"[..], false), (b"offline", true), (b"", true)] {
            assert_eq!(
                table.status("me", payload, live, 20, &mut changes),
                Err(Ignored::OwnStatus)
            );
        }
        assert!(changes.is_empty());
        assert_eq!(table.get("me").map(|n| n.online), Some(Some(true)));
        // A neighbour's offline still counts.
        status(&mut table, "garage", "online", true, 30);
        status(&mut table, "garage", "offline", true, 40);
        assert_eq!(table.get("garage").map(|n| n.online), Some(Some(false)));
    }

    #[test]
    fn a_flood_of_nodes_should_keep_the_table_bounded() {
        let mut table = Table::new("me");
        status(&mut table, "me", "online", true, 0);
        for n in 0..1000 {
            status(&mut table, &format!("n{n}"), "online", true, n);
        }
        assert_eq!(table.nodes().len(), MAX_NODES);
        assert!(table.get("me").is_some());
    }

    #[test]
    fn hostile_messages_should_be_ignored_with_the_reason() {
        let mut table = Table::new("me");
        let mut changes = Vec::new();
        assert_eq!(
            table.status("Bad Id", b"online", true, 0, &mut changes),
            Err(Ignored::BadNodeId)
        );
        assert_eq!(
            table.status(&"x".repeat(65), b"online", true, 0, &mut changes),
            Err(Ignored::BadNodeId)
        );
        assert_eq!(
            table.status("a", b"ONLINE", true, 0, &mut changes),
            Err(Ignored::BadStatus)
        );
        assert_eq!(
            table.info("a", &[b'{'; 5000], true, &mut changes),
            Err(Ignored::BadInfo(Rejection::TooLarge))
        );
        assert!(changes.is_empty() && table.nodes().is_empty());
    }

    #[test]
    fn alerts_should_follow_the_info_and_cleared_messages_should_remove_the_node() {
        let mut table = Table::new("me");
        let mut changes = Vec::new();
        table
            .info(
                "a",
                br#"{"under_voltage":true,"throttled":false,"disk_pct":93.5}"#,
                false,
                &mut changes,
            )
            .expect("accepted");
        assert_eq!(
            table.get("a").map(|n| n.alerts.clone()),
            Some(vec!["under_voltage", "disk_full"])
        );
        assert_eq!(changes.len(), 1, "retained: no alert change");
        let alerts = table.get("a").map(|n| n.alerts.clone()).unwrap_or_default();
        assert!(
            alerts.iter().all(|a| crate::vocab::FLEET_ALERTS.contains(a)),
            "the vocabulary's words"
        );
        changes.clear();
        table
            .info(
                "a",
                br#"{"under_voltage":true,"throttled":true,"disk_pct":93.5}"#,
                true,
                &mut changes,
            )
            .expect("accepted");
        assert_eq!(
            changes[1..],
            [Change::Alert {
                node: "a".into(),
                alert: "throttled"
            }],
            "only the new alert"
        );
        status(&mut table, "a", "offline", true, 9);
        assert_eq!(table.get("a").map(|n| n.alerts.len()), Some(4));
        changes.clear();
        table.info("a", b"", true, &mut changes).expect("accepted");
        assert!(matches!(&changes[..], [Change::Node(n)] if n.alerts == ["offline"]));
        assert_eq!(status(&mut table, "a", "", false, 10), [Change::Removed("a".into())]);
        assert!(table.nodes().is_empty());
    }
}
