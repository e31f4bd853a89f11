#!/usr/bin/env bash
# Cached forwarding: outpost against Unbound, both forwarding to the same upstream (the
# kit's NSD serving the 10,000-record zone on loopback), with warm caches, measured with
# dnsperf on the same query file in the same run. Not a test: it prints figures.
#
# usage: bench/forward.sh [ROUNDS=3] [SECONDS=10]
# env:   BENCH_DIR, SHARED_BENCH, SERVER_CPU, NICE, SUMMARY as for bench/authoritative.sh
#
# What it does: installs dnsperf, NSD and Unbound if missing; runs the kit's setup.sh;
# builds outpost in release; starts NSD (the upstream) on core 1 beside dnsperf, so the
# core under test runs only the server measured; starts Unbound (one thread, forwarding
# example.test. to NSD, 64 MiB of caches) and outpost (no zone, `[forward]` to NSD, one
# UDP worker) on the server core; checks both give NSD's answers; warms both caches
# with one dnsperf pass; then alternates measured runs and prints the medians, the
# ratio and the server CPU per answered query.
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

install_missing dnsperf:dnsperf nsd:nsd unbound:unbound dig:bind9-dnsutils

"$KIT/setup.sh" >&2
RUN=$BENCH_DIR/run
log "building outpost (release)"
cargo build --release -p outpost-appliance --bin outpost >&2
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost

outpost_pid=""
unbound_pid=""
cleanup() {
  stop_pid "$outpost_pid" outpost
  stop_pid "$unbound_pid" unbound
  SERVER_CPU=1 "$BENCH_DIR/servers.sh" stop nsd >&2 || true
}
trap cleanup EXIT

log "starting NSD, the upstream, on CPU 1"
SERVER_CPU=1 "$BENCH_DIR/servers.sh" start nsd >&2
UPSTREAM_PORT=$("$BENCH_DIR/servers.sh" port nsd)

UNBOUND_PORT=5315
cat > "$BENCH_DIR/conf/unbound-forward.conf" <<CONFIG
server:
    interface: 127.0.0.1@$UNBOUND_PORT
    port: $UNBOUND_PORT
    do-ip6: no
    num-threads: 1
    username: ""
    chroot: ""
    directory: "$RUN"
    pidfile: "$RUN/unbound-forward.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    so-rcvbuf: 4m
    msg-cache-size: 32m
    rrset-cache-size: 32m
    # example.test is under a name Unbound serves locally by default (RFC 6761)
    local-zone: "test." nodefault
    module-config: "iterator"
forward-zone:
    name: "example.test."
    forward-addr: 127.0.0.1@$UPSTREAM_PORT
remote-control:
    control-enable: no
CONFIG
log "starting Unbound on CPU $SERVER_CPU"
setsid nice -n "$NICE" taskset -c "$SERVER_CPU" unbound -d -c "$BENCH_DIR/conf/unbound-forward.conf" \
  > "$RUN/unbound-forward.log" 2>&1 < /dev/null &
unbound_pid=$!

DATA=$RUN/outpost-forward-data
CONFIG_FILE=$BENCH_DIR/conf/outpost-forward.toml
rm -rf "$DATA"
cat > "$CONFIG_FILE" <<CONFIG
example_zone = false

[dns]
allow_recursion = ["127.0.0.0/8"]
udp_workers = 1

[forward]
upstreams = ["127.0.0.1:$UPSTREAM_PORT"]
cache_entries = 100000
CONFIG
start_outpost "$CONFIG_FILE" "$DATA" "$RUN/outpost-forward.log"
echo "$NICE" > "/proc/$unbound_pid/autogroup" 2>/dev/null || true
for _ in $(seq 1 50); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p "$UNBOUND_PORT" h1.example.test A | grep -q . && break
  sleep 0.2
done

