#!/usr/bin/env bash
# The GPU check: CUDA tests and the GPU benchmark, on one NVIDIA GPU, in a few minutes.
#
#   bash scripts/gpu_check.sh --prepare   # here, with internet or a package index: gather what the GPU machine lacks
#   bash scripts/gpu_check.sh [OUT]       # there: run it; JSON, logs and test results go to OUT (default artifacts/gpu)
#
# The GPU machine is expected to have PyTorch, transformers and accelerate.
# --prepare puts bitsandbytes wheels in .whl/ and, in .gpu/, the config and
# tokenizer of the embedded model (random weights are made there: speed
# depends on shapes, not values).
set -euo pipefail
cd "$(dirname "$0")/.."
shape=.gpu/smollm2-135m-shape

if [ "${1:-}" = "--prepare" ]; then
  python=.venv/bin/python
  rm -rf .whl && mkdir -p .whl "$shape"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 -d .whl -r requirements-gpu.txt
  converted=$("$python" -m model_runtime.prepare --print-folder)
  cp "$converted"/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja} "$shape"/
  du -sh .whl .gpu
  exit 0
fi

out=${1:-artifacts/gpu}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-site .whl/*.whl
  export PYTHONPATH=/tmp/gpu-site:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1 PLAYGROUND_CACHE_DIR=/tmp/playground-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 scripts/shaped_model.py "$shape"
export PLAYGROUND_GPU_MODEL=$shape
status=0
timeout 200 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts= --junitxml="$out/cuda-tests.xml" \
  2>&1 | tee "$out/cuda-tests.log" || status=1
timeout 240 python3 -m model_runtime.bench --device cuda --model "$shape" --runs 3 --new-tokens 256 --skip-start \
  --out "$out/bench.json" 2>&1 | tee "$out/bench.log" || status=1
exit $status
