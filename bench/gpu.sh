#!/usr/bin/env bash
# bench/gpu.sh — dnnguard's CUDA backend beside PyTorch eager (cuDNN) on the same GPU, in one script:
# training images/s of wrn-16-4, resnet18-cifar and vgg16-cifar at batch 128 on 32×32 images and of
# resnet18 on 224×224, and each side's peak device memory. Prints markdown tables; `--record` also
# appends them, dated, to bench/RESULTS.md. Builds dg_bench_train with the CUDA backend into build-gpu/.
#
#   bench/gpu.sh [--record] [--nets "wrn-16-4 ..."] [--precision "fp32 tf32"] [--steps N] [--warmup N]
#   environment: BATCH (128), ROUNDS (1), CIFAR (../shared/data/cifar10), PYTHON, BUILD (build-gpu),
#                CMAKE_ARGS, JOBS, DG_BENCH_TRAIN (use this binary, build nothing), RUN_TIMEOUT (600 s a run),
#                DEVICE (cuda; cpu runs the same comparison on the CPU, to test this script without a GPU)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-gpu}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-128}
ROUNDS=${ROUNDS:-1}
STEPS=30 WARMUP=5
CIFAR=${CIFAR:-$ROOT/../shared/data/cifar10}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
NETS="wrn-16-4 resnet18-cifar vgg16-cifar resnet18"
PRECISIONS="fp32 tf32"
RECORD=0

die() { echo "gpu.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --record) RECORD=1 ;;
    --nets) NETS=${2:?}; shift ;;
    --precision) PRECISIONS=${2:?}; shift ;;
    --steps) STEPS=${2:?}; shift ;;
    --warmup) WARMUP=${2:?}; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
for p in $PRECISIONS; do [ "$p" = fp32 ] || [ "$p" = tf32 ] || die "--precision: fp32 or tf32, not '$p'"; done
case "$DEVICE" in
  cuda) ;;
  cpu) PRECISIONS=fp32 ;; # the CPU computes in FP32 only
  *) die "DEVICE must be cuda or cpu, not '$DEVICE'" ;;
esac

if [ "$DEVICE" = cuda ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  [ "${gpus:-0}" -ge 1 ] || die "no NVIDIA GPU here (nvidia-smi lists none); run it on a GPU node, or DEVICE=cpu to test the script"
fi

# the Python whose torch runs on this device: $PYTHON, else the first of python3 and /usr/bin/python3
want='import torch, sys; sys.exit(0 if "'$DEVICE'" == "cpu" or torch.cuda.is_available() else 1)'
if [ -n "${PYTHON:-}" ]; then
  "$PYTHON" -c "$want" 2>/dev/null || die "$PYTHON has no torch that sees the $DEVICE device"
  PY=$PYTHON
else
  PY=
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c "$want" 2>/dev/null; then PY=$cand; break; fi
  done
  [ -n "$PY" ] || die "no python3 here has a torch that sees the $DEVICE device (set PYTHON)"
fi

if [ -n "${DG_BENCH_TRAIN:-}" ]; then
  BENCH=$DG_BENCH_TRAIN
  [ -x "$BENCH" ] || die "DG_BENCH_TRAIN=$BENCH is not an executable"
else
  echo "gpu.sh: building dg_bench_train with the CUDA backend into $BUILD" >&2
  # shellcheck disable=SC2086 # CMAKE_ARGS is a list of words
  mkdir -p "$BUILD" || die "cannot create $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDNNGUARD_CUDA=ON ${CMAKE_ARGS:-} >"$BUILD/gpu-sh.configure.log" 2>&1 ||
    die "cmake failed: see $BUILD/gpu-sh.configure.log"
  cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target dg_bench_train >"$BUILD/gpu-sh.build.log" 2>&1 ||
    die "the build failed: see $BUILD/gpu-sh.build.log"
  BENCH=$BUILD/bench/dg_bench_train
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/dg-gpu-bench.XXXXXX")
echo "gpu.sh: raw JSON lines in $OUT" >&2
{
  echo "{\"python\":\"$PY\"}"
  # which dnnguard the figures are of: the commit, and whether the tree had changes not committed
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  echo "{\"commit\":\"$commit\"}"
  [ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
    head -1 | sed 's/"//g; s/^/{"nvidia_smi":"/; s/$/"}/'
} >"$OUT/machine.jsonl"

data_for() { # CIFAR-10 for the 32×32 nets (Fashion-MNIST for lenet5) when here; else both sides take synthetic pixels
  case "$1" in
    resnet18|vgg16) echo "" ;;
    lenet5) if [ -d /usr/share/datasets/fashion-mnist ]; then echo fashion-mnist; else echo ""; fi ;;
    *) if [ -f "$CIFAR/data_batch_1.bin" ] || [ -f "$CIFAR/data_batch_1.bin.gz" ]; then echo "cifar10:$CIFAR"; else echo ""; fi ;;
  esac
}

