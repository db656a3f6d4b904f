#!/usr/bin/env bash
# hiabp-tf: set up, reproduce, test.
#
#   ./run.sh [quick]      main job: IABP and HiABP (L=3) on the offline mnist_5k, trained, evaluated
#                         and written to results/quick/ (a few minutes on 2 CPU cores)
#   ./run.sh paper        the same experiments at the paper's scale (MNIST/SVHN/CelebA, 3e5 updates;
#                         needs a GPU and the tensorflow-datasets data, see README)
#   ./run.sh table1 [quick|paper]
#                         every row of the paper's Table 1 (VAE, LVAE, VLAE, ABP non-persistent and
#                         persistent, IABP [E] and [E+L], HiABP L=2,3,4) trained with equal steps and
#                         written to results/<scale>/table1.md
#   ./run.sh table2 [quick|paper]   learning from incomplete data (3 mask types), results/<scale>/table2.md
#   ./run.sh table3 [quick|paper]   HiABP trained and evaluated with T = 5, 10, 15, 30
#   ./run.sh figure1 [quick|paper]  test MSE vs test-time Langevin steps, encoder vs noise initialisation
#   ./run.sh figure7 [quick|paper]  per-layer disentanglement panels of HiABP
#   ./run.sh samples [quick|paper]  samples, and reconstructions of VAE, ABP and HiABP side by side
#   ./run.sh all [quick|paper]      every one of the above, then results/README.md
#   ./run.sh budget [quick|paper]   quality per unit of compute: IABP and ABP each trained and tested
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

# train_and_evaluate SCALE FLAGFILE_NAME [EVALUATE FLAGS]: trains (or resumes), then writes
# eval_*.json in the workdir.
train_and_evaluate() {
  local scale=$1 name=$2 workdir="runs/$1/$2"
  shift 2
  echo "[run.sh] $name: training (workdir $workdir)" >&2
  "$PY" -m hiabp_tf.train --flagfile="flags/$name.flags" --workdir="$workdir"
  echo "[run.sh] $name: evaluating on the whole test split" >&2
  "$PY" -m hiabp_tf.evaluate --workdir="$workdir" "$@" | tail -n 1
}

core() {
  local scale=$1 prefix out="results/$1" start=$SECONDS
  if [ "$scale" = quick ]; then
    names=(mnist5k_iabp mnist5k_hiabp_l3)
    runs="IABP (L=1)=runs/quick/mnist5k_iabp,HiABP (L=3)=runs/quick/mnist5k_hiabp_l3"
    table=hiabp_mnist5k.md
  else
    names=()
    runs=""
    for data in mnist svhn celeba; do
      for L in 1 2 3 4; do
        names+=("${data}_hiabp_l$L")
        runs+="${runs:+,}$data HiABP (L=$L)=runs/paper/${data}_hiabp_l$L"
      done
    done
    table=hiabp.md
  fi
  for name in "${names[@]}"; do
    train_and_evaluate "$scale" "$name"
  done
  "$PY" -m hiabp_tf.report --out="$out" --table="$table" --runs="$runs" \
    --title="IABP / HiABP test reconstruction MSE ($scale scale)" \
    --command="./run.sh $scale  (flags/<name>.flags; $((SECONDS - start)) s wall time on $(nproc) CPU cores; runs already trained to their steps are only re-evaluated)"
}

# Table 1 row key -> flag file suffix (IABP is HiABP with L=1: mnist5k_iabp at quick scale).
TABLE1_ROWS=(vae lvae vlae abp abp_persistent iabp hiabp_l2 hiabp_l3 hiabp_l4)
flag_suffix() {
  case "$1" in
    lvae|vlae) echo "${1}_l4" ;;
    *) echo "$1" ;;
  esac
}

