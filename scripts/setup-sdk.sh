#!/usr/bin/env bash
# Installs the official OpenAI Python SDK into .cache/venv-sdk for the gateway's end-to-end
# tests (tests/gateway_sdk.rs). Idempotent: does nothing when the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.51.0
venv=.cache/venv-sdk
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$version')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai==$version"
"$venv/bin/python" -c "import openai; print('openai', openai.__version__, 'in $venv')"
