#!/usr/bin/env bash
# Before/after of the nvvl loader in one call on the lent GPU machine, plus the GPU tests.
# Layout there: gpu_stage/{before,after} (two checkouts), wheels in WHEELS_DIR; run from
# gpu_stage/after: bash tools/gpu_loader_compare.sh ../../.whl. Results in $OUT.
set -x
WHL=${1:-.whl}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHL"/*.whl || exit 1
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}; D=/tmp/data/540p; mkdir -p "$R"
exec > >(tee -a "$R/log.txt") 2>&1
mark() { echo "=== $(date +%T) $*"; }
py() { (cd "../$1" && shift && PYTHONPATH=/tmp/site:$PWD "$@"); }
bl() {  # bl TREE NAME ARGS...: one bench-loader row into bench.csv, its stderr kept
  local tree=$1 name=$2; shift 2
  mark "$tree $name"; echo "### $tree $name" >> "$R/stderr.txt"
  py "$tree" timeout 90 python3 -m vsr.cli bench-loader --data $D --batch 7 --frames 3 --iters 200 \
    --out "$R/bench_$tree.csv" "$@" 2>> "$R/stderr.txt" || echo "FAILED $tree $name"
}
nvidia-smi -q -d CLOCK | grep -iE "video" | head -3
mark prepare
py after timeout 150 python3 -m vsr.cli prepare --out /tmp/data --res 540p --render 960 540 --scenes 16 --seconds 1 --gop 4 | tail -1
bl before threads --loader nvvl
bl before procs7 --loader nvvl --processes 7
bl after default --loader nvvl
bl after threads-run4 --loader nvvl --processes 0
bl after procs7-run1 --loader nvvl --processes 7 --run 1
bl after procs7-mps --loader nvvl --processes 7 --mps
mark gpu tests
py after timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15
mark warnings in stderr
grep -cE "Traceback|Producer process|killed by signal|INVALID INDEX" "$R/stderr.txt"
grep -nE "^###|Traceback|Producer process|killed by signal|Error" "$R/stderr.txt" | head -40
mark done
