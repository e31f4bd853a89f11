//! A cluster of real stores (redb files in temporary directories, real Raft) joined by a
//! [`TestNetwork`]: the in-process transport for the cluster and chaos tests, real iroh
//! endpoints on loopback for the iroh tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use super::super::network::in_process::InProcessNet;
use super::*;

/// Raft's clock in these tests: elections a little slower than openraft's defaults, so a
/// loaded CI machine does not depose healthy leaders all the time; a short commit timeout, so
/// a write that cannot commit fails fast.
pub(super) const TEST_TIMING: RaftTiming = RaftTiming {
    heartbeat: Duration::from_millis(50),
    election_min: Duration::from_millis(300),
    election_max: Duration::from_millis(600),
    install_snapshot: Duration::from_secs(5),
    commit: Duration::from_secs(2),
};

/// How long a test waits for a cluster to agree before failing.
pub(super) const CONVERGE_WAIT: Duration = Duration::from_secs(15);

/// How the nodes of a [`TestCluster`] reach each other.
pub(super) trait TestNetwork {
    /// Readies node `id`, whose files are in `dir`, to open: the transport it calls its peers
    /// with and how they reach it.
    async fn prepare(&mut self, id: u64, dir: &Path) -> (Arc<dyn RaftTransport>, NodeInfo);
    /// Starts serving the RPCs of the node `handler` belongs to.
    async fn serve(&mut self, handler: RaftRpcHandler);
    /// Stops delivering to node `id`, as if it crashed.
    async fn crash(&mut self, id: u64);
    /// How peers reach node `id` (prepared at least once).
    fn address(&self, id: u64) -> NodeInfo;
}

impl TestNetwork for InProcessNet {
    async fn prepare(&mut self, id: u64, _dir: &Path) -> (Arc<dyn RaftTransport>, NodeInfo) {
        (self.transport(id), address(id))
    }

    async fn serve(&mut self, handler: RaftRpcHandler) {
        self.register(handler);
    }

    async fn crash(&mut self, id: u64) {
        InProcessNet::crash(self, id);
    }

    fn address(&self, id: u64) -> NodeInfo {
        address(id)
    }
}

pub(super) struct TestCluster<N: TestNetwork = InProcessNet> {
    pub(super) net: N,
    dirs: BTreeMap<u64, TempDir>,
    /// The running stores; a crashed node is absent until restarted.
    pub(super) stores: BTreeMap<u64, Store>,
    /// What each running node's store published since it was last opened.
    pub(super) events: BTreeMap<u64, Arc<super::Recorder>>,
    tuning: Tuning,
    timing: RaftTiming,
}

pub(super) fn address(id: u64) -> NodeInfo {
    NodeInfo::new(format!("in-process:{id}"))
}

impl TestCluster<InProcessNet> {
    /// Node 1 initialises a cluster, nodes 2..=n join as learners and become voters.
    pub(super) async fn start(nodes: u64, seed: u64, tuning: Tuning) -> TestCluster {
        TestCluster::start_with(nodes, seed, tuning, TEST_TIMING).await
    }

    pub(super) async fn start_with(
        nodes: u64,
        seed: u64,
        tuning: Tuning,
        timing: RaftTiming,
    ) -> TestCluster {
        TestCluster::start_on(InProcessNet::new(seed), nodes, tuning, timing).await
    }
}

impl<N: TestNetwork> TestCluster<N> {
    /// Node 1 initialises a cluster over `net`, nodes 2..=n join as learners and become voters.
    pub(super) async fn start_on(
        net: N,
        nodes: u64,
        tuning: Tuning,
        timing: RaftTiming,
    ) -> TestCluster<N> {
        let mut cluster = TestCluster {
            net,
            dirs: BTreeMap::new(),
            stores: BTreeMap::new(),
            events: BTreeMap::new(),
            tuning,
            timing,
        };
        for id in 1..=nodes {
            cluster
                .dirs
                .insert(id, tempfile::tempdir().expect("tempdir"));
            let start = if id == 1 {
                ClusterStart::Initialise
            } else {
                ClusterStart::Join
            };
            cluster.open(id, start).await;
        }
        let leader = cluster.store(1);
        for id in 2..=nodes {
            leader
                .add_learner(id, cluster.net.address(id))
                .await
                .expect("add learner");
        }
        leader
            .add_voters((2..=nodes).collect())
            .await
            .expect("promote learners");
        cluster
    }

    fn options(
        &self,
        id: u64,
        start: ClusterStart,
        transport: Arc<dyn RaftTransport>,
        node_info: NodeInfo,
    ) -> StoreOptions {
        StoreOptions {
            cluster: ClusterOptions {
                node_id: Some(id),
                // Joining nodes take the first node's cluster id, as from a join ticket.
                cluster_id: self
                    .stores
                    .get(&1)
                    .map(|first| first.cluster_id().to_string()),
                node_info,
                transport,
                start,
                timing: self.timing,
            },
            ..StoreOptions::default()
        }
    }

