#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]      default: 60 s each, all targets
#
# cargo-fuzz wants a nightly compiler for its sanitizer and coverage flags. This machine
# (and CI) has one stable toolchain, so the script sets RUSTC_BOOTSTRAP=1, which lets the
# stable compiler accept those flags; the AddressSanitizer runtime ships with stable's
# standard library for x86_64 Linux. cargo-fuzz itself is installed when missing.
#
# Corpora grow under fuzz/corpus/TARGET (git-ignored); the committed seeds (fuzz/seeds,
# fixtures/wire, and the first lines of the shared datasets when they are there) are read
# as extra corpora. A crash leaves its input under fuzz/artifacts/TARGET; turn it into a
# test in tests/regressions.rs, fix the crate, and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(sse_decoder wire_types patterns dataset_line audit_input)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# Keep the fuzz build apart from the main build (fuzz/target is git-ignored).
export CARGO_TARGET_DIR="$PWD/fuzz/target"

seeds_for() {
    case "$1" in
        sse_decoder) echo fixtures/wire ;;
        wire_types) echo fixtures/wire fuzz/seeds/wire_types ;;
        patterns) echo fuzz/seeds/patterns ;;
        audit_input) echo fixtures/audit fixtures/audit/dashscope fixtures/wire fuzz/seeds/dataset_line ;;
        dataset_line)
            local dir=fuzz/corpus/dataset_line-shared
            local data="${REFUSAL_GUARD_DATASETS:-../shared/datasets}"
            if compgen -G "$data/*.jsonl" >/dev/null; then
                mkdir -p "$dir"
                for f in "$data"/*.jsonl; do
                    head -n 20 "$f" | split -l 1 - "$dir/$(basename "$f" .jsonl)-"
                done
                echo fuzz/seeds/dataset_line "$dir"
            else
                echo fuzz/seeds/dataset_line
            fi
            ;;
    esac
}

failed=()
for target in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/corpus/$target.log"
    echo "== $target: ${SECONDS_EACH}s (log: $log)"
    status=0
    # shellcheck disable=SC2046 # the seed folders are words
    cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" $(seeds_for "$target") -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 -max_len=65536 \
        >"$log" 2>&1 || status=$?
    # The figures: executions, speed, corpus and coverage at the end, and any crash.
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|^#[0-9]+[[:space:]]+DONE|SUMMARY|panicked at|Test unit written|deadly signal" "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "!! $target failed (exit $status); see $log and fuzz/artifacts/$target" >&2
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
