#!/usr/bin/env bash
# Authoritative rate and latency, one configuration: outpost against NSD and Knot,
# serving the same 10,000-record zone, measured with dnsperf in the same run (only ratios
# measured together mean anything on a shared machine). Not a test: it prints figures,
# it does not judge them. bench/run.sh runs it for each configuration it reports.
#
# usage: bench/authoritative.sh [ROUNDS=3] [SECONDS=15]
# env:   BENCH_DIR     work folder (default /tmp/outpost-bench; recreated configs, kept results)
#        SHARED_BENCH  the benchmark kit (default ../shared/bench, relative to the repo root)
#        MODE=udp|tcp  passed to the kit's bench_server.sh (default udp)
#        SERVER_CPU    core the servers are pinned to (default 0); dnsperf runs on CPU (default 1)
#        REFERENCES    reference servers of the kit, in order (default "nsd knot")
#        SERVER_WORKERS  workers of every server (default 1): NSD's server-count, Knot's
#                      udp- and tcp-workers, outpost's dns.udp_workers; with 2, run with
#                      SERVER_CPU=0,1 (dnsperf then shares core 1 with the servers)
#        SUMMARY       a TSV file the figures beside each reference's are appended to
#                      (measure, reference, outpost, reference's, ratio); LABEL names
#                      the configuration in it
#
# What it does: installs dnsperf, NSD and Knot if missing; runs the kit's setup.sh (zone,
# queries, configs); builds outpost in release; starts outpost on a free loopback
# port (example_zone = false, allow_recursion = []) and imports the kit's zone with
# `outpost zone import`; starts the references with the kit's servers.sh; checks
# they all give the same answers; runs bench_server.sh against each reference and
# outpost in turn, ROUNDS times each; prints every run, the medians and outpost's
# ratio to each reference; then runs each at a fixed rate, half the first reference's
# median peak, ROUNDS times, and prints p50/p99/p99.9 latency and the median p99; stops
# everything it started.
set -euo pipefail

ROUNDS=${1:-3}
SECS=${2:-15}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KIT=$(cd "${SHARED_BENCH:-../shared/bench}" && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/outpost-bench}
export MODE=${MODE:-udp}
export SERVER_CPU=${SERVER_CPU:-0}
# The kit raises the priority of servers and dnsperf (nice -10); that needs root, and
# falls back to the default priority (with a warning from nice) otherwise.
export NICE=${NICE:--10}
read -r -a REFS <<< "${REFERENCES:-nsd knot}"

. "$repo/bench/lib.sh"

# --- tools -------------------------------------------------------------------------
install_missing dnsperf:dnsperf nsd:nsd knotd:knot dig:bind9-dnsutils
# Debian starts NSD as a service on install, on port 53; it is not ours and does not
# take the kit's port, so it is left alone.

# --- the kit: configs, zone, queries -------------------------------------------------
"$KIT/setup.sh" >&2
WORKERS=${SERVER_WORKERS:-1}
sed -i "s/server-count: 1/server-count: $WORKERS/" "$BENCH_DIR/conf/nsd.conf"
sed -i "s/udp-workers: 1/udp-workers: $WORKERS/; s/tcp-workers: 1/tcp-workers: $WORKERS/" "$BENCH_DIR/conf/knot.conf"
ZONE=$BENCH_DIR/zones/example.test.zone
RUN=$BENCH_DIR/run

# --- outpost ---------------------------------------------------------------------------
log "building outpost (release)"
cargo build --release -p outpost-appliance --bin outpost >&2
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost
[ -x "$OUTPOST" ] || { echo "bench: $OUTPOST was not built" >&2; exit 1; }

DATA=$RUN/outpost-data
CONFIG=$BENCH_DIR/conf/outpost.toml
rm -rf "$DATA"
write_authoritative_config "$CONFIG" "$WORKERS"

outpost_pid=""
started=()
cleanup() {
  stop_pid "$outpost_pid" outpost
  for ref in "${started[@]}"; do "$BENCH_DIR/servers.sh" stop "$ref" >&2 || true; done
}
trap cleanup EXIT

