#!/usr/bin/env bash
# One command from a fresh clone to a running platform with the demo:
# install, migrate, build the demo image set and stimuli, then serve the admin on
# http://127.0.0.1:8000/admin/ with one background worker. Ctrl-C stops both.
# Extra arguments go to `manage.py demo` (e.g. --images ../shared/datasets/kodak).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
export DJANGO_DEBUG=${DJANGO_DEBUG:-true}
$PY manage.py migrate --noinput
$PY manage.py check
$PY manage.py demo "$@"
$PY manage.py db_worker --no-startup-delay &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT INT TERM
echo "PerceptLab: http://${PERCEPTLAB_ADDR:-127.0.0.1:8000}/admin/  (worker pid $worker)"
$PY manage.py runserver "${PERCEPTLAB_ADDR:-127.0.0.1:8000}" --noreload
