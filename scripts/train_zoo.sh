#!/usr/bin/env bash
# Trains and exports the bundled weights of every model, as two single-thread CPU streams.
# Step counts are sized for a 2-core CPU within one ~80-minute sitting (see the model cards).
# Usage: scripts/train_zoo.sh [A|B|all]   (re-run to resume: every run uses --resume)
# DATA/VAL default to the colour corpus beside the checkout; runs land in runs/, weights in assets/weights/.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/colour-corpus/train}
VAL=${VAL:-../shared/data/colour-corpus/val}
MANIFEST="colour-corpus (../shared/data/colour-corpus/MANIFEST.md): 19,715 train / 1,038 val real photos, 128x128 JPEG q90"
COMMON=(--data "$DATA" --val "$VAL" --size 64 --batch-size 32 --device cpu --threads 1 --workers 1
        --cache --val-limit 256 --no-progress --resume)

# train NAME MODEL STEPS [extra trainer args...]: trains runs/NAME, then exports assets/weights/NAME.*
train() {
  local name=$1 model=$2 steps=$3; shift 3
  echo "=== $(date -u +%H:%M:%S) $name ($model, $steps steps)"
  if "$PY" -m training.train --model "$model" --steps "$steps" --out "runs/$name" "${COMMON[@]}" "$@"; then
    "$PY" -m training.export "runs/$name" --name "$name" --data-manifest "$MANIFEST" \
      || echo "!!! export of $name failed"
  else
    echo "!!! training $name failed"
  fi
}

stream_a() {  # 313-bin and palette classifiers, and the hinted network
  train eccv16-small eccv16-small 400 --prior-images 3000
  train eccv16-w25 eccv16 300 --prior-images 3000 --config width=0.25
  train unet-palette-16 unet-palette 300 --config bins=16 width=8
  train unet-palette-24 unet-palette 300 --config bins=24 width=8
  train unet-palette-32 unet-palette 300 --config bins=32 width=8
  train siggraph17-w25 siggraph17 150 --config width=0.25
}

stream_b() {  # regression and GAN models
  train baseline baseline 600
  train autoencoder autoencoder 1200
  train autoencoder-13 autoencoder-13 400
  train zhang-regression zhang-regression 800
  train resnet-regression resnet-regression 250
  train pix2pix pix2pix 250 --l1-pretrain-steps 80
  train fusion-w50 fusion 150 --config width=0.5
}

case "${1:-all}" in
  A) stream_a ;;
  B) stream_b ;;
  all) stream_a & stream_b & wait ;;
  *) echo "usage: $0 [A|B|all]" >&2; exit 2 ;;
esac
