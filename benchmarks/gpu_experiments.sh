#!/usr/bin/env bash
# The ablations at gpu scale within one command's time, on a bare GPU machine, from the
# repo root: bash benchmarks/gpu_experiments.sh --out "$OUT". Needs .gpu_carry/ from
# benchmarks/gpu_carry.sh; options: python3 benchmarks/gpu_experiments.py --help.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_experiments.py "$@"
