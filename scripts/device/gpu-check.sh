#!/usr/bin/env bash
# scripts/device/gpu-check.sh — run ON the GPU machine (through the device tool, after
# scripts/device/pack.sh here): everything a short GPU lease should establish about the CUDA
# backend, most important first, inside one time budget:
#
#   1. what the machine has (GPU, driver, nvcc, cmake, gcc, cuDNN, NCCL, MPI, torch)   -> env.txt
#   2. build dnnguard + dg_bench_train with the CUDA backend against .devkit's packages -> build.log
#      (warnings as errors; if only that fails, again without -Werror, and the summary says so)
#   3. dnnguard selftest --backend cuda (fp32), JSON too            -> selftest.txt, selftest.json
#   4. bench/gpu.sh fp32: the four nets beside PyTorch eager         -> bench.md, bench.jsonl
#   5. LeNet-5 on MNIST for one epoch on the GPU (real accuracy) and tests/test_nccl_cuda.sh
#   6. as time allows: selftest --precision tf32 and --deterministic, compute-sanitizer memcheck
#      of the op cases, bench/gpu.sh tf32                            -> runs.log (5 and 6)
#   summary.md: each stage's result and time, and the figures to record.
#
#   scripts/device/gpu-check.sh [BUDGET_S]      (default 540; stages that would not fit are skipped)
# Writes only under $OUT (default /tmp/dg-gpu-check-out), /tmp/dg-deps and build-device/.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIT=$ROOT/.devkit
OUT=${OUT:-/tmp/dg-gpu-check-out}
BUDGET=${1:-540}
BUILD=$ROOT/build-device
DEPS=/tmp/dg-deps
START=$(date +%s)
mkdir -p "$OUT"
cd "$ROOT" || exit 2
SUMMARY=$OUT/summary.md
RUNS=$OUT/runs.log
: >"$RUNS"
echo "# gpu-check $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cat "$KIT/commit" 2>/dev/null || echo '?'), budget ${BUDGET}s" >"$SUMMARY"

left() { echo $((BUDGET - ($(date +%s) - START))); }
note() { echo "$*" | tee -a "$SUMMARY" >&2; }
# stage NAME NEED_S LOG COMMAND...: runs COMMAND when NEED_S seconds are left, within what is left
stage() {
  local name=$1 need=$2 log=$3 t0 rc
  shift 3
  if [ "$(left)" -lt "$need" ]; then
    note "- $name: skipped ($(left)s left, needs ~${need}s)"
    return 99
  fi
  t0=$(date +%s)
  echo "===== $name: $*" >>"$log"
  timeout $(($(left) - 5)) "$@" >>"$log" 2>&1
  rc=$?
  note "- $name: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc$([ $rc = 124 ] && echo ', out of time'))") in $(($(date +%s) - t0))s"
  return $rc
}

