#!/usr/bin/env bash
# The fast path against the reference servers, every configuration the targets name, in
# one run: authoritative UDP on one core, UDP on both cores, TCP, each against NSD and
# Knot (bench/authoritative.sh, with latency at a fixed rate and RSS), then cached
# forwarding against Unbound (bench/forward.sh), then what response rate limiting and
# cookies cost (bench/rate_limit.sh: outpost with them against outpost without), then DoT
# and DoH against plain TCP (bench/encrypted.sh). Ends with one table:
# each figure of outpost beside the reference's, and the ratio. Not a test: it prints
# figures.
#
# usage: bench/run.sh [ROUNDS=3] [SECONDS=10]
# env:   BENCH_DIR, SHARED_BENCH, NICE, REFERENCES as for bench/authoritative.sh
#
# Configurations (servers pinned with taskset, dnsperf on CPU 1):
#   udp 1 core    one worker per server on CPU 0
#   udp 2 cores   two workers per server on CPUs 0 and 1 (dnsperf shares CPU 1)
#   tcp 1 core    one worker per server on CPU 0
#   forwarding    one worker on CPU 0, the upstream (NSD) beside dnsperf on CPU 1
#   rate limit    one worker on CPU 0, [dns.rate_limit] on against off, then with cookies
#   encrypted     one worker on CPU 0, DoT and DoH against TCP
set -euo pipefail

ROUNDS=${1:-3}
SECS=${2:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/outpost-bench}
mkdir -p "$BENCH_DIR/results"
export SUMMARY=$BENCH_DIR/results/summary.tsv
: > "$SUMMARY"

LABEL="udp 1 core" MODE=udp SERVER_WORKERS=1 SERVER_CPU=0 \
  "$repo/bench/authoritative.sh" "$ROUNDS" "$SECS"
LABEL="udp 2 cores" MODE=udp SERVER_WORKERS=2 SERVER_CPU=0,1 \
  "$repo/bench/authoritative.sh" "$ROUNDS" "$SECS"
LABEL="tcp 1 core" MODE=tcp SERVER_WORKERS=1 SERVER_CPU=0 \
  "$repo/bench/authoritative.sh" "$ROUNDS" "$SECS"
SERVER_CPU=0 "$repo/bench/forward.sh" "$ROUNDS" "$SECS"
SERVER_CPU=0 "$repo/bench/rate_limit.sh" "$ROUNDS" "$SECS"
SERVER_CPU=0 "$repo/bench/encrypted.sh" "$ROUNDS" "$SECS"

echo
echo "summary, ${SECS}s per run, $ROUNDS rounds (medians; latency and RSS one reading each):"
python3 - "$SUMMARY" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
width = max(len(row[0]) for row in rows)
print(f"{'measure':<{width}}  {'reference':<9} {'outpost':>11} {'reference':>11} {'ratio':>6}")
for measure, ref, ours, theirs in rows:
    ours, theirs = float(ours), float(theirs)
    ratio = ours / theirs if theirs else float("nan")
    print(f"{measure:<{width}}  {ref:<9} {ours:>11,.3f} {theirs:>11,.3f} {ratio:>6.2f}")
print("q/s: higher is better; CPU per query, p99 and RSS: lower is better.")
EOF
