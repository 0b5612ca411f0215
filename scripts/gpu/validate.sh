#!/usr/bin/env bash
# The GPU validation run, on an offline H100/H200 host: the GPU Pester suite (torch engines checkpointed through the
# NVIDIA driver and CRIU), its figures written to $OUT/gpu-results.json. Carry .gpu (the offline kit with its
# bootstrap.sh, finished by scripts/gpu/stage-pyzmq.sh) and .gpumod (the built module folder without tools/, Pester's
# tools folder, and the module's criu packed as criu.tar.xz: scripts/gpu/module-criu.sh). GPU_TESTS, when set, runs only
# the tests whose full names match one of its comma-separated wildcard patterns.
set -uo pipefail
cd "$(dirname "$0")/../.."
source .gpu/bootstrap.sh
source scripts/gpu/pyzmq-build.sh
export CRIUCHECKPOINT_PYTHON=$(command -v python3) CRIUCHECKPOINT_HOME=/run/criu-checkpoint-gpu
export CRIUCHECKPOINT_GPU_RESULTS=$OUT/gpu-results.json PYTHONUNBUFFERED=1
rm -rf out/CriuCheckpoint && mkdir -p out && cp -r .gpumod/CriuCheckpoint out/CriuCheckpoint
source scripts/gpu/module-criu.sh
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name(0))'
pwsh -NoProfile -Command "Import-Module ./.gpumod/Pester/Pester.psd1; \$c = New-PesterConfiguration; \$c.Run.Path = 'tests/Pester/Gpu.Tests.ps1'; if ('${GPU_TESTS:-}') { \$c.Filter.FullName = '${GPU_TESTS:-}'.Split(',') }; \$c.Output.Verbosity = 'Detailed'; \$c.Run.PassThru = \$true; \$r = Invoke-Pester -Configuration \$c; \"GPU suite: \$(\$r.PassedCount) passed, \$(\$r.FailedCount) failed\"" 2>&1 | tee "$OUT/pester-gpu.log"
for d in "$CRIUCHECKPOINT_HOME"/engines/* "$CRIUCHECKPOINT_HOME"/replicas/*; do [ -f "$d/engine.log" ] && tail -n 60 "$d/engine.log" > "$OUT/leftover-$(basename "$d").log"; done
exit 0
