#!/usr/bin/env bash
# Measures a GPU or TPU host in one command, in under 14 minutes (each part
# has a time limit: install 90 s, step timings 180 + 50 s, ENAS steps
# 2 x 90 s, recurrent steps 3 x 45 s, ImageNet input 75 s, search 120 s):
#
#   bash benchmarks/accelerator_check.sh [OUT.jsonl]
#
# 1. Makes sure jax sees the accelerator: if it does not, and pip can reach a
#    package index, installs the accelerator build of the pinned jax
#    (jax[cuda12] on NVIDIA GPUs, jax[tpu] on TPU VMs).
# 2. Times the search steps at both sizes (C=8, 5 cells, batch 32; the
#    paper's C=16, 8 cells, batch 64): weight step, first order, exact second
#    order, with the depthwise formulation the library picks there
#    ('grouped'), and the weight step at C=16 with the CPU one ('shift') for
#    comparison (benchmarks/darts_step.py; one JSON line each).
# 3. Times the ENAS child step against the fixed network of the same arc,
#    micro and macro, at the reference's search sizes
#    (benchmarks/enas_step.py).
# 4. Times the recurrent search step (exact second order) at the papers'
#    search size, the language model's weight step at the retraining
#    size and ENAS's shared recurrent child (benchmarks/rnn_step.py).
# 5. Times the ImageNet input pipeline on this host's cores (random JPEGs,
#    or the prepared TFDS directory $IMAGENET_DIR) and the mobile network's
#    training step at the same batch (benchmarks/input_pipeline.py).
# 6. Runs a short real search through the library: the paper's search
#    config (C=16, 8 cells, batch 64, exact second order) for 300 steps on
#    CIFAR-10 if $CIFAR10_DIR names the extracted python batches, else on
#    random 32x32 images of the same shape (the step does not depend on the
#    pixels); one JSON line with the steps per second and compile time.
#
# Every line names the device. Run from the repository root; results go to
# OUT.jsonl (default benchmarks/accelerator_check.jsonl) and stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/accelerator_check.jsonl}
PY=${PYTHON:-python3}
: > "$OUT"
budget() { timeout "$1" "${@:2}"; }
# Smaller settings for a dry run on a CPU, e.g.
# SIZES=4/3/8 MODES=weights SEARCH_PRESET=tiny SEARCH_STEPS=4 \
#   ENAS_SPECS=micro:4/1/8 RNN_SPECS=first_order:100/8/4/5 bash ...
SIZES=${SIZES:-8/5/32,16/8/64}
MODES=${MODES:-weights,first_order,second_order}
SEARCH_PRESET=${SEARCH_PRESET:-cifar10}
SEARCH_STEPS=${SEARCH_STEPS:-300}
ENAS_SPECS=${ENAS_SPECS:-micro:20/6/160 macro:36/12/128}
RNN_SPECS=${RNN_SPECS:-second_order:10000/300/256/35 retrain:10000/850/64/35 enas_child:10000/200/128/35}

backend=$($PY -c 'import jax; print(jax.default_backend())' 2>/dev/null)
if [ "$backend" = "cpu" ] || [ -z "$backend" ]; then
  ver=$($PY -c 'import jax; print(jax.__version__)' 2>/dev/null || echo 0.10.2)
  if command -v nvidia-smi >/dev/null 2>&1; then extra=cuda12;
  elif [ -e /dev/accel0 ] || [ -n "${TPU_NAME:-}" ]; then extra=tpu; else extra=; fi
  if [ -n "$extra" ]; then
    echo "jax sees no accelerator; installing jax[$extra]==$ver" >&2
    budget 90 $PY -m pip install -q "jax[$extra]==$ver" || echo "install failed: measuring what jax sees" >&2
  fi
  backend=$($PY -c 'import jax; print(jax.default_backend())')
fi
$PY -c 'import jax; print(f"backend {jax.default_backend()}: {jax.devices()}")' >&2

