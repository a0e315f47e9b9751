#!/usr/bin/env bash
# bench/cpu.sh — dnnguard beside PyTorch on this machine's CPU, same thread count for both:
# training images/s of lenet5 (Fashion-MNIST) and of wrn-16-4, vgg16-cifar, resnet18-cifar
# (CIFAR-10) at batch 128, and conv GFLOP/s beside OpenBLAS's sgemm peak. Prints markdown tables;
# `--record` also appends them, dated, to bench/RESULTS.md. Builds into build-bench/ (or $BUILD).
#
#   bench/cpu.sh [--record] [--nets "lenet5 wrn-16-4 ..."] [--no-conv] [--no-train]
#   environment: THREADS (2), ROUNDS (1), LENET_STEPS (300), BIG_STEPS (3), BIG_WARMUP (1),
#                BATCH (128), CIFAR (../shared/data/cifar10), FMNIST (fashion-mnist), PYTHON, BUILD, JOBS
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
BATCH=${BATCH:-128}
LENET_STEPS=${LENET_STEPS:-300}
LENET_WARMUP=${LENET_WARMUP:-20}
BIG_STEPS=${BIG_STEPS:-3}
BIG_WARMUP=${BIG_WARMUP:-1}
CIFAR=${CIFAR:-$ROOT/../shared/data/cifar10}
FMNIST=${FMNIST:-fashion-mnist}
NETS="lenet5 wrn-16-4 vgg16-cifar resnet18-cifar"
RECORD=0 CONV=1 TRAIN=1

while [ $# -gt 0 ]; do
  case "$1" in
    --record) RECORD=1 ;;
    --nets) NETS=$2; shift ;;
    --no-conv) CONV=0 ;;
    --no-train) TRAIN=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

"$PY" -c 'import torch' 2>/dev/null || { echo "cpu.sh: $PY has no torch (Debian: apt-get install python3-torch)" >&2; exit 2; }

echo "cpu.sh: building into $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"${JOBS:-2}" --target dg_bench_train dg_bench_gemm >/dev/null
BENCH_TRAIN=$BUILD/bench/dg_bench_train
BENCH_GEMM=$BUILD/bench/dg_bench_gemm

export OMP_NUM_THREADS=$THREADS   # dnnguard's OpenMP team and OpenBLAS; torch reads it too
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dg-bench.XXXXXX")
echo "cpu.sh: raw JSON lines in $OUT" >&2
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"load_before\":\"$(load)\"}" >"$OUT/machine.jsonl"

data_for() { # the data set each net trains on here; synthetic pixels when the real one is missing
  case "$1" in
    lenet5)
      if [ "$FMNIST" = fashion-mnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then echo ""; else echo "$FMNIST"; fi ;;
    *) if [ -d "$CIFAR" ]; then echo "cifar10:$CIFAR"; else echo ""; fi ;;
  esac
}

if [ "$TRAIN" = 1 ]; then
  for round in $(seq 1 "$ROUNDS"); do
    for net in $NETS; do
      if [ "$net" = lenet5 ]; then steps=$LENET_STEPS warm=$LENET_WARMUP; else steps=$BIG_STEPS warm=$BIG_WARMUP; fi
      data=$(data_for "$net")
      dg=("$BENCH_TRAIN" --net "$net" --batch "$BATCH" --steps "$steps" --warmup "$warm")
      pt=("$PY" "$ROOT/bench/torch_peer.py" --threads "$THREADS" train --net "$net" --batch "$BATCH" --steps "$steps" --warmup "$warm")
      if [ -n "$data" ]; then dg+=(--data "$data"); pt+=(--data "$data"); fi
      # interleaved, and the order alternates between rounds so that drift hits both sides alike
      if [ $((round % 2)) = 1 ]; then first=dg; else first=pt; fi
      for side in $first $([ $first = dg ] && echo pt || echo dg) heap; do
        echo "cpu.sh: round $round: $net: $(case $side in dg) echo dnnguard ;; pt) echo pytorch ;; *) echo "pytorch, glibc keeping freed memory" ;; esac)" >&2
        case $side in
          dg) "${dg[@]}" >>"$OUT/train.jsonl" ;;
          pt) "${pt[@]}" >>"$OUT/train.jsonl" ;;
          # PyTorch's eager allocator hands large blocks back to the system on every free (glibc's
          # mmap threshold), and faults them in again next step; with these tunables glibc keeps them
          heap) MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1 "${pt[@]}" |
                  sed 's/"impl": "pytorch"/"impl": "pytorch-heap"/' >>"$OUT/train.jsonl" ;;
        esac
      done
    done
  done
fi

if [ "$CONV" = 1 ]; then
  "$BENCH_GEMM" --list >"$OUT/layers.jsonl"
  echo "cpu.sh: conv layers: dnnguard" >&2
  "$BENCH_GEMM" --batch "$BATCH" >>"$OUT/conv.jsonl"
  echo "cpu.sh: conv layers: pytorch" >&2
  "$PY" "$ROOT/bench/torch_peer.py" --threads "$THREADS" conv --layers "$OUT/layers.jsonl" --batch "$BATCH" >>"$OUT/conv.jsonl"
