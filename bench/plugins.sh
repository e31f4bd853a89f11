#!/usr/bin/env bash
# The cost of a query-policy plugin (issue 6): authoritative queries per second from
# outpost with no plugin and with the blocklist plugin holding 100,000 domains,
# measured alternately in the same run (only ratios measured together mean anything on
# a shared machine), and the plugin's own time per call. Not a test: it prints figures
# beside the targets (at most 5% of the rate; under 1 µs median per call), it does not
# judge them.
#
# usage: bench/plugins.sh [ROUNDS=3] [SECONDS=15]
# env:   BENCH_DIR     work folder (default /tmp/outpost-plugin-bench; recreated configs,
#                      kept results); not run.sh's, so the two can run on one machine
#        SHARED_BENCH  the benchmark kit (default ../shared/bench, relative to the repo root)
#        MODE=udp|tcp  passed to the kit's bench_server.sh (default udp)
#        SERVER_CPU    core outpost is pinned to (default 0); dnsperf runs on CPU (default 1)
#        DOMAINS       blocklist size (default 100000)
#        BLOCKED_PCT   share of the queries the third mode blocks (default 10; 0 skips
#                      that mode)
#        SKIP_BUILD=1  use target/release/outpost and target/plugins/ as they are
#
# What it does: installs dnsperf if missing; runs the kit's setup.sh (zone, queries);
# builds outpost in release and the plugins with scripts/build-plugins.sh; writes two
# blocklists of DOMAINS entries: `pass` (blocked-NNNNNN.ads.invalid, which no query
# matches, so every query goes through the plugin and gets its usual answer) and
# `blocked` (the same size, with enough of the query file's names that about
# BLOCKED_PCT% of the queries are answered NXDOMAIN by the plugin); starts outpost on
# free loopback ports (example_zone = false, allow_recursion = []) and imports the
# kit's zone; checks the answers with the plugin match those without; then ROUNDS
# times: dnsperf with no plugin, then `outpost plugin install` of each blocklist
# (waiting until GET /v1/plugins says `running`), dnsperf, the plugin's counters from
# GET /v1/plugins and /metrics, `outpost plugin rm` (waiting until the node has
# unloaded it); even rounds run the modes in reverse order. Prints every run, the
# medians per mode, the ratios to no plugin (of the medians, and the median of each
# round's ratio), the time per call, and the machine's load before and after; stops
# everything it started.
set -euo pipefail

ROUNDS=${1:-3}
SECS=${2:-15}
DOMAINS=${DOMAINS:-100000}
BLOCKED_PCT=${BLOCKED_PCT:-10}
PLUGIN=bench-blocklist
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KIT=$(cd "${SHARED_BENCH:-../shared/bench}" && pwd)
export BENCH_DIR=${BENCH_DIR:-/tmp/outpost-plugin-bench}
export MODE=${MODE:-udp}
export SERVER_CPU=${SERVER_CPU:-0}
# The kit raises the priority of servers and dnsperf (nice -10); that needs root, and
# falls back to the default priority (with a warning from nice) otherwise.
export NICE=${NICE:--10}

. "$repo/bench/lib.sh"

# --- tools -------------------------------------------------------------------------
install_missing dnsperf:dnsperf dig:bind9-dnsutils

# --- the kit: zone, queries ------------------------------------------------------------
"$KIT/setup.sh" >&2
ZONE=$BENCH_DIR/zones/example.test.zone
QUERIES=$BENCH_DIR/queries.txt
RUN=$BENCH_DIR/run
RESULTS=$BENCH_DIR/results

# --- outpost and the plugin --------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "SKIP_BUILD=1: using the release binary and target/plugins/ as they are"
else
  log "building outpost (release)"
  started=$(date +%s)
  cargo build --release -p outpost-appliance --bin outpost >&2
  log "outpost built in $(($(date +%s) - started)) s"
  log "building the plugins"
  ./scripts/build-plugins.sh >&2
fi
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost
# scripts/build-plugins.sh puts the components in the repo's target/, whatever CARGO_TARGET_DIR says.
COMPONENT=$repo/target/plugins/outpost_plugin_blocklist.wasm
[ -x "$OUTPOST" ] || { echo "bench: $OUTPOST was not built" >&2; exit 1; }
[ -f "$COMPONENT" ] || { echo "bench: $COMPONENT was not built (scripts/build-plugins.sh)" >&2; exit 1; }

