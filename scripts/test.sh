#!/usr/bin/env bash
# Set everything up and run the whole test suite (what CI runs, via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The report test opens the report in headless Chromium (Debian's package). Install it
# where we may (root with apt); otherwise that test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 \
         && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }; } \
    || echo "test.sh: could not install chromium; the browser test will be skipped" >&2
fi
.venv/bin/ruff check src tests bench
.venv/bin/python -m pytest -q "$@"
