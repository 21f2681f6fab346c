#!/usr/bin/env bash
# Installs headless Chromium for the audit HTML report test (tests/audit_html.rs).
# Idempotent: does nothing when a chromium binary is already on PATH. Needs root (or
# sudo) and network access to the Debian mirrors; fails loudly otherwise, because the
# test it serves must fail rather than skip.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "setup-chromium: $(chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-chromium: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
command -v chromium >/dev/null 2>&1 || {
    echo "setup-chromium: apt-get finished but no chromium binary is on PATH" >&2
    exit 1
}
echo "setup-chromium: installed $(chromium --version 2>/dev/null || echo chromium)"
