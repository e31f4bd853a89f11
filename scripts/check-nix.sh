#!/usr/bin/env bash
# Offline checks of the Nix side (flake.nix, nixos/): every .nix file parses, the
# module eval tests pass on the stubs of nixos/tests/eval, deliberately broken modules
# make them fail, the rendered settings are accepted by the real `outpost
# check-config` (when a built binary is around), the VM tests' scripts pass pyflakes
# as the test driver runs it, and deadnix finds no dead code.
# Needs no network once nix-instantiate, pyflakes3 and deadnix are installed; installs
# them if missing (apt-get install nix-bin pyflakes3; cargo install --locked deadnix,
# about 20 s).
#
# What it cannot check (needs Nix with network, and KVM): `nix flake check`, the
# package builds, the NixOS VM tests and the images. See docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
eval_dir=$root/nixos/tests/eval

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok    $*"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL  $*"
}

# ---- Tools ----
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "check-nix: installing $* with apt-get"
  $sudo apt-get install -y --no-install-recommends "$@" >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
command -v nix-instantiate >/dev/null || apt_install nix-bin
command -v jq >/dev/null || apt_install jq
command -v pyflakes3 >/dev/null || apt_install pyflakes3
if ! command -v deadnix >/dev/null; then
  echo "check-nix: installing deadnix (cargo install --locked, about 20 s)"
  cargo install --locked --quiet deadnix
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

