#!/usr/bin/env bash
# Where outpost's time goes under load: starts outpost (release) serving the kit's
# 10,000-record zone on CPU $SERVER_CPU, drives it with dnsperf on CPU 1, records `perf`
# samples of the outpost process meanwhile, and prints the top frames by self time, so
# work on the fast path starts from data. Not a test.
#
# usage: bench/profile.sh [SECONDS=10]
# env:   MODE=udp|tcp  the transport dnsperf uses (default udp)
#        CALL_GRAPH=1   also record call stacks (DWARF unwinding: larger and slower)
#        TOP=N          frames printed (default 30)
#        BENCH_DIR, SHARED_BENCH, SERVER_CPU, NICE as for bench/authoritative.sh
# Output: the report in $BENCH_DIR/results/profile-$MODE.txt, perf.data beside it
# (`perf report -i …` to explore).
set -euo pipefail

SECS=${1:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KIT=$(cd "${SHARED_BENCH:-../shared/bench}" && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/outpost-bench}
export MODE=${MODE:-udp}
export SERVER_CPU=${SERVER_CPU:-0}
export NICE=${NICE:--10}
TOP=${TOP:-30}
. "$repo/bench/lib.sh"

install_missing dnsperf:dnsperf perf:linux-perf

"$KIT/setup.sh" >&2
RUN=$BENCH_DIR/run
log "building outpost (release)"
cargo build --release -p outpost-appliance --bin outpost >&2
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost

DATA=$RUN/outpost-profile-data
CONFIG=$BENCH_DIR/conf/outpost-profile.toml
rm -rf "$DATA"
write_authoritative_config "$CONFIG"
outpost_pid=""
trap 'stop_pid "$outpost_pid" outpost' EXIT
start_outpost "$CONFIG" "$DATA" "$RUN/outpost-profile.log"
import_zone "$DATA" "$BENCH_DIR/zones/example.test.zone" example.test.

results=$BENCH_DIR/results
mkdir -p "$results"
samples=$results/perf-$MODE.data
graph=()
[ "${CALL_GRAPH:-}" = 1 ] && graph=(--call-graph dwarf,16384)
log "recording $SECS s of outpost under dnsperf ($MODE)"
TAG=profile "$BENCH_DIR/bench_server.sh" "$OUTPOST_PORT" 1 "$((SECS + 2))" > "$results/profile-dnsperf.txt" 2>&1 &
load=$!
sleep 1
perf record -q -F 999 "${graph[@]}" -p "$outpost_pid" -o "$samples" -- sleep "$SECS" >&2
wait "$load"

report=$results/profile-$MODE.txt
perf report -i "$samples" --stdio --no-children --sort dso,symbol 2> /dev/null > "$report"
# Percentage rows only, without the empty columns perf adds after the symbol.
rows() { grep -E '^ +[0-9.]+%' | sed 's/ \+- \+- *$//; s/ *$//' | awk -v n="$1" 'NR <= n'; }
echo "outpost under dnsperf ($MODE, $(tail -1 "$results/profile-dnsperf.txt")):"
echo "where the time goes, by object:"
perf report -i "$samples" --stdio --no-children --sort dso 2> /dev/null | rows 8
echo "top $TOP frames by self time (whole report: $report):"
rows "$TOP" < "$report"
