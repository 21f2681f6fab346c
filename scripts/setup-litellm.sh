#!/usr/bin/env bash
# Installs LiteLLM's proxy (`litellm[proxy]`, pinned) into .cache/venv-litellm, for the
# end-to-end test with LiteLLM in front of the gateway (tests/litellm_front.rs) and for the
# LiteLLM half of scripts/bench-gateway.sh. Idempotent: does nothing when the pinned
# version is there. Needs PyPI the first time (about a minute and ~400 MB of wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.106.12
venv=.cache/venv-litellm
if [ -x "$venv/bin/litellm" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$version')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "litellm[proxy]==$version"
"$venv/bin/python" -c "import importlib.metadata as m; print('litellm', m.version('litellm'), 'in $venv')"
