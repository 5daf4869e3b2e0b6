#!/usr/bin/env bash
# The GPU check, one command on a machine with an NVIDIA GPU, nvcc and python3 (with pytest,
# scikit-build-core, pybind11, cmake, ninja, nvidia-cublas; torch and cupy optional):
#
#     bash scripts/gpu_check.sh            # everything under $OUT (default ./gpu_out)
#
# Builds dlcore with the CUDA backend into python3, checks it sees the GPU and cuBLAS, runs
# tests/test_cuda.py, the benchmark (bench/cuda_bench.py) and the CPU test suite on that build.
# Each step logs to $OUT/<step>.log and has a time limit; the whole run keeps within
# GPU_CHECK_BUDGET seconds (default 540), skipping what no longer fits, and
# $OUT/summary.txt lists the machine and every step's status as it goes.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-./gpu_out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-540}
SUMMARY=$OUT/summary.txt
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
unset DLCORE_CUDA_GEMM DLCORE_TEST_DEVICE
FAILED=0

# step NAME LIMIT LOG CMD... : CMD with at most LIMIT seconds (less if the budget is nearly
# spent), output to LOG and its tail to stdout; one status line in the summary.
step() {
  local name=$1 limit=$2 log=$OUT/$3 t0=$SECONDS rc status
  shift 3
  local left=$((BUDGET - SECONDS - 15))
  if [ "$left" -lt 30 ]; then
    printf '%-10s %-34s\n' "$name" "SKIPPED (budget spent)" | tee -a "$SUMMARY"
    FAILED=1
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "::: $name (up to ${limit}s) -> $log"
  timeout -k 10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  tail -n 30 "$log"
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="FAILED (exit $rc)"
    [ "$rc" -eq 124 ] && status="FAILED (timed out after ${limit}s)"
    FAILED=1
  fi
  printf '%-10s %-34s %4ds  %s\n' "$name" "$status" $((SECONDS - t0)) "$(basename "$log")" | tee -a "$SUMMARY"
  return "$rc"
}

NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$NVCC" ] && export CUDACXX=$NVCC
# Compile for this GPU only (its compute capability, e.g. 90 on an H100), unless told otherwise.
ARCH=${DLCORE_CUDA_ARCHITECTURES:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')}
ARCH=${ARCH:-80;90}

{
  echo "dlcore GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi || echo "nvidia-smi failed"
  echo "nvcc: ${NVCC:-not found} $([ -n "$NVCC" ] && "$NVCC" --version | tail -n 2 | tr '\n' ' ')"
  echo "CUDA architectures: $ARCH | $(nproc) cores | $($PY --version 2>&1) at $(command -v "$PY")"
  "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.is_available())" 2>&1 | tail -n 1
  echo
} | tee "$SUMMARY"

if [ "${GPU_CHECK_SKIP_BUILD:-0}" = 1 ]; then  # a rerun on a machine that has the build already
  echo "build      skipped (GPU_CHECK_SKIP_BUILD=1)" | tee -a "$SUMMARY"
else
  step build 360 build.log "$PY" -m pip install --no-build-isolation --no-deps -v . \
    -C cmake.define.DLCORE_CUDA=ON -C "cmake.define.DLCORE_CUDA_ARCHITECTURES=$ARCH" -C build-dir=build/gpu
fi

if [ "$FAILED" -eq 0 ]; then
  step verify 60 verify.log "$PY" -c "
import dlcore
c = dlcore.cuda
print('dlcore', dlcore.__version__, 'from', dlcore.__file__)
print('is_built', c.is_built(), '| devices', c.device_count(), '| gemm', c.gemm_backend())
assert c.is_available(), 'dlcore.cuda.is_available() is False'
print('device:', c.get_device_name())
x = dlcore.randn(256, 256, device='cuda')
print('matmul check:', float(((x @ x).cpu() - x.cpu() @ x.cpu()).abs().amax()))
assert c.gemm_backend() == 'cublas', 'gemm backend %r, expected cublas' % c.gemm_backend()
print('memory:', c.memory_stats())
"
  # no -x: this run is rare, so every failure is worth seeing
  TOPT=()
  "$PY" -c "import pytest_timeout" 2>/dev/null && TOPT=(--timeout 120 --timeout-method thread)
  step test_cuda 330 test_cuda.log "$PY" -m pytest tests/test_cuda.py -q -rfEs --durations=15 -p no:cacheprovider \
    "${TOPT[@]}"
  step bench 240 bench.log "$PY" bench/cuda_bench.py --out "$OUT/bench.md"
  # the CPU suite on the CUDA build (test_autograd's to_device case goes through the GPU here)
  step test_cpu 200 test_cpu.log "$PY" -m pytest tests -q -rfEs -p no:cacheprovider --ignore=tests/test_cuda.py \
    "${TOPT[@]}"
else
  echo "build failed: the other steps are skipped (see build.log)" | tee -a "$SUMMARY"
fi

echo "total ${SECONDS}s; logs in $OUT" | tee -a "$SUMMARY"
echo "::: summary"
cat "$SUMMARY"
exit "$FAILED"