# Evaluation only: nothing is written to the Nix store, and Debian's nix.conf names a
# build group this machine may not have.
export NIX_CONFIG="build-users-group ="
nix_eval() { nix-instantiate --readonly-mode --eval --strict "$@"; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# ---- Every .nix file parses ----
mapfile -t nix_files < <(find . \( -path ./target -o -path ./.git -o -path '*/node_modules' \) -prune \
  -o -name '*.nix' -type f -print | sort)
for file in "${nix_files[@]}"; do
  if nix-instantiate --readonly-mode --parse "$file" >/dev/null 2>"$scratch/err"; then
    pass "parse $file"
  else
    fail "parse $file: $(cat "$scratch/err")"
  fi
done

# ---- Module eval tests on the stubs ----
helpers=" lib-stub pkgs-stub eval-config nixos-stub testlib render-samples "
tests=()
for file in "$eval_dir"/*.nix; do
  name=$(basename "$file" .nix)
  [[ $helpers == *" $name "* ]] || tests+=("$name")
done
for name in "${tests[@]}"; do
  if result=$(nix_eval --arg extraModules '[ ]' "$eval_dir/$name.nix" 2>"$scratch/err") && [ "$result" = true ]; then
    pass "eval $name"
  else
    fail "eval $name: ${result:-}$(grep -v '^warning:' "$scratch/err")"
  fi
  # The flake runs the same tests against real nixpkgs; it must list every one.
  if grep -q "nixos/tests/eval/$name.nix" flake.nix; then
    pass "flake check lists $name"
  else
    fail "flake check lists $name: add ./nixos/tests/eval/$name.nix to evalTests in flake.nix"
  fi
done

# ---- Broken modules must fail the tests ----
# expect_failure NAME TEST EXPECTED [nix-instantiate arguments...]: the test must fail
# with a message containing EXPECTED.
expect_failure() {
  local name=$1 test=$2 expected=$3
  shift 3
  if nix_eval "$@" "$eval_dir/$test.nix" >"$scratch/out" 2>"$scratch/err"; then
    fail "negative $name: $test.nix still evaluates to $(cat "$scratch/out")"
  elif grep -qF -- "$expected" "$scratch/err"; then
    pass "negative $name: $test.nix fails ($expected)"
  else
    fail "negative $name: $test.nix failed, but not with \"$expected\": $(grep -v '^warning:' "$scratch/err")"
  fi
}

# Overrides added from outside the module.
for case in \
  "extra-capability|appliance-unit|FAIL only CAP_NET_BIND_SERVICE is bounded" \
  "relaxed-sandbox|appliance-unit|FAIL serviceConfig.ProtectSystem" \
  "firewall-always-open|appliance-firewall|FAIL nothing opened by default (TCP)" \
  "lite-capability|lite-client|FAIL no capability on port 5354 (ambient)" \
  "cluster-firewall-off|cluster-test|FAIL a1 keeps the firewall on"; do
  IFS='|' read -r module test expected <<<"$case"
  expect_failure "$module" "$test" "$expected" --arg extraModules "[ $eval_dir/broken/$module.nix ]"
done

# Copies of the modules with one line changed. A mutation whose line no longer exists
# fails too, so that this list follows the modules.
mutant() {
  local name=$1 module=$2 test=$3 expected=$4 old=$5 new=$6
  local dir=$scratch/$name
  mkdir -p "$dir"
  cp nixos/modules/appliance.nix nixos/modules/lite-client.nix "$dir/"
  if ! grep -qF -- "$old" "$dir/$module"; then
    fail "negative $name: \"$old\" is no longer in $module; update scripts/check-nix.sh"
    return
  fi
  OLD=$old NEW=$new perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$dir/$module"
  expect_failure "$name" "$test" "$expected" --arg extraModules '[ ]' --arg evalConfig \
    "import $eval_dir/eval-config.nix { applianceModule = $dir/appliance.nix; liteClientModule = $dir/lite-client.nix; }"
}
mutant capability-added appliance.nix appliance-unit "FAIL only CAP_NET_BIND_SERVICE is bounded" \
  'CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];' \
  'CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" "CAP_NET_ADMIN" ];'
mutant write-execute-denied appliance.nix appliance-unit "FAIL serviceConfig.MemoryDenyWriteExecute" \
  'MemoryDenyWriteExecute = false;' 'MemoryDenyWriteExecute = true;'
mutant admin-port-always-open appliance.nix appliance-firewall "FAIL nothing opened by default (TCP)" \
  '(mkIf cfg.openAdminFirewall {' '(mkIf true {'
mutant enabled-when-disabled appliance.nix disabled "FAIL no outpost unit" \
  'config = mkIf cfg.enable {' 'config = mkIf true {'
mutant ticket-in-argv appliance.nix appliance-secrets "FAIL the join ticket is passed as a file" \
  '"${credentialsDir}/join-ticket"' 'cfg.joinTicketFile'
mutant store-secrets-accepted appliance.nix appliance-secrets "FAIL a secret in the store is refused" \
  'assertion = cfg.${option} == null || !lib.hasPrefix builtins.storeDir cfg.${option};' 'assertion = true;'
mutant nulls-rendered appliance.nix appliance-settings "cannot render a null" \
  'withoutNulls = lib.filterAttrsRecursive (_: value: value != null);' 'withoutNulls = settings: settings;'
mutant tls-files-checked-at-build appliance.nix appliance-secrets "FAIL the build-time check runs on that file" \
  'check-config ${buildCheckFile}' 'check-config ${configFile}'
mutant config-unchecked appliance.nix appliance-settings "FAIL the file is checked with the daemon at build time" \
  'if cfg.checkConfig && canRunPackage then' 'if false then'
mutant plugin-disabled-flag-dropped appliance.nix appliance-plugins "FAIL enable = false installs it switched off" \
  '++ lib.optional (!plugin.enable) "--disabled"' '++ [ ]'
mutant plugin-configs-both-accepted appliance.nix appliance-plugins "FAIL configText and configFile together are refused" \
  'assertion = plugin.configText == null || plugin.configFile == null;' 'assertion = true;'
mutant plugin-names-unchecked appliance.nix appliance-plugins "FAIL a name the daemon refuses is refused" \
  'assertion = validPluginName name;' 'assertion = true;'
mutant plugins-before-ready appliance.nix appliance-plugins "FAIL it waits for the daemon to be ready" \
  'after = [ "outpost.service" ];' 'after = [ ];'
mutant plugin-refusal-ignored appliance.nix appliance-plugins "FAIL a refused install fails the unit" \
  'exit 1' 'exit 0'
mutant plugin-path-not-copied appliance.nix appliance-plugins "FAIL a path literal is installed from its copy in the store" \
  '"${plugin.component}"' '(toString plugin.component)'
mutant plugin-wildcard-dialled appliance.nix appliance-plugins "FAIL a wildcard IPv4 admin address is dialled on loopback" \
  'if lib.hasPrefix "0.0.0.0:" listen then' 'if false then'
mutant raft-port-not-opened appliance.nix appliance-firewall "FAIL openRaftFirewall opens the Raft port over UDP" \
  '(mkIf (cfg.openRaftFirewall && raftPort != null) {' '(mkIf false {'
mutant raft-port-over-tcp appliance.nix appliance-firewall "FAIL openRaftFirewall opens the Raft port over UDP" \
  '{ allowedUDPPorts = [ raftPort ]; }' '{ allowedTCPPorts = [ raftPort ]; }'
mutant raft-wildcard-accepted appliance.nix appliance-cluster "FAIL a wildcard IPv4 raft address is refused" \
  'assertion = raftAddress == null || !(isWildcard raftAddress);' 'assertion = true;'
mutant join-without-raft-accepted appliance.nix appliance-cluster "FAIL a join ticket without a raft address is refused" \
  'assertion = cfg.joinTicketFile == null || raftAddress != null || raftElsewhere;' 'assertion = true;'
mutant join-under-bootstrap-refused appliance.nix appliance-cluster "FAIL with bootstrap, the site file may give the raft address" \
  'cfg.bootstrap.enable || builtins.any' 'false || builtins.any'
mutant raft-join-file-setting-accepted appliance.nix appliance-cluster "FAIL a join_file setting is refused" \
  'assertion = !(cfg.settings.cluster ? join_file);' 'assertion = true;'
mutant raft-any-port-opened appliance.nix appliance-cluster "FAIL openRaftFirewall on port 0 is refused" \
  'assertion = !cfg.openRaftFirewall || raftPort != 0;' 'assertion = true;'
mutant start-only-settings-reloaded appliance.nix appliance-settings "FAIL a new Raft address restarts" \
  'restartTriggers = [ startOnlySettings ];' 'restartTriggers = [ ];'
mutant lite-capability-added lite-client.nix lite-client "FAIL no capability on port 5354 (bounding)" \
  'CapabilityBoundingSet = if bindsPrivilegedPort then [ "CAP_NET_BIND_SERVICE" ] else "";' \
  'CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];'

# ---- The daemon accepts what the module renders ----
outpost=""
for candidate in "${CARGO_TARGET_DIR:-target}/debug/outpost" "${CARGO_TARGET_DIR:-target}/release/outpost"; do
  if [ -x "$candidate" ]; then
    outpost=$candidate
    break
  fi
done
if [ -z "$outpost" ]; then
  echo "skip  outpost check-config on rendered settings: no built outpost binary (cargo build first)"
elif ! nix_eval --json "$eval_dir/render-samples.nix" >"$scratch/samples.json" 2>"$scratch/err"; then
  fail "render samples: $(grep -v '^warning:' "$scratch/err")"
else
  for sample in $(jq -r 'keys[]' "$scratch/samples.json"); do
    file=$scratch/$sample.toml
    jq -r --arg s "$sample" '.[$s]' "$scratch/samples.json" >"$file"
    # check-config opens the sync TLS files: give it real ones in place of the
    # machine's paths.
    if grep -q '^tls_' "$file"; then
      if ! command -v openssl >/dev/null; then
        echo "skip  outpost check-config on the rendered $sample settings: they name TLS files and openssl is missing"
        continue
      fi
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=outpost \
        -keyout "$scratch/sync.key" -out "$scratch/sync.pem" 2>/dev/null
      sed -i -e "s|^tls_cert = .*|tls_cert = \"$scratch/sync.pem\"|" \
        -e "s|^tls_key = .*|tls_key = \"$scratch/sync.key\"|" "$file"
    fi
    # and the TSIG secret files, credentials on the machine.
    if grep -q 'secret_file = ' "$file"; then
      echo "c2VjcmV0IG9mIHRoZSBjaGVjaw==" >"$scratch/tsig"
      sed -i -E "s|secret_file = \"[^\"]*\"|secret_file = \"$scratch/tsig\"|g" "$file"
    fi
    if "$outpost" check-config "$file" >/dev/null 2>"$scratch/err"; then
      pass "outpost check-config accepts the rendered $sample settings"
    else
      fail "outpost check-config refuses the rendered $sample settings: $(cat "$scratch/err")"
    fi
  done
fi

# ---- The VM tests' scripts ----
# The test driver lints testScript with pyflakes before it boots anything
# (nixos/lib/testing/driver.nix), with the node names and the driver's own symbols
# (test_symbols() in its driver.py) as builtins: a misspelt name would otherwise
# show only where KVM is.
driver_symbols="start_all,test_script,machines_qemu,machines_nspawn,vlans,driver,log,os"
driver_symbols+=",create_machine,subtest,run_tests,join_all,retry,serial_stdout_off"
driver_symbols+=",serial_stdout_on,polling_condition,BaseMachine,t,debug,vlan1"
for test in nixos/tests/*.nix; do
  name=$(basename "$test" .nix)
  if ! nix_eval --json -E "let test = import $root/$test; in { script = test.testScript; nodes = builtins.attrNames test.nodes; }" \
    >"$scratch/vm-$name.json" 2>"$scratch/err"; then
    fail "testScript of $test: $(grep -v '^warning:' "$scratch/err")"
    continue
  fi
  jq -r .script "$scratch/vm-$name.json" >"$scratch/$name.py"
  nodes=$(jq -r '.nodes | join(",")' "$scratch/vm-$name.json")
  if PYFLAKES_BUILTINS="$nodes,$driver_symbols" pyflakes3 "$scratch/$name.py" >"$scratch/err" 2>&1; then
    pass "pyflakes accepts the testScript of $test"
  else
    fail "pyflakes refuses the testScript of $test: $(cat "$scratch/err")"
  fi
done

# ---- No dead code ----
if deadnix --fail --quiet flake.nix nixos >/dev/null 2>&1; then
  pass "deadnix"
else
  fail "deadnix: $(deadnix flake.nix nixos 2>&1 | sed 's/\x1b\[[0-9;]*m//g')"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
