#!/usr/bin/env bash
# Prepare .gpu_carry/ (wheels the GPU machine lacks + built TFDS datasets), on this
# machine, for benchmarks/gpu_suite.sh there. Options: python benchmarks/gpu_carry.py -h
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_carry.py "$@"
