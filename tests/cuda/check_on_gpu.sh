#!/usr/bin/env bash
# Everything distml checks on a GPU, on a fresh machine with CUDA (nvcc), CuPy (cupy-cuda13x) and
# PyTorch installed: build distml._C with CUDA, the GPU tests, the CUDA autocast list on the device,
# the benchmark against PyTorch. Results land in OUT_DIR:
#
#   tests/cuda/check_on_gpu.sh OUT_DIR
#
# Each part runs under its own time limit (together 7 min 55 s: the build 225 s on 16 cores, the tests
# 180 s, the benchmark 60 s) with its output in OUT_DIR/<part>.log and, for tests,
# OUT_DIR/junit-<part>.xml; a part that fails or runs out of time is recorded in OUT_DIR/summary.txt
# and the next part runs anyway. environment.txt says what the
# machine has. Exits 0 when every part passed, else 1. PYTHON picks the interpreter (default python).
set -u
out=${1:?usage: tests/cuda/check_on_gpu.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/../.."
python=${PYTHON:-python}
status=0
: > "$out/summary.txt"

# part NAME SECONDS COMMAND...: run COMMAND with a time limit, output in NAME.log, a line in summary.txt.
part() {
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  local line="$name: exit $rc in $(( $(date +%s) - start )) s"
  [ "$rc" -eq 124 ] && line="$line (stopped at its $limit s limit)"
  [ "$rc" -ne 0 ] && status=1
  echo "$line: $(tail -n 1 "$out/$name.log")" >> "$out/summary.txt"
}

# pytest_part NAME SECONDS PYTEST-ARGS...: a pytest part, each test at most 90 s, results in junit-NAME.xml.
pytest_part() {
  local name=$1 limit=$2
  shift 2
  part "$name" "$limit" "$python" -m pytest -p no:cacheprovider -v -rs --timeout=90 \
    --junitxml="$out/junit-$name.xml" "$@"
}

{
  date -u
  echo "cores: $(nproc)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  nvcc --version 2>&1 | tail -n 2
  "$python" -c "import sys, numpy, cupy; print(sys.version); print('numpy', numpy.__version__); \
print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" 2>&1
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1
} > "$out/environment.txt"

part build 225 env DISTML_CUDA=1 DISTML_BUILD_JOBS="${DISTML_BUILD_JOBS:-$(nproc)}" \
  "$python" setup.py build_ext --inplace
part build_info 10 "$python" -c "import json, distml; print(json.dumps(distml._C.build_info(), indent=1))"
# Tensors, distml.cuda, training on the device; distml.device / distml.cuda's argument handling and the
# kernel seam with cupy importable.
pytest_part cuda 115 tests/cuda --ignore=tests/cuda/test_cuda_kernels.py tests/test_kernel_dispatch.py \
  tests/test_device_namespaces.py
pytest_part cuda_kernels 35 tests/cuda/test_cuda_kernels.py
# The CUDA autocast list: on real cuda tensors, and as on the CPU machines (fake ones for PyTorch).
pytest_part autocast_cuda 30 tests/test_autocast.py -k "cuda or scaler or Scaler"
part benchmark 60 "$python" benchmarks/gpu_vs_torch.py --rounds 2 --seconds 0.5

cat "$out/summary.txt"
exit "$status"
