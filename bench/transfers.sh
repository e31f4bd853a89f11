#!/usr/bin/env bash
# Secondary zones (issue 19): how long a 3-node cluster takes to follow a large zone from a
# real Knot primary by AXFR, and to apply small IXFRs after changes made in Knot. Not a
# test: it prints figures.
#
# usage: bench/transfers.sh
# env:   RECORDS      A records of the followed zone (default 100000)
#        CHANGED      records changed by each IXFR round (default 100: half removed,
#                     half added)
#        IXFR_ROUNDS  IXFR rounds (default 5)
#        BENCH_DIR    work folder (default /tmp/outpost-transfers-bench; recreated)
#        LOG          the nodes' log filter (default warn)
#        SKIP_BUILD=1 use the release binary already built
#
# What it does, on loopback only: three `outpost serve` joined by ticket; knotd (Debian
# `knot`) as the primary of follow.test., RECORDS A records, signed transfers (TSIG
# hmac-sha256), NOTIFY to every node; `outpost zone follow` on node 1, timed from the
# command until every node answers the zone's serial ("follow"). Then IXFR_ROUNDS times:
# CHANGED records changed in Knot's zone file and `knotc zone-reload`, timed from the
# reload until every node answers the new serial (Knot's NOTIFY, the leader's IXFR, the
# Raft write, every node's apply). Then the zone served on: an AXFR of it by kdig from a
# follower and from Knot, same run. Each node's RSS at the end. The nodes, Knot and the
# timing loop share the machine's cores.
set -euo pipefail

RECORDS=${RECORDS:-100000}
CHANGED=${CHANGED:-100}
IXFR_ROUNDS=${IXFR_ROUNDS:-5}
LOG=${LOG:-warn}
ORIGIN=follow.test.
NODES=3
READY_TIMEOUT_SECS=150
KEY=bench-xfr.
SECRET=YmVuY2ggc2VjcmV0IGZvciB0aGUgdHJhbnNmZXIgYmVuY2htYXJr
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BENCH_DIR=${BENCH_DIR:-/tmp/outpost-transfers-bench}
RUN=$BENCH_DIR/run
. "$repo/bench/lib.sh"
install_missing knotd:knot kdig:knot-dnsutils
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
KNOTC=$(command -v knotc || echo /usr/sbin/knotc)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building outpost (release)"
  cargo build --release -p outpost-appliance --bin outpost >&2
fi
OUTPOST=${CARGO_TARGET_DIR:-$repo/target}/release/outpost
rm -rf "$RUN"
mkdir -p "$RUN/knot"
CONFIG=$RUN/outpost.toml
write_authoritative_config "$CONFIG"
# The nodes serve the followed zone on to secondaries too, signed with the same key:
# timed against Knot below.
printf '\n[[transfer.keys]]\nname = "%s"\nsecret = "%s"\n\n[[transfer.secondaries]]\nallow = ["127.0.0.1"]\nkey = "%s"\n' \
  "$KEY" "$SECRET" "$KEY" >> "$CONFIG"

node_pids=()
admins=()
knot_pid=""
cleanup() {
  stop_pid "$knot_pid" knotd
  for n in $(seq "$NODES" -1 1); do stop_pid "${node_pids[n]:-}" "node $n"; done
}
trap cleanup EXIT

