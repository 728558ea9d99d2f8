#!/usr/bin/env bash
# The operator page's end-to-end test drives Debian's chromium through chromedriver (selenium);
# nothing is downloaded at test time. Installs both with apt when missing and running as root.
# Without them the browser test skips (fails when CI is set).
set -euo pipefail
if command -v chromedriver >/dev/null && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver (apt) for the page's browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
    exit 0
fi
echo "chromium/chromedriver missing and apt-get not usable as this user: the page's browser" \
     "test will skip (fail with CI=true); install them: sudo apt-get install -y chromium chromium-driver" >&2
if [ -n "${CI:-}" ]; then exit 1; fi
