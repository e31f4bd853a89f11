# Helpers the bench scripts share. Sourced, not run: `. "$repo/bench/lib.sh"`.
# Expects `outpost_pid` to name the outpost the script started (or be empty).

log() { printf '== %s\n' "$*" >&2; }

# install_missing COMMAND:PACKAGE ...: installs from Debian the package of every command
# not on PATH (one apt-get run for all); taskset, setsid, bc and python3 must be there.
install_missing() {
  local missing=() pair tool
  for tool in taskset setsid bc python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
  done
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "installing ${missing[*]}"
    $sudo apt-get update >&2
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

machine() { printf '%s cores, load average %s' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

# The busiest processes right now but ours (others' builds and tests share the cores).
busiest() {
  top -bn1 -o %CPU 2>/dev/null | sed -n '8,14p' |
    awk -v ours="${outpost_pid:-0}" '$9 > 5 && $1 != ours { printf "  %s%% %s (pid %s)\n", $9, $12, $1 }'
}

# write_authoritative_config FILE [UDP_WORKERS=1]: an outpost that serves only the
# zones imported into it (no example zone) and lets nobody recurse. The upstream is
# never used but is set so that /etc/resolv.conf is not read.
write_authoritative_config() {
  cat > "$1" <<CONFIG
example_zone = false

[dns]
allow_recursion = []
udp_workers = ${2:-1}

[forward]
upstreams = ["127.0.0.1:9"]
CONFIG
}

# stop_pid PID NAME: SIGTERM, then SIGKILL if it is still there after 10 s.
stop_pid() {
  local pid=$1 name=$2
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    log "$name stopped"
  fi
}

# address_of DATA_DIR PID NAME: a value of DATA_DIR/addresses.json (dns, admin, sync,
# raft, endpoint_id) once the file names process PID, else nothing.
address_of() {
  python3 - "$1/addresses.json" "$2" "$3" <<'PY' 2>/dev/null || true
import json, sys
value = json.load(open(sys.argv[1]))
if value.get("pid") == int(sys.argv[2]) and sys.argv[3] in value:
    print(value[sys.argv[3]])
PY
}

# admin_ready ADMIN: succeeds when GET http://ADMIN/ready answers 200 (no proxy asked).
admin_ready() {
  python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    sys.exit(0 if opener.open(f"http://{sys.argv[1]}/ready", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# start_outpost CONFIG DATA_DIR LOG: starts $OUTPOST serve on CPU $SERVER_CPU (nice $NICE,
# its own session and autogroup, as the kit treats the reference servers) on free
# loopback ports; sets outpost_pid, OUTPOST_PORT and OUTPOST_ADMIN once it serves.
start_outpost() {
  local config=$1 data=$2 logfile=$3 dns=""
  log "starting outpost on CPU $SERVER_CPU"
  setsid nice -n "$NICE" taskset -c "$SERVER_CPU" "$OUTPOST" serve --allow-root --config "$config" \
    --data-dir "$data" --dns 127.0.0.1:0 --admin 127.0.0.1:0 --sync 127.0.0.1:0 --log warn \
    > "$logfile" 2>&1 < /dev/null &
  outpost_pid=$!
  for _ in $(seq 1 200); do
    dns=$(address_of "$data" "$outpost_pid" dns)
    [ -n "$dns" ] && break
    kill -0 "$outpost_pid" 2>/dev/null || { echo "bench: outpost exited; log:" >&2; tail -20 "$logfile" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$dns" ] || { echo "bench: outpost did not start; log:" >&2; tail -20 "$logfile" >&2; exit 1; }
  OUTPOST_PORT=${dns##*:}
  OUTPOST_ADMIN=$(address_of "$data" "$outpost_pid" admin)
  echo "$NICE" > "/proc/$outpost_pid/autogroup" 2>/dev/null || true
  log "outpost up pid=$outpost_pid port=$OUTPOST_PORT"
}

# import_zone DATA_DIR FILE ORIGIN: imports a zone file into the outpost start_outpost started.
import_zone() {
  log "importing $2 into outpost"
  OUTPOST_ADMIN=$OUTPOST_ADMIN OUTPOST_TOKEN=$(cat "$1/admin.token") "$OUTPOST" zone import "$2" --origin "$3" >&2
}

# --- clusters (bench/cluster.sh, bench/transfers.sh) ------------------------------------
# They use: OUTPOST, RUN, CONFIG, LOG, READY_TIMEOUT_SECS; node N's data is $RUN/nodeN,
# its process ${node_pids[N]}, its admin address ${admins[N]}.

# start_node N [TICKET]: starts node N (joining with TICKET if given) and waits until it
# is ready.
start_node() {
  local n=$1 ticket=${2:-} data=$RUN/node$1 pid admin=""
  local join=()
  [ -n "$ticket" ] && join=(--join "$ticket")
  setsid "$OUTPOST" serve --allow-root --config "$CONFIG" --data-dir "$data" \
    --dns 127.0.0.1:0 --admin 127.0.0.1:0 --sync 127.0.0.1:0 --raft 127.0.0.1:0 \
    --log "$LOG" ${join[@]+"${join[@]}"} > "$RUN/node$n.log" 2>&1 < /dev/null &
  pid=$!
  node_pids[n]=$pid
  local started=$SECONDS
  while [ $((SECONDS - started)) -lt "$READY_TIMEOUT_SECS" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: node $n exited; log:" >&2; tail -20 "$RUN/node$n.log" >&2; exit 1; }
    [ -n "$admin" ] || admin=$(address_of "$data" "$pid" admin)
    if [ -n "$admin" ] && admin_ready "$admin"; then
      admins[n]=$admin
      log "node $n (pid $pid): admin $admin, raft $(address_of "$data" "$pid" raft), ready after $((SECONDS - started)) s"
      return 0
    fi
    sleep 0.2
  done
  echo "bench: node $n is not ready after $READY_TIMEOUT_SECS s; log:" >&2
  tail -20 "$RUN/node$n.log" >&2
  exit 1
}

# A one-time join ticket from node 1 (the last line `cluster invite` prints).
invite() {
  "$OUTPOST" cluster --admin "${admins[1]}" --data-dir "$RUN/node1" invite | tail -n 1
}

# Voters in node 1's view of the cluster, once it knows a leader.
voters() {
  "$OUTPOST" cluster --admin "${admins[1]}" --data-dir "$RUN/node1" status --json |
    python3 -c 'import json, sys
status = json.load(sys.stdin)
print(sum(node["voter"] for node in status["nodes"]) if status.get("leader") else 0)'
}


# form_cluster NODES: node 1, then nodes 2..NODES joined with its tickets; returns once
# the cluster has NODES voters.
form_cluster() {
  local nodes=$1 forming=$SECONDS n ticket
  start_node 1
  for n in $(seq 2 "$nodes"); do
    ticket=$(invite)
    [ -n "$ticket" ] || { echo "bench: outpost cluster invite printed no ticket" >&2; exit 1; }
    start_node "$n" "$ticket"
  done
  for _ in $(seq 1 100); do
    [ "$(voters)" = "$nodes" ] && break
    sleep 0.2
  done
  [ "$(voters)" = "$nodes" ] || { echo "bench: the cluster has $(voters) voters, not $nodes" >&2; exit 1; }
  log "cluster of $nodes voters formed in $((SECONDS - forming)) s"
}
