#!/usr/bin/env bash
# Lite sync benchmark (issue 4). Not a test: it prints figures beside the targets, and
# fails only when it cannot measure.
#
# usage: bench/sync.sh
# env:   SESSIONS          concurrent raw sessions (default 1000)
#        WRITES            single-record writes, 20 ms apart (default 200)
#        IMPORT_RECORDS    records of the import timed at every session (default 10000)
#        SNAPSHOT_RECORDS  records of the zone a new Lite client takes (default 100000)
#        BENCH_DIR         work folder (default /tmp/outpost-sync-bench; recreated)
#        FANOUT_ARGS       more flags for `sync-bench fanout` (e.g. --full-decode)
#        SKIP_BUILD=1      use the release binaries already in target/ as they are
#
# What it does, on loopback only: builds outpost, outpost-lite and sync-bench in
# release; starts `outpost serve` on port 0 everywhere (no example zone, no
# recursion); creates zone bench.test. and a Lite token for it; runs `sync-bench
# fanout` (SESSIONS raw sessions take their snapshot, then WRITES single writes and one
# IMPORT_RECORDS import through the admin API, each timed from just before it is sent
# to its receipt at every session; the appliance's memory with the sessions open);
# reads the appliance's VmRSS once the sessions closed; imports a SNAPSHOT_RECORDS
# zone; runs `sync-bench lite` (one real outpost-lite with an empty data dir: time to
# Synced at the head, VmHWM, then VmRSS; then restarted on its replica, VmRSS again);
# prints the summary with the targets and the machine's load; stops everything it
# started. Figures from a shared 2-core machine move by a factor of two between runs:
# compare runs made together.
set -euo pipefail

SESSIONS=${SESSIONS:-1000}
WRITES=${WRITES:-200}
IMPORT_RECORDS=${IMPORT_RECORDS:-10000}
SNAPSHOT_RECORDS=${SNAPSHOT_RECORDS:-100000}
ORIGIN=bench.test.
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BENCH_DIR=${BENCH_DIR:-/tmp/outpost-sync-bench}
RUN=$BENCH_DIR/run

. "$repo/bench/lib.sh"
for tool in python3 setsid; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

# --- file descriptors: one socket per session in sync-bench and one in outpost -------
need=$((SESSIONS + 1024))
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
  if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
    ulimit -n 65536
  elif [ "$hard" -ge "$need" ]; then
    ulimit -n "$hard"
  else
    echo "bench: $SESSIONS sessions need $need file descriptors; the hard limit is $hard (raise it, or lower SESSIONS)" >&2
    exit 1
  fi
fi
log "file descriptor limit $(ulimit -Sn)"

# --- build ---------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "SKIP_BUILD=1: using the release binaries as they are"
else
  log "building outpost, outpost-lite and sync-bench (release)"
  cargo build --release -p outpost-appliance -p outpost-lite -p outpost-sync-bench >&2
fi
BIN=${CARGO_TARGET_DIR:-$repo/target}/release
OUTPOST=$BIN/outpost
LITE=$BIN/outpost-lite
BENCH=$BIN/sync-bench
for binary in "$OUTPOST" "$LITE" "$BENCH"; do
  [ -x "$binary" ] || { echo "bench: $binary was not built" >&2; exit 1; }
done

rm -rf "$RUN"
mkdir -p "$RUN"
DATA=$RUN/outpost-data
LITE_DATA=$RUN/lite-data
SUMMARY=$RUN/summary.txt
CONFIG=$RUN/outpost.toml
write_authoritative_config "$CONFIG"

# --- outpost ---------------------------------------------------------------------------
outpost_pid=""
cleanup() {
  # sync-bench stops its outpost-lite itself; this is for when it could not.
  [ -f "$RUN/lite.pid" ] && stop_pid "$(cat "$RUN/lite.pid")" outpost-lite
  stop_pid "$outpost_pid" outpost
}
trap cleanup EXIT

load_before=$(machine)
busy_before=$(busiest)
log "starting outpost ($load_before)"
setsid "$OUTPOST" serve --allow-root --config "$CONFIG" --data-dir "$DATA" \
  --dns 127.0.0.1:0 --admin 127.0.0.1:0 --sync 127.0.0.1:0 --log warn \
  > "$RUN/outpost.log" 2>&1 < /dev/null &
outpost_pid=$!

