#!/usr/bin/env bash
# Build the two reference codecs that are in no package registry from their source releases
# and install their command-line tools into .venv/bin, where PerceptLab finds them (after PATH
# and the BPGENC/BPGDEC/VVENCAPP/VVDECAPP settings; perceptlab/codecs/external.py):
#
#   BPG  libbpg 0.9.8 (bellard.org; its bundled x265)      -> bpgenc, bpgdec
#   VVC  Fraunhofer VVenC 1.14.0 and VVdeC 3.2.0 (GitHub)  -> vvencapp, vvdecapp
#
# These exact versions build unchanged with Debian 12's gcc 12, cmake and yasm. Each archive is
# downloaded where the machine is online and checked against its SHA-256 (the digests pinned by
# Homebrew's formulae for the same URLs); offline, --from DIR takes the archives from DIR
# (checked the same way) or, when DIR holds them unpacked (libbpg-0.9.8/, vvenc-1.14.0/,
# vvdec-3.2.0/), builds those folders as they are (unverified: the script says so).
#
#   bash scripts/build_codecs.sh [--from DIR] [--only bpg|vvc] [--jobs N] [--prefix DIR]
#
# Build tools (g++, make, cmake, yasm, libpng and libjpeg headers) are installed with apt when
# missing (root or sudo). It takes about 15 minutes on 2 cores; the compilers' output goes to a
# log whose end is shown when a step fails; the work folder is removed.
set -euo pipefail
cd "$(dirname "$0")/.."

from=""
only="all"
jobs=$(nproc 2>/dev/null || echo 2)
prefix="$PWD/.venv/bin"
while [ $# -gt 0 ]; do
    case "$1" in
        --from) from=$(cd "$2" && pwd); shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_codecs.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$only" in all|bpg|vvc) ;; *) echo "--only takes bpg or vvc, not $only" >&2; exit 2 ;; esac

# name | archive | URL | SHA-256 of the archive
SOURCES=(
    "libbpg-0.9.8|libbpg-0.9.8.tar.gz|https://bellard.org/bpg/libbpg-0.9.8.tar.gz|c0788e23bdf1a7d36cb4424ccb2fae4c7789ac94949563c4ad0e2569d3bf0095"
    "vvenc-1.14.0|vvenc-1.14.0.tar.gz|https://github.com/fraunhoferhhi/vvenc/archive/refs/tags/v1.14.0.tar.gz|dd43d061d59dbc0d9b9ae5b99cb40672877dd811646228938f065798939ee174"
    "vvdec-3.2.0|vvdec-3.2.0.tar.gz|https://github.com/fraunhoferhhi/vvdec/archive/refs/tags/v3.2.0.tar.gz|fb722da3c4d0a562969fd9540c67239e6265ae1e664ce563ad586e78ef4adb3b"
)

install_build_tools() {
    local missing=()
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    if [ "$only" != vvc ]; then
        command -v yasm >/dev/null 2>&1 || missing+=(yasm)
        [ -e /usr/include/png.h ] || missing+=(libpng-dev)
        [ -e /usr/include/jpeglib.h ] || [ -e /usr/include/x86_64-linux-gnu/jpeglib.h ] \
            || [ -e /usr/include/aarch64-linux-gnu/jpeglib.h ] || missing+=(libjpeg-dev)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing build tools: ${missing[*]} (Debian packages)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

download() {  # url destination: Python's urllib (always here: the venv made by setup.sh)
    local python=.venv/bin/python
    [ -x "$python" ] || python=python3
    "$python" - "$1" "$2" <<'PY'
import shutil, sys, urllib.request
url, destination = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out)
except OSError as error:
    sys.exit(f"could not download {url}: {error}; download it elsewhere and use --from DIR")
PY
}

# Puts the unpacked source of one entry at $work/<name>. Called as a condition, so errexit
# does not apply inside: every step returns on failure itself.
fetch_source() {
    local name=$1 archive=$2 url=$3 sha=$4
    if [ -n "$from" ] && [ -d "$from/$name" ]; then
        echo "$name: building the unpacked folder $from/$name as it is (not checked against a digest)"
        cp -a "$from/$name" "$work/$name" || return 1
        return 0
    fi
    local file="$work/$archive"
    if [ -n "$from" ]; then
        if [ ! -f "$from/$archive" ]; then
            echo "$name: neither $from/$archive nor $from/$name/ exists; get $url" >&2
            return 1
        fi
        cp "$from/$archive" "$file" || return 1
    else
        echo "$name: downloading $url"
        download "$url" "$file" || return 1
    fi
    local got
    got=$(sha256sum "$file" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
        echo "$name: $archive has SHA-256 $got, expected $sha; refusing to build it" >&2
        return 1
    fi
    mkdir -p "$work/$name"
    tar -xzf "$file" -C "$work/$name" --strip-components=1 || return 1
}

quietly() {  # command...: its output goes to the build log, whose end is shown if it fails
    if ! "$@" >>"$work/build.log" 2>&1; then
        echo "failed: $*" >&2
        tail -n 40 "$work/build.log" >&2
        return 1
    fi
}

build_bpg() {
    local src="$work/libbpg-0.9.8"
    # bpgview (SDL) is left out; libnuma is optional for x265 and left out so the binary
    # does not depend on it. x265's three bit depths are configured, then built one by one:
    # the Makefile's own parallel build of them races.
    quietly make -C "$src" USE_BPGVIEW= CMAKE_OPTS=-DENABLE_LIBNUMA=OFF x265.out || return 1
    for depth in 12bit 10bit 8bit; do
        quietly make -C "$src/x265.out/$depth" -j"$jobs" || return 1
    done
    quietly make -C "$src" USE_BPGVIEW= -j"$jobs" bpgenc bpgdec || return 1
    install -m 755 "$src/bpgenc" "$src/bpgdec" "$prefix/" || return 1
}

build_cmake_app() {  # name target
    local src="$work/$1"
    quietly cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release || return 1
    quietly cmake --build "$src/build" -j"$jobs" --target "$2" || return 1
    local binary
    binary=$(find "$src" -type f -name "$2" -perm -u+x | head -n 1)
    if [ -z "$binary" ]; then
        echo "$1: the build finished without a $2 binary" >&2
        return 1
    fi
    install -m 755 "$binary" "$prefix/" || return 1
}

install_build_tools
mkdir -p "$prefix"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for entry in "${SOURCES[@]}"; do
    IFS='|' read -r name archive url sha <<<"$entry"
    case "$name" in
        libbpg-*) [ "$only" = vvc ] && continue ;;
        *) [ "$only" = bpg ] && continue ;;
    esac
    if ! fetch_source "$name" "$archive" "$url" "$sha"; then
        status=1
        continue
    fi
    echo "$name: building with $jobs job(s)"
    case "$name" in
        libbpg-*) build_bpg || status=1 ;;
        vvenc-*) build_cmake_app "$name" vvencapp || status=1 ;;
        vvdec-*) build_cmake_app "$name" vvdecapp || status=1 ;;
    esac
done
for tool in bpgenc bpgdec vvencapp vvdecapp; do
    if [ -x "$prefix/$tool" ]; then
        echo "installed: $prefix/$tool"
    fi
done
if [ "$status" != 0 ]; then
    echo "build_codecs.sh: not everything was built (see above)" >&2
fi
exit "$status"
