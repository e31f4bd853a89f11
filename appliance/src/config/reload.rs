//! What a reload (SIGHUP) cannot apply: the keys whose change needs a restart.

use super::Config;

impl Config {
    /// The keys whose new value in `next` a running node cannot apply: they take
    /// effect at the next start. Every field is named below (no `..`), so a new field
    /// does not compile until it is classified: applied live, or a restart's.
    pub fn restart_required(&self, next: &Config) -> Vec<&'static str> {
        let Config {
            data_dir,
            // Read on a first start only.
            example_zone: _,
            allow_root,
            // Applied live (`Node::reload` and the log filter's reload handle).
            log: _,
            dns,
            udp_workers,
            admin,
            sync,
            recursion_networks: _,
            rate_limit: _,
            full_any_over_tcp: _,
            encrypted,
            forward: _,
            raft,
            join,
            commit_timeout,
            snapshots,
            // Every plugin is loaded with them when the node starts.
            plugins,
            // Applied live (`Node::reload`): transfers and NOTIFYs under way finish with
            // the rules they started with; the sources' watcher reads the new list at its
            // next poll; a smaller query log capacity drops the oldest queries at once.
            transfer: _,
            sources: _,
            query_log: _,
            // Compared in `export_restart_required` (config/satellite.rs).
            export_listen: _,
            satellite: _,
        } = self;
        let tls = |config: &Config| config.sync.tls.clone();
        let changed = [
            ("data_dir", *data_dir != next.data_dir),
            ("dns.listen", *dns != next.dns),
            ("dns.udp_workers", *udp_workers != next.udp_workers),
            ("admin.listen", *admin != next.admin),
            ("sync.listen", sync.listen != next.sync.listen),
            (
                "sync.tls_cert",
                tls(self).map(|tls| tls.cert) != tls(next).map(|tls| tls.cert),
            ),
            (
                "sync.tls_key",
                tls(self).map(|tls| tls.key) != tls(next).map(|tls| tls.key),
            ),
            (
                "sync.history_entries",
                sync.history_entries != next.sync.history_entries,
            ),
            ("allow_root", *allow_root != next.allow_root),
            ("cluster.raft", *raft != next.raft),
            ("cluster.join", *join != next.join),
            (
                "cluster.commit_timeout_ms",
                *commit_timeout != next.commit_timeout,
            ),
            (
                "cluster.snapshot_every_entries",
                *snapshots != next.snapshots,
            ),
            (
                "plugins.policy_deadline_ms",
                plugins.policy != next.plugins.policy,
            ),
            (
                "plugins.transform_deadline_ms",
                plugins.transform != next.plugins.transform,
            ),
        ];
        changed
            .into_iter()
            .chain(encrypted.restart_required(&next.encrypted))
            .chain(self.export_restart_required(next))
            .filter_map(|(key, changed)| changed.then_some(key))
            .collect()
    }
}