# --- the blocklists ------------------------------------------------------------------------
# pass: no query name matches, so each query costs the plugin a full miss (one hash
# lookup per suffix of the name) and then gets its usual answer.
# blocked: the same size, with whole query names from the query file, picked at random
# (fixed seed) until they cover BLOCKED_PCT% of its lines.
PASS_LIST=$BENCH_DIR/blocklist-pass.txt
BLOCKED_LIST=$BENCH_DIR/blocklist-blocked.txt
BLOCKED_SHARE=$(python3 - "$DOMAINS" "$BLOCKED_PCT" "$QUERIES" "$PASS_LIST" "$BLOCKED_LIST" <<'EOF'
import collections, random, sys
domains, pct, queries, pass_list, blocked_list = int(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:]
filler = [f"blocked-{i:06d}.ads.invalid" for i in range(domains)]
with open(pass_list, "w") as out:
    out.write("\n".join(filler) + "\n")
counts = collections.Counter(line.split()[0].lower() for line in open(queries) if line.strip())
total = sum(counts.values())
names = sorted(counts)
random.Random(6).shuffle(names)
chosen, covered = [], 0
for name in names:
    if covered >= total * pct / 100:
        break
    chosen.append(name)
    covered += counts[name]
# A listed name blocks the names below it too; none of the kit's names lies below
# another (h1.example.test is not under h11.example.test), so the share is exact.
with open(blocked_list, "w") as out:
    out.write("\n".join(chosen + filler[len(chosen):]) + "\n")
print(f"{covered / total * 100:.1f} {len(chosen)} {chosen[0] if chosen else ''}")
EOF
)
read -r BLOCKED_SHARE BLOCKED_NAMES BLOCKED_EXAMPLE <<< "$BLOCKED_SHARE"
log "blocklists: $DOMAINS domains, $(wc -c < "$PASS_LIST") bytes; the blocked one lists $BLOCKED_NAMES query names ($BLOCKED_SHARE% of the queries)"
modes=(none pass)
[ "$BLOCKED_NAMES" -gt 0 ] && modes+=(blocked)

# --- start outpost -------------------------------------------------------------------------
DATA=$RUN/outpost-data
CONFIG=$BENCH_DIR/conf/outpost.toml
rm -rf "$DATA"
write_authoritative_config "$CONFIG"

outpost_pid=""
cleanup() { stop_pid "$outpost_pid" outpost; }
trap cleanup EXIT

load_before="$(machine)"
busy_before="$(busiest)"
log "machine: $load_before"
log "starting outpost on CPU $SERVER_CPU"
setsid nice -n "$NICE" taskset -c "$SERVER_CPU" "$OUTPOST" serve --allow-root --config "$CONFIG" --data-dir "$DATA" \
  --dns 127.0.0.1:0 --admin 127.0.0.1:0 --sync 127.0.0.1:0 --log warn \
  > "$RUN/outpost.log" 2>&1 < /dev/null &
outpost_pid=$!
for _ in $(seq 1 200); do
  [ -f "$DATA/addresses.json" ] && break
  kill -0 "$outpost_pid" 2>/dev/null || { echo "bench: outpost exited; log:" >&2; tail -20 "$RUN/outpost.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$DATA/addresses.json" ] || { echo "bench: outpost did not start; log:" >&2; tail -20 "$RUN/outpost.log" >&2; exit 1; }
