#!/usr/bin/env bash
# Installs one pinned PyPI distribution into a project-local virtual environment, once:
#   bash scripts/lib/pinned-venv.sh VENV DIST VERSION [EXTRAS]
# e.g. `… .cache/venv-litellm litellm 1.106.12 proxy` installs `litellm[proxy]==1.106.12`.
# Does nothing when VENV already holds DIST at VERSION. Shared by the setup-*.sh scripts
# that need a Python tool (the OpenAI SDK, LiteLLM's proxy); scripts/test.sh runs those.
set -euo pipefail
venv=$1 dist=$2 version=$3 extras=${4:-}
have() {
  "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$dist') != '$version')" 2>/dev/null
}
if [ -x "$venv/bin/python" ] && have; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$dist${extras:+[$extras]}==$version"
have
echo "$dist $version in $venv"
