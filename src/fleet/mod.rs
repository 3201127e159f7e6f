//! The fleet: every majortom agent on the broker sees the others.
//!
//! Each agent publishes a retained `<base>/<node>/info` ([`info`]) beside
//! its `status`, and reads every node's `status` and `info` into a bounded
//! [`table`]. The MQTT sink carries the messages both ways (it subscribes
//! when the fleet is on, hands what arrives to [`Fleet::observe`], and
//! publishes what the [`publisher`] builds); the web side shows the table
//! (`GET /api/fleet`, the event stream, `/metrics`, the Fleet tab), and
//! automations trigger on a node's live status changes. This module does no
//! MQTT I/O itself.

pub mod info;
pub mod publisher;
pub mod table;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, watch};
use tracing::debug;

pub use table::{Change, Node, MAX_NODES};

/// Which of a node's fleet topics a message came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Status,
    Info,
}

/// The shared fleet table and its change broadcast.
pub struct Fleet {
    /// Held only for a table operation, never across `.await`.
    table: Mutex<table::Table>,
    /// Every change, for the event stream and automations; a receiver that
    /// lags rereads [`Fleet::nodes`].
    changes: broadcast::Sender<Change>,
}

/// What the MQTT sink needs for the fleet: the table to fill and our own
/// `info` payload to publish (the newest only).
pub struct FleetLink {
    pub fleet: Arc<Fleet>,
    pub info: watch::Receiver<Option<Vec<u8>>>,
}

impl Fleet {
    /// `own`: our node id (never evicted).
    pub fn new(own: &str) -> Arc<Fleet> {
        Arc::new(Fleet {
            table: Mutex::new(table::Table::new(own)),
            changes: broadcast::channel(64).0,
        })
    }

    /// A message on a node's `status` or `info`; `retain`: delivered from
    /// the broker's store (not live). Anything malformed is ignored.
    pub fn observe(&self, kind: Kind, node: &str, payload: &[u8], retain: bool) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut changes = Vec::new();
        let result = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            match kind {
                Kind::Status => table.status(node, payload, !retain, now, &mut changes),
                Kind::Info => table.info(node, payload, !retain, &mut changes),
            }
        };
        if let Err(why) = result {
            // Debug only: a neighbour must not be able to flood the log.
            debug!(node, ?kind, "ignoring a fleet message: {why}");
        }
        for change in changes {
            // No receiver is fine.
            let _ = self.changes.send(change);
        }
    }

    /// Every known node, ours included, sorted by id.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = self.table.lock().unwrap_or_else(|e| e.into_inner()).nodes().to_vec();
        nodes.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