step_check() {  # time limit, then darts_step.py flags
  budget "$1" $PY benchmarks/darts_step.py --steps=5 "${@:2}" \
    | sed 's/^{/{"check": "step", /' | tee -a "$OUT"
}
step_check 180 --sizes="$SIZES" --modes="$MODES" --depthwise_impl=grouped
step_check 50 --sizes="${SIZES##*,}" --modes=weights --depthwise_impl=shift

# ENAS: the shared child's step against the fixed network of the same arc,
# at the reference's search sizes (one JSON line per arc, then a summary).
for spec in $ENAS_SPECS; do
  budget 90 $PY benchmarks/enas_step.py --space="${spec%%:*}" \
    --size="${spec##*:}" --arcs=2 --steps=5 \
    | sed 's/^{/{"check": "enas_step", /' | tee -a "$OUT"
done

# Recurrent cells: the search step and the language model's weight step.
for spec in $RNN_SPECS; do
  budget 45 $PY benchmarks/rnn_step.py --mode="${spec%%:*}" \
    --size="${spec##*:}" --steps=5 \
    | sed 's/^{/{"check": "rnn_step", /' | tee -a "$OUT"
done

# ImageNet: the host's input pipeline (random JPEGs unless IMAGENET_DIR is
# a prepared TFDS directory) and the mobile network's training step.
budget 75 $PY benchmarks/input_pipeline.py --workers=0 --batch=128 \
  --batches=5 ${IMAGENET_DIR:+--data_dir=$IMAGENET_DIR} | tee -a "$OUT"

SEARCH_PRESET=$SEARCH_PRESET SEARCH_STEPS=$SEARCH_STEPS \
  budget 120 $PY - <<'PYEOF' | tee -a "$OUT"
import json, os, time
import numpy as np
import jax
import nasjax
nasjax.setup()
cifar = os.environ.get('CIFAR10_DIR')
if cifar:
  ds = nasjax.data.load('cifar10', cifar)
else:
  rng = np.random.default_rng(0)
  ds = nasjax.data.from_arrays(
      rng.integers(0, 256, (25600, 32, 32, 3), np.uint8),
      rng.integers(0, 10, 25600), rng.integers(0, 256, (64, 32, 32, 3), np.uint8),
      rng.integers(0, 10, 64), name='random32')
config = nasjax.configs.search(os.environ['SEARCH_PRESET'])
config.max_steps, config.log_every_steps = int(os.environ['SEARCH_STEPS']), 50
t = time.time()
found = nasjax.search(ds, config, progress='none')
s = found.summary
print(json.dumps({'check': 'search', 'device': jax.devices()[0].device_kind,
                  'num_devices': jax.device_count(), 'data': ds.name,
                  'steps': s['step'], 'median_step_s': s['median_step_seconds'],
                  'loop_s': s['wall_seconds'], 'total_s': time.time() - t,
                  'jax': jax.__version__}))
PYEOF
# 7. Opt-in (not in the 14 minutes): NB201=1 times 100 steps of the
#    NAS-Bench-201 supernet (C=16, N=5, batch 64) under DARTS and GDAS;
#    NB201_FULL=1 with CIFAR10_DIR and NB201_TABLE runs the NB201 paper's
#    searches, ENAS's included (full CIFAR-10; hours), and looks the cells
#    up.
if [ "${NB201:-0}" = 1 ]; then
  budget 300 $PY benchmarks/nb201_search.py --full --strategies=darts,gdas \
    --seeds=0 --max_steps=100 | grep '^{' \
    | sed 's/^{/{"check": "nb201_steps", /' | tee -a "$OUT"
fi
if [ "${NB201_FULL:-0}" = 1 ]; then
  $PY benchmarks/nb201_search.py --full --data_dir="$CIFAR10_DIR" \
    --table="$NB201_TABLE" --strategies=darts,gdas,rsps,enas --seeds=0,1,2 \
    | tee -a "$OUT"
fi
echo "wrote $OUT" >&2
