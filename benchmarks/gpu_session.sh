#!/usr/bin/env bash
# One lent GPU machine's first call, in the order GPU time is worth most: the ablations
# at gpu scale, then the ResNet-50 step sweep, within one command's 10 minutes. From the
# repo root, with .gpu_carry/ (benchmarks/gpu_carry.sh) and, from an earlier machine,
# runs/exp_gpu/ carried: bash benchmarks/gpu_session.sh "$OUT". The GPU suite's rows
# follow in a second call: bash benchmarks/gpu_suite.sh --out "$OUT" --rows ...
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/gpu_session}}"
bash benchmarks/gpu_experiments.sh --out "$out/experiments" \
    --budget "${EXPERIMENTS_BUDGET:-250}" --grace 45
bash benchmarks/step_sweep.sh --out "$out/sweep" --budget "${SWEEP_BUDGET:-120}"
