#!/usr/bin/env bash
# Makes sure Python 3 with venv and pip is there, for the other setup scripts (the
# OpenAI SDK venv, the model wheels). Idempotent: does nothing when all three work.
# Installs Debian's packages with apt-get otherwise (root or sudo needed); fails loudly
# when it cannot, because the tests that need them must fail rather than skip.
set -euo pipefail

if python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-python: need root (or sudo) to apt-get install python3-venv python3-pip" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -c 'import venv, ensurepip' && python3 -m pip --version
