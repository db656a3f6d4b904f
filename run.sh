#!/usr/bin/env bash
# hiabp-tf: set up, reproduce, test.
#
#   ./run.sh [quick]      main job: IABP and HiABP (L=3) on the offline mnist_5k, trained, evaluated
#                         and written to results/quick/ (a few minutes on 2 CPU cores)
#   ./run.sh paper        the same experiments at the paper's scale (MNIST/SVHN/CelebA, 3e5 updates;
#                         needs a GPU and the tensorflow-datasets data, see docs/data.md)
#   ./run.sh table1 [quick|cpu|paper]
#                         every row of the paper's Table 1 (VAE, LVAE, VLAE, ABP non-persistent and
#                         persistent, IABP [E] and [E+L], HiABP L=2,3,4) trained with equal steps and
#                         written to results/<scale>/table1.md
#   ./run.sh table2 [quick|cpu|paper]   learning from incomplete data (3 mask types), results/<scale>/table2.md
#   ./run.sh table3 [quick|cpu|paper]   HiABP trained and evaluated with T = 5, 10, 15, 30
#   ./run.sh figure1 [quick|cpu|paper]  test MSE vs test-time Langevin steps, encoder vs noise initialisation
#   ./run.sh figure7 [quick|cpu|paper]  per-layer disentanglement panels of HiABP
#   ./run.sh samples [quick|cpu|paper]  samples, and reconstructions of VAE, ABP and HiABP side by side
#   ./run.sh diagnostics [quick|cpu|paper]  what each model does with its latent layers (active units,
#                         KL, HiABP's chains), training vs test MSE, float32 vs bfloat16: diagnostics.md
#   ./run.sh latent_size [cpu|paper]    Table 1's MNIST rows at total latent sizes 12 and 24 beside 48, and
#                         the paper's MNIST verdicts at each size: results/<scale>/latent_size.md
#   ./run.sh all [quick|cpu|paper]      every one of the above, then results/README.md
#   ./run.sh EXPERIMENT SCALE --report_only   evaluate and report what is trained so far, training nothing
#                         (Table 1 with the seeds there are); --train_only: train, report later
#   ./run.sh budget [quick|cpu|paper]   quality per unit of compute: IABP and ABP each trained and tested
#                                   with T = 1, 2, 5, 10, 15, 30, 60; test MSE vs Langevin gradient
#                                   evaluations and training wall time, results/<scale>/langevin_budget.md
#                                   (not part of `all`: about an hour on 2 CPU cores at quick scale)
#   ./run.sh memory       peak memory of training each paper-scale configuration (random images, a
#                         few steps each), data-cache and persistent-chain sizes: results/memory.md
#   ./run.sh performance  the speed levers of the training step, timed by `python -m hiabp_tf.benchmark`
#                         (with the plain eager PyTorch peer: installs torch==2.13.0 into .venv) and
#                         written to results/performance.md (~15 min on 2 CPU cores; a quiet machine)
#   ./run.sh test         the test suite
#   ./run.sh setup        only create .venv and install requirements.txt
#
# Every command first makes sure .venv exists with requirements.txt installed (Python 3.11).
# Training runs go to runs/<scale>/<flagfile name>; rerunning resumes from their checkpoints.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${HIABP_VENV:-.venv}"
PY="$VENV/bin/python"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"  # TensorFlow's C++ info lines are noise here

setup() {
  if [ ! -x "$PY" ]; then
    echo "[run.sh] creating $VENV" >&2
    python3 -m venv "$VENV"
  fi
  # Reinstall only when requirements.txt changed since the last successful install.
  if ! cmp -s requirements.txt "$VENV/.requirements.installed"; then
    echo "[run.sh] installing requirements.txt into $VENV" >&2
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -r requirements.txt
    cp requirements.txt "$VENV/.requirements.installed"
  fi
}

# Which runs make each table at each scale, and how they are trained, evaluated and reported, is in
# Python: hiabp_tf/experiments/plan.py and run.py. This script sets up, tests and dispatches.
SCALES="quick|cpu|paper"
experiment() {
  # MNIST (the cpu scale) from its npz copy when this machine has one beside the project
  # (../shared/data/mnist.npz), unless TFDS_DATA_DIR names a data dir already (docs/data.md, MNIST).
  if [ -z "${TFDS_DATA_DIR:-}" ] && [ -f ../shared/data/mnist.npz ]; then
    TFDS_DATA_DIR="$(cd ../shared/data && pwd)"
    export TFDS_DATA_DIR
  fi
  "$PY" -m hiabp_tf.experiments.run "$@"
}

budget() {
  local scale=$1
  "$PY" -m hiabp_tf.experiments.langevin_budget --scale="$scale" --out="results/$scale" --runs_dir="runs/$scale" \
    --command="./run.sh budget $scale"
}

performance() {
  # The PyTorch peer is optional (not in requirements.txt): without it the peer row is skipped.
  if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[run.sh] installing torch==2.13.0 into $VENV for the eager PyTorch peer" >&2
    "$PY" -m pip install --quiet torch==2.13.0 || echo "[run.sh] no PyTorch: the peer is skipped" >&2
  fi
  "$PY" -m hiabp_tf.tools.performance --out=results/performance.md "$@"
}

usage="usage: ./run.sh [quick|cpu|paper|memory|performance|test|setup] or ./run.sh {core|table1|table2|table3|figure1|figure7|samples|diagnostics|latent_size|claims|budget|all} [$SCALES]"
cmd="${1:-quick}"
case "$cmd" in
  setup) setup ;;
  test) setup; shift || true; "$PY" -m pytest -q tests -n 2 --dist loadfile --durations=20 "$@" ;;
  performance) setup; shift; performance "$@" ;;
  quick|cpu|paper) setup; experiment core "$cmd" ;;
  memory) setup; "$PY" -m hiabp_tf.tools.memory --out=results/memory.md --command="./run.sh memory" ;;
  core|table1|table2|table3|figure1|figure7|samples|diagnostics|latent_size|claims|budget|all)
    scale="${2:-quick}"
    case "$scale" in quick|cpu|paper) ;; *) echo "$usage" >&2; exit 2 ;; esac
    if [ "$cmd" = budget ] && [ "$scale" = cpu ]; then echo "./run.sh budget: quick or paper" >&2; exit 2; fi
    setup
    if [ "$cmd" = budget ]; then budget "$scale"; else experiment "$cmd" "$scale" "${@:3}"; fi ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
