#!/usr/bin/env bash
# A GPU machine's first command, in the order GPU time is worth most: the ablations at
# gpu scale, then the ResNet-50 step sweep, within 10 minutes. From the repo root, with
# .gpu_carry/ (benchmarks/gpu_carry.sh) and, from an earlier machine, runs/exp_gpu/
# carried: bash benchmarks/gpu_ablations_and_sweep.sh "$OUT". The GPU suite's rows
# follow in a second command: bash benchmarks/gpu_suite.sh --out "$OUT" --rows ...
# SMOKE=1 (with JAX_PLATFORMS=cpu, CARRY=a carry folder) proves it at toy size on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/gpu_ablations_and_sweep}}"
smoke=(${SMOKE:+--smoke})
bash benchmarks/gpu_experiments.sh --out "$out/experiments" --carry "${CARRY:-.gpu_carry}" \
    --budget "${EXPERIMENTS_BUDGET:-220}" --grace "${EXPERIMENTS_GRACE:-90}" "${smoke[@]}"
bash benchmarks/step_sweep.sh --out "$out/sweep" --carry "${CARRY:-.gpu_carry}" \
    --budget "${SWEEP_BUDGET:-120}" "${smoke[@]}"
