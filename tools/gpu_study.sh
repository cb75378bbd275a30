#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, run on the lent machine (device tool) with the
# wheels of ../shared/device.md ("Running the workflow there": snakemake, scenedetect,
# imageio-ffmpeg, ...) in .whl/. Data and the study come from the workflow itself:
#   study: snakemake results/table.md with config/gpu.yaml (+ STUDY_OVERLAY, default
#          config/gpu_quick.yaml: the 8 cells in one 10-minute call); table, plots in $OUT
#   data:  only the workflow's data (data/{res}/scenes|frames) for the bench stages below
#   bash tools/gpu_study.sh data step bench profile pack   (results in $OUT)
# The device tool brings back only a few files per call: end with `pack` (one $OUT/all.tgz).
# The copy's git metadata can be stale there: pass VSR_COMMIT=<this checkout's HEAD> for tables.
set -uo pipefail
[ -d /tmp/site/PyNvVideoCodec ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TQDM_DISABLE=1
D=data; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader > "$OUT/gpu.txt"
B="python3 -m vsr.cli bench-loader --out $OUT/bench.csv --iters ${BENCH_ITERS:-60}"
for what in "$@"; do case $what in
data|study)
  SMK="python3 -m snakemake --cores all --resources gpu=1 --scheduler greedy"
  CFG="--configfile config.yaml config/gpu.yaml ${STUDY_OVERLAY-config/gpu_quick.yaml}"
  if [ $what = data ]; then $SMK data $CFG; else $SMK results/table.md $CFG && cp -r results benchmarks "$OUT/"; fi
  du -sb "$D"/*/scenes "$D"/*/frames | tee "$OUT/disk.txt" ;;
bench)
  python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -3 | tee "$OUT/pytest_gpu.txt"
  for dt in fp16 fp32; do
    $B --loader nvvl --backend nvdec --data $D/540p --batch 7 --dtype $dt
    $B --loader nvvl --backend nvdec --data $D/720p --batch 4 --crop 540 960 --dtype $dt
    $B --loader png --workers 10 --data $D/540p --batch 7 --dtype $dt
    $B --loader png --workers 10 --data $D/720p --batch 4 --crop 540 960 --dtype $dt
    $B --loader nvvl --backend cpu --threads 16 --data $D/540p --batch 7 --dtype $dt
    $B --loader nvvl --backend cpu --threads 16 --data $D/720p --batch 4 --crop 540 960 --dtype $dt
  done
  for dec in 1 7 8; do $B --loader nvvl --backend nvdec --decoders $dec --data $D/540p --batch 7 --frames 7 --dtype fp16; done
  $B --loader nvvl --backend nvdec --decoders 8 --data $D/540p --batch 7 --frames 3 --dtype fp16
  for dec in 1 7 8; do python3 -m vsr.cli nvdec-ceiling --data $D/540p --decoders $dec --out $OUT/ceiling.csv; done
  python3 -m vsr.cli nvdec-ceiling --data $D/720p --decoders 7 --out $OUT/ceiling.csv ;;
step)  # the training step alone on random input (vsr.bench.step), profile tables of eager vs compiled
  python3 -m vsr.bench.step --variants ${STEP_VARIANTS:-eager,tuned,compiled} --precisions ${STEP_PRECS:-fp16,bf16,fp32} \
    --flow ${STEP_FLOW:-finetune} --out $OUT/step.csv --profile $OUT/profile.txt 2>$OUT/step.err ;;
sessions)  # decode sessions: threads in the trainer vs worker processes, and the NVDEC ceiling
  for pr in ${PROCS:-0 7 14 28}; do $B --loader nvvl --backend nvdec --processes $pr --data $D/540p --batch 7 --dtype fp16 --iters 150; done
  $B --loader png --workers 10 --data $D/540p --batch 7 --dtype fp16 --iters 150
  python3 -m vsr.cli nvdec-ceiling --data $D/540p --decoders 7 --out $OUT/ceiling.csv ;;
