#!/usr/bin/env bash
# scripts/test.sh — set up a fresh Debian machine (build dependencies + PyTorch as the oracle),
# build, and run the whole test suite with ctest. Where nvcc and cuDNN are installed (under
# /usr/local/cuda), the CUDA backend is also built (sm_80/86/89/90, warnings as errors) and its
# device-free tests and the selftest harness run; on a GPU machine the selftest runs on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
(cd build && ctest --output-on-failure -j 2 --timeout 900)
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cmake -B build-cuda -S . -DCMAKE_BUILD_TYPE=Release -DDNNGUARD_CUDA=ON >/dev/null
  cmake --build build-cuda -j "$(nproc)"
  (cd build-cuda && ctest --output-on-failure -R 'cuda|selftest' --timeout 900)
fi