start_outpost "$CONFIG" "$DATA" "$RUN/outpost.log"
import_zone "$DATA" "$ZONE" example.test.

declare -A PORT_OF=() PID_OF=()
for ref in "${REFS[@]}"; do
  log "starting $ref"
  "$BENCH_DIR/servers.sh" start "$ref" >&2
  started+=("$ref")
  PORT_OF[$ref]=$("$BENCH_DIR/servers.sh" port "$ref")
  PID_OF[$ref]=$(cat "$RUN/$ref.pid")
done
PORT_OF[outpost]=$OUTPOST_PORT
PID_OF[outpost]=$outpost_pid

# --- same answers from both ------------------------------------------------------------
answer() {   # port name type: the rcode, then the answer section without TTLs, sorted
  dig +norec +time=2 +tries=2 @127.0.0.1 -p "$1" "$2" "$3" | awk '/status:/{print $6}'
  dig +norec +time=2 +tries=2 +noall +answer @127.0.0.1 -p "$1" "$2" "$3" | awk '{$2=""; print}' | sort
}
check() {   # name type: every reference and outpost must agree
  local expected got ref
  expected=$(answer "${PORT_OF[${REFS[0]}]}" "$1" "$2")
  for ref in "${REFS[@]:1}" outpost; do
    got=$(answer "${PORT_OF[$ref]}" "$1" "$2")
    if [ "$expected" != "$got" ]; then
      printf 'bench: answers differ for %s %s\n--- %s\n%s\n--- %s\n%s\n' "$1" "$2" "${REFS[0]}" "$expected" "$ref" "$got" >&2
      exit 1
    fi
  done
}
for q in "h1.example.test A" "h9999.example.test A" "h5.example.test AAAA" "h7.example.test TXT" \
         "c3.example.test A" "mx4.example.test MX" "example.test MX" "nx42.example.test A" "h1.example.test MX"; do
  read -r name type <<< "$q"
  check "$name" "$type"
done
log "${REFS[*]} and outpost give the same answers"