quality)  # one longer run (540p, nvvl, fp16), then vsr evaluate on its val scenes and a real clip
  q=$D/runs_quality/540p/nvvl_fp16; n=${QITERS:-1500}
  cfg="{\"loader\": \"nvvl\", \"precision\": \"fp16\", \"res\": \"540p\", \"batch\": 7, \"crop\": null, \"gpus\": 1,
    \"iterations\": $n, \"val_every\": $((n / 5)), \"checkpoint_every\": $n, \"val_stride\": 4, \"warmup_iters\": 20,
    \"lr_warmup\": 50, \"log_every\": 20, \"data_time_every\": 10, \"model\": {\"features\": [64, 32]},
    \"flownet\": {\"mode\": \"${FLOW:-finetune}\", \"width\": 1.0}}"
  python3 -m vsr.train --cfg "$cfg" --data $D/540p --out $q 2>&1 | grep -v "it/s" | tail -8
  python3 -m vsr.cli evaluate --checkpoint $q/final.pt $D/540p/scenes/val/*.mp4 .assets/bigbuckbunny.mp4 \
    --device cuda --csv $OUT/evaluate.csv 2>&1 | tail -12 ;;
ablation)  # issue 12 on 4 GPUs at once: FlowNet pretrained on GPU 0 while flow none / finetune from a
  # small init train on GPUs 1-2; then frozen / finetuned from the pretrained FlowNet on GPUs 0 and 3
  n=${QITERS:-1500}; A=$D/ablation; mkdir -p $A; ck=$A/flownet_pretrained.pth.tar
  qrun() {  # gpu tag mode checkpoint
    local cfg="{\"loader\": \"nvvl\", \"precision\": \"fp16\", \"res\": \"540p\", \"batch\": 7, \"crop\": null,
      \"gpus\": 1, \"iterations\": $n, \"val_every\": $((n / 5)), \"checkpoint_every\": $n, \"val_stride\": 4,
      \"warmup_iters\": 20, \"lr_warmup\": 50, \"log_every\": 20, \"data_time_every\": 10,
      \"model\": {\"features\": [64, 32]}, \"flownet\": {\"mode\": \"$3\", \"width\": 1.0, \"checkpoint\": $4}}"
    CUDA_VISIBLE_DEVICES=$1 python3 -m vsr.train --cfg "$cfg" --data $D/540p --out $A/$2 > $OUT/train_$2.log 2>&1
    CUDA_VISIBLE_DEVICES=$1 python3 -m vsr.cli evaluate --checkpoint $A/$2/final.pt $D/540p/scenes/val/*.mp4 \
      .assets/bigbuckbunny.mp4 --device cuda --csv $OUT/evaluate_$2.csv > $OUT/evaluate_$2.txt 2>&1
    cp $A/$2/metrics.jsonl $OUT/metrics_$2.jsonl; tail -2 $OUT/train_$2.log; tail -6 $OUT/evaluate_$2.txt
  }
  qrun 1 none none null & qrun 2 finetune_small_init finetune null &
  CUDA_VISIBLE_DEVICES=0 python3 -c "import glob, json, sys; from vsr.train.pretrain_flow import pretrain
cfg = json.loads(sys.argv[1]); clips = sorted(glob.glob('$D/540p/scenes/val/*.mp4')) + ['.assets/bigbuckbunny.mp4']
pretrain(1.0, cfg, '$ck', '$OUT/pretrain_metrics.json', val_clips=clips, device='cuda')" \
    "{\"iterations\": ${PITERS:-5000}, \"batch\": 16, \"workers\": ${PWORKERS:-32}, \"eval_pairs\": 64}" \
    > $OUT/pretrain.log 2>&1; tail -3 $OUT/pretrain.log
  qrun 0 frozen_pretrained frozen "\"$ck\"" & qrun 3 finetune_pretrained finetune "\"$ck\"" & wait ;;
profile)  # where the time of the slowest nvvl cell goes: py-spy samples every thread, idle too
  res=${PROFILE_RES:-720p}; p=${PROFILE_PREC:-fp16}
  if [ $res = 540p ]; then extra='"batch": 7, "crop": null'; else extra='"batch": 4, "crop": [540, 960]'; fi
  cfg="{\"loader\": \"nvvl\", \"precision\": \"$p\", \"res\": \"$res\", $extra, \"gpus\": 1,
    \"iterations\": 300, \"val_every\": 1000, \"checkpoint_every\": 1000, \"warmup_iters\": 20,
    \"model\": {\"features\": [64, 32]}, \"flownet\": {\"mode\": \"finetune\", \"width\": 1.0}}"
  /tmp/site/bin/py-spy record --threads --idle --nonblocking -r 200 -f raw -o $OUT/pyspy_nvvl.txt -- \
    python3 -m vsr.train --cfg "$cfg" --data $D/$res --out /tmp/prof_run 2>&1 | grep -v "it/s" | tail -3
  cp /tmp/prof_run/metrics.jsonl $OUT/profile_metrics.jsonl ;;
pack)  # everything under $OUT as one archive
  tar czf /tmp/all.tgz -C "$OUT" . && find "$OUT" -type f -delete && mv /tmp/all.tgz "$OUT/" ;;
esac; done
