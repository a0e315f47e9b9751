#!/usr/bin/env bash
# scripts/setup.sh — install what dnnguard needs on Debian 12 and build it (Release) in build/.
#   scripts/setup.sh          build dependencies + Fashion-MNIST (the embedded default data set)
#   scripts/setup.sh --test   also PyTorch and scikit-image (the test oracles), OpenMPI
#                             (--dist mpi) and Slurm with munge (the tests start a one-node cluster)
# The build uses MPI whenever one is installed (libopenmpi-dev); without it --dist is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(build-essential cmake pkg-config libopenblas-openmp-dev libdnnl-dev libcjson-dev libpng-dev zlib1g-dev dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
  packages+=(python3-torch python3-torchvision python3-numpy python3-skimage libopenmpi-dev openmpi-bin slurm-wlm munge)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      { echo "setup.sh: missing packages (${missing[*]}) and no sudo to install them: run it as root" >&2; exit 2; }
    SUDO=(sudo)
  fi
  # through env: sudo's default env_reset would drop an exported DEBIAN_FRONTEND
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
