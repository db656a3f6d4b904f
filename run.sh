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

# Scales: quick (the main job's budget on the offline mnist_5k: the flag files as they are), cpu
# (the same experiments trained to their plateau: flags/cpu.flags added after each flag file) and
# paper (the paper's datasets and 3e5 updates: flags/{mnist,svhn,celeba}_*.flags).
SCALES="quick|cpu|paper"
flag_args() {  # flag_args SCALE NAME: the flagfile arguments of hiabp_tf.train
  case "$1" in
    cpu) echo "--flagfile=flags/$2.flags --flagfile=flags/cpu.flags" ;;
    *) echo "--flagfile=flags/$2.flags" ;;
  esac
}
main_prefix() { case "$1" in paper) echo mnist ;; *) echo mnist5k ;; esac; }

# Trainings run $JOBS at a time, each op on $(nproc)/$JOBS threads (TF_NUM_INTRAOP_THREADS): on 2
# cores two one-thread trainings finish a table sooner than one two-thread training after another
# (results/performance.md). One at a time at paper scale (a GPU each). HIABP_JOBS overrides.
jobs_for() { echo "${HIABP_JOBS:-$([ "$1" = paper ] && echo 1 || echo 2)}"; }

# train_and_evaluate SCALE NAME [EVALUATE FLAGS]: trains (or resumes) runs/SCALE/NAME, then writes
# eval_*.json in the workdir and prints evaluate's JSON line. The log goes to runs/SCALE/NAME.log.
train_and_evaluate() {
  local scale=$1 name=$2 workdir="runs/$1/$2" log="runs/$1/$2.log"
  shift 2
  mkdir -p "runs/$scale"
  echo "[run.sh] $name: training and evaluating (workdir $workdir, log $log)" >&2
  # shellcheck disable=SC2046  # flag_args is a list of words
  if ! "$PY" -m hiabp_tf.train $(flag_args "$scale" "$name") --workdir="$workdir" >> "$log" 2>&1; then
    echo "[run.sh] $name FAILED; the end of $log:" >&2
    tail -n 5 "$log" >&2
    return 1
  fi
  # evaluate.out: the evaluate flags, then its output. Skipped when the same evaluation of the same
  # checkpoint is already there (a rerun, or `all`, which trains everything first).
  local marker="# evaluate $*"
  if [ ! -f "$workdir/evaluate.out" ] || [ "$(head -n 1 "$workdir/evaluate.out")" != "$marker" ] ||
     [ "$workdir/checkpoints/checkpoint" -nt "$workdir/evaluate.out" ]; then
    if ! { echo "$marker"; "$PY" -m hiabp_tf.evaluate --workdir="$workdir" "$@" 2>> "$log"; } > "$workdir/evaluate.out.tmp"; then
      echo "[run.sh] $name: evaluation FAILED; the end of $log:" >&2
      tail -n 5 "$log" >&2
      return 1
    fi
    mv "$workdir/evaluate.out.tmp" "$workdir/evaluate.out"
  fi
  echo "[run.sh] $name: $(tail -n 1 "$workdir/evaluate.out")" >&2
}

# Rough cost of a run, to start the longest first: Langevin steps x ladder depth.
run_cost() {
  local name=$1 t=15 l=1
  case "$name" in *_t5) t=5 ;; *_t10) t=10 ;; *_t30) t=30 ;; *vae*) t=1 ;; esac
  case "$name" in *_l2*) l=2 ;; *_l3*) l=3 ;; *_l4*) l=4 ;; esac
  echo $(( t * (l + 1) ))
}

# train_all SCALE ITEM...: every ITEM ("NAME" or "NAME|EVALUATE FLAGS") trained and evaluated,
# $JOBS at a time; list the longest runs first so the last ones to finish are short.
train_all() {
  local scale=$1 jobs failed=0 item
  shift
  if [ -n "${PLAN_ONLY:-}" ]; then PLANNED+=("$@"); return 0; fi  # `all` collects every run first
  jobs=$(jobs_for "$scale")
  local threads="${TF_NUM_INTRAOP_THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}"
  for item in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || failed=1; done
    # shellcheck disable=SC2086  # the evaluate flags are words
    TF_NUM_INTRAOP_THREADS=$threads train_and_evaluate "$scale" "${item%%|*}" \
      $([ "$item" = "${item#*|}" ] || echo "${item#*|}") &
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
  if [ "$failed" != 0 ]; then echo "[run.sh] some runs failed (logs above); finished runs are kept" >&2; return 1; fi
}

