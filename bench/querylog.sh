#!/usr/bin/env bash
# What the query log costs on the fast path, and what it holds in memory: three outposts
# serving the kit's 10,000-record zone on the same core, `[query_log] mode = "off"`, the
# default (every query kept, capacity 10,000) and capacity 1,000,000, measured with
# dnsperf in turn in the same run; then each one's RSS, its log full (every run sends
# millions of queries). Not a test: it prints figures.
#
# usage: bench/querylog.sh [ROUNDS=3] [SECONDS=10]
# env:   BENCH_DIR, SHARED_BENCH, SERVER_CPU, NICE, SUMMARY as for bench/authoritative.sh
set -euo pipefail

ROUNDS=${1:-3}
SECS=${2:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KIT=$(cd "${SHARED_BENCH:-../shared/bench}" && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/outpost-bench}
export SERVER_CPU=${SERVER_CPU:-0}
export NICE=${NICE:--10}
. "$repo/bench/lib.sh"

install_missing dnsperf:dnsperf dig:bind9-dnsutils
"$KIT/setup.sh" >&2
RUN=$BENCH_DIR/run
ZONE=$BENCH_DIR/zones/example.test.zone
log "building outpost (release)"
cargo build --release -p outpost-appliance --bin outpost >&2
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost

VARIANTS=(off on big)
declare -A PORT_OF=() PID_OF=()
cleanup() { for variant in "${!PID_OF[@]}"; do stop_pid "${PID_OF[$variant]}" "outpost ($variant)"; done; }
trap cleanup EXIT

for variant in "${VARIANTS[@]}"; do
  config=$BENCH_DIR/conf/outpost-log-$variant.toml
  write_authoritative_config "$config" 1
  case $variant in
    off) printf '\n[query_log]\nmode = "off"\n' >> "$config" ;;
    big) printf '\n[query_log]\ncapacity = 1000000\n' >> "$config" ;;
  esac
  data=$RUN/outpost-log-$variant-data
  rm -rf "$data"
  start_outpost "$config" "$data" "$RUN/outpost-log-$variant.log"
  import_zone "$data" "$ZONE" example.test.
  PORT_OF[$variant]=$OUTPOST_PORT
  PID_OF[$variant]=$outpost_pid
done
outpost_pid=""

results=$BENCH_DIR/results/querylog.tsv
printf 'server\tround\tqps\tsrv_cpu\n' > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for variant in "${VARIANTS[@]}"; do
    err=$BENCH_DIR/results/last-log-$variant.err
    line=$(SERVER_PID=${PID_OF[$variant]} TAG=log-$variant-r$round "$BENCH_DIR/bench_server.sh" \
      "${PORT_OF[$variant]}" 1 "$SECS" 2> "$err")
    run=$(grep '^run' "$err" || true)
    get() { echo "$line $run" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
    printf '%s\t%s\t%s\t%s\n' "$variant" "$round" "$(get qps)" "$(get srv_cpu)" >> "$results"
    printf '%-4s round %s: qps=%s srv_cpu=%s\n' "$variant" "$round" "$(get qps)" "$(get srv_cpu)"
  done
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
kept() {
  local data=$RUN/outpost-log-$1-data
  curl -s -H "Authorization: Bearer $(cat "$data/admin.token")" \
    "http://$(address_of "$data" "${PID_OF[$1]}" admin)/v1/querylog?limit=1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["records"]; print(r[0]["seq"] if r else 0)'
}

echo
echo "query log, UDP, ${SECS}s per run, $ROUNDS rounds, one worker on CPU $SERVER_CPU:"
python3 - "$results" "${SUMMARY:-}" "$(rss "${PID_OF[off]}")" "$(rss "${PID_OF[on]}")" "$(rss "${PID_OF[big]}")" \
  "$(kept on)" "$(kept big)" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(variant, key):
    values = [float(r[key].rstrip("%")) for r in rows if r["server"] == variant and r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
rss = dict(zip(("off", "on", "big"), (int(v) / 1024 for v in sys.argv[3:6])))
names = {"off": "log off", "on": "log on, 10,000 kept", "big": "log on, 1,000,000 kept"}
for variant in ("off", "on", "big"):
    qps, cpu = med(variant, "qps"), med(variant, "srv_cpu")
    print(f"{names[variant]:<24} median {qps:>9,.0f} q/s  server CPU {cpu:.0f}%  "
          f"{cpu / 100 / qps * 1e6:.2f} us/query  RSS {rss[variant]:.1f} MiB")
off, on, big = med("off", "qps"), med("on", "qps"), med("big", "qps")
print(f"log on: {on / off:.3f} x the q/s of log off ({(1 - on / off) * 100:+.1f}% cost; target at most 3%)")
print(f"log at 1,000,000: {big / off:.3f} x ({(1 - big / off) * 100:+.1f}%); "
      f"its memory full: {rss['big'] - rss['off']:.1f} MiB over log off "
      f"({(rss['big'] - rss['off']) * 1024 * 1024 / 1e6:.0f} bytes a query); queries logged: {sys.argv[6]}, {sys.argv[7]}")
if sys.argv[2]:
    with open(sys.argv[2], "a") as out:
        print(f"query log on (udp): q/s\toutpost off\t{on:.3f}\t{off:.3f}", file=out)
EOF