# one run; a failure becomes a JSON line with "error", so one broken side does not hide the others
run() { # impl net precision variant command...
  local impl=$1 net=$2 prec=$3 variant=$4 line rc
  shift 4
  echo "gpu.sh: $net $prec: $impl${variant:+ ($variant)}" >&2
  timeout "$RUN_TIMEOUT" "$@" >"$OUT/last.out" 2>"$OUT/last.err"
  rc=$?
  line=$(grep '^{"impl"' "$OUT/last.out" | tail -1)
  [ $rc = 0 ] || line="" # a run that failed after printing is not a figure
  if [ -z "$line" ]; then
    line="{\"impl\":\"$impl\",\"net\":\"$net\",\"error\":\"exit $rc: $(tail -c 300 "$OUT/last.err" | tr '\n"\\' '  /')\"}"
    echo "gpu.sh:   failed (exit $rc): $(tail -3 "$OUT/last.err")" >&2
  fi
  cat "$OUT/last.err" >>"$OUT/stderr.log"
  "$PY" -c 'import json, sys; r = json.loads(sys.argv[1]); r.update(variant=sys.argv[2], precision=sys.argv[3]); print(json.dumps(r))' \
    "$line" "$variant" "$prec" >>"$OUT/train.jsonl"
}

for round in $(seq 1 "$ROUNDS"); do
  for prec in $PRECISIONS; do
    for net in $NETS; do
      data=$(data_for "$net")
      dg=("$BENCH" --backend "$DEVICE" --precision "$prec" --net "$net" --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP")
      pt=("$PY" "$ROOT/bench/torch_peer.py" train --device "$DEVICE" --precision "$prec" --net "$net" --batch "$BATCH"
          --steps "$STEPS" --warmup "$WARMUP")
      if [ -n "$data" ]; then dg+=(--data "$data"); pt+=(--data "$data"); fi
      run dnnguard "$net" "$prec" "" "${dg[@]}"
      run pytorch "$net" "$prec" "" "${pt[@]}"
      [ "$DEVICE" = cuda ] && run pytorch "$net" "$prec" benchmark "${pt[@]}" --cudnn-benchmark
    done
  done
done

REPORT=$OUT/report.md
"$PY" - "$OUT" "$BATCH" "$ROUNDS" "$DEVICE" >"$REPORT" <<'EOF'
import json, os, sys
out, batch, rounds, device = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(os.path.join(out, "train.jsonl")) if l.strip()]
machine = {}
for l in open(os.path.join(out, "machine.jsonl")):
    if l.strip():
        machine.update(json.loads(l))
import torch
where = next((r["device"] for r in rows if r.get("device")), machine.get("nvidia_smi", device))
cudnn = torch.backends.cudnn.version() if device == "cuda" else None
print(f"Device: {where}; nvidia-smi: {machine.get('nvidia_smi', '—')}; dnnguard {machine.get('commit', 'unknown')}; "
      f"PyTorch {torch.__version__}{f', cuDNN {cudnn}' if cudnn else ''} ({machine.get('python')}).\n")
