#!/usr/bin/env bash
# The one production command (README "Production"): install if needed, collect the static
# files, check the deployment, migrate, then run gunicorn (perceptlab/gunicorn_conf.py) and
# PERCEPTLAB_WORKERS background workers (`manage.py db_worker`, default 1) until Ctrl-C or
# SIGTERM, which stops them all: gunicorn finishes the requests in flight, a worker its
# current job (a second Ctrl-C abandons the job; its lease lets another worker redo it).
# If one of them exits, the others are stopped and its status is returned.
# Needs DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and, behind HTTPS, DJANGO_SECURE=1 and
# DJANGO_PROXY_SSL_HEADER; PERCEPTLAB_BIND (default 127.0.0.1:8000) is where it listens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=perceptlab.settings
export PERCEPTLAB_STATIC_MANIFEST=${PERCEPTLAB_STATIC_MANIFEST:-1}

$PY manage.py collectstatic --noinput --verbosity 0
$PY manage.py check --deploy --fail-level ERROR  # warnings are printed; errors stop here
$PY manage.py migrate --noinput

# Each child runs in a session of its own (setsid), so Ctrl-C reaches only this script,
# which stops them gracefully (a terminal's SIGINT would make gunicorn quit at once).
pids=()
stopping=0
stop() {
    if [ "$stopping" = 0 ]; then
        stopping=1
        echo "stopping gunicorn and the workers (pids ${pids[*]})..." >&2
    fi  # a second Ctrl-C sends TERM again: the workers abandon their current job
    kill -TERM "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM

for _ in $(seq 1 "${PERCEPTLAB_WORKERS:-1}"); do
    setsid $PY manage.py db_worker --no-reload &
    pids+=($!)
done
setsid .venv/bin/gunicorn -c python:perceptlab.gunicorn_conf &
pids+=($!)

# Until one of them exits or a signal arrives (then `wait` returns early and the trap runs).
status=0
wait -n "${pids[@]}" || status=$?
if [ "$stopping" = 0 ]; then
    echo "a PerceptLab process exited with status $status; stopping the others" >&2
    stop
else
    status=0  # stopped on request
fi
for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null || true; done
done
exit "$status"
