#!/usr/bin/env bash
# One command from a fresh clone to a running platform with the demo:
# install, migrate, build the demo image set, its stimuli and a live study of each method
# (ACR, DCR, 2AFC), then serve http://127.0.0.1:8000/ with a background worker and print
# the rater links and the admin login last. Ctrl-C stops everything.
# PERCEPTLAB_ADDR=host:port changes where it listens; PERCEPTLAB_BASE_URL where the links
# point (default http://$PERCEPTLAB_ADDR). Extra arguments go to `manage.py demo`
# (e.g. the Kodak set: manage.py fetch_dataset kodak, then --images <datasets folder>/kodak).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
export DJANGO_DEBUG=${DJANGO_DEBUG:-true}
ADDR=${PERCEPTLAB_ADDR:-127.0.0.1:8000}
export PERCEPTLAB_BASE_URL=${PERCEPTLAB_BASE_URL:-http://$ADDR}

$PY manage.py migrate --noinput
$PY manage.py check
summary=$(mktemp)
pids=()
cleanup() {
    if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
    rm -f "$summary"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
$PY manage.py demo "$@" | tee "$summary"

# The workers log to a file, so that their start-up lines do not bury the links.
logs=${PERCEPTLAB_VAR_DIR:-var}
mkdir -p "$logs"
for _ in $(seq 1 "${PERCEPTLAB_WORKERS:-1}"); do
    $PY manage.py db_worker --no-startup-delay --no-reload >>"$logs/worker.log" 2>&1 &
    pids+=($!)
done
$PY manage.py runserver "$ADDR" --noreload &
pids+=($!)

# Wait until the server answers, so the links below are the last thing printed.
$PY - "$PERCEPTLAB_BASE_URL/admin/login/" <<'EOF'
import sys, time, urllib.request

for _ in range(240):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2)
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit(f"the server did not answer at {sys.argv[1]}")
EOF

echo
echo "PerceptLab is running (server and worker pids ${pids[*]}, worker log $logs/worker.log);"
echo "Ctrl-C stops them."
grep -E '^(rater link|report|admin)' "$summary"
wait
