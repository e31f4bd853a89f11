#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test.
# Integration tests start the real `outpost` binary, so the binaries are built first.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup show active-toolchain >/dev/null   # installs the toolchain of rust-toolchain.toml if missing
# The partition tests cut Raft traffic on loopback with iptables (as root); the cookie,
# console and split-DNS tests ask with dig (bind9-dnsutils); the encrypted DNS tests ask
# with kdig (knot-dnsutils) over TLS and HTTPS, and curl; the zone interop test checks
# our exports with BIND's named-checkzone (bind9-utils) and Knot's kzonecheck
# (knot-dnssecutils); the zone transfer tests run Knot itself (knot) as a secondary; the
# console's browser tests drive Chromium (chromium) through ChromeDriver (chromium-driver).
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
for needed in iptables:iptables dig:bind9-dnsutils kdig:knot-dnsutils curl:curl named-checkzone:bind9-utils kzonecheck:knot-dnssecutils knotd:knot chromium:chromium chromedriver:chromium-driver; do
  command -v "${needed%%:*}" >/dev/null && continue
  package="${needed#*:}"
  echo "test: installing $package with apt-get"
  $sudo apt-get install -y --no-install-recommends "$package" >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$package" >/dev/null; }
done
# A real systemd-resolved for the split-DNS test (tests/integration/lite_resolver.rs),
# taken out of Debian's package without installing it: installing would take over this
# machine's /etc/resolv.conf. The test runs it in a network and mount namespace of its own.
resolved_dir=${XDG_CACHE_HOME:-$HOME/.cache}/outpost/systemd-resolved
if [ ! -x "$resolved_dir/lib/systemd/systemd-resolved" ]; then
  echo "test: extracting systemd-resolved from its Debian package"
  rm -rf "$resolved_dir" && mkdir -p "$resolved_dir"
  (cd "$resolved_dir" && apt-get download systemd-resolved >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && apt-get download systemd-resolved >/dev/null; }) &&
    dpkg -x "$resolved_dir"/systemd-resolved_*.deb "$resolved_dir"
fi
export OUTPOST_SYSTEMD_RESOLVED=$resolved_dir/lib/systemd/systemd-resolved
# axe-core, the accessibility checker the browser tests run in each console page, pinned
# by tests/console-tools/package-lock.json.
npm ci --prefix tests/console-tools --no-audit --no-fund --silent
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
./scripts/check-nix.sh
./scripts/build-plugins.sh   # the host's plugin tests load target/plugins/*.wasm
(cd plugins && cargo fmt --all --check && cargo clippy --target wasm32-wasip2 --all-targets -- -D warnings)
# The plugins' own unit tests (their logic and the SDK) are plain Rust: they run natively,
# on the host's triple (the plugins are otherwise only built for wasm32-wasip2).
(cd plugins && cargo test --locked --target "$(rustc -vV | sed -n 's/^host: //p')")
python3 scripts/check-structure.py   # no import circle, no file over 600 lines, no function over 80
python3 scripts/check-bounds.py      # docs/bounds.md names every bound, with the value the code has
cargo test --workspace
# Fuzzing, bounded: each target replays its seeds and the inputs that once failed, then
# fuzzes for 30 s (docs/fuzzing.md has the long run).
./scripts/fuzz.sh 30