read -r OUTPOST_PORT ADMIN < <(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(a["dns"].rsplit(":",1)[1], a["admin"])' "$DATA/addresses.json")
echo "$NICE" > "/proc/$outpost_pid/autogroup" 2>/dev/null || true
export OUTPOST_ADMIN=$ADMIN
OUTPOST_TOKEN=$(cat "$DATA/admin.token")
export OUTPOST_TOKEN

log "importing $ZONE into outpost"
"$OUTPOST" zone import "$ZONE" --origin example.test. >&2
log "outpost up pid=$outpost_pid port=$OUTPOST_PORT admin=$ADMIN"

# --- the plugin, through the admin API ------------------------------------------------------
# api PATH: the body of GET http://ADMIN/PATH, with the admin token.
api() {
  python3 - "$ADMIN" "$1" <<'EOF'
import os, sys, urllib.request
request = urllib.request.Request(f"http://{sys.argv[1]}{sys.argv[2]}",
                                  headers={"Authorization": "Bearer " + os.environ["OUTPOST_TOKEN"]})
sys.stdout.write(urllib.request.urlopen(request, timeout=10).read().decode())
EOF
}
# plugin_state: the state of $PLUGIN in GET /v1/plugins, or "absent".
plugin_state() {
  api /v1/plugins | python3 -c '
import json, sys
states = [p["state"] for p in json.load(sys.stdin) if p["name"] == sys.argv[1]]
print(states[0] if states else "absent")' "$PLUGIN"
}
# The node loads a definition after applying it, in the background: `running` means
# the version in force is the installed one. After a removal, the definition goes at
# once but the loaded chain only on the reload: /metrics lists what is loaded.
wait_plugin() {   # running|absent
  local state=""
  for _ in $(seq 1 600); do
    state=$(plugin_state)
    if [ "$1" = absent ]; then
      [ "$state" = absent ] && ! api /metrics | grep -q "^outpost_plugin_info{plugin=\"$PLUGIN\"" && return 0
    else
      [ "$state" = "$1" ] && return 0
      case $state in failed*|stopped*) echo "bench: plugin $PLUGIN is $state" >&2; exit 1 ;; esac
    fi
    sleep 0.1
  done
  echo "bench: plugin $PLUGIN still $state after 60 s (waiting for $1)" >&2
  exit 1
}
install_list() {   # blocklist file
  local started
  started=$(date +%s.%N)
  "$OUTPOST" plugin install "$COMPONENT" --name "$PLUGIN" --hook query-policy \
    --config-file "$1" --on-error fail-open >&2
  wait_plugin running
  log "plugin running after $(echo "$(date +%s.%N) - $started" | bc | xargs printf '%.2f') s"
}
remove_plugin() {
  "$OUTPOST" plugin rm "$PLUGIN" >&2
  wait_plugin absent
}
# plugin_stats MODE ROUND: appends the plugin's counters on this node to stats.tsv.
plugin_stats() {
  local plugins metrics
  plugins=$(api /v1/plugins)
  metrics=$(api /metrics)
  python3 - "$1" "$2" "$PLUGIN" "$plugins" "$metrics" >> "$stats" <<'EOF'
import json, re, sys
mode, round_, name, plugins, metrics = sys.argv[1:]
plugin = next(p for p in json.loads(plugins) if p["name"] == name)
def metric(family):
    match = re.search(rf'^{family}{{plugin="{re.escape(name)}"}} (\S+)$', metrics, re.M)
    return match.group(1) if match else "nan"
failures = sum(plugin[k] for k in ("timeouts", "out_of_memory", "stack_overflows", "traps", "invalid_outputs"))
print("\t".join(str(v) for v in (mode, round_, plugin["calls"], plugin["mean_micros"], plugin["median_micros"],
      plugin["p99_micros"], failures, metric("outpost_plugin_instances_built_on_demand_total"),
      metric("outpost_plugin_rebuilds_total"))))
EOF
}

# --- same answers with the plugin -------------------------------------------------------------
answer() {   # name type: the rcode, then the answer section without TTLs, sorted
  dig +norec +time=2 +tries=2 @127.0.0.1 -p "$OUTPOST_PORT" "$1" "$2" | awk '/status:/{print $6}'
  dig +norec +time=2 +tries=2 +noall +answer @127.0.0.1 -p "$OUTPOST_PORT" "$1" "$2" | awk '{$2=""; print}' | sort
}
checks=("h1.example.test A" "h9999.example.test A" "h5.example.test AAAA" "h7.example.test TXT"
        "c3.example.test A" "mx4.example.test MX" "example.test MX" "nx42.example.test A")
declare -A expected
for q in "${checks[@]}"; do read -r name type <<< "$q"; expected[$q]=$(answer "$name" "$type"); done
check_pass() {
  for q in "${checks[@]}"; do
    read -r name type <<< "$q"
    if [ "$(answer "$name" "$type")" != "${expected[$q]}" ]; then
      printf 'bench: with the pass blocklist, %s differs from the answer without a plugin\n' "$q" >&2
      exit 1
    fi
  done
}
check_blocked() {
  local rcode
  rcode=$(answer "$BLOCKED_EXAMPLE" A | head -1)
  [ "$rcode" = "NXDOMAIN," ] || { echo "bench: $BLOCKED_EXAMPLE A should be blocked (NXDOMAIN), got $rcode" >&2; exit 1; }
}

