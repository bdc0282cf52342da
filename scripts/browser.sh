#!/usr/bin/env bash
# Install what the browser-side tests need: Debian's chromium package (Playwright's own
# browser download is not used) and Debian's nodejs (`node --test` runs the rater app's
# module tests in tests/studies/js), plus Debian's codec tools behind the shipped command-line
# codecs (cjxl/djxl, avifenc/avifdec, cwebp/dwebp: perceptlab/codecs/commandline.toml) and
# butteraugli_main (libjxl-devtools, the butteraugli metric), so their tests run instead of
# skipping. Needs root (or sudo) the first time; a no-op afterwards.
set -euo pipefail
CHROMIUM=${PERCEPTLAB_CHROMIUM:-/usr/bin/chromium}
packages=()
if [ ! -x "$CHROMIUM" ]; then
    packages+=(chromium)
fi
if ! command -v node >/dev/null 2>&1; then
    packages+=(nodejs)
fi
for tool in cjxl:libjxl-tools avifenc:libavif-bin cwebp:webp butteraugli_main:libjxl-devtools; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        packages+=("${tool#*:}")
    fi
done
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "installing ${packages[*]} (Debian packages) for the browser, JavaScript and codec tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