print(f"Training, batch {batch}, SGD momentum 0.9 on one fixed batch (median step; best of {rounds} round(s)). "
      "Ratios above 1: dnnguard faster. PyTorch eager is its default (cudnn.benchmark off); 'benchmark' lets cuDNN "
      "time its algorithms first. Memory: each side's allocator peak (dnnguard's backend allocations; "
      "torch.cuda.max_memory_allocated) and the device memory taken beyond an empty context (cudaMemGetInfo); "
      "memory ratios above 1: dnnguard smaller.\n")
best = {}
for r in rows:
    k = (r["net"], r["precision"], r["impl"], r["variant"])
    if "error" in r:
        best.setdefault(k, r)
    elif k not in best or "error" in best[k] or r["images_per_s"] > best[k]["images_per_s"]:
        best[k] = r
keys = list(dict.fromkeys((r["net"], r["precision"]) for r in rows))
ips = lambda r: "—" if r is None else ("failed" if "error" in r else f"{r['images_per_s']:.0f}")
ok = lambda r: r is not None and "error" not in r
def ratio(a, b, key, invert=False):
    if not (ok(a) and ok(b)) or key not in a or key not in b or not a[key] or not b[key]:
        return "—"
    return f"{(b[key] / a[key]) if invert else (a[key] / b[key]):.2f}"
mib = lambda r, key: f"{r[key]:.0f}" if ok(r) and key in r else "—"
print("| net | input | precision | dnnguard img/s | PyTorch img/s | PyTorch benchmark img/s | dnnguard / PyTorch "
      "| dnnguard / benchmark | peak MiB dnnguard / PyTorch | memory ratio | used MiB dnnguard / PyTorch |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for net, prec in keys:
    d, p, b = (best.get((net, prec, impl, v)) for impl, v in (("dnnguard", ""), ("pytorch", ""), ("pytorch", "benchmark")))
    src = next((r for r in (d, p, b) if ok(r)), None)
    shape = {"resnet18": "224×224", "vgg16": "224×224", "lenet5": "28×28"}.get(net, "32×32")
    data = src["data"] if src else "—"
    print(f"| {net} | {shape} {data} | {prec} | {ips(d)} | {ips(p)} | {ips(b)} | **{ratio(d, p, 'images_per_s')}** "
          f"| {ratio(d, b, 'images_per_s')} | {mib(d, 'device_peak_mib')} / {mib(p, 'device_peak_mib')} "
          f"| {ratio(d, p, 'device_peak_mib', invert=True)} | {mib(d, 'device_used_mib')} / {mib(p, 'device_used_mib')} |")
print()
print("Phases, ms per step (forward + loss / zero-grad + backward / optimizer):\n")
print("| net | precision | dnnguard | PyTorch | PyTorch benchmark |")
print("|---|---|---:|---:|---:|")
ph = lambda r: f"{r['forward_ms']:.2f} / {r['backward_ms']:.2f} / {r['optim_ms']:.2f}" if ok(r) else ips(r)
for net, prec in keys:
    d, p, b = (best.get((net, prec, impl, v)) for impl, v in (("dnnguard", ""), ("pytorch", ""), ("pytorch", "benchmark")))
    print(f"| {net} | {prec} | {ph(d)} | {ph(p)} | {ph(b)} |")
errors = [r for r in rows if "error" in r]
if errors:
    print("\nFailed runs:\n")
    for r in errors:
        print(f"- {r['impl']} {r['net']} {r['precision']} {r['variant']}: {r['error']}")
print()
EOF
cat "$REPORT"
failed=$(grep -c '"error"' "$OUT/train.jsonl")

if [ "$RECORD" = 1 ]; then
  . "$ROOT/bench/record.sh"
  bench_record gpu.sh "$(grep -o '"device": *"[^"]*"' "$OUT/train.jsonl" | head -1 | sed 's/.*: *"//; s/"$//')" \
    "DEVICE=$DEVICE BATCH=$BATCH ROUNDS=$ROUNDS steps $STEPS warmup $WARMUP, precision $PRECISIONS" "$REPORT"
fi
[ "$failed" = 0 ] || { echo "gpu.sh: $failed run(s) failed (see the table)" >&2; exit 1; }
