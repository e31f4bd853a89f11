#!/usr/bin/env bash
# Cluster write benchmark (issue 3). Not a test: it prints figures beside the targets,
# and fails only when it cannot measure.
#
# usage: bench/cluster.sh
# env:   WRITES             writes in each write phase (default 2000)
#        CLIENTS            concurrent clients of the throughput phase (default 16)
#        IMPORT_RECORDS     records of the zone import (default 100000)
#        LARGE_ZONE_WRITES  single writes into the imported zone afterwards (default 200)
#        BENCH_DIR          work folder (default /tmp/outpost-cluster-bench; recreated)
#        LOG                the nodes' log filter (default warn)
#        SKIP_BUILD=1       use the release binaries already in target/ as they are
#
# What it does, on loopback only: builds outpost and sync-bench in release; starts
# three `outpost serve` on port 0 everywhere (no example zone, no recursion), each with
# its own data directory under BENCH_DIR, on whatever disk that is (every commit is
# fsynced there): node 1 alone, then nodes 2 and 3, each with a ticket from `outpost
# cluster invite`; waits until the cluster has three voters; creates zone bench.test.;
# runs `sync-bench cluster`: WRITES single writes one at a time to the leader, then as
# many through a follower (which forwards them), each timed from just before it is
# sent to its 2xx (committed on a majority, applied on the leader); WRITES writes from
# CLIENTS concurrent clients to the leader; one IMPORT_RECORDS-record zone import (one
# Raft entry) timed to its 2xx and until both followers applied it; LARGE_ZONE_WRITES
# single writes to the leader into that large zone; reads each node's VmRSS (the large
# zone held); stops the nodes (followers first)
# and times it; prints the summary with the targets, the machine's load and the
# nodes' warnings; stops everything it started, on failure too. The three
# nodes and the bench share the machine's cores: figures from a shared 2-core machine
# move by a factor of two between runs, so compare runs made together.
set -euo pipefail

WRITES=${WRITES:-2000}
CLIENTS=${CLIENTS:-16}
IMPORT_RECORDS=${IMPORT_RECORDS:-100000}
LARGE_ZONE_WRITES=${LARGE_ZONE_WRITES:-200}
LOG=${LOG:-warn}
ORIGIN=bench.test.
NODES=3
# Longest wait for one node to be ready: a joiner keeps asking for up to 120 s.
READY_TIMEOUT_SECS=150
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BENCH_DIR=${BENCH_DIR:-/tmp/outpost-cluster-bench}
RUN=$BENCH_DIR/run

. "$repo/bench/lib.sh"
for tool in python3 setsid; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

# --- build ---------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "SKIP_BUILD=1: using the release binaries as they are"
else
  log "building outpost and sync-bench (release)"
  cargo build --release -p outpost-appliance -p outpost-sync-bench --bin outpost --bin sync-bench >&2
fi
BIN=${CARGO_TARGET_DIR:-$repo/target}/release
OUTPOST=$BIN/outpost
BENCH=$BIN/sync-bench
for binary in "$OUTPOST" "$BENCH"; do
  [ -x "$binary" ] || { echo "bench: $binary was not built" >&2; exit 1; }
done

rm -rf "$RUN"
mkdir -p "$RUN"
SUMMARY=$RUN/summary.txt
CONFIG=$RUN/outpost.toml
write_authoritative_config "$CONFIG"

# --- nodes -----------------------------------------------------------------------------
# node_pids[N] and admins[N]: node N's process and admin address (data in $RUN/nodeN).
node_pids=()
admins=()
outpost_pid=""
# stop_nodes: the followers first, then node 1; says how long each took in $stop_times.
stop_times=""
stop_nodes() {
  local n started
  for n in $(seq "$NODES" -1 1); do
    [ -n "${node_pids[n]:-}" ] || continue
    started=$EPOCHREALTIME
    stop_pid "${node_pids[n]}" "node $n"
    unset 'node_pids[n]'
    stop_times+=" node $n $(awk -v from="$started" -v to="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", to - from }'),"
  done
}
trap stop_nodes EXIT

# busiest, but none of our nodes.
busy_others() {
  local ours
  ours=$(IFS='|'; echo "${node_pids[*]}")
  busiest | grep -vE "\(pid ($ours)\)" || true
}

load_before=$(machine)
busy_before=$(busiest)
log "starting $NODES nodes ($load_before)"
form_cluster "$NODES"
outpost_pid=${node_pids[1]}
"$OUTPOST" cluster --admin "${admins[1]}" --data-dir "$RUN/node1" status >&2
"$OUTPOST" zone --admin "${admins[1]}" --data-dir "$RUN/node1" create "$ORIGIN" >&2

# --- measure ---------------------------------------------------------------------------
log "sync-bench cluster: $WRITES writes per phase, $CLIENTS clients, a $IMPORT_RECORDS-record import"
node_args=()
for n in $(seq 1 "$NODES"); do node_args+=(--node "$RUN/node$n"); done
"$BENCH" cluster "${node_args[@]}" --origin "$ORIGIN" --writes "$WRITES" \
  --clients "$CLIENTS" --import-records "$IMPORT_RECORDS" \
  --large-zone-writes "$LARGE_ZONE_WRITES" --summary "$SUMMARY"
load_after=$(machine)
busy_after=$(busy_others)
stop_nodes

# --- summary ---------------------------------------------------------------------------
echo
echo "== Cluster write benchmark: $NODES nodes on loopback, $WRITES writes per phase, $CLIENTS clients, $IMPORT_RECORDS-record import"
printf '%-44s %22s   %-12s %s\n' "figure" "measured" "target" "within"
cat "$SUMMARY"
echo "machine: before $load_before; at the end $load_after"
if [ -n "$busy_before$busy_after" ]; then
  echo "other busy processes (%CPU) at the start:"
  echo "${busy_before:-  none}"
  echo "other busy processes (%CPU) at the end:"
  echo "${busy_after:-  none}"
fi
echo "stopped (SIGTERM to exit):${stop_times%,}"
for n in $(seq 1 "$NODES"); do
  printf 'node %s log: %s (%s lines at warn or above)\n' "$n" "$RUN/node$n.log" \
    "$(grep -cE ' (WARN|ERROR) ' "$RUN/node$n.log" || true)"
done
