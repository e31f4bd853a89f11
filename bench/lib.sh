# Helpers the bench scripts share. Sourced, not run: `. "$repo/bench/lib.sh"`.
# Expects `outpost_pid` to name the outpost the script started (or be empty).

log() { printf '== %s\n' "$*" >&2; }

machine() { printf '%s cores, load average %s' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

# The busiest processes right now but ours (others' builds and tests share the cores).
busiest() {
  top -bn1 -o %CPU 2>/dev/null | sed -n '8,14p' |
    awk -v ours="${outpost_pid:-0}" '$9 > 5 && $1 != ours { printf "  %s%% %s (pid %s)\n", $9, $12, $1 }'
}

# write_authoritative_config FILE: an outpost that serves only the zones imported into
# it (no example zone) and lets nobody recurse. The upstream is never used but is set
# so that /etc/resolv.conf is not read.
write_authoritative_config() {
  cat > "$1" <<'CONFIG'
example_zone = false

[dns]
allow_recursion = []

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