# `field NAME`: a value of addresses.json once it names our process, else nothing.
field() {
  python3 - "$DATA/addresses.json" "$outpost_pid" "$1" <<'EOF' 2>/dev/null || true
import json, sys
value = json.load(open(sys.argv[1]))
if value.get("pid") == int(sys.argv[2]) and sys.argv[3] in value:
    print(value[sys.argv[3]])
EOF
}
for _ in $(seq 1 200); do
  [ -n "$(field sync)" ] && break
  kill -0 "$outpost_pid" 2>/dev/null || { echo "bench: outpost exited; log:" >&2; tail -20 "$RUN/outpost.log" >&2; exit 1; }
  sleep 0.1
done
ADMIN=$(field admin)
SYNC=$(field sync)
[ -n "$SYNC" ] || { echo "bench: $DATA/addresses.json has no \"sync\" entry after 20 s" >&2; exit 1; }
log "outpost (pid $outpost_pid): admin $ADMIN, sync $SYNC"

"$OUTPOST" zone --admin "$ADMIN" --data-dir "$DATA" create "$ORIGIN" >&2
TOKEN=$("$OUTPOST" lite-token --admin "$ADMIN" --data-dir "$DATA" create --name sync-bench --zones "$ORIGIN" | tail -n 1)
[ -n "$TOKEN" ] || { echo "bench: outpost lite-token create printed no token" >&2; exit 1; }

# --- fanout: raw sessions ------------------------------------------------------------
log "sync-bench fanout: $SESSIONS sessions, $WRITES writes, a $IMPORT_RECORDS-record import"
# shellcheck disable=SC2086 # FANOUT_ARGS is a list of flags
"$BENCH" fanout --data-dir "$DATA" --token "$TOKEN" --origin "$ORIGIN" \
  --sessions "$SESSIONS" --writes "$WRITES" --import-records "$IMPORT_RECORDS" \
  --summary "$SUMMARY" ${FANOUT_ARGS:-}
load_fanout=$(machine)
busy_fanout=$(busiest)
sleep 2
rss=$(awk '/^VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$outpost_pid/status")
printf '%-44s %22s   %-12s %s\n' "appliance VmRSS, sessions closed" "$rss" "-" "-" >> "$SUMMARY"

# --- a new Lite client takes a large snapshot ------------------------------------------
log "importing a $SNAPSHOT_RECORDS-record zone"
"$BENCH" zone-file --origin "$ORIGIN" --records "$SNAPSHOT_RECORDS" > "$RUN/snapshot.zone"
imported=$("$OUTPOST" zone --admin "$ADMIN" --data-dir "$DATA" import "$RUN/snapshot.zone" --origin "$ORIGIN")
echo "$imported" >&2
INDEX=$(printf '%s\n' "$imported" | sed -n 's/.*(index \([0-9]*\)).*/\1/p')
[ -n "$INDEX" ] || { echo "bench: no index in \"$imported\"" >&2; exit 1; }

log "sync-bench lite: one outpost-lite, empty data dir"
LAST_HOST=$(printf 'h%06d.%s' $((SNAPSHOT_RECORDS - 3)) "$ORIGIN")
"$BENCH" lite --lite-bin "$LITE" --appliance "ws://$SYNC" --token "$TOKEN" \
  --data-dir "$LITE_DATA" --expect-records "$SNAPSHOT_RECORDS" --expect-index "$INDEX" \
  --check-name "$LAST_HOST" --log-file "$RUN/lite.log" --pid-file "$RUN/lite.pid" \
  --summary "$SUMMARY"
load_after=$(machine)

# --- summary ---------------------------------------------------------------------------
echo
echo "== Lite sync benchmark: $SESSIONS sessions, $WRITES single writes, $IMPORT_RECORDS-record import, $SNAPSHOT_RECORDS-record snapshot"
printf '%-44s %22s   %-12s %s\n' "figure" "measured" "target" "within"
cat "$SUMMARY"
echo "machine: before $load_before; after fanout $load_fanout; at the end $load_after"
if [ -n "$busy_before$busy_fanout" ]; then
  echo "other busy processes (%CPU) at the start:"
  echo "${busy_before:-  none}"
  echo "other busy processes (%CPU) after fanout:"
  echo "${busy_fanout:-  none}"
fi
echo "logs: $RUN/outpost.log, $RUN/lite.log"
