#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ on the stable toolchain and runs each for
# SECONDS_PER_TARGET (default 30), one after the other (docs/fuzzing.md).
#
#   scripts/fuzz.sh          # the bounded run: 6 targets x 30 s, plus the build
#   scripts/fuzz.sh 3600     # a long run: an hour per target
#
# Before fuzzing, each target replays its committed seeds (they must still be valid
# input) and its fuzz/regressions/ inputs (they must not crash). Fuzzing works on a
# copy of the corpus in a temporary directory: nothing it generates is written into
# the repository, except the inputs that make a target fail, in fuzz/artifacts/
# (ignored by git). Exits non-zero when any target fails, naming those inputs.
#
# Environment:
#   CARGO_TARGET_DIR        the build goes to $CARGO_TARGET_DIR/fuzz (else fuzz/target)
#   OUTPOST_FUZZ_SANITIZER  none (default) or address. AddressSanitizer needs -Z flags,
#                           which stable rustc takes only under RUSTC_BOOTSTRAP=1 (set
#                           here for that build alone); it builds in a directory of its
#                           own and runs about half as fast.
#   OUTPOST_FUZZ_TARGETS    the targets to run, separated by spaces (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

seconds="${1:-30}"
if [[ ! "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (a whole number of seconds, default 30)" >&2
    exit 2
fi

# Pinned: its build flags are what docs/fuzzing.md describes.
cargo_fuzz_version="0.13.2"
# The longest input libFuzzer makes: above any query, ticket (4096 characters) or seed,
# enough for zone files of a few hundred lines and deeply nested Raft commands. The
# allocation cap in fuzz/src/lib.rs counts on inputs this small.
max_len=16384
# Seconds one input may take before it counts as a hang.
input_timeout=10
# The stack of a tokio worker thread (2 MiB), where the daemons decode all of these
# inputs: a recursion that overflows it is a crash here too.
stack_kib=2048

sanitizer="${OUTPOST_FUZZ_SANITIZER:-none}"
target_dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
target_dir="${target_dir:-$repo/fuzz/target}"
case "$sanitizer" in
    none) ;;
    address)
        export RUSTC_BOOTSTRAP=1
        # Its own directory: cargo caches rustc's answers per target directory, a
        # refusal of -Z flags by a stable rustc without RUSTC_BOOTSTRAP included.
        target_dir="$target_dir/asan"
        ;;
    *)
        echo "OUTPOST_FUZZ_SANITIZER=$sanitizer: use none or address" >&2
        exit 2
        ;;
esac

if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    echo "== installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

echo "== building the fuzz targets (sanitizer: $sanitizer) into $target_dir"
build_start=$SECONDS
cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" --target-dir "$target_dir"
build_seconds=$((SECONDS - build_start))
echo "== build took ${build_seconds} s"

triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$triple/release"
artifacts="$repo/fuzz/artifacts"
read -r -a targets <<<"${OUTPOST_FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz | tr '\n' ' ')}"

work="$(mktemp -d "${TMPDIR:-/tmp}/outpost-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
summary=()

# Runs one target binary under the worker-thread stack; its output goes to a log.
run_target() {
    local target="$1" log="$2"
    shift 2
    (ulimit -s "$stack_kib" && exec "$bin_dir/$target" "$@") >"$log" 2>&1
}

# The files of a directory, none if it does not exist or holds only a README.
inputs_in() {
    [[ -d "$1" ]] || return 0
    find "$1" -maxdepth 1 -type f ! -name 'README*' | sort
}

# What a failure said: panics, refused allocations, signals, libFuzzer's verdict; no
# backtrace frames or start-up chatter.
failure_lines() {
    grep -v -E '^ +([0-9]+: |at )|^(INFO|WARNING):|^#[0-9]|^\s*NEW_FUNC|^Running: ' "$1" | tail -n "$2"
}

# `stat::NAME: VALUE` from libFuzzer's final statistics, or "-".
final_stat() {
    local value
    value="$(sed -n "s/^stat::$1: *//p" "$2" | tail -n 1)"
    echo "${value:--}"
}

fuzz_start=$SECONDS
for target in "${targets[@]}"; do
    mkdir -p "$work/$target/corpus" "$artifacts/$target"
    mapfile -t seeds < <(inputs_in "fuzz/corpus/$target")
    mapfile -t regressions < <(inputs_in "fuzz/regressions/$target")

    if ((${#seeds[@]} == 0)); then
        echo "== $target: no seeds in fuzz/corpus/$target (run python3 fuzz/make_corpus.py)" >&2
        failed+=("$target: no seeds")
        continue
    fi
    if ! OUTPOST_FUZZ_CHECK_SEEDS=1 run_target "$target" "$work/$target/seeds.log" "${seeds[@]}"; then
        echo "== $target: a seed is no longer valid input; the last one run:" >&2
        grep '^Running: ' "$work/$target/seeds.log" | tail -n 1 >&2
        failure_lines "$work/$target/seeds.log" 12 >&2
        failed+=("$target: stale seed")
        continue
    fi
    if ((${#regressions[@]} > 0)) &&
        ! run_target "$target" "$work/$target/regressions.log" "${regressions[@]}"; then
        echo "== $target: a regression input fails again (fuzz/regressions/README.md):" >&2
        grep '^Running: ' "$work/$target/regressions.log" | tail -n 1 >&2
        failure_lines "$work/$target/regressions.log" 12 >&2
        failed+=("$target: regression")
        continue
    fi

    cp "${seeds[@]}" "$work/$target/corpus/"
    if ((${#regressions[@]} > 0)); then cp "${regressions[@]}" "$work/$target/corpus/"; fi
    dict=()
    if [[ -f "fuzz/dict/$target.dict" ]]; then dict=("-dict=fuzz/dict/$target.dict"); fi

    echo "== $target: fuzzing for ${seconds} s"
    log="$work/$target/fuzz.log"
    status=0
    run_target "$target" "$log" "$work/$target/corpus" "${dict[@]}" \
        -max_total_time="$seconds" -max_len="$max_len" -timeout="$input_timeout" \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$target/" ||
        status=$?
    execs="$(final_stat number_of_executed_units "$log")"
    per_second="$(final_stat average_exec_per_sec "$log")"
    new_units="$(final_stat new_units_added "$log")"
    rss="$(final_stat peak_rss_mb "$log")"
    result="ok"
    if ((status != 0)); then
        result="FAILED (exit $status)"
        echo "== $target failed; the end of its log:" >&2
        failure_lines "$log" 25 >&2
        while read -r input; do
            echo "== $target: failing input $input" >&2
            echo "   replay: $bin_dir/$target $input" >&2
            failed+=("$target: $input")
        done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
        if ! grep -q 'Test unit written to' "$log"; then failed+=("$target: exit $status, no input written"); fi
    fi
    summary+=("$(printf '%-12s %12s %9s %9s %8s  %s' "$target" "$execs" "$per_second" "$new_units" "$rss" "$result")")
done
fuzz_seconds=$((SECONDS - fuzz_start))

echo
echo "== build ${build_seconds} s, seeds, regressions and fuzzing ${fuzz_seconds} s (${seconds} s per target)"
printf '%-12s %12s %9s %9s %8s  %s\n' target runs exec/s 'new units' 'RSS MB' result
if ((${#summary[@]} > 0)); then printf '%s\n' "${summary[@]}"; fi
if ((${#failed[@]} > 0)); then
    echo
    echo "== failures:" >&2
    printf '   %s\n' "${failed[@]}" >&2
    exit 1
fi
