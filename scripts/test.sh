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
# A font with Chinese, Japanese and Korean glyphs, so the tests see CJK labels drawn (in
# Chromium and in PNG figures); without one those checks skip and say why.
if ! { command -v fc-list >/dev/null && fc-list :lang=zh | grep -q .; } \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get install -y --no-install-recommends fonts-wqy-microhei >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 \
         && apt-get install -y --no-install-recommends fonts-wqy-microhei >/dev/null 2>&1; }; } \
    || echo "test.sh: could not install a CJK font; the CJK drawing checks will be skipped" >&2
fi
.venv/bin/ruff check src tests bench
.venv/bin/lint-imports  # the layer rules (docs/architecture.md)
.venv/bin/python -m pytest -q "$@"
