#!/usr/bin/env bash
# A GPU machine's first command, in the order GPU time is worth most: the ablations at
# gpu scale, then the ResNet-50 step sweep, within 10 minutes. From the
# repo root, with .gpu_carry/ (benchmarks/gpu_carry.sh) and, from an earlier machine,
# runs/exp_gpu/ carried: bash benchmarks/gpu_ablations_and_sweep.sh "$OUT". The GPU suite's rows
# follow in a second command: bash benchmarks/gpu_suite.sh --out "$OUT" --rows ...
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/gpu_ablations_and_sweep}}"
bash benchmarks/gpu_experiments.sh --out "$out/experiments" \
    --budget "${EXPERIMENTS_BUDGET:-250}" --grace 45
bash benchmarks/step_sweep.sh --out "$out/sweep" --budget "${SWEEP_BUDGET:-120}"