fi
echo "{\"load_after\":\"$(load)\"}" >>"$OUT/machine.jsonl"

REPORT=$OUT/report.md
"$PY" - "$OUT" "$THREADS" "$BATCH" "$ROUNDS" >"$REPORT" <<'EOF'
import json, os, platform, subprocess, sys
out, threads, batch, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def lines(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
machine = {}
for m in lines("machine.jsonl"):
    machine.update(m)
model = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
              if l.startswith("Model name")), platform.processor())
import torch
print(f"Machine: {model}, {os.cpu_count()} logical CPUs; threads {threads} (OMP_NUM_THREADS and torch.set_num_threads); "
      f"PyTorch {torch.__version__} (mkldnn {'on' if torch.backends.mkldnn.enabled else 'off'}); "
      f"load average before/after: {machine.get('load_before', '?')} / {machine.get('load_after', '?')}\n")

train = lines("train.jsonl")
if train:
    nets = list(dict.fromkeys(r["net"] for r in train))
    best = {}
    for r in train:  # the best round per side (rounds > 1): the one least disturbed by other work
        k = (r["net"], r["impl"])
        if k not in best or r["images_per_s"] > best[k]["images_per_s"]:
            best[k] = r
    print(f"Training, batch {batch}, SGD momentum 0.9 (median step of each run; best of {rounds} round(s)). "
          "Ratios above 1: dnnguard faster. 'by CPU time' compares the processes' CPU time per step instead of wall "
          "time: the robust figure on a busy machine at THREADS=1 (with more threads it also counts spinning at barriers).\n")
    print("The last two columns run PyTorch again with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1, so glibc keeps "
          "the large blocks its allocator frees every step instead of returning them to the system (a setting any "
          "PyTorch user can make): the ratio against that is the fairer one where the two columns differ.\n")
    print("| net | data | steps | dnnguard img/s | PyTorch img/s | dnnguard / PyTorch | by CPU time | dnnguard fwd / bwd / optim ms | PyTorch fwd / bwd / optim ms | PyTorch img/s, glibc keeping memory | dnnguard / that |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in nets:
        d, p, h = best.get((n, "dnnguard")), best.get((n, "pytorch")), best.get((n, "pytorch-heap"))
        ph = lambda r: f"{r['forward_ms']:.1f} / {r['backward_ms']:.1f} / {r['optim_ms']:.2f}" if r else "—"
        ips = lambda r: f"{r['images_per_s']:.1f}" if r else "—"
        ratio = f"{d['images_per_s'] / p['images_per_s']:.2f}" if d and p else "—"
        cpu = f"{p['cpu_ms_per_step'] / d['cpu_ms_per_step']:.2f}" if d and p and d.get("cpu_ms_per_step") else "—"
        heap_ratio = f"{d['images_per_s'] / h['images_per_s']:.2f}" if d and h else "—"
        print(f"| {n} | {(d or p)['data']} | {(d or p)['steps']} | {ips(d)} | {ips(p)} | **{ratio}** | {cpu} | {ph(d)} | {ph(p)} "
              f"| {ips(h)} | **{heap_ratio}** |")
    print()

conv = lines("conv.jsonl")
if conv:
    peaks = {r["impl"]: r["gflops"] for r in conv if r["op"] == "sgemm_peak"}
    peak = peaks.get("dnnguard")
    print(f"Convolutions, batch {batch}: GFLOP/s (2·N·K·C·R·S·OH·OW per pass, best repetition) and % of OpenBLAS's "
          f"sgemm peak on large square products ({peak:.1f} GFLOP/s here; torch.mm: {peaks.get('pytorch', 0):.1f})\n")
    print("| layer | used by | pass | dnnguard GFLOP/s | % peak | PyTorch GFLOP/s | % peak | dnnguard / PyTorch |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    torch_rows = {(r["layer"], r["op"]): r for r in conv if r["impl"] == "pytorch" and "layer" in r}
    for r in conv:
        if r["impl"] != "dnnguard" or "layer" not in r:
            continue
        t = torch_rows.get((r["layer"], r["op"]))
        pct = lambda g: f"{100 * g / peak:.0f}%" if peak else "—"
        tg = f"{t['gflops']:.1f}" if t else "—"
        tp = pct(t["gflops"]) if t else "—"
        ratio = f"{r['gflops'] / t['gflops']:.2f}" if t else "—"
        print(f"| {r['layer']} | {r['used']} | {r['op']} | {r['gflops']:.1f} | {pct(r['gflops'])} | {tg} | {tp} | {ratio} |")
    print()
EOF
cat "$REPORT"

if [ "$RECORD" = 1 ]; then
  . "$ROOT/bench/record.sh"
  bench_record cpu.sh "" "THREADS=$THREADS ROUNDS=$ROUNDS LENET_STEPS=$LENET_STEPS BIG_STEPS=$BIG_STEPS" "$REPORT"
fi
