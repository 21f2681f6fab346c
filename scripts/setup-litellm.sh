#!/usr/bin/env bash
# Installs LiteLLM's proxy (`litellm[proxy]`, pinned) into .cache/venv-litellm, for the
# end-to-end test with LiteLLM in front of the gateway (tests/litellm_front.rs) and for the
# LiteLLM half of scripts/bench-gateway.sh. Idempotent: does nothing when the pinned
# version is there. Needs PyPI the first time (a few minutes and ~750 MB installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lib/pinned-venv.sh .cache/venv-litellm litellm 1.106.12 proxy
