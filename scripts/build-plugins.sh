#!/usr/bin/env bash
# Builds the plugins/ workspace (example and hostile test plugins) for wasm32-wasip2 in
# release and copies the components to target/plugins/, where the host's tests
# (plugin-host/src/tests.rs) and the docs expect them.
set -euo pipefail
cd "$(dirname "$0")/../plugins"

# plugins/rust-toolchain.toml names the target, but an already-installed toolchain
# does not pick up a target added to that file later.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

cargo build --release --target wasm32-wasip2 --locked

# CI points CARGO_TARGET_DIR outside the clone; the components land there.
built=${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release
out=../target/plugins
mkdir -p "$out"
for wasm in "$built"/*.wasm; do
    cp "$wasm" "$out/"
    echo "$out/$(basename "$wasm")"
done
