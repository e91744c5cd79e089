#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a short while: scripts/fuzz.sh [SECONDS] (default 30
# each). Exits non-zero when a target crashes; the input that crashed it is kept in
# fuzz/artifacts/<target>/ (replay it with `cargo fuzz run <target> <file>`), and the log of
# each run in fuzz/artifacts/<target>.log.
#
# Needs cargo-fuzz (installed when missing). libFuzzer's sanitizer flags are nightly features;
# RUSTC_BOOTSTRAP=1 lets a stable toolchain build them.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS]" >&2
    exit 2
    ;;
esac

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== cargo install cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1

echo "== cargo fuzz build"
cargo fuzz build

# The targets write the fuzzed files into temporary directories: keep them in memory when
# possible, and remove what a crashed run leaves behind.
base="${TMPDIR:-/tmp}"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
scratch="$(mktemp -d "$base/cairn-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

failed=()
mkdir -p fuzz/artifacts
for target in $(cargo fuzz list); do
    echo "== $target: ${secs}s"
    # New inputs go to fuzz/corpus/<target> (not versioned); fuzz/seeds/<target> is read only.
    mkdir -p "fuzz/corpus/$target"
    seeds=()
    if [ -d "fuzz/seeds/$target" ]; then seeds=("fuzz/seeds/$target"); fi
    log="fuzz/artifacts/$target.log"
    if TMPDIR="$scratch" cargo fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" || true
    else
        tail -n 80 "$log"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: every target ran ${secs}s without a crash"
