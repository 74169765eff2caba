#!/usr/bin/env bash
# The ResNet-50 train step's variants (batch, stem, input channels, dispatch, XLA flags)
# timed in one command on a bare GPU machine, from the repo root:
# bash benchmarks/step_sweep.sh --out "$OUT". Options: python3 benchmarks/step_sweep.py -h.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/step_sweep.py "$@"