# --- measure -------------------------------------------------------------------------
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
results=$BENCH_DIR/results/outpost-vs-references.tsv
printf 'server\tround\tqps\tlat_avg_ms\tlost\tsrv_cpu\tperf_cpu\n' > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for server in "${REFS[@]}" outpost; do
    port=${PORT_OF[$server]}; pid=${PID_OF[$server]}
    err=$BENCH_DIR/results/last-$server.err
    line=$(SERVER_PID=$pid TAG=$server-r$round "$BENCH_DIR/bench_server.sh" "$port" 1 "$SECS" 2> "$err")
    run=$(grep '^run' "$err" || true)
    get() { echo "$line $run" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$round" "$(get qps)" "$(get lat_avg_ms)" "$(get lost)" \
      "$(get srv_cpu)" "$(get perf_cpu)" >> "$results"
    printf '%-8s round %s: qps=%s lat_avg_ms=%s lost=%s srv_cpu=%s dnsperf_cpu=%s\n' "$server" "$round" \
      "$(get qps)" "$(get lat_avg_ms)" "$(get lost)" "$(get srv_cpu)" "$(get perf_cpu)"
  done
done

# --- latency at a fixed rate: half the first reference's median peak --------------------
rate=$(python3 - "$results" "${REFS[0]}" <<'EOF'
import csv, statistics, sys
rows = [float(r["qps"]) for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")
        if r["server"] == sys.argv[2] and r["qps"] not in ("", "nan")]
print(int(statistics.median(rows) / 2) if rows else 0)
EOF
)
latency=$BENCH_DIR/results/latency.tsv
printf 'server\trate\tp50_ms\tp99_ms\tp999_ms\tlost\n' > "$latency"
# ROUNDS readings each, the servers in turn, so a burst of noise on the shared machine
# spoils one reading of one server, not the figure.
if [ "$rate" -gt 0 ]; then
  for round in $(seq 1 "$ROUNDS"); do
    for server in "${REFS[@]}" outpost; do
      line=$(LATENCY_QPS=$rate TAG=$server-latency-r$round "$BENCH_DIR/bench_server.sh" "${PORT_OF[$server]}" 1 "$SECS" 2>/dev/null)
      get() { echo "$line" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$rate" "$(get p50_ms)" "$(get p99_ms)" "$(get p999_ms)" \
        "$(get lost)" >> "$latency"
      printf '%-8s at %s q/s, round %s: p50_ms=%s p99_ms=%s p999_ms=%s lost=%s\n' "$server" "$rate" "$round" \
        "$(get p50_ms)" "$(get p99_ms)" "$(get p999_ms)" "$(get lost)"
    done
  done
fi

# --- summary -------------------------------------------------------------------------
echo
echo "$MODE, ${SECS}s per run, $ROUNDS rounds, $WORKERS worker(s) per server on CPU $SERVER_CPU, dnsperf on CPU ${CPU:-1}:"
rss_args=()
for server in "${REFS[@]}" outpost; do rss_args+=("$server=$(rss_kb "${PID_OF[$server]}")"); done
python3 - "$results" "$latency" "${SUMMARY:-}" "${LABEL:-$MODE}" "${rss_args[@]}" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
latency_rows = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
rate = latency_rows[0]["rate"] if latency_rows else "?"
summary, label = sys.argv[3], sys.argv[4]
rss = {name: int(kib) / 1024 for name, kib in (arg.split("=") for arg in sys.argv[5:])}
def med(server, key):
    values = [float(r[key].rstrip("%")) for r in rows if r["server"] == server and r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
print(f"{'server':<8} {'median q/s':>11} {'avg latency ms':>15} {'lost':>6} {'server CPU':>11} {'RSS MiB':>8}")
for server in rss:
    print(f"{server:<8} {med(server, 'qps'):>11,.0f} {med(server, 'lat_avg_ms'):>15.3f} {med(server, 'lost'):>6.0f} "
          f"{med(server, 'srv_cpu'):>10.0f}% {rss[server]:>8.1f}")
# When dnsperf saturates its core, q/s measures the harness; CPU per query does not.
per_query = lambda server: med(server, "srv_cpu") / 100 / med(server, "qps") * 1e6
for ref in [name for name in rss if name != "outpost"]:
    ratio = med("outpost", "qps") / med(ref, "qps") if med(ref, "qps") else float("nan")
    print(f"outpost/{ref}: {ratio:.2f} x the q/s; server CPU per answered query {ref} "
          f"{per_query(ref):.2f} us, outpost {per_query('outpost'):.2f} us")
def p99(server):
    values = [float(r["p99_ms"]) for r in latency_rows if r["server"] == server and r["p99_ms"] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
if summary:
    with open(summary, "a") as out:
        for ref in [name for name in rss if name != "outpost"]:
            for measure, ours, theirs in [
                (f"{label}: q/s", med("outpost", "qps"), med(ref, "qps")),
                (f"{label}: server CPU us/query", per_query("outpost"), per_query(ref)),
                (f"{label}: median p99 ms at {rate} q/s", p99("outpost"), p99(ref)),
                (f"{label}: RSS MiB at the end", rss["outpost"], rss[ref]),
            ]:
                print(f"{measure}\t{ref}\t{ours:.3f}\t{theirs:.3f}", file=out)
EOF
echo
echo "latency at ${rate} q/s (half of ${REFS[0]}'s median peak), $ROUNDS runs each:"
column -t -s $'\t' "$latency"
python3 - "$latency" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for server in dict.fromkeys(r["server"] for r in rows):
    values = [float(r["p99_ms"]) for r in rows if r["server"] == server and r["p99_ms"] not in ("", "nan")]
    if values:
        print(f"{server:<8} median p99 {statistics.median(values):.3f} ms")
EOF
echo "raw dnsperf output: $BENCH_DIR/results/raw; rows: $results"
