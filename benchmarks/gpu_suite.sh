#!/usr/bin/env bash
# Every GPU figure of the project in one command, on a bare GPU machine, from the
# repo root: bash benchmarks/gpu_suite.sh --out "$OUT". Needs .gpu_carry/ from
# benchmarks/gpu_carry.sh; options: python3 benchmarks/gpu_suite.py --help.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_suite.py "$@"
