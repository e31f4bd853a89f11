#!/usr/bin/env bash
# Export benchmark (issue 16). Not a test: it prints figures and fails only when it
# cannot measure.
#
# usage: bench/docs.sh
# env:   RECORDS     records of the exported zone (default 100000)
#        WRITES      single writes timed to the satellite's answer (default 100)
#        BENCH_DIR   work folder (default /tmp/outpost-docs-bench; recreated)
#        SKIP_BUILD=1  use the release binaries already in target/ as they are
#
# What it does, on loopback only: builds outpost and sync-bench in release; starts one
# `outpost serve --export-listen 127.0.0.1:0` (no example zone); runs `sync-bench docs`:
# a RECORDS-record zone imported and exported, a new satellite started from the ticket
# (its time until it holds the import, and its VmRSS then), and WRITES single writes,
# each timed from its commit (the 2xx) to the satellite's first DNS answer holding it;
# prints the figures, the machine's load and the nodes' warnings; stops what it started.
# The node, the satellite and the bench share the machine's cores.
set -euo pipefail

RECORDS=${RECORDS:-100000}
WRITES=${WRITES:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BENCH_DIR=${BENCH_DIR:-/tmp/outpost-docs-bench}
RUN=$BENCH_DIR/run
READY_TIMEOUT_SECS=60

. "$repo/bench/lib.sh"

if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "SKIP_BUILD=1: using the release binaries as they are"
else
  log "building outpost and sync-bench (release)"
  cargo build --release -p outpost-appliance -p outpost-sync-bench --bin outpost --bin sync-bench >&2
fi
BIN=${CARGO_TARGET_DIR:-$repo/target}/release
OUTPOST=$BIN/outpost
BENCH=$BIN/sync-bench

rm -rf "$RUN"
mkdir -p "$RUN"
SUMMARY=$RUN/summary.txt
CONFIG=$RUN/outpost.toml
write_authoritative_config "$CONFIG"

outpost_pid=""
trap 'stop_pid "$outpost_pid" node' EXIT
setsid "$OUTPOST" serve --allow-root --config "$CONFIG" --data-dir "$RUN/node" \
  --dns 127.0.0.1:0 --admin 127.0.0.1:0 --sync 127.0.0.1:0 --export-listen 127.0.0.1:0 \
  --log warn,iroh_docs=error > "$RUN/node.log" 2>&1 < /dev/null &
outpost_pid=$!
admin=""
started=$SECONDS
until [ -n "$admin" ] && admin_ready "$admin"; do
  kill -0 "$outpost_pid" 2>/dev/null || { echo "bench: outpost exited; log:" >&2; tail -20 "$RUN/node.log" >&2; exit 1; }
  [ $((SECONDS - started)) -lt "$READY_TIMEOUT_SECS" ] || { echo "bench: outpost not ready" >&2; exit 1; }
  admin=$(address_of "$RUN/node" "$outpost_pid" admin)
  sleep 0.2
done
load_before=$(machine)
log "node up (pid $outpost_pid, admin $admin); $load_before"

"$BENCH" docs --outpost-bin "$OUTPOST" --node "$RUN/node" --records "$RECORDS" \
  --writes "$WRITES" --work-dir "$RUN/satellite" --summary "$SUMMARY"
node_rss=$(awk '/^VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$outpost_pid/status")
load_after=$(machine)
stop_pid "$outpost_pid" node
outpost_pid=""

echo
echo "== Export benchmark: one node, one satellite, a $RECORDS-record export, $WRITES writes"
printf '%-44s %22s   %-12s %s\n' "figure" "measured" "target" "within"
cat "$SUMMARY"
echo "node VmRSS with the export written and the writes done: $node_rss"
echo "machine: before $load_before; at the end $load_after"
printf 'node log: %s (%s lines at warn or above); satellite log: %s (%s)\n' \
  "$RUN/node.log" "$(grep -cE ' (WARN|ERROR) ' "$RUN/node.log" || true)" \
  "$RUN/satellite/satellite.log" "$(grep -cE ' (WARN|ERROR) ' "$RUN/satellite/satellite.log" || true)"
