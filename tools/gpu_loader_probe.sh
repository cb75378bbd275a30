#!/usr/bin/env bash
# Profile of the NVDEC loader paths and the options matrix, on the lent GPU machine (one call).
# Run from the checkout root there: bash tools/gpu_loader_probe.sh [WHEELS_DIR]; results in $OUT.
set -x
WHL=${1:-.whl}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHL"/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}; D=/tmp/data/540p; mkdir -p "$R"
LOG=$R/log.txt
exec > >(tee -a "$LOG") 2>&1
mark() { echo "=== $(date +%T) $*"; }
nvidia-smi dmon -s u -o T > "$R/dmon.txt" 2>&1 &
DMON=$!
nvidia-smi -q -d CLOCK | grep -iE "video|graphics|sm" | head -8
mark prepare
timeout 150 python3 -m vsr.cli prepare --out /tmp/data --res 540p --scenes 16 --seconds 1 --gop 4 | tail -2
BL="timeout 60 python3 -m vsr.cli bench-loader --loader nvvl --data $D --batch 7 --frames 3 --iters 150 --out $R/bench.csv"
PR="timeout 150 python3 -m vsr.bench.profile --data $D --seconds 3 --out $R/profile.csv"
CE="timeout 60 python3 -m vsr.cli nvdec-ceiling --data $D --repeat 4 --out $R/ceiling.csv"
mark bench threads; $BL || true
mark bench procs7; $BL --processes 7 || true
mark profile copy procs 1 7 14; $PR --procs 1 7 14 --op copy --demux || true
mark profile decode procs 7; $PR --procs 7 --op decode || true
mark profile gop procs 7; $PR --procs 7 --op gop || true
mark profile 1 proc x 7 threads; $PR --procs 1 --threads 7 --op copy || true
mark ceiling 7 14; $CE --decoders 7 || true; $CE --decoders 14 || true
mark loader profiles
timeout 60 python3 -m vsr.bench.profile --data $D --loader-profile "$R/prof.txt" || true
timeout 60 python3 -m vsr.bench.profile --data $D --loader-profile "$R/prof.txt" --loader-processes 7 || true
mark MPS start
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
nvidia-cuda-mps-control -d && sleep 1
mark MPS bench procs7; $BL --processes 7 || true
mark MPS bench procs14; $BL --processes 14 || true
mark MPS bench threads; $BL || true
mark MPS profile copy 7 14 28; $PR --procs 7 14 28 --op copy || true
mark MPS profile 2 procs x 7 threads; $PR --procs 2 --threads 7 --op copy || true
mark MPS ceiling 7 14 28; $CE --decoders 7 || true; $CE --decoders 14 || true; $CE --decoders 28 || true
echo quit | nvidia-cuda-mps-control
sleep 1
unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
mark step
timeout 170 python3 -m vsr.bench.step --variants tuned,compiled,graphs \
  --precisions fp16 --flow none --iters 20 --out "$R/step.csv" || true
mark done
kill $DMON
