#!/usr/bin/env bash
# The GPU benchmark run (bench/gpu-bench.ps1), on an offline H100/H200 host, its figures written to
# $OUT/gpu-bench.json and its printout to $OUT/gpu-bench.log. Carry .gpu and .gpumod as for validate.sh.
# Arguments go to the script, e.g. -Sections ours,levers.
set -uo pipefail
cd "$(dirname "$0")/../.."
source .gpu/bootstrap.sh
source scripts/gpu/pyzmq-build.sh
export CRIUCHECKPOINT_PYTHON=$(command -v python3) CRIUCHECKPOINT_HOME=/run/criu-checkpoint-bench PYTHONUNBUFFERED=1
rm -rf out/CriuCheckpoint && mkdir -p out && cp -r .gpumod/CriuCheckpoint out/CriuCheckpoint
source scripts/gpu/module-criu.sh
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
pwsh -NoProfile -Command "& ./bench/gpu-bench.ps1 -ModulePath out/CriuCheckpoint -ResultPath '$OUT/gpu-bench.json' $*" 2>&1 | tee "$OUT/gpu-bench.log"
for d in "$CRIUCHECKPOINT_HOME"/engines/* "$CRIUCHECKPOINT_HOME"/replicas/*; do [ -f "$d/engine.log" ] && tail -n 60 "$d/engine.log" > "$OUT/leftover-$(basename "$d").log"; done
exit 0
