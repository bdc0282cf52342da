#!/usr/bin/env bash
# Create .venv and install PerceptLab with its test, neural-codec and CVVDP dependencies.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.perceptlab-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch and torchvision are resolved together from the registry (never a local wheel).
    .venv/bin/python -m pip install --quiet -e ".[dev,neural,cvvdp]"
    # gunicorn's C HTTP parser needs a C compiler; without it gunicorn parses in Python.
    .venv/bin/python -m pip install --quiet -e ".[fast]" \
        || echo "note: gunicorn_h1c did not build (no C compiler?); gunicorn uses its Python parser"
    echo "$want" > "$stamp"
fi