wall() {  # wall START: the provenance note of every table
  if [ -n "${POOL_SECONDS:-}" ]; then
    echo "its runs trained in the pool of \`./run.sh all $scale\`: $POOL_SECONDS s wall time for every run of every experiment on $(nproc) CPU cores, $(jobs_for "$scale") trainings at a time"
  else
    echo "$((SECONDS - $1)) s wall time on $(nproc) CPU cores, $(jobs_for "$scale") trainings at a time${TF_NUM_INTRAOP_THREADS:+, TF_NUM_INTRAOP_THREADS=$TF_NUM_INTRAOP_THREADS}; runs already trained to their steps are only re-evaluated"
  fi
}

core() {
  local scale=$1 start=$SECONDS
  if [ "$scale" = paper ]; then
    local names=() runs=""
    for data in mnist svhn celeba; do
      for L in 1 2 3 4; do
        names+=("${data}_hiabp_l$L")
        runs+="${runs:+,}$data HiABP (L=$L)=runs/paper/${data}_hiabp_l$L"
      done
    done
    train_all "$scale" "${names[@]}"
    table=hiabp.md
  else
    train_all "$scale" mnist5k_hiabp_l3 mnist5k_iabp
    runs="IABP (L=1)=runs/$scale/mnist5k_iabp,HiABP (L=3)=runs/$scale/mnist5k_hiabp_l3"
    table=hiabp_mnist5k.md
  fi
  "$PY" -m hiabp_tf.report --out="results/$scale" --table="$table" --runs="$runs" \
    --title="IABP / HiABP test reconstruction MSE ($scale scale)" \
    --command="./run.sh $( [ "$scale" = quick ] || echo "core ")$scale  ($(wall $start))"
}

# Table 1 row key -> flag file suffix (IABP is HiABP with L=1: mnist5k_iabp on mnist_5k).
TABLE1_ROWS=(hiabp_l4 hiabp_l3 hiabp_l2 iabp abp abp_persistent lvae vlae vae)  # longest first
flag_suffix() {
  case "$1" in
    lvae|vlae) echo "${1}_l4" ;;
    iabp) [ "$2" = mnist5k ] && echo iabp || echo hiabp_l1 ;;
    *) echo "$1" ;;
  esac
}

# FID of Table 1: in a classifier's feature space for MNIST-like data (Inception is meaningless there
# and cannot be downloaded here), in Inception-v3 features from $INCEPTION_WEIGHTS otherwise.
fid_flags() {
  local scale=$1 prefix=$2
  if [ "$prefix" = mnist5k ] || [ "$prefix" = mnist ]; then
    echo "--fid=classifier --fid_samples=$([ "$scale" = paper ] && echo 40000 || echo 4000) --fid_classifier=runs/$scale/fid_classifier_$prefix.keras"
  elif [ -n "${INCEPTION_WEIGHTS:-}" ]; then
    echo "--fid=inception --fid_samples=40000 --inception_weights=$INCEPTION_WEIGHTS"
  else
    echo "[run.sh] INCEPTION_WEIGHTS is not set: no FID for $prefix (see README)" >&2
  fi
}

