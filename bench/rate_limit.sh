#!/usr/bin/env bash
# What response rate limiting and DNS cookies cost on the fast path: two outposts serving
# the kit's 10,000-record zone on the same core, one with `[dns.rate_limit]` set (at a
# rate dnsperf never reaches, so every answer is counted and none is limited), one
# without, measured with dnsperf in turn in the same run; then the limited one again with
# every query carrying a client cookie (dnsperf -E 10:…), so every answer also carries a
# server cookie computed for it (SipHash-2-4, RFC 9018). Not a test: it prints figures.
#
# usage: bench/rate_limit.sh [ROUNDS=3] [SECONDS=10]
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

declare -A PORT_OF=() PID_OF=()
cleanup() { for variant in "${!PID_OF[@]}"; do stop_pid "${PID_OF[$variant]}" "outpost ($variant)"; done; }
trap cleanup EXIT

for variant in plain limited; do
  config=$BENCH_DIR/conf/outpost-$variant.toml
  write_authoritative_config "$config" 1
  if [ "$variant" = limited ]; then
    printf '\n[dns.rate_limit]\nresponses_per_second = 1000000\n' >> "$config"
  fi
  data=$RUN/outpost-$variant-data
  rm -rf "$data"
  start_outpost "$config" "$data" "$RUN/outpost-$variant.log"
  import_zone "$data" "$ZONE" example.test.
  PORT_OF[$variant]=$OUTPOST_PORT
  PID_OF[$variant]=$outpost_pid
done
outpost_pid=""
# The "cookies" runs: dnsperf with a client cookie (EDNS option 10) in every query, asked
# of the limited server.
mkdir -p "$BENCH_DIR/cookie-bin"
printf '#!/bin/sh\nexec %s -E 10:0123456789abcdef "$@"\n' "$(command -v dnsperf)" > "$BENCH_DIR/cookie-bin/dnsperf"
chmod +x "$BENCH_DIR/cookie-bin/dnsperf"
PORT_OF[cookies]=${PORT_OF[limited]}

results=$BENCH_DIR/results/rate-limit.tsv
printf 'server\tround\tqps\tsrv_cpu\n' > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for variant in plain limited cookies; do
    err=$BENCH_DIR/results/last-rrl-$variant.err
    path=$PATH
    [ "$variant" = cookies ] && path=$BENCH_DIR/cookie-bin:$PATH
    server=${PID_OF[$variant]:-${PID_OF[limited]}}
    line=$(PATH=$path SERVER_PID=$server TAG=rrl-$variant-r$round "$BENCH_DIR/bench_server.sh" \
      "${PORT_OF[$variant]}" 1 "$SECS" 2> "$err")
    run=$(grep '^run' "$err" || true)
    get() { echo "$line $run" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
    printf '%s\t%s\t%s\t%s\n' "$variant" "$round" "$(get qps)" "$(get srv_cpu)" >> "$results"
    printf '%-8s round %s: qps=%s srv_cpu=%s\n' "$variant" "$round" "$(get qps)" "$(get srv_cpu)"
  done
done
limited=$(python3 - "http://$(address_of "$RUN/outpost-limited-data" "${PID_OF[limited]}" admin)/metrics" \
  "$RUN/outpost-limited-data/admin.token" <<'EOF'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + open(sys.argv[2]).read().strip()})
text = opener.open(request, timeout=5).read().decode()
print(int(sum(float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("outpost_dns_rate_limit_dropped_total", "outpost_dns_rate_limit_slipped_total")))))
EOF
)

echo
echo "response rate limiting, UDP, ${SECS}s per run, $ROUNDS rounds, one worker on CPU $SERVER_CPU:"
python3 - "$results" "$limited" "${SUMMARY:-}" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(variant, key):
    values = [float(r[key].rstrip("%")) for r in rows if r["server"] == variant and r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
for variant in ("plain", "limited", "cookies"):
    qps, cpu = med(variant, "qps"), med(variant, "srv_cpu")
    print(f"{variant:<8} median {qps:>9,.0f} q/s  server CPU {cpu:.0f}%  {cpu / 100 / qps * 1e6:.2f} us/query")
plain, limited, cookies = med("plain", "qps"), med("limited", "qps"), med("cookies", "qps")
print(f"with rate limiting: {limited / plain:.3f} x the q/s ({(1 - limited / plain) * 100:+.1f}% cost); "
      f"answers it limited: {sys.argv[2]} (expected 0)")
print(f"with rate limiting and cookies: {cookies / plain:.3f} x the q/s ({(1 - cookies / plain) * 100:+.1f}% cost)")
if sys.argv[3]:
    with open(sys.argv[3], "a") as out:
        print(f"rate limiting on (udp): q/s\toutpost off\t{limited:.3f}\t{plain:.3f}", file=out)
        print(f"rate limiting and cookies (udp): q/s\toutpost off\t{cookies:.3f}\t{plain:.3f}", file=out)
EOF
