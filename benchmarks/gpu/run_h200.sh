#!/usr/bin/env bash
# The committed H200 run (benchmarks/results/gpu-h200.json), from the repo root, on a machine
# with JAX (CUDA) and Python 3.12 but no Keras and no TensorFlow. Carry two ignored folders:
#   .whl/      keras, namex and optree wheels   (pip download --no-deps -d .whl keras namex optree
#              --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64)
#   .gpudata/  python benchmarks/gpu/pack_data.py   (Kermany 192 px one-channel WebP, ~10 MiB)
# Writes $OUT/gpu-h200.json and $OUT/gpu-h200-torch.json (and logs). Budget: 9 minutes.
set -euo pipefail
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src"
export KERAS_BACKEND=jax  # the torch pass below sets its own
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=3
nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader || true
status=0
timeout 450 python3 benchmarks/bench_gpu.py --data .gpudata/kermany \
    --out "$OUT/gpu-h200.json" 2> "$OUT/gpu-h200.log" > /dev/null || status=$?
[ "$status" -eq 0 ] || { echo "bench_gpu (jax) failed or timed out (rc $status)"; tail -40 "$OUT/gpu-h200.log"; }
grep -E '^\((a|b|c|d)\)' "$OUT/gpu-h200.log" || true
# (a) again on the PyTorch backend (CUDA): every bundled model against the CPU references
KERAS_BACKEND=torch timeout 100 python3 benchmarks/bench_gpu.py --data .gpudata/kermany --skip b,d \
    --out "$OUT/gpu-h200-torch.json" 2> "$OUT/gpu-h200-torch.log" > /dev/null \
  || { echo "bench_gpu (torch) failed or timed out"; tail -20 "$OUT/gpu-h200-torch.log"; }
grep -E '^\(a\)' "$OUT/gpu-h200-torch.log" || true
exit "$status"