    /// Node `id`'s published events since it was last opened.
    pub(super) fn events(&self, id: u64) -> &super::Recorder {
        self.events.get(&id).expect("node was opened")
    }

    /// Opens node `id`'s store on its files and starts serving its RPCs.
    pub(super) async fn open(&mut self, id: u64, start: ClusterStart) {
        let dir = self.dirs.get(&id).expect("node has a directory").path();
        let (transport, node_info) = self.net.prepare(id, dir).await;
        let mut options = self.options(id, start, transport, node_info);
        let recorder = Arc::new(super::Recorder::default());
        options.observer = Some(recorder.clone());
        self.events.insert(id, recorder);
        let store = Store::open_tuned(dir, self.tuning, options)
            .await
            .expect("open store");
        assert_eq!(store.node_id(), id);
        self.net.serve(store.rpc_handler()).await;
        self.stores.insert(id, store);
    }

    /// Opens a new node `id` that waits to be added to the cluster.
    pub(super) async fn open_joiner(&mut self, id: u64) {
        self.dirs.insert(id, tempfile::tempdir().expect("tempdir"));
        self.open(id, ClusterStart::Join).await;
    }

    pub(super) fn store(&self, id: u64) -> &Store {
        self.stores.get(&id).expect("node is running")
    }

    /// Node `id`'s data directory.
    pub(super) fn dir(&self, id: u64) -> &Path {
        self.dirs.get(&id).expect("node has a directory").path()
    }

    pub(super) fn ids(&self) -> BTreeSet<u64> {
        self.dirs.keys().copied().collect()
    }

    /// Stops node `id` as a crash would: no more messages reach it, Raft stops, the file
    /// closes (every acknowledged write was fsynced, so nothing durable is lost).
    pub(super) async fn crash(&mut self, id: u64) {
        self.net.crash(id).await;
        if let Some(store) = self.stores.remove(&id) {
            store.shutdown().await.expect("shutdown");
        }
    }

    /// Restarts a crashed node on its own files.
    pub(super) async fn restart(&mut self, id: u64) {
        self.open(id, ClusterStart::Join).await;
    }

    /// A running node that calls itself leader, the one with the highest term if several do
    /// (an old leader cut off may not know yet).
    pub(super) fn leader(&self) -> Option<u64> {
        self.stores
            .iter()
            .map(|(id, store)| (*id, store.status()))
            .filter(|(_, status)| status.state == NodeState::Leader)
            .max_by_key(|(_, status)| status.term)
            .map(|(id, _)| id)
    }

    /// Waits until some running node leads, other than those in `not`.
    pub(super) async fn wait_for_leader(&self, not: &[u64]) -> u64 {
        let deadline = Instant::now() + CONVERGE_WAIT;
        loop {
            if let Some(id) = self.leader().filter(|id| !not.contains(id)) {
                return id;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes through whichever node leads, retrying while leadership moves, until `wait`.
    pub(super) async fn write(
        &self,
        command: Command,
        wait: Duration,
    ) -> Result<Written, WriteError> {
        self.write_via(None, command, wait).await
    }

    /// Writes through node `via` (relayed when it does not lead), or the leader when `None`
    /// or not running; retries while leadership moves, until `wait`.
    pub(super) async fn write_via(
        &self,
        via: Option<u64>,
        command: Command,
        wait: Duration,
    ) -> Result<Written, WriteError> {
        let deadline = Instant::now() + wait;
        loop {
            let node = via
                .filter(|id| self.stores.contains_key(id))
                .or_else(|| self.leader());
            let attempt = match node {
                Some(id) => self.store(id).write(command.clone()).await,
                None => Err(WriteError::Leader(LeaderError::NotLeader { leader: None })),
            };
            match attempt {
                Err(
                    WriteError::Leader(LeaderError::NotLeader { .. })
                    | WriteError::Timeout { .. }
                    | WriteError::Leader(LeaderError::Unreachable { .. })
                    | WriteError::Raft(_),
                ) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Waits until every running node has applied the same index, at least `at_least`, and
    /// holds the same zones; returns those zones' changes.
    pub(super) async fn converge(&self, at_least: u64) -> Vec<Change> {
        let deadline = Instant::now() + CONVERGE_WAIT;
        loop {
            let views: Vec<(u64, Arc<View>)> = self
                .stores
                .iter()
                .map(|(id, store)| (*id, store.view()))
                .collect();
            let first = &views[0].1;
            let agreed = first.applied >= at_least
                && views
                    .iter()
                    .all(|(_, view)| view.applied == first.applied && view.zones == first.zones);
            if agreed {
                return first.zones.to_changes();
            }
            if Instant::now() >= deadline {
                let applied: Vec<(u64, u64)> =
                    views.iter().map(|(id, view)| (*id, view.applied)).collect();
                let statuses: Vec<StoreStatus> = self.stores.values().map(Store::status).collect();
                panic!("nodes did not converge: applied {applied:?}, status {statuses:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn shutdown(mut self) {
        for id in self.ids() {
            self.crash(id).await;
        }
    }
}
