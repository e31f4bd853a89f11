//! Integration tests: each test starts real `outpost` processes on 127.0.0.1 port 0,
//! each in its own temporary directory, and talks to them as a user would: DNS over
//! real UDP and TCP sockets, the admin API, the CLI and signals. One binary, one
//! module per area; the harness is the `outpost_tests` library (`tests/lib.rs`).
//!
//! Run: `cargo build --workspace --bins && cargo test -p outpost-tests` (the harness
//! starts the `outpost` and `outpost-lite` binaries).
//!
//! # Layout
//! - [`authoritative`]: answers from our zones (AA, NXDOMAIN/NODATA, CNAME, wildcards,
//!   referrals, REFUSED).
//! - [`edns_tcp`]: EDNS payload sizes, truncation, TCP.
//! - [`encrypted`]: DoT and DoH asked with `kdig`, the same answers as over UDP; bad
//!   certificate files.
//! - [`malformed`]: bad packets, other opcodes, incoming responses.
//! - [`rate_limit`]: response rate limiting over UDP: allowance, slip, drops, TCP and
//!   recursing clients exempt.
//! - [`rfc8906`]: the query shapes real resolvers send: every type, unknown EDNS options
//!   and flags, the header's Z bit, minimal ANY (RFC 8482).
//! - [`forwarding`]: a second `outpost` as the upstream; cache, serve-stale, access.
//! - [`durability`]: kill -9 and restarts, SIGTERM and SIGINT.
//! - [`cluster`]: 3 and 5 processes joined by ticket over iroh: relayed writes, kill -9 of
//!   the leader under writes, catch-up by snapshot after SIGSTOP, a minority refusing writes,
//!   removals, refused tickets.
//! - [`partition`]: a node's Raft traffic cut with iptables while Lite clients stay
//!   attached (a follower behind the purged log, with plugins and a zone deleted in the
//!   gap; an isolated leader; a Lite client moved to a node behind it), each ending with
//!   the convergence checker, under three seeds.
//! - [`console`]: the web console in a real headless Chromium: sign-in, records,
//!   the live query log, a blocked query, a revoked Lite token, a cluster of three and a
//!   quorum refusal, axe-core on every page; the session's refusals over HTTP.
//! - [`dashboards`]: the Grafana dashboard reads only metrics the daemons export.
//! - [`admin_cli`]: the CLI (`zone`, `record`, `status`, `check-config`).
//! - [`admin_api`]: the HTTP API's errors, its token, `/metrics`.
//! - [`admin_limits`]: slow, silent and idle admin clients closed past the header-read
//!   timeout, the connection cap, a polite client served meanwhile.
//! - [`lite`]: the Lite client against a real appliance: propagation, offline
//!   answers, tokens, scope.
//! - [`lite_flood`]: a Lite client syncs through an unauthenticated flood of the sync
//!   port; the pre-auth pool's per-source cap and deadline hold.
//! - [`lite_page`]: the Lite client's page on loopback: HTML, status, queries, metrics,
//!   refusals.
//! - [`lite_resolver`]: split DNS for the replica's zones (`outpost-lite resolver`),
//!   kept in step with the token's scope.
//! - [`lite_resync`]: a Lite client that was away: resume, snapshot, another cluster.
//! - [`lite_protocol`]: the Lite client against a scripted fake appliance (unknown,
//!   malformed and oversized frames).
//! - [`plugins`]: WebAssembly plugins on the appliance: blocklist, split horizon,
//!   record transforms, hostile plugins under fail-closed and fail-open, refused
//!   installs, kill -9.
//! - [`plugins_limits`]: a plugin cannot take the node down: two memories held to
//!   one cap, a stopped plugin retried after its backoff.
//! - [`plugins_lite`]: query-policy plugins synced to a Lite client and run there,
//!   offline too.
//! - [`transfers_out`]: a real Knot as the secondary of outpost and of a cluster:
//!   AXFR, IXFR woken by NOTIFY, TSIG; transfers refused unsigned or with a wrong key.
//! - [`docs`]: Lite clients with `--docs` keeping each other current through an export,
//!   the cluster gone; a forged author's entries counted and refused.
//! - [`satellite`]: `serve --satellite`: answers, writes refused, offline restarts, a
//!   ticket whose giver was killed, DoT/DoH/DoQ and rate limiting, `/metrics` and
//!   `/v1/querylog`.
//! - [`systemd`]: readiness, watchdog and stop notifications, SIGHUP reload without a
//!   failed query, the root refusal, `outpost-lite run --token-file`.

mod admin_api;
mod admin_cli;
mod admin_limits;
mod authoritative;
mod cluster;
mod console;
mod cookies;
mod dashboards;
mod docs;
mod durability;
mod edns_tcp;
mod encrypted;
mod encrypted_limits;
mod encrypted_upstreams;
mod forwarding;
mod forwarding_zones;
mod listen;
mod lite;
mod lite_flood;
mod lite_page;
mod lite_protocol;
mod lite_resolver;
mod lite_resync;
mod malformed;
mod partition;
mod plugins;
mod plugins_limits;
mod plugins_lite;
mod rate_limit;
mod rfc8906;
mod satellite;
mod sources;
mod systemd;
mod transfers_in;
mod transfers_out;
mod zone_interop;
