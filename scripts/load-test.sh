#!/usr/bin/env bash
# Load on loopback: 1,000 concurrent streaming clients through the gateway (a separate
# `refusal-guard serve` process) for 20 s, three times, with the gateway's RSS sampled
# every second, p50/p99 latencies, RSS growth from run to run, and the memory of one
# stream held inside the hold-back window. See benches/load.rs for what is measured.
#
#   scripts/load-test.sh
#   RG_LOAD_CLIENTS=500 RG_LOAD_SECS=10 RG_LOAD_RUNS=2 RG_LOAD_HOLD=500 scripts/load-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Each client holds a socket, and so does each gateway-to-mock connection.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)"
cargo bench --bench load