table1() {
  local scale=$1 start=$SECONDS runs="" items=() columns
  if [ "$scale" = paper ]; then columns=("MNIST:mnist" "SVHN:svhn" "CelebA:celeba"); else columns=("mnist_5k:mnist5k"); fi
  for column in "${columns[@]}"; do
    local title=${column%%:*} prefix=${column##*:}
    if [ "$prefix" = mnist5k ] || [ "$prefix" = mnist ]; then  # trained once, before the parallel evaluations
      "$PY" -c "import sys; from hiabp_tf import fid; fid.ClassifierFeatures.load_or_train(sys.argv[1], dataset=sys.argv[2])" \
        "runs/$scale/fid_classifier_$prefix.keras" "$([ "$prefix" = mnist ] && echo mnist || echo mnist_5k)"
    fi
    for row in "${TABLE1_ROWS[@]}"; do
      local name="${prefix}_$(flag_suffix "$row" "$prefix")"
      items+=("$name|$(fid_flags "$scale" "$prefix")")
      runs+="${runs:+,}$title|$row=runs/$scale/$name"
    done
  done
  train_all "$scale" "${items[@]}"
  [ -z "${PLAN_ONLY:-}" ] || return 0
  "$PY" -m hiabp_tf.report --kind=table1 --out="results/$scale" --table=table1.md --runs="$runs" \
    --title="Table 1: test reconstruction MSE of every method ($scale scale, equal steps)" \
    --command="./run.sh table1 $scale  (flags/<prefix>_<row>.flags$([ "$scale" = cpu ] && echo " + flags/cpu.flags"); $(wall $start))"
  if [ "$scale" != paper ]; then
    "$PY" -m hiabp_tf.report --kind=learning_curves --out="results/$scale" --runs="$runs" \
      --command="./run.sh table1 $scale  (the evaluations during training of the Table 1 runs)"
  fi
}

table2() {
  local scale=$1 start=$SECONDS base runs="" items=()
  base=$([ "$scale" = paper ] && echo celeba_hiabp_l4 || echo mnist5k_hiabp_l3)
  for mask in pepper region10 region20; do
    items+=("${base}_$mask|--mask=$mask")
    runs+="${runs:+,}$mask=runs/$scale/${base}_$mask"
  done
  train_all "$scale" "$base" "${items[@]}"
  [ -z "${PLAN_ONLY:-}" ] || return 0
  for mask in pepper region10 region20; do  # the model trained on complete images, tested occluded
    "$PY" -m hiabp_tf.evaluate --workdir="runs/$scale/$base" --mask="$mask" | tail -n 1
  done
  "$PY" -m hiabp_tf.report --kind=table2 --out="results/$scale" --table=table2.md \
    --runs="$runs,complete=runs/$scale/$base" \
    --title="Table 2: learning from incomplete data, recovery error on occluded test pixels ($scale scale, ${base})" \
    --command="./run.sh table2 $scale  ($(wall $start))"
}

table3() {
  local scale=$1 start=$SECONDS base runs="" items=()
  base=$([ "$scale" = paper ] && echo svhn_hiabp_l4 || echo mnist5k_hiabp_l3)
  for t in 30 15 10 5; do  # longest first
    local name="${base}_t$t"; [ "$t" = 15 ] && name="$base"
    items+=("$name")
    runs+="${runs:+,}$t=runs/$scale/$name"
  done
  train_all "$scale" "${items[@]}"
  [ -z "${PLAN_ONLY:-}" ] || return 0
  "$PY" -m hiabp_tf.report --kind=table3 --out="results/$scale" --table=table3.md --runs="$runs" \
    --title="Table 3: the effect of the number of Langevin steps T on HiABP ($scale scale, ${base})" \
    --command="./run.sh table3 $scale  ($(wall $start))"
}

figure1() {
  local scale=$1 start=$SECONDS prefix iabp
  prefix=$(main_prefix "$scale")
  iabp="${prefix}_$(flag_suffix iabp "$prefix")"
  train_all "$scale" "$iabp" "${prefix}_abp"
  [ -z "${PLAN_ONLY:-}" ] || return 0
  "$PY" -m hiabp_tf.report --kind=figure1 --out="results/$scale" \
    --runs="encoder=runs/$scale/$iabp,noise=runs/$scale/${prefix}_abp" \
    --command="./run.sh figure1 $scale  ($(wall $start))"
}

figure7() {
  local scale=$1 name
  name="$(main_prefix "$scale")_hiabp_l3"
  train_all "$scale" "$name"
  [ -z "${PLAN_ONLY:-}" ] || return 0
  "$PY" -m hiabp_tf.disentangle --workdir="runs/$scale/$name" --out="results/$scale/figure7"
}

budget() {
  local scale=$1
  "$PY" -m hiabp_tf.langevin_budget --scale="$scale" --out="results/$scale" --runs_dir="runs/$scale" \
    --command="./run.sh budget $scale"
}

samples() {
  local scale=$1 start=$SECONDS prefix hiabp vae abp
  prefix=$(main_prefix "$scale")
  hiabp=$([ "$scale" = paper ] && echo celeba_hiabp_l4 || echo mnist5k_hiabp_l3)
  if [ "$scale" = paper ]; then vae=celeba_vae; abp=celeba_abp; else vae=mnist5k_vae; abp=mnist5k_abp; fi
  train_all "$scale" "$hiabp" "$abp" "$vae"
  [ -z "${PLAN_ONLY:-}" ] || return 0
  "$PY" -m hiabp_tf.report --kind=samples --out="results/$scale" \
    --runs="VAE=runs/$scale/$vae,ABP (non-persistent)=runs/$scale/$abp,HiABP=runs/$scale/$hiabp" \
    --command="./run.sh samples $scale  ($(wall $start))"
}

claims() {
  local scale=$1
  # The README's first screen shows the cpu scale's results.
  "$PY" -m hiabp_tf.report --kind=claims --out="results/$scale" --command="./run.sh claims $scale" \
    $([ "$scale" = cpu ] && echo "--readme=README.md")
}

performance() {
  # The PyTorch peer is optional (not in requirements.txt): without it the peer row is skipped.
  if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[run.sh] installing torch==2.13.0 into $VENV for the eager PyTorch peer" >&2
    "$PY" -m pip install --quiet torch==2.13.0 || echo "[run.sh] no PyTorch: the peer is skipped" >&2
  fi
  "$PY" -m hiabp_tf.performance --out=results/performance.md "$@"
}

usage="usage: ./run.sh [quick|cpu|paper|memory|performance|test|setup] or ./run.sh {core|table1|table2|table3|figure1|figure7|samples|claims|budget|all} [$SCALES]"
cmd="${1:-quick}"
case "$cmd" in
  setup) setup ;;
  test) setup; shift || true; "$PY" -m pytest -q tests -n 2 --dist loadfile --durations=20 "$@" ;;
  performance) setup; shift; performance "$@" ;;
  quick|cpu|paper) setup; scale=$cmd; core "$cmd" ;;
  memory) setup; "$PY" -m hiabp_tf.memory --out=results/memory.md --command="./run.sh memory" ;;
  core|table1|table2|table3|figure1|figure7|samples|claims|budget|all)
    scale="${2:-quick}"
    case "$scale" in quick|cpu|paper) ;; *) echo "$usage" >&2; exit 2 ;; esac
    if [ "$cmd" = budget ] && [ "$scale" = cpu ]; then echo "./run.sh budget: quick or paper" >&2; exit 2; fi
    setup
    if [ "$cmd" = all ]; then
      start_all=$SECONDS
      experiments=(core table1 table2 table3 figure1 figure7 samples)
      # Every run of every experiment in one pool, longest first, so the cores stay busy to the end;
      # then each experiment finds its runs trained and evaluated and only writes its results.
      PLANNED=() PLAN_ONLY=1
      for e in "${experiments[@]}"; do "$e" "$scale"; done
      unset PLAN_ONLY
      mapfile -t ordered < <(for item in "${PLANNED[@]}"; do echo "$(run_cost "${item%%|*}") $item"; done |
                             sort -s -k1,1nr | awk '{split($2, n, "|")} !seen[n[1]]++' | cut -d' ' -f2-)
      pool_start=$SECONDS
      train_all "$scale" "${ordered[@]}"
      POOL_SECONDS=$((SECONDS - pool_start))
      for e in "${experiments[@]}"; do "$e" "$scale"; done
      claims "$scale"
      "$PY" -m hiabp_tf.report --kind=index --out="results/$scale" \
        --command="./run.sh all $scale  ($((SECONDS - start_all)) s wall time on $(nproc) CPU cores, $(jobs_for "$scale") trainings at a time)"
    else
      "$cmd" "$scale"
    fi ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
