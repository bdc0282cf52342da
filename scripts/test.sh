#!/usr/bin/env bash
# Run the whole test suite (installs first if needed). Extra arguments go to pytest.
# DATABASE_URL=postgres://postgres@127.0.0.1:5432/test runs it on PostgreSQL.
# Tests run in parallel on every core (pytest-xdist; PERCEPTLAB_TEST_WORKERS=1 runs them in one
# process); each worker has its own test database.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh || echo "warning: chromium could not be installed; browser tests will be skipped" >&2
# The public datasets the tests read (../shared/datasets where it exists; else fetched once
# into the cache, SHA-256 checked: README "Datasets").
.venv/bin/python manage.py fetch_dataset kodak sureal pairwise bdrate aic3 \
    || echo "warning: datasets could not be fetched; the tests that read them will say why" >&2
# One BLAS thread per test worker: the workers already fill the cores, and OpenBLAS threads
# competing for them make scipy's optimisers 10-20x slower.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python -m pytest -n "${PERCEPTLAB_TEST_WORKERS:-auto}" "$@"
