#!/usr/bin/env bash
# Trains and exports the bundled weights, one single-thread CPU run after another.
# Step counts are sized for a 2-core CPU within one sitting (two of these invocations ran side by side);
# each model card records the exact command, steps and wall time of its run.
# Usage: scripts/train_zoo.sh NAME... | A | B | all     (re-run to resume: every run uses --resume)
# DATA/VAL default to the colour corpus beside the checkout; runs land in $RUNS (runs/), weights in $WEIGHTS_OUT
# (assets/weights/). Point WEIGHTS_OUT elsewhere to compare a new run with the bundled weights before replacing them.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/colour-corpus/train}
VAL=${VAL:-../shared/data/colour-corpus/val}
RUNS=${RUNS:-runs}
WEIGHTS_OUT=${WEIGHTS_OUT:-assets/weights}
MANIFEST="colour-corpus (../shared/data/colour-corpus/MANIFEST.md): 19,715 train / 1,038 val real photos, 128x128 JPEG q90"
# Patience 20 is more evaluations than a run has: with 7, the noisy 256-photo val stopped some runs before the
# cosine schedule's low learning-rate tail, which is where these short runs gain most. The weights kept from
# the first sitting (autoencoder, autoencoder-13, zhang-regression, eccv16-small) were trained with
# the trainer's default patience of 7; each card's command line is the exact record.
COMMON=(--data "$DATA" --val "$VAL" --size 64 --batch-size 32 --device cpu --threads 1 --workers 1
        --cache --val-limit 256 --no-progress --resume --patience 20)

# The recipe of each bundled weights set: model, steps, then extra trainer arguments.
recipe() {
  case $1 in
    baseline)          echo baseline 5000 ;;
    autoencoder)       echo autoencoder 1200 ;;
    autoencoder-13)    echo autoencoder-13 400 ;;
    zhang-regression)  echo zhang-regression 600 ;;
    resnet-regression) echo resnet-regression 1500 ;;
    eccv16-small)      echo eccv16-small 400 --prior-images 3000 ;;
    eccv16-w25)        echo eccv16 1500 --prior-images 3000 --config width=0.25 ;;
    unet-palette-16)   echo unet-palette 1500 --rebalance-palette --config bins=16 width=8 ;;
    unet-palette-24)   echo unet-palette 1500 --rebalance-palette --config bins=24 width=8 ;;
    unet-palette-32)   echo unet-palette 1500 --rebalance-palette --config bins=32 width=8 ;;
    siggraph17-w25)    echo siggraph17 1000 --config width=0.25 ;;
    # Third sitting: fine-tunes of bundled weights (L1 for the regressors: a lower mean ab error, i.e. a higher
    # AuC, than MSE). Pass WEIGHTS_OUT elsewhere to compare a fine-tune with the weights it would replace.
    # --init reads the bundled weights, so to reproduce from scratch run the base recipe first: `NAME NAME-ft`.
    resnet-regression-ft) echo resnet-regression 4000 --init resnet-regression --loss l1 --lr 0.0005 ;;
    baseline-ft)       echo baseline 8000 --init baseline --loss l1 --lr 0.0005 ;;
    zhang-regression-ft) echo zhang-regression 2400 --init zhang-regression --loss l1 --lr 0.0005 ;;
    autoencoder-ft)    echo autoencoder 1200 --init autoencoder --loss l1 --lr 0.0005 ;;
    # Fourth sitting: L1 fine-tunes at the corpus's full 128 px (a later --size overrides COMMON's 64).
    resnet-regression-ft128) echo resnet-regression 1800 --init resnet-regression --loss l1 --lr 0.0003 --size 128 ;;
    autoencoder-ft128) echo autoencoder 1000 --init autoencoder --loss l1 --lr 0.0003 --size 128 ;;
    siggraph17-w25-ft128) echo siggraph17 600 --config width=0.25 --init siggraph17-w25 --loss l1 --lr 0.0002 --size 128 --threads 2 ;;
    *) return 1 ;;
  esac
}
# pix2pix and fusion-w50 are now trained on the ImageNet EfficientNet-Lite0 encoder: scripts/train_lite_zoo.sh.
STREAM_A=(eccv16-small eccv16-w25 unet-palette-16 unet-palette-24 unet-palette-32 siggraph17-w25)
STREAM_B=(baseline autoencoder autoencoder-13 zhang-regression resnet-regression)

# train NAME: trains runs/NAME with its recipe, then exports assets/weights/NAME.* (NAME less any -ft*)
train() {
  local name=$1 spec
  spec=$(recipe "$name") || { echo "unknown weights name $name" >&2; return 2; }
  set -- $spec
  local model=$1 steps=$2; shift 2
  echo "=== $(date -u +%H:%M:%S) $name ($model, $steps steps)"
  if "$PY" -m training.train --model "$model" --steps "$steps" --out "$RUNS/$name" "${COMMON[@]}" "$@"; then
    # A fine-tune (NAME-ft, NAME-ft128) replaces the weights it started from; its card records that lineage.
    "$PY" -m training.export "$RUNS/$name" --name "${name%-ft*}" --data-manifest "$MANIFEST" --out-dir "$WEIGHTS_OUT" \
      || echo "!!! export of $name failed"
  else
    echo "!!! training $name failed"
  fi
}

run_all() { for name in "$@"; do train "$name"; done; }

case "${1:-all}" in
  A) run_all "${STREAM_A[@]}" ;;
  B) run_all "${STREAM_B[@]}" ;;
  all) run_all "${STREAM_A[@]}" & run_all "${STREAM_B[@]}" & wait ;;
  *) run_all "$@" ;;
esac
