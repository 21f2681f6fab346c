#!/usr/bin/env bash
# Installs the official OpenAI Python SDK into .cache/venv-sdk for the gateway's end-to-end
# tests (tests/gateway_sdk.rs). Idempotent: does nothing when the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lib/pinned-venv.sh .cache/venv-sdk openai 3.51.0
