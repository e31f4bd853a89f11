//! What a store is told when it opens: [`StoreOptions`], with this node's place in a cluster
//! ([`ClusterOptions`], [`ClusterStart`]), Raft's clock ([`RaftTiming`]) and when snapshots are
//! built ([`Tuning`]); each default is commented where it is set.
//!
//! Plain values: this module depends only on `types`, `events` (the observer a store is given)
//! and the [`RaftTransport`] trait, so the store's handle can hold them without depending on the
//! modules that act on them.

use std::sync::Arc;
use std::time::Duration;

use openraft::SnapshotPolicy;

use super::events::CommitObserver;
use super::network::transport::{NoPeers, RaftTransport};
use super::types::NodeInfo;

/// A snapshot is built once this many entries were applied since the last one. Building reads
/// the whole state, so this trades snapshot work against log length (and replay on a follower
/// that needs the log). Zone writes are infrequent; 5000 is openraft's default.
const SNAPSHOT_EVERY_ENTRIES: u64 = 5000;

/// Entries already covered by a snapshot that stay in the log, so a follower slightly behind
/// (issue 3) catches up from the log instead of receiving a full snapshot. The log is purged
/// down to this many entries after each snapshot.
const LOG_ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1000;

/// How many log indexes of change history are kept by default for Lite sessions to
/// resume from; a session further behind takes a snapshot.
pub const DEFAULT_HISTORY_ENTRIES: u64 = 100_000;

/// What `Store::open_with` can be told.
#[derive(Clone)]
pub struct StoreOptions {
    pub history_entries: u64,
    pub observer: Option<Arc<dyn CommitObserver>>,
    /// This node's place in a cluster; the default is a node alone.
    pub cluster: ClusterOptions,
    /// When snapshots are built and how much log stays behind them.
    pub tuning: Tuning,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            history_entries: DEFAULT_HISTORY_ENTRIES,
            observer: None,
            cluster: ClusterOptions::default(),
            tuning: Tuning::DEFAULT,
        }
    }
}

/// The id a new data directory takes when none is given: a first node, as every node was
/// before clusters.
pub const FIRST_NODE_ID: u64 = 1;

/// How a store takes part in a cluster. The default is today's single node: node
/// [`FIRST_NODE_ID`], no peers, initialising a cluster of one on first start.
#[derive(Clone)]
pub struct ClusterOptions {
    /// The node id a data directory created now takes (`None`: [`FIRST_NODE_ID`]). An existing
    /// directory keeps its own and refuses to open with a different one.
    pub node_id: Option<u64>,
    /// The cluster id a data directory created now takes: a joining node takes its cluster's
    /// (from the join ticket), so Lite cursors carry over between the cluster's nodes.
    /// `None`: a new random id, as for a first node. An existing directory keeps its own.
    pub cluster_id: Option<String>,
    /// How peers reach this node; recorded in the membership when it initialises a cluster.
    pub node_info: NodeInfo,
    /// How this node reaches its peers.
    pub transport: Arc<dyn RaftTransport>,
    /// What a pristine store does.
    pub start: ClusterStart,
    pub timing: RaftTiming,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node_id: None,
            cluster_id: None,
            node_info: NodeInfo::default(),
            transport: Arc::new(NoPeers),
            start: ClusterStart::Initialise,
            timing: RaftTiming::DEFAULT,
        }
    }
}

/// What a store that never was part of a cluster does when it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterStart {
    /// Initialise a cluster of one with itself and wait to lead it (`outpost serve`'s first
    /// start).
    Initialise,
    /// Wait for a cluster's leader to add it: open returns at once.
    Join,
}

/// Raft's clock. Openraft's defaults, which suit a LAN; a wider network needs longer ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    /// How often a leader tells followers it is alive.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_min: Duration,
    pub election_max: Duration,
    /// How long a leader gives one snapshot message to arrive and be installed. Openraft's
    /// 200 ms is too short for a snapshot of many zones: 30 s.
    pub install_snapshot: Duration,
    /// How long `Store::write` and the membership changes wait for the commit before giving
    /// up with a timeout (the entry may still commit later). Bounds a write in a minority
    /// partition, which can never commit.
    pub commit: Duration,
}

impl RaftTiming {
    pub const DEFAULT: RaftTiming = RaftTiming {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(150),
        election_max: Duration::from_millis(300),
        install_snapshot: Duration::from_secs(30),
        commit: Duration::from_secs(60),
    };
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming::DEFAULT
    }
}

/// When a node snapshots its state and purges its log (`[cluster]` in the config; tests shrink
/// them to make followers catch up by snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_every_entries: u64,
    /// Entries already in a snapshot that stay in the log, for followers slightly behind.
    pub log_entries_kept_after_snapshot: u64,
}

impl Tuning {
    pub const DEFAULT: Tuning = Tuning {
        snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES,
        log_entries_kept_after_snapshot: LOG_ENTRIES_KEPT_AFTER_SNAPSHOT,
    };

    pub(super) fn raft_config(
        self,
        timing: &RaftTiming,
    ) -> Result<openraft::Config, openraft::ConfigError> {
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "outpost".to_string(),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.log_entries_kept_after_snapshot,
            heartbeat_interval: millis(timing.heartbeat),
            election_timeout_min: millis(timing.election_min),
            election_timeout_max: millis(timing.election_max),
            install_snapshot_timeout: millis(timing.install_snapshot),
            // A node cut off (or restarted) asks before it campaigns, so coming back does not
            // raise the term and unseat a healthy leader. `pre_vote` goes over the wire.
            enable_pre_vote: Some(true),
            ..openraft::Config::default()
        }
        .validate()
    }
}
