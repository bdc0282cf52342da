#!/usr/bin/env bash
# Install the browser the browser tests drive: Debian's chromium package (Playwright's own
# browser download is not used). Needs root (or sudo) the first time; a no-op afterwards.
set -euo pipefail
CHROMIUM=${PERCEPTLAB_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "installing chromium (Debian package) for the browser tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
