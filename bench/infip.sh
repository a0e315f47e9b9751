#!/usr/bin/env bash
# bench/infip.sh — InFIP's costs on this machine's CPU, dnnguard beside its peers in the same run:
# relevance extraction in key images per second (vgg16-cifar on 400 CIFAR-10 test images at 32x32,
# vgg16 on 400 synthetic 224x224 images) beside the same DTD pass in PyTorch (bench/infip_torch.py,
# tests/torch_dtd.py) on the same weights and keys, with each side's peak memory (the 224x224 run
# batches its keys, so memory does not grow with their number); and SSIM pairs per second on real
# fingerprint pairs (32x32 and 224x224) beside scikit-image (Gaussian form) and numpy (global form).
# Prints markdown tables; `--record` also appends them, dated, to bench/RESULTS.md.
#
#   bench/infip.sh [--record] [--keys N] [--no-224]
#   environment: THREADS (2), REPEATS (3 for 32x32; the 224x224 case runs once), PYTHON, BUILD, CIFAR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-3}
KEYS=400
CIFAR=${CIFAR:-$ROOT/../shared/data/cifar10}
RECORD=0 BIG=1
while [ $# -gt 0 ]; do
  case "$1" in
    --record) RECORD=1 ;;
    --keys) KEYS=$2; shift ;;
    --no-224) BIG=0 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "infip.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
"$PY" -c 'import torch, skimage' 2>/dev/null || { echo "infip.sh: $PY lacks torch or skimage (apt-get install python3-torch python3-skimage)" >&2; exit 2; }

echo "infip.sh: building into $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"${JOBS:-2}" --target dnnguard dg_bench_ssim >/dev/null
DG=$BUILD/dnnguard
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dg-infip-bench.XXXXXX")
echo "infip.sh: models, references and raw JSON lines in $OUT" >&2
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=1 # torch's own team; see bench/README.md on Debian's OpenBLAS
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"load_before\": \"$(load)\"}" >"$OUT/machine.jsonl"

# peak resident memory of a command (GNU time), in MiB, into $OUT/rss
with_rss() { /usr/bin/time -f '%M' -o "$OUT/rss" "$@"; }

relevance_case() { # label net data repeats
  local label=$1 net=$2 data=$3 reps=$4
  "$PY" "$ROOT/bench/infip_torch.py" model "$net" "$OUT/$label.safetensors"
  for r in $(seq "$reps"); do
    rm -rf "$OUT/ref-$label"
    line=$(with_rss "$DG" infip extract --model "$OUT/$label.safetensors" --net "$net" --keys "$data" --n "$KEYS" \
      --seed 3 --backend cpu --out "$OUT/ref-$label")
    echo "{\"case\": \"$label\", \"repeat\": $r, \"load\": \"$(load)\", \"max_rss_mib\": $(( $(cat "$OUT/rss") / 1024 )), \"dnnguard\": $line}" >>"$OUT/relevance.jsonl"
    batch=$(echo "$line" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["batch"])')
    line=$("$PY" "$ROOT/bench/infip_torch.py" relevance "$net" "$OUT/$label.safetensors" "$OUT/ref-$label" "$batch")
    echo "{\"case\": \"$label\", \"repeat\": $r, \"load\": \"$(load)\", \"pytorch\": $line}" >>"$OUT/relevance.jsonl"
  done
  # SSIM pairs: fingerprint i against fingerprint i+1 of the same reference (real images, all different)
  mkdir -p "$OUT/pairs-$label"
  for i in $(seq 0 $((KEYS - 1))); do
    cp "$OUT/ref-$label/fingerprints/fp-$(printf %05d $(((i + 1) % KEYS))).png" "$OUT/pairs-$label/fp-$(printf %05d "$i").png"
  done
  local sreps=$([ "$label" = vgg16-224 ] && echo 3 || echo 50)
  "$BUILD/bench/dg_bench_ssim" "$OUT/ref-$label/fingerprints" "$OUT/pairs-$label" "$KEYS" "$sreps" \
    | sed "s/^{/{\"case\": \"$label\", /" >>"$OUT/ssim.jsonl"
  "$PY" "$ROOT/bench/infip_torch.py" ssim "$OUT/ref-$label/fingerprints" "$OUT/pairs-$label" "$KEYS" \
    "$([ "$label" = vgg16-224 ] && echo 1 || echo 5)" | sed "s/^{/{\"case\": \"$label\", /" >>"$OUT/ssim.jsonl"
}