# zone SERIAL ROUND: the primary's zone file; round R moves CHANGED/2 hosts to new
# addresses (each a removal and an addition).
zone() {
  python3 - "$1" "$2" "$RECORDS" "$CHANGED" > "$RUN/knot/follow.test.zone" <<'PY'
import sys
serial, round_, records, changed = map(int, sys.argv[1:])
print("$ORIGIN follow.test.\n$TTL 300")
print(f"@ SOA ns1 hostmaster {serial} 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.1")
moved = set(range(changed // 2 * round_)) if round_ else set()
for i in range(records):
    last = (i % 250) + (1 if i in moved else 0)
    print(f"h{i} A 10.{i // 62500}.{i // 250 % 250}.{last}")
PY
}

# serial_of ADDR: the serial ADDR answers for the zone, or nothing.
serial_of() {
  kdig "@${1%:*}" -p "${1##*:}" +short +timeout=1 +retry=0 "$ORIGIN" SOA 2>/dev/null | awk '{ print $3 }'
}

# until_everywhere SERIAL: waits until every node answers SERIAL; prints the seconds.
until_everywhere() {
  local from=$EPOCHREALTIME n all
  while :; do
    all=1
    for n in $(seq 1 "$NODES"); do
      [ "$(serial_of "${dns[n]}")" = "$1" ] || { all=0; break; }
    done
    [ "$all" = 1 ] && break
    sleep 0.05
  done
  awk -v from="$from" -v to="$EPOCHREALTIME" 'BEGIN { printf "%.2f", to - from }'
}

load_before=$(machine)
form_cluster "$NODES"
dns=()
for n in $(seq 1 "$NODES"); do dns[n]=$(address_of "$RUN/node$n" "${node_pids[n]}" dns); done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
zone 1 0
remotes="" names=""
for n in $(seq 1 "$NODES"); do
  remotes+="  - id: node$n
    address: ${dns[n]%:*}@${dns[n]##*:}
    key: $KEY
"
  names+="node$n, "
done
cat > "$RUN/knot/knot.conf" <<CONF
server:
    rundir: "$RUN/knot"
    listen: 127.0.0.1@$port
control:
    listen: "$RUN/knot/knot.sock"
log:
  - target: stderr
    any: info
database:
    storage: "$RUN/knot"
key:
  - id: $KEY
    algorithm: hmac-sha256
    secret: $SECRET
remote:
$remotes
acl:
  - id: transfer
    address: 127.0.0.1
    action: transfer
    key: $KEY
zone:
  - domain: $ORIGIN
    storage: "$RUN/knot"
    file: follow.test.zone
    zonefile-load: difference
    journal-content: changes
    zonefile-sync: -1
    notify: [${names%, }]
    acl: transfer
CONF
setsid "$KNOTD" -c "$RUN/knot/knot.conf" > "$RUN/knot.log" 2>&1 < /dev/null &
knot_pid=$!
for _ in $(seq 1 100); do [ "$(serial_of "127.0.0.1:$port")" = 1 ] && break; sleep 0.2; done
[ "$(serial_of "127.0.0.1:$port")" = 1 ] || { echo "bench: knotd does not serve the zone" >&2; tail "$RUN/knot.log" >&2; exit 1; }
log "knotd serves $ORIGIN ($RECORDS records) on port $port"

follow_from=$EPOCHREALTIME
OUTPOST_TOKEN=$(cat "$RUN/node1/admin.token") "$OUTPOST" zone --admin "${admins[1]}" \
  follow "$ORIGIN" --primary "127.0.0.1:$port" --tsig "$KEY:hmac-sha256:$SECRET" >&2
waited=$(until_everywhere 1)
follow_seconds=$(awk -v from="$follow_from" -v to="$EPOCHREALTIME" 'BEGIN { printf "%.2f", to - from }')
log "followed by AXFR on every node in $follow_seconds s"

ixfr=()
for round in $(seq 1 "$IXFR_ROUNDS"); do
  zone $((round + 1)) "$round"
  "$KNOTC" -c "$RUN/knot/knot.conf" zone-reload "$ORIGIN" > /dev/null
  ixfr+=("$(until_everywhere $((round + 1)))")
  log "IXFR round $round: ${ixfr[-1]} s"
done
# axfr_seconds ADDR: the median of 3 AXFRs of the zone from ADDR (kdig, TSIG, TCP).
axfr_seconds() {
  local runs=() from count
  for _ in 1 2 3; do
    from=$EPOCHREALTIME
    count=$(kdig "@${1%:*}" -p "${1##*:}" -y "hmac-sha256:$KEY:$SECRET" +noall +answer +timeout=30 \
      "$ORIGIN" AXFR | grep -vc TSIG)
    runs+=("$(awk -v from="$from" -v to="$EPOCHREALTIME" 'BEGIN { printf "%.3f", to - from }')")
  done
  [ "$count" -gt "$RECORDS" ] || { echo "bench: AXFR from $1 gave $count records" >&2; exit 1; }
  printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}
axfr_outpost=$(axfr_seconds "${dns[2]}")
axfr_knot=$(axfr_seconds "127.0.0.1:$port")
sorted=$(printf '%s\n' "${ixfr[@]}" | sort -n)
median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
worst=$(echo "$sorted" | tail -n 1)
rss=""
for n in $(seq 1 "$NODES"); do
  rss+=" node $n $(awk '/VmRSS/ { printf "%.0f MiB", $2 / 1024 }' "/proc/${node_pids[n]}/status"),"
done
axfr_count=$(grep -c 'AXFR, outgoing.*started' "$RUN/knot.log" || true)
ixfr_count=$(grep -c 'IXFR, outgoing.*started' "$RUN/knot.log" || true)

echo
echo "== Secondary zones: $NODES nodes following knotd on loopback"
printf '%-58s %s\n' "figure" "measured"
printf '%-58s %s s\n' "follow a $RECORDS-record zone by AXFR (command to every node)" "$follow_seconds"
printf '%-58s %s s (median of %s), worst %s s\n' "apply a $CHANGED-record IXFR (reload in Knot to every node)" "$median" "$IXFR_ROUNDS" "$worst"
printf '%-58s %s s (outpost, a follower) vs %s s (knotd), median of 3\n' "AXFR out of the $RECORDS-record zone to kdig" "$axfr_outpost" "$axfr_knot"
printf '%-58s %s\n' "RSS with the zone" "${rss%,}"
printf '%-58s %s AXFR, %s IXFR\n' "transfers Knot served (its log)" "$axfr_count" "$ixfr_count"
echo "machine: before $load_before; at the end $(machine)"