# FID of Table 1: in a classifier's feature space for MNIST-like data (Inception is meaningless there
# and cannot be downloaded here), in Inception-v3 features from $INCEPTION_WEIGHTS otherwise.
fid_flags() {
  local scale=$1 prefix=$2
  if [ "$prefix" = mnist5k ] || [ "$prefix" = mnist ]; then
    echo "--fid=classifier --fid_samples=$([ "$scale" = quick ] && echo 4000 || echo 40000) --fid_classifier=runs/$scale/fid_classifier_$prefix.keras"
  elif [ -n "${INCEPTION_WEIGHTS:-}" ]; then
    echo "--fid=inception --fid_samples=40000 --inception_weights=$INCEPTION_WEIGHTS"
  else
    echo "[run.sh] INCEPTION_WEIGHTS is not set: no FID for $prefix (see README)" >&2
  fi
}

table1() {
  local scale=$1 start=$SECONDS runs="" columns
  if [ "$scale" = quick ]; then columns=("mnist_5k:mnist5k"); else columns=("MNIST:mnist" "SVHN:svhn" "CelebA:celeba"); fi
  for column in "${columns[@]}"; do
    local title=${column%%:*} prefix=${column##*:}
    for row in "${TABLE1_ROWS[@]}"; do
      local name="${prefix}_$(flag_suffix "$row")"
      if [ "$row" = iabp ] && [ "$scale" = paper ]; then name="${prefix}_hiabp_l1"; fi
      train_and_evaluate "$scale" "$name" $(fid_flags "$scale" "$prefix")
      runs+="${runs:+,}$title|$row=runs/$scale/$name"
    done
  done
  "$PY" -m hiabp_tf.report --kind=table1 --out="results/$scale" --table=table1.md --runs="$runs" \
    --title="Table 1: test reconstruction MSE of every method ($scale scale, equal steps)" \
    --command="./run.sh table1 $scale  (flags/<prefix>_<row>.flags; $((SECONDS - start)) s wall time on $(nproc) CPU cores; runs already trained to their steps are only re-evaluated)"
}

# The dataset prefix and the HiABP depth each experiment uses at each scale.
main_prefix() { [ "$1" = quick ] && echo mnist5k || echo mnist; }

table2() {
  local scale=$1 start=$SECONDS base runs=""
  base=$([ "$scale" = quick ] && echo mnist5k_hiabp_l3 || echo celeba_hiabp_l4)
  train_and_evaluate "$scale" "$base"
  for mask in pepper region10 region20; do
    train_and_evaluate "$scale" "${base}_$mask" --mask="$mask"
    "$PY" -m hiabp_tf.evaluate --workdir="runs/$scale/$base" --mask="$mask" | tail -n 1
    runs+="${runs:+,}$mask=runs/$scale/${base}_$mask"
  done
  "$PY" -m hiabp_tf.report --kind=table2 --out="results/$scale" --table=table2.md \
    --runs="$runs,complete=runs/$scale/$base" \
    --title="Table 2: learning from incomplete data, recovery error on occluded test pixels ($scale scale, ${base})" \
    --command="./run.sh table2 $scale  ($((SECONDS - start)) s wall time on $(nproc) CPU cores; runs already trained are only re-evaluated)"
}

table3() {
  local scale=$1 start=$SECONDS base runs=""
  base=$([ "$scale" = quick ] && echo mnist5k_hiabp_l3 || echo svhn_hiabp_l4)
  for t in 5 10 15 30; do
    local name="${base}_t$t"; [ "$t" = 15 ] && name="$base"
    train_and_evaluate "$scale" "$name"
    runs+="${runs:+,}$t=runs/$scale/$name"
  done
  "$PY" -m hiabp_tf.report --kind=table3 --out="results/$scale" --table=table3.md --runs="$runs" \
    --title="Table 3: the effect of the number of Langevin steps T on HiABP ($scale scale, ${base})" \
    --command="./run.sh table3 $scale  ($((SECONDS - start)) s wall time on $(nproc) CPU cores; runs already trained are only re-evaluated)"
}

figure1() {
  local scale=$1 start=$SECONDS prefix iabp
  prefix=$(main_prefix "$scale")
  iabp=$([ "$scale" = quick ] && echo mnist5k_iabp || echo mnist_hiabp_l1)
  train_and_evaluate "$scale" "$iabp"
  train_and_evaluate "$scale" "${prefix}_abp"
  "$PY" -m hiabp_tf.report --kind=figure1 --out="results/$scale" \
    --runs="encoder=runs/$scale/$iabp,noise=runs/$scale/${prefix}_abp" \
    --command="./run.sh figure1 $scale  ($((SECONDS - start)) s wall time on $(nproc) CPU cores; runs already trained are only re-evaluated)"
}

figure7() {
  local scale=$1 name
  name="$(main_prefix "$scale")_hiabp_l3"
  train_and_evaluate "$scale" "$name"
  "$PY" -m hiabp_tf.disentangle --workdir="runs/$scale/$name" --out="results/$scale/figure7"
}

budget() {
  local scale=$1
  "$PY" -m hiabp_tf.langevin_budget --scale="$scale" --out="results/$scale" --runs_dir="runs/$scale" \
    --command="./run.sh budget $scale"
}

samples() {
  local scale=$1 start=$SECONDS prefix hiabp
  prefix=$(main_prefix "$scale")
  hiabp=$([ "$scale" = quick ] && echo mnist5k_hiabp_l3 || echo celeba_hiabp_l4)
  if [ "$scale" = quick ]; then vae=mnist5k_vae; abp=mnist5k_abp; else vae=celeba_vae; abp=celeba_abp; fi
  for name in "$vae" "$abp" "$hiabp"; do train_and_evaluate "$scale" "$name"; done
  "$PY" -m hiabp_tf.report --kind=samples --out="results/$scale" \
    --runs="VAE=runs/$scale/$vae,ABP (non-persistent)=runs/$scale/$abp,HiABP=runs/$scale/$hiabp" \
    --command="./run.sh samples $scale  ($((SECONDS - start)) s wall time on $(nproc) CPU cores; runs already trained are only re-evaluated)"
}

performance() {
  # The PyTorch peer is optional (not in requirements.txt): without it the peer row is skipped.
  if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[run.sh] installing torch==2.13.0 into $VENV for the eager PyTorch peer" >&2
    "$PY" -m pip install --quiet torch==2.13.0 || echo "[run.sh] no PyTorch: the peer is skipped" >&2
  fi
  "$PY" -m hiabp_tf.performance --out=results/performance.md "$@"
}

cmd="${1:-quick}"
case "$cmd" in
  setup) setup ;;
  test) setup; shift || true; "$PY" -m pytest -q tests "$@" ;;
  performance) setup; shift; performance "$@" ;;
  quick|paper) setup; core "$cmd" ;;
  memory) setup; "$PY" -m hiabp_tf.memory --out=results/memory.md --command="./run.sh memory" ;;
  table1|table2|table3|figure1|figure7|samples|budget|all)
    scale="${2:-quick}"
    case "$scale" in quick|paper) ;; *) echo "usage: ./run.sh $cmd [quick|paper]" >&2; exit 2 ;; esac
    setup
    if [ "$cmd" = all ]; then
      start_all=$SECONDS
      core "$scale"; table1 "$scale"; table2 "$scale"; table3 "$scale"; figure1 "$scale"; figure7 "$scale"; samples "$scale"
      "$PY" -m hiabp_tf.report --kind=index --out="results/$scale" \
        --command="./run.sh all $scale  ($((SECONDS - start_all)) s wall time on $(nproc) CPU cores)"
    else
      "$cmd" "$scale"
    fi ;;
  *) echo "usage: ./run.sh [quick|paper|memory|performance|test|setup] or ./run.sh {table1|table2|table3|figure1|figure7|samples|budget|all} [quick|paper]" >&2; exit 2 ;;
esac