answer() {   # port name type: the rcode, then the answer section without TTLs, sorted
  dig +time=2 +tries=2 @127.0.0.1 -p "$1" "$2" "$3" | awk '/status:/{print $6}'
  dig +time=2 +tries=2 +noall +answer @127.0.0.1 -p "$1" "$2" "$3" | awk '{$2=""; print}' | sort
}
for q in "h1.example.test A" "h9999.example.test A" "h5.example.test AAAA" "h7.example.test TXT" \
         "c3.example.test A" "mx4.example.test MX" "nx42.example.test A"; do
  read -r name type <<< "$q"
  upstream=$(answer "$UPSTREAM_PORT" "$name" "$type")
  for port in "$UNBOUND_PORT" "$OUTPOST_PORT"; do
    got=$(answer "$port" "$name" "$type")
    if [ "$got" != "$upstream" ]; then
      printf 'bench: port %s answers %s %s differently from the upstream\n--- upstream\n%s\n--- got\n%s\n' \
        "$port" "$name" "$type" "$upstream" "$got" >&2
      exit 1
    fi
  done
done
log "Unbound and outpost give the upstream's answers"

log "warming both caches"
for port in "$UNBOUND_PORT" "$OUTPOST_PORT"; do
  "$BENCH_DIR/bench_server.sh" "$port" 1 5 > /dev/null 2>&1
done

results=$BENCH_DIR/results/forward.tsv
printf 'server\tround\tqps\tlat_avg_ms\tlost\tsrv_cpu\tperf_cpu\n' > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for server in unbound outpost; do
    if [ "$server" = unbound ]; then port=$UNBOUND_PORT; pid=$unbound_pid; else port=$OUTPOST_PORT; pid=$outpost_pid; fi
    err=$BENCH_DIR/results/last-forward-$server.err
    line=$(SERVER_PID=$pid TAG=forward-$server-r$round "$BENCH_DIR/bench_server.sh" "$port" 1 "$SECS" 2> "$err")
    run=$(grep '^run' "$err" || true)
    get() { echo "$line $run" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$round" "$(get qps)" "$(get lat_avg_ms)" "$(get lost)" \
      "$(get srv_cpu)" "$(get perf_cpu)" >> "$results"
    printf '%-8s round %s: qps=%s lat_avg_ms=%s lost=%s srv_cpu=%s dnsperf_cpu=%s\n' "$server" "$round" \
      "$(get qps)" "$(get lat_avg_ms)" "$(get lost)" "$(get srv_cpu)" "$(get perf_cpu)"
  done
done

echo
echo "cached forwarding, UDP, ${SECS}s per run, $ROUNDS rounds, servers on CPU $SERVER_CPU, dnsperf and the upstream on CPU 1:"
python3 - "$results" "${SUMMARY:-}" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(server, key):
    values = [float(r[key].rstrip("%")) for r in rows if r["server"] == server and r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
print(f"{'server':<8} {'median q/s':>11} {'avg latency ms':>15} {'lost':>6} {'server CPU':>11} {'us/query':>9}")
for server in ("unbound", "outpost"):
    qps, cpu = med(server, "qps"), med(server, "srv_cpu")
    print(f"{server:<8} {qps:>11,.0f} {med(server, 'lat_avg_ms'):>15.3f} {med(server, 'lost'):>6.0f} "
          f"{cpu:>10.0f}% {cpu / 100 / qps * 1e6 if qps else float('nan'):>9.2f}")
unbound, outpost = med("unbound", "qps"), med("outpost", "qps")
print(f"ratio outpost/Unbound (q/s): {outpost / unbound:.2f}" if unbound else "ratio: Unbound measured 0 q/s")
if sys.argv[2]:
    per_query = lambda server: med(server, "srv_cpu") / 100 / med(server, "qps") * 1e6
    with open(sys.argv[2], "a") as out:
        print(f"cached forwarding (udp): q/s\tunbound\t{outpost:.3f}\t{unbound:.3f}", file=out)
        print(f"cached forwarding (udp): server CPU us/query\tunbound\t{per_query('outpost'):.3f}\t"
              f"{per_query('unbound'):.3f}", file=out)
EOF
