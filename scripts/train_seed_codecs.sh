#!/usr/bin/env bash
# Train the shipped seed-codec checkpoints: HiFiC, HiFiC + sparsity, GC at C = 2, 4, 8, 16,
# the tunable importance-map codec and the RDO-GAN with GLLMM,
# in parallel, each for at most SECONDS of training time (the checkpoints' model cards record
# the steps reached). Usage:
#   DATA=<datasets folder>/cid22/training DEVICE=cuda SECONDS=450 OUT=var/neural \
#       bash scripts/train_seed_codecs.sh
# On this project's 2-core CPU use DEVICE=cpu BATCH=4 CROP=128 and a longer SECONDS, and pick
# a few at a time with ONLY="hific gc-c8" (labels: hific hific-sparse gc-c2 gc-c4 gc-c8 gc-c16
# tunable rdo-gllmm). The shipped hific-small and rdo-gllmm-small are these defaults with
# DEVICE=cpu BATCH=4 CROP=128 SECONDS=5100; hific-sparse-small started from hific-small's
# step-2000 weights (--init-from, --set warmup_steps=0 --set gan_start_step=1250).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
# DATA defaults to CID22's training photos (perceptlab.lib.datasets; fetched on first use).
DATA=${DATA:-$("$PYTHON" -c 'from perceptlab.lib.datasets import dataset_dir; print(dataset_dir("cid22") / "training")')}
DEVICE=${DEVICE:-cpu}
SECONDS_EACH=${SECONDS:-3600}
OUT=${OUT:-var/neural}
BATCH=${BATCH:-8}
CROP=${CROP:-256}
THREADS=${THREADS:-1}
common=(--data "$DATA" --steps 1000000 --max-seconds "$SECONDS_EACH" --device "$DEVICE"
        --batch "$BATCH" --crop "$CROP" --threads "$THREADS" --out "$OUT" --no-progress
        --log-every 50 --save-every 2000)
mkdir -p "$OUT"
ONLY=${ONLY:-hific hific-sparse gc-c2 gc-c4 gc-c8 gc-c16 tunable rdo-gllmm}
GAN_START=${GAN_START:-3500}
run() {  # LABEL ARGS...: one training, its console output in $OUT/LABEL.stdout
    local label=$1
    shift
    case " $ONLY " in *" $label "*) ;; *) return 0 ;; esac
    "$PYTHON" -m perceptlab.codecs.neural.training "$@" "${common[@]}" > "$OUT/$label.stdout" 2>&1
}
pids=()
run hific hific --lr "${HIFIC_LR:-2e-4}" --set warmup_steps="${WARMUP:-1000}" --set gan_start_step="$GAN_START" & pids+=($!)
run hific-sparse hific-sparse --lr "${HIFIC_LR:-2e-4}" --set warmup_steps="${WARMUP:-1000}" --set gan_start_step="$GAN_START" & pids+=($!)
for c in 2 4 8 16; do
    run "gc-c$c" gc --channels "$c" --lr 2e-4 --set gan_start_step=1000 & pids+=($!)
done
run tunable tunable --lr 2e-4 & pids+=($!)
run rdo-gllmm rdo-gllmm --lr "${HIFIC_LR:-2e-4}" --set warmup_steps="${WARMUP:-1000}" --set gan_start_step="$GAN_START" & pids+=($!)
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
