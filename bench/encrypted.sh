#!/usr/bin/env bash
# What encryption costs: one outpost serving the kit's 10,000-record zone over plain TCP,
# DNS over TLS and DNS over HTTPS, in turn, in the same run, against the same process.
# TCP and DoT are asked by dnsperf (-m tcp, -m dot); DoH by h2load (Debian's
# nghttp2-client) with GET URIs made from the same query file, 4 connections of 100
# streams: dnsperf 2.10's DoH client stalls on its own 100 ms poll between answers
# (under 100 q/s against any server here). Connections stay open, so this is the steady
# state (records encrypted and decrypted), not the handshakes. Not a test: it prints
# figures.
#
# usage: bench/encrypted.sh [ROUNDS=3] [SECONDS=10]
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

install_missing dnsperf:dnsperf dig:bind9-dnsutils h2load:nghttp2-client
"$KIT/setup.sh" >&2
RUN=$BENCH_DIR/run
ZONE=$BENCH_DIR/zones/example.test.zone
log "building outpost (release)"
cargo build --release -p outpost-appliance --bin outpost >&2
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost

trap 'stop_pid "$outpost_pid" outpost' EXIT
config=$BENCH_DIR/conf/outpost-encrypted.toml
write_authoritative_config "$config" 1
sed -i 's/^\[dns\]$/[dns]\ntls_listen = "127.0.0.1:0"\nhttps_listen = "127.0.0.1:0"/' "$config"
data=$RUN/outpost-encrypted-data
rm -rf "$data"
start_outpost "$config" "$data" "$RUN/outpost-encrypted.log"
import_zone "$data" "$ZONE" example.test.
declare -A PORT_OF=(
  [tcp]=$OUTPOST_PORT
  [dot]=$(address_of "$data" "$outpost_pid" dns_tls | sed 's/.*://')
  [doh]=$(address_of "$data" "$outpost_pid" dns_https | sed 's/.*://')
)

# The kit's queries as DoH GET URIs (RFC 8484: id 0, base64url without padding).
uris=$BENCH_DIR/results/doh-uris.txt
python3 - "$BENCH_DIR/queries.txt" "${PORT_OF[doh]}" > "$uris" <<'EOF'
import base64, struct, sys
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
for line in open(sys.argv[1]):
    name, rtype = line.split()[:2]
    labels = [label for label in name.rstrip(".").split(".") if label]
    wire = b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"
    message = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", TYPES[rtype], 1)
    print(f"https://127.0.0.1:{sys.argv[2]}/dns-query?dns=" + base64.urlsafe_b64encode(message).decode().rstrip("="))
EOF

# h2load_run SECONDS: DoH q/s and the server's CPU (% of one core) over one run.
h2load_run() {
  local ticks0 ticks1 t0 t1 out qps
  ticks0=$(awk '{print $14+$15}' "/proc/$outpost_pid/stat"); t0=$(date +%s.%N)
  out=$(nice -n "$NICE" taskset -c "${CPU:-1}" h2load -i "$uris" -D "$1" -c 4 -m 100 -t 1 2>&1)
  ticks1=$(awk '{print $14+$15}' "/proc/$outpost_pid/stat"); t1=$(date +%s.%N)
  echo "$out" | grep -q ' 0 failed, 0 errored' || { echo "bench: h2load failed: $out" >&2; exit 1; }
  qps=$(echo "$out" | awk '/^finished in/{gsub(",", "", $4); print $4}')
  echo "qps=$qps srv_cpu=$(echo "$ticks0 $ticks1 $(getconf CLK_TCK) $t0 $t1" | awk '{printf "%.0f", ($2-$1)/$3/($5-$4)*100}')%"
}

results=$BENCH_DIR/results/encrypted.tsv
printf 'mode\tround\tqps\tsrv_cpu\n' > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for mode in tcp dot doh; do
    err=$BENCH_DIR/results/last-encrypted-$mode.err
    if [ "$mode" = doh ]; then
      line=$(h2load_run "$SECS"); run=""
    else
      line=$(MODE=$mode SERVER_PID=$outpost_pid TAG=encrypted-r$round "$BENCH_DIR/bench_server.sh" \
        "${PORT_OF[$mode]}" 1 "$SECS" 2> "$err")
      run=$(grep '^run' "$err" || true)
    fi
    get() { echo "$line $run" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }
    printf '%s\t%s\t%s\t%s\n' "$mode" "$round" "$(get qps)" "$(get srv_cpu)" >> "$results"
    printf '%-4s round %s: qps=%s srv_cpu=%s\n' "$mode" "$round" "$(get qps)" "$(get srv_cpu)"
  done
done

echo
echo "plain TCP against DoT and DoH, one outpost, ${SECS}s per run, $ROUNDS rounds, server on CPU $SERVER_CPU:"
python3 - "$results" "${SUMMARY:-}" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(mode, key):
    values = [float(r[key].rstrip("%")) for r in rows if r["mode"] == mode and r[key] not in ("", "nan")]
    return statistics.median(values) if values else float("nan")
tcp = med("tcp", "qps")
for mode in ("tcp", "dot", "doh"):
    qps, cpu = med(mode, "qps"), med(mode, "srv_cpu")
    print(f"{mode:<4} median {qps:>9,.0f} q/s  server CPU {cpu:.0f}%  {cpu / 100 / qps * 1e6:.2f} us/query"
          f"  {qps / tcp:.2f} x TCP")
if sys.argv[2]:
    with open(sys.argv[2], "a") as out:
        for mode in ("dot", "doh"):
            print(f"{mode} against plain tcp: q/s\toutpost tcp\t{med(mode, 'qps'):.0f}\t{tcp:.0f}", file=out)
EOF
