#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, run on the lent machine (device tool):
#   bash tools/gpu_study.sh {prepare|bench|train|all}   (wheels in .whl/, results under $OUT)
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TQDM_DISABLE=1
D=${VSR_DATA:-/tmp/vsrdata}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
what=${1:-all}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt"
if [ ! -f "$D/.ok" ]; then
  OMP_NUM_THREADS=1 python3 -m vsr.cli prepare --out "$D" --scenes 8 --seconds ${SECONDS_PER_SCENE:-3} --render 1920 1080 && touch "$D/.ok"
  du -sb "$D"/*/scenes "$D"/*/frames | tee "$OUT/disk.txt"
fi
B="python3 -m vsr.cli bench-loader --out $OUT/bench.csv --iters ${BENCH_ITERS:-40}"
if [ "$what" = bench ] || [ "$what" = all ]; then
  python3 -m pytest -q tests/test_gpu.py 2>&1 | tail -3 | tee "$OUT/pytest_gpu.txt"
  for dt in fp16 fp32; do
    $B --loader nvvl --backend nvdec --data $D/540p --batch 7 --dtype $dt
    $B --loader nvvl --backend nvdec --data $D/720p --batch 4 --crop 540 960 --dtype $dt
    $B --loader png --workers 10 --data $D/540p --batch 7 --dtype $dt
    $B --loader png --workers 10 --data $D/720p --batch 4 --crop 540 960 --dtype $dt
    $B --loader nvvl --backend cpu --threads 16 --data $D/540p --batch 7 --dtype $dt
    $B --loader nvvl --backend cpu --threads 16 --data $D/720p --batch 4 --crop 540 960 --dtype $dt
  done
  $B --loader nvvl --backend nvdec --data $D/540p --batch 7 --frames 7 --dtype fp16
  for dec in 1 7 14; do $B --loader nvvl --backend nvdec --decoders $dec --data $D/540p --batch 7 --frames 7 --dtype fp16; done
  python3 -m vsr.cli nvdec-ceiling --data $D/540p --decoders 7 --out $OUT/ceiling.csv
  python3 -m vsr.cli nvdec-ceiling --data $D/720p --decoders 7 --out $OUT/ceiling.csv
fi
if [ "$what" = train ] || [ "$what" = all ]; then
  for res in ${TRAIN_RES:-540p 720p}; do
    if [ $res = 540p ]; then extra='"batch": 7, "crop": null'; else extra='"batch": 4, "crop": [540, 960]'; fi
    for l in nvvl png; do for p in ${PRECS:-fp16 fp32}; do
      cfg="{\"loader\": \"$l\", \"precision\": \"$p\", \"res\": \"$res\", $extra, \"gpus\": 1,
        \"iterations\": ${ITERS:-150}, \"val_every\": ${ITERS:-150}, \"checkpoint_every\": ${ITERS:-150},
        \"val_stride\": 8, \"warmup_iters\": 10, \"png_workers\": 10, \"model\": {\"features\": [64, 32]},
        \"flownet\": {\"mode\": \"finetune\", \"width\": 1.0}}"
      python3 -m vsr.train --cfg "$cfg" --data $D/$res --out $D/runs/$res/${l}_$p 2>&1 | grep -v "it/s" | tail -4
    done; done
  done
  python3 - <<PY
from pathlib import Path
from types import SimpleNamespace
from vsr.report import aggregate
runs = sorted(str(p) for p in Path("$D/runs").glob("*/*/metrics.jsonl"))
study = [{"res": "540p", "crop": None, "batch": 7}, {"res": "720p", "crop": [540, 960], "batch": 4}]
o = SimpleNamespace(table="$OUT/table.md", csv="$OUT/benchmark.csv", psnr="$OUT/psnr.png", loss="$OUT/train_loss.png")
aggregate(runs, study, 10, o, data_root="$D")
print(open("$OUT/table.md").read())
PY
fi