echo "infip.sh: vgg16-cifar, $KEYS CIFAR-10 test images" >&2
relevance_case vgg16-cifar vgg16-cifar "cifar10:$CIFAR" "$REPEATS"
if [ "$BIG" = 1 ]; then
  echo "infip.sh: vgg16 at 224x224, $KEYS synthetic images (minutes per side)" >&2
  relevance_case vgg16-224 vgg16 "synthetic:3,224,224,1000,$KEYS" 1
fi
echo "{\"load_after\": \"$(load)\"}" >>"$OUT/machine.jsonl"

REPORT=$OUT/report.md
"$PY" - "$OUT" "$THREADS" "$KEYS" >"$REPORT" <<'EOF'
import json, os, statistics, sys
out, threads, keys = sys.argv[1], sys.argv[2], sys.argv[3]
lines = lambda f: [json.loads(l) for l in open(os.path.join(out, f)) if l.strip()]
rel, ssim, mach = lines("relevance.jsonl"), lines("ssim.jsonl"), lines("machine.jsonl")
import torch
print(f"Machine: {os.cpu_count()} logical CPUs, {threads} threads per side (OMP_NUM_THREADS; PyTorch "
      f"torch.set_num_threads, OPENBLAS_NUM_THREADS=1); PyTorch {torch.__version__}; load average before/after: "
      f"{mach[0]['load_before']} / {mach[-1]['load_after']}.\n")
print(f"DTD relevance of {keys} key images (eval forward + one relevance pass; dnnguard: `infip extract`'s own "
      "timer around the passes, without loading or writing files; PyTorch: perf_counter around "
      "`torch_dtd.relevance` in batches of the size dnnguard chose). Peak memory: the whole process's maximum "
      "resident set (GNU time for dnnguard, getrusage for PyTorch). Ratio above 1: dnnguard faster.\n")
print("| case | batch | dnnguard keys/s | PyTorch keys/s | dnnguard / PyTorch | dnnguard peak MiB | PyTorch peak MiB | "
      "dnnguard runs | PyTorch runs | difference (normalised) |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|---:|")
for case in dict.fromkeys(r["case"] for r in rel):
    dg = [r for r in rel if r["case"] == case and "dnnguard" in r]
    pt = [r for r in rel if r["case"] == case and "pytorch" in r]
    d = statistics.median(r["dnnguard"]["keys_per_s"] for r in dg)
    p = statistics.median(r["pytorch"]["keys_per_s"] for r in pt)
    dg_runs = ", ".join("%.1f" % r["dnnguard"]["keys_per_s"] for r in dg)
    pt_runs = ", ".join("%.1f" % r["pytorch"]["keys_per_s"] for r in pt)
    diff = max(r["pytorch"]["normalised_difference_from_dnnguard"] for r in pt)
    print(f"| {case} | {dg[0]['dnnguard']['batch']} | {d:.1f} | {p:.1f} | **{d / p:.2f}** | "
          f"{max(r['max_rss_mib'] for r in dg)} | {max(r['pytorch']['max_rss_mib'] for r in pt):.0f} | "
          f"{dg_runs} | {pt_runs} | {diff:.1e} |")
print("\nSSIM pairs per second on real fingerprint pairs (fingerprint i against i + 1 of the same reference), "
      "one thread each: dnnguard's host/ssim.c (double) beside scikit-image's structural_similarity "
      "(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) and a vectorised numpy global SSIM. "
      "The mean SSIM columns show both sides computed the same thing.\n")
print("| case | size | form | dnnguard pairs/s | peer | peer pairs/s | dnnguard / peer | mean SSIM dnnguard / peer |")
print("|---|---|---|---:|---|---:|---:|---|")
for case in dict.fromkeys(r["case"] for r in ssim):
    for mode in ("gaussian", "global"):
        d = next(r for r in ssim if r["case"] == case and r["mode"] == mode and r["impl"] == "dnnguard")
        p = next(r for r in ssim if r["case"] == case and r["mode"] == mode and r["impl"] != "dnnguard")
        print(f"| {case} | {d['size']} | {mode} | {d['pairs_per_s']:.0f} | {p['impl']} | {p['pairs_per_s']:.0f} | "
              f"**{d['pairs_per_s'] / p['pairs_per_s']:.1f}** | {d['mean_ssim']:.6f} / {p['mean_ssim']:.6f} |")
print()
EOF
cat "$REPORT"

if [ "$RECORD" = 1 ]; then
  . "$ROOT/bench/record.sh"
  bench_record infip.sh "InFIP relevance and SSIM" "THREADS=$THREADS REPEATS=$REPEATS KEYS=$KEYS" "$REPORT"
fi
