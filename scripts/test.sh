#!/usr/bin/env bash
# scripts/test.sh — set up a fresh Debian machine (build dependencies + PyTorch as the oracle),
# build, and run the whole test suite with ctest. Where nvcc and cuDNN are installed (under
# /usr/local/cuda), the CUDA backend is also built (sm_80/86/89/90, warnings as errors) and its
# device-free tests and the selftest harness run; on a GPU machine the selftest runs on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
(cd build && ctest --output-on-failure -j 2 --timeout 900)
has_nvcc() { command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; }
has_cudnn() { # where kernels/cuda/CMakeLists.txt looks first: beside the toolkit, $CUDNN_ROOT, /usr
  local d
  for d in /usr/local/cuda/include ${CUDNN_ROOT:+$CUDNN_ROOT/include} /usr/include /usr/include/x86_64-linux-gnu; do
    [ -f "$d/cudnn.h" ] && return 0
  done
  return 1
}
if has_nvcc && ! has_cudnn; then
  echo "test.sh: nvcc is installed but cuDNN (cudnn.h) is not: the CUDA backend is not built or tested here" >&2
elif has_nvcc; then
  cmake -B build-cuda -S . -DCMAKE_BUILD_TYPE=Release -DDNNGUARD_CUDA=ON >/dev/null
  cmake --build build-cuda -j "$(nproc)"
  (cd build-cuda && ctest --output-on-failure -R 'cuda|selftest' --timeout 900)
fi