# ---- 1. the machine ----
{
  echo "## nvidia-smi"; nvidia-smi 2>&1 | head -20
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>&1
  echo "## tools"; for t in nvcc cmake gcc g++ python3 mpirun mpicc dpkg-deb ar compute-sanitizer; do
    printf '%s: %s\n' "$t" "$(command -v $t || echo missing)"; done
  nvcc --version 2>&1 | tail -2; cmake --version 2>&1 | head -1; gcc --version 2>&1 | head -1
  echo "## os"; head -2 /etc/os-release 2>/dev/null; uname -r; nproc
  echo "## cuda"; ls -d /usr/local/cuda* 2>&1
  ls /usr/local/cuda/include/cudnn*.h /usr/include/cudnn*.h /usr/include/*/cudnn*.h /usr/local/cuda/include/nccl.h /usr/include/nccl.h 2>/dev/null
  python3 - <<'EOF' 2>&1
import importlib, os
for m in ("nvidia.cudnn", "nvidia.nccl", "nvidia.cublas"):
    try:
        p = list(importlib.import_module(m).__path__)[0]
        print(m, p, sorted(os.listdir(os.path.join(p, "lib"))) if os.path.isdir(os.path.join(p, "lib")) else "no lib/")
    except Exception as e:
        print(m, "not importable:", e)
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
EOF
} >"$OUT/env.txt" 2>&1
note "- machine: $(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader 2>/dev/null | head -1); $(nvcc --version 2>/dev/null | tail -1)"

# ---- 2. dependencies and the build ----
rm -rf "$DEPS" && mkdir -p "$DEPS"
for deb in "$KIT"/debs/*.deb; do
  [ -f "$deb" ] || { note "- deps: no .devkit/debs (run scripts/device/pack.sh here and carry .devkit)"; break; }
  if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$deb" "$DEPS"
  else python3 - "$deb" "$DEPS" <<'EOF' || note "- deps: cannot unpack $deb"
import io, sys, tarfile
# a .deb is an ar archive; its data.tar.* member holds the files (Python reads xz itself)
blob, at = open(sys.argv[1], "rb").read(), 8
while at + 60 <= len(blob):
    name, size = blob[at:at + 16].decode().strip().rstrip("/"), int(blob[at + 48:at + 58])
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(blob[at + 60:at + 60 + size])).extractall(
            sys.argv[2], **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
        break
    at += 60 + size + (size & 1)
else:
    sys.exit(1)
EOF
  fi
done
# The binaries find the unpacked libraries they link through their RUNPATH; only what those
# libraries need in turn (OpenBLAS: the Fortran runtime; oneDNN: the OpenCL loader) goes on
# LD_LIBRARY_PATH, through a folder that holds nothing else, so that PyTorch in the same
# environment keeps the system's zlib and libpng.
arch_dir=$DEPS/usr/lib/x86_64-linux-gnu
runtime=/tmp/dg-deps-runtime
rm -rf "$runtime" && mkdir -p "$runtime"
for lib in "$arch_dir"/libgfortran.so.5* "$arch_dir"/libquadmath.so.0* "$arch_dir"/libOpenCL.so.1*; do
  [ -e "$lib" ] && ln -s "$lib" "$runtime/"
done
export LD_LIBRARY_PATH=$runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# cuDNN and NCCL: beside CUDA, else PyTorch's wheels (nvidia.cudnn, nvidia.nccl), which ship only
# versioned libraries: a shim folder of links gives CMake the unversioned name it links by (and the
# versioned ones the binary then loads); the wheel's own folder goes on LD_LIBRARY_PATH for the
# sub-libraries cuDNN opens at run time (the same files PyTorch loads).
shim() { # module libname -> prints "ROOT LIBDIR" for CMake and the loader, or nothing
  local dir s=/tmp/dg-shim-$2 so
  dir=$(python3 -c "import $1 as m; print(list(m.__path__)[0])" 2>/dev/null) || return 0
  [ -d "$dir/include" ] && [ -d "$dir/lib" ] || return 0
  rm -rf "$s" && mkdir -p "$s/lib" && ln -s "$dir/include" "$s/include" && ln -s "$dir"/lib/* "$s/lib/"
  so=$(ls "$dir/lib/lib$2.so"* 2>/dev/null | head -1)
  [ -n "$so" ] && [ ! -e "$s/lib/lib$2.so" ] && ln -s "$so" "$s/lib/lib$2.so"
  echo "$s $dir/lib"
}
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DDNNGUARD_CUDA=ON -DCMAKE_PREFIX_PATH="$DEPS/usr")
if ! ls /usr/local/cuda/include/cudnn.h /usr/include/cudnn.h /usr/include/*/cudnn.h >/dev/null 2>&1; then
  read -r root libdir <<<"$(shim nvidia.cudnn cudnn)"
  [ -n "${root:-}" ] && export CUDNN_ROOT=$root LD_LIBRARY_PATH=$libdir:$LD_LIBRARY_PATH
fi
if ! ls /usr/local/cuda/include/nccl.h /usr/include/nccl.h >/dev/null 2>&1; then
  read -r root libdir <<<"$(shim nvidia.nccl nccl)"
  [ -n "${root:-}" ] && export NCCL_ROOT=$root LD_LIBRARY_PATH=$libdir:$LD_LIBRARY_PATH
fi
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
[ -n "$cap" ] && cmake_args+=(-DCMAKE_CUDA_ARCHITECTURES="$cap") # this GPU only: CI builds all four
echo "CUDNN_ROOT=${CUDNN_ROOT:-} NCCL_ROOT=${NCCL_ROOT:-} LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >>"$OUT/env.txt"
# (a command line, not a function: stage runs it under timeout)
build=(bash -c 'cmake -S "$1" -B "$2" "${@:3}" && cmake --build "$2" -j"$(nproc)" --target dnnguard dg_bench_train'
       _ "$ROOT" "$BUILD" "${cmake_args[@]}")
werror=on
if ! stage "build (-Werror)" 60 "$OUT/build.log" "${build[@]}" -DDNNGUARD_WERROR=ON; then
  werror=off
  stage "build without -Werror (the warnings above are to fix)" 60 "$OUT/build.log" "${build[@]}" -DDNNGUARD_WERROR=OFF || {
    grep -E "error|Error" "$OUT/build.log" | head -20 >>"$SUMMARY"; exit 1; }
fi
grep -E "dnnguard CUDA backend|MPI|NCCL" "$OUT/build.log" | sort -u | sed 's/^/    /' >>"$SUMMARY"
DG=$BUILD/dnnguard
"$DG" version 2>&1 | sed 's/^/    /' >>"$SUMMARY"

# ---- 3. the selftest ----
stage "selftest fp32" 60 "$OUT/selftest.txt" "$DG" selftest --backend cuda --json "$OUT/selftest.json"
rc=$?
if [ $rc = 4 ]; then # a device fault: again with a sync after every call, so the report names the op
  stage "selftest fp32 again with DNNGUARD_CUDA_SYNC=1" 60 "$OUT/selftest.txt" env DNNGUARD_CUDA_SYNC=1 \
    "$DG" selftest --backend cuda --reps 0
fi
grep -E "cases agree|FAIL" "$OUT/selftest.txt" | head -25 | sed 's/^/    /' >>"$SUMMARY"

# ---- 4. speed and memory beside PyTorch ----
# bench PRECISION: bench/gpu.sh in that precision; its report and JSON lines are appended to
# bench.md / bench.jsonl and the report to the summary (gpu.sh's own folder, under $OUT, is removed)
bench() {
  stage "bench/gpu.sh $1" 120 "$RUNS" env DG_BENCH_TRAIN="$BUILD/bench/dg_bench_train" TMPDIR="$OUT" \
    bench/gpu.sh --precision "$1" --steps 20 --warmup 5
  for d in "$OUT"/dg-gpu-bench.*; do
    [ -d "$d" ] || continue
    [ -f "$d/report.md" ] && tee -a "$OUT/bench.md" <"$d/report.md" >>"$SUMMARY"
    cat "$d"/*.jsonl >>"$OUT/bench.jsonl" 2>/dev/null
    rm -rf "$d"
  done
}
rm -f "$OUT/bench.md" "$OUT/bench.jsonl"
bench fp32

# ---- 5. a real training run, and NCCL ----
stage "train lenet5 on MNIST, 1 epoch, cuda" 30 "$RUNS" "$DG" train --backend cuda --net lenet5 \
  --data "mnist:$KIT/mnist" --epochs 1 --batch 128 --opt adam --lr 1e-3 --out /tmp/dg-lenet5-cuda.st
grep '^{"out"' "$RUNS" | tail -1 | sed 's/^/    /' >>"$SUMMARY"
stage "tests/test_nccl_cuda.sh" 50 "$RUNS" env DNNGUARD="$DG" DG_SHARED_DATA="$KIT" bash tests/test_nccl_cuda.sh
grep -E "^(ok|FAIL) " "$RUNS" | tail -4 | sed 's/^/    /' >>"$SUMMARY"

# ---- 6. as time allows ----
stage "selftest tf32" 60 "$OUT/selftest.txt" "$DG" selftest --backend cuda --precision tf32 --reps 1
grep -E "cases agree" "$OUT/selftest.txt" | tail -1 | sed 's/^/    /' >>"$SUMMARY"
stage "selftest deterministic" 60 "$OUT/selftest.txt" "$DG" selftest --backend cuda --deterministic --reps 1
grep -E "cases agree" "$OUT/selftest.txt" | tail -1 | sed 's/^/    /' >>"$SUMMARY"
if command -v compute-sanitizer >/dev/null; then
  stage "compute-sanitizer memcheck, op cases" 90 "$RUNS" compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$DG" selftest --backend cuda --no-nets --reps 0
  grep -E "ERROR SUMMARY" "$RUNS" | tail -1 | sed 's/^/    /' >>"$SUMMARY"
fi
bench tf32
note "- done in $(($(date +%s) - START))s; warnings as errors: $werror"
