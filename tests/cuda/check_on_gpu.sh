#!/usr/bin/env bash
# Build distml._C with CUDA and run the GPU tests on this machine; everything lands in OUT_DIR.
# Within about 8 minutes on a 16-core GPU machine: the build (all cores) has 4, the tests 5 (each
# test at most 120 s).
#
#   tests/cuda/check_on_gpu.sh OUT_DIR
#
# Needs nvcc, a CUDA device, and a python (PYTHON, default `python`) with distml's build and test
# dependencies, CuPy (cupy-cuda13x) and PyTorch. Writes environment.txt, build.log, build_info.json,
# tests.log, junit.xml and summary.txt; exits with the tests' status (or the build's, when it fails).
set -u
out=${1:?usage: tests/cuda/check_on_gpu.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/../.."
python=${PYTHON:-python}

{
  date -u
  echo "cores: $(nproc)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  nvcc --version 2>&1 | tail -n 2
  "$python" -c "import sys, numpy, cupy; print(sys.version); print('numpy', numpy.__version__); \
print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" 2>&1
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1
} > "$out/environment.txt"

start=$(date +%s)
DISTML_CUDA=1 DISTML_BUILD_JOBS=${DISTML_BUILD_JOBS:-$(nproc)} timeout 240 \
  "$python" setup.py build_ext --inplace > "$out/build.log" 2>&1
build=$?
echo "build: exit $build in $(( $(date +%s) - start )) s" > "$out/summary.txt"
if [ "$build" -ne 0 ]; then
  tail -n 30 "$out/build.log"
  exit "$build"
fi
"$python" -c "import json, distml; print(json.dumps(distml._C.build_info(), indent=1))" > "$out/build_info.json" 2>&1

start=$(date +%s)
# tests/cuda: the CUDA kernels, tensors on the device, distml.cuda, training steps against PyTorch;
# test_device_namespaces: distml.device / distml.cuda's argument handling with cupy importable.
timeout 300 "$python" -m pytest -p no:cacheprovider -v -rs --timeout=120 --junitxml="$out/junit.xml" \
  tests/cuda tests/test_kernel_dispatch.py tests/test_device_namespaces.py > "$out/tests.log" 2>&1
tests=$?
echo "tests: exit $tests in $(( $(date +%s) - start )) s: $(tail -n 1 "$out/tests.log")" >> "$out/summary.txt"
cat "$out/summary.txt"
exit "$tests"