# --- measure ---------------------------------------------------------------------------------
results=$RESULTS/plugins.tsv
stats=$RESULTS/plugins-stats.tsv
printf 'mode\tround\tqps\tlat_avg_ms\tlost\tsrv_cpu\tperf_cpu\tload1\n' > "$results"
printf 'mode\tround\tcalls\tmean_us\tmedian_us\tp99_us\tfailures\tbuilt_on_demand\trebuilds\n' > "$stats"
for round in $(seq 1 "$ROUNDS"); do
  # Odd rounds in order, even rounds reversed: a machine that speeds up or slows down
  # over the run favours no mode.
  order=("${modes[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((i = ${#modes[@]} - 1; i >= 0; i--)); do order+=("${modes[i]}"); done
  fi
  for mode in "${order[@]}"; do
    case $mode in
      pass) install_list "$PASS_LIST"; [ "$round" = 1 ] && check_pass ;;
      blocked) install_list "$BLOCKED_LIST"; [ "$round" = 1 ] && check_blocked ;;
    esac
    err=$RESULTS/last-plugins-$mode.err
    line=$(SERVER_PID=$outpost_pid TAG=plugins-$mode-r$round QUERIES=$QUERIES \
      "$BENCH_DIR/bench_server.sh" "$OUTPOST_PORT" 1 "$SECS" 2> "$err")
    run=$(grep '^run' "$err" || true)
    get() { echo "$line $run" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$round" "$(get qps)" "$(get lat_avg_ms)" "$(get lost)" \
      "$(get srv_cpu)" "$(get perf_cpu)" "$(get load1)" >> "$results"
    printf '%-8s round %s: qps=%s lat_avg_ms=%s lost=%s srv_cpu=%s dnsperf_cpu=%s load1=%s\n' "$mode" "$round" \
      "$(get qps)" "$(get lat_avg_ms)" "$(get lost)" "$(get srv_cpu)" "$(get perf_cpu)" "$(get load1)"
    if [ "$mode" != none ]; then
      plugin_stats "$mode" "$round"
      tail -1 "$stats" | awk -F'\t' '{printf "         plugin: calls=%s mean_us=%.3f median_us=%.3f p99_us=%.3f failures=%s built_on_demand=%s rebuilds=%s\n", $3, $4, $5, $6, $7, $8, $9}'
      remove_plugin
    fi
  done
done
load_after="$(machine)"
busy_after="$(busiest)"

# --- summary ---------------------------------------------------------------------------------
echo
echo "$MODE, ${SECS}s per run, $ROUNDS rounds, outpost on CPU $SERVER_CPU, dnsperf on CPU ${CPU:-1};"
echo "blocklist of $DOMAINS domains ($(wc -c < "$PASS_LIST") bytes); 'blocked' blocks $BLOCKED_SHARE% of the queries"
python3 - "$results" "$stats" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
stats = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
modes = list(dict.fromkeys(r["mode"] for r in rows))
def med(table, mode, key):
    values = [float(r[key].rstrip("%")) for r in table if r["mode"] == mode and r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
print(f"{'mode':<8} {'median q/s':>11} {'avg latency ms':>15} {'lost':>6} {'server CPU':>11} {'CPU us/query':>13}")
cpu_per_query = {}
for mode in modes:
    qps, cpu = med(rows, mode, "qps"), med(rows, mode, "srv_cpu")
    cpu_per_query[mode] = cpu / 100 / qps * 1e6 if qps else float("nan")
    print(f"{mode:<8} {qps:>11,.0f} {med(rows, mode, 'lat_avg_ms'):>15.3f} {med(rows, mode, 'lost'):>6.0f} "
          f"{cpu:>10.0f}% {cpu_per_query[mode]:>13.2f}")
base = med(rows, "none", "qps")
for mode in modes[1:]:
    ratio = med(rows, mode, "qps") / base if base else float("nan")
    # Per round too: each plugin run against the no-plugin run of its round.
    per_round = []
    for r in rows:
        if r["mode"] != mode:
            continue
        before = next((b for b in rows if b["mode"] == "none" and b["round"] == r["round"]), None)
        if before and float(before["qps"]):
            per_round.append(float(r['qps']) / float(before['qps']))
    print(f"ratio {mode}/none (q/s): {ratio:.3f} (cost {(1 - ratio) * 100:.1f}%; target at most 5%); "
          f"per round: {', '.join(f'{x:.3f}' for x in per_round)}")
    if per_round:
        paired = statistics.median(per_round)
        print(f"  median of the rounds' ratios: {paired:.3f} (cost {(1 - paired) * 100:.1f}%)")
    print(f"  server CPU per answered query: +{cpu_per_query[mode] - cpu_per_query['none']:.2f} us "
          f"({cpu_per_query[mode] / cpu_per_query['none']:.3f}x)")
print()
print(f"plugin time per call, GET /v1/plugins after each round (median and p99 estimated from the")
print(f"histogram's buckets: 0.5, 1, 2, 5 us ...):")
print(f"{'mode':<8} {'calls':>10} {'mean us':>8} {'median us':>10} {'p99 us':>8} {'failures':>9} {'built on demand':>16}")
for mode in modes[1:]:
    calls = sum(int(s["calls"]) for s in stats if s["mode"] == mode)
    failures = sum(int(s["failures"]) for s in stats if s["mode"] == mode)
    built = sum(float(s["built_on_demand"]) for s in stats if s["mode"] == mode and s["built_on_demand"] != "nan")
    print(f"{mode:<8} {calls:>10,} {med(stats, mode, 'mean_us'):>8.3f} {med(stats, mode, 'median_us'):>10.3f} "
          f"{med(stats, mode, 'p99_us'):>8.3f} {failures:>9} {built:>16.0f}   (medians over rounds; target: median under 1 us)")
EOF
echo
echo "machine before: $load_before"
[ -n "$busy_before" ] && echo "$busy_before"
echo "machine after:  $load_after"
[ -n "$busy_after" ] && echo "$busy_after"
echo "raw dnsperf output: $RESULTS/raw; rows: $results, $stats; outpost log: $RUN/outpost.log"
