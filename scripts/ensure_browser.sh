#!/usr/bin/env bash
# A Chromium for tests/test_lab_browser.py, found or installed before `make test` runs it:
# one already there (TLC_PROBE_CHROMIUM, chromium, chromium-browser, Playwright's own);
# else Playwright's own download, where the network allows it; else Debian's package, as
# root; else one line saying what to run, and exit 1.
# Usage: scripts/ensure_browser.sh PYTHON (the venv's python, which has playwright).
set -u
PY="${1:-python3}"
for b in "${TLC_PROBE_CHROMIUM:-}" chromium chromium-browser; do
    if [ -n "$b" ] && command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
managed='
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)
'
"$PY" -c "$managed" >/dev/null 2>&1 && exit 0
echo "make test: no Chromium found; trying Playwright's download, then Debian's package" >&2
timeout 300 "$PY" -m playwright install chromium >/dev/null 2>&1 && "$PY" -c "$managed" && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; then
        exit 0
    fi
fi
echo "make test: no Chromium for the JupyterLab browser test; install one with" \
     "'sudo apt-get install -y chromium' (or '$PY -m playwright install chromium')" >&2
exit 1
