#!/usr/bin/env bash
# scripts/device/pack.sh — run HERE (Debian 12, with apt), before a session's first GPU call: puts
# into .devkit/ (ignored by git, ~35 MB) what the GPU machine lacks and cannot download: the Debian
# packages dnnguard builds against (OpenBLAS's OpenMP build, oneDNN, cJSON, libpng, zlib, and the
# runtimes OpenBLAS and oneDNN need: Fortran's, the OpenCL loader) and MNIST for a short real
# training run. The device tool carries it:
#
#   scripts/device/pack.sh
#   run(command="scripts/device/gpu-check.sh", carry=[".devkit"], timeout_s=600)
#
# gpu-check.sh unpacks the packages into /tmp (never into /) and builds there; docs/cuda.md
# ("On a GPU machine") says what it runs and what comes back.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIT=$ROOT/.devkit
MNIST=${MNIST:-$ROOT/../shared/data/mnist}
packages=(libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5 libquadmath0
          libdnnl-dev libdnnl2 ocl-icd-libopencl1 libcjson-dev libcjson1 libpng-dev libpng16-16 zlib1g-dev zlib1g)

grep -qx '/.devkit/' "$ROOT/.gitignore" || { echo "pack.sh: .gitignore must ignore /.devkit/" >&2; exit 2; }
rm -rf "$KIT"
mkdir -p "$KIT/debs" "$KIT/mnist"
# apt-get download writes into the current folder; as root it warns that _apt cannot write there
(cd "$KIT/debs" && apt-get download "${packages[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || {
  echo "pack.sh: apt-get download failed (run apt-get update first?)" >&2
  exit 2
}
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ -f "$MNIST/$f.gz" ]; then cp "$MNIST/$f.gz" "$KIT/mnist/"
  elif [ -f "$MNIST/$f" ]; then gzip -c "$MNIST/$f" >"$KIT/mnist/$f.gz"
  else echo "pack.sh: $MNIST/$f(.gz) is missing (set MNIST=DIR)" >&2; exit 2
  fi
done
git -C "$ROOT" rev-parse --short HEAD >"$KIT/commit" 2>/dev/null || echo none >"$KIT/commit"
echo "pack.sh: $(du -sh "$KIT" | cut -f1) in $KIT: ${#packages[@]} packages, MNIST; carry it as \".devkit\"" >&2
