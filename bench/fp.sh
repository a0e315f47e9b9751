#!/usr/bin/env bash
# bench/fp.sh — fingerprint generation (ActiveGuard's C&W users' fingerprints, the 30-user batch:
# 10 classes × confidences 0.2, 0.3, 0.4) in dnnguard beside the same loop written in PyTorch
# (bench/fp_torch.py), on this machine's CPU, same thread count, same LeNet-5 and source images.
# Timed: N Adam iterations of the whole batch without early stop, as iterations/s and a ratio.
# Sanity check (not a timing): how many of the 30 each side issues with the paper's defaults.
# Prints markdown tables; `--record` also appends them, dated, to bench/RESULTS.md.
#
#   bench/fp.sh [--record] [--iters N] [--no-sanity]
#   environment: THREADS ("2 1": one timing row per count; the sanity runs use the first),
#                REPEATS (3), ITERS (1000), MNIST (../shared/data/mnist), PYTHON, BUILD, JOBS
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-"2 1"}
REPEATS=${REPEATS:-3}
ITERS=${ITERS:-1000}
MNIST=${MNIST:-$ROOT/../shared/data/mnist}
RECORD=0 SANITY=1

while [ $# -gt 0 ]; do
  case "$1" in
    --record) RECORD=1 ;;
    --iters) ITERS=$2; shift ;;
    --no-sanity) SANITY=0 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fp.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

"$PY" -c 'import torch' 2>/dev/null || { echo "fp.sh: $PY has no torch (Debian: apt-get install python3-torch)" >&2; exit 2; }
[ -f "$MNIST/t10k-images-idx3-ubyte.gz" ] || [ -f "$MNIST/t10k-images-idx3-ubyte" ] ||
  { echo "fp.sh: no MNIST in $MNIST (set MNIST=DIR)" >&2; exit 2; }
MNIST=$(cd "$MNIST" && pwd)
FIRST_THREADS=${THREADS%% *}

echo "fp.sh: building dnnguard into $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"${JOBS:-2}" --target dnnguard >/dev/null
DG=$BUILD/dnnguard

OUT=$(mktemp -d "${TMPDIR:-/tmp}/dg-fp-bench.XXXXXX")
echo "fp.sh: model, registry and raw JSON lines in $OUT" >&2
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"load_before\":\"$(load)\"}" >"$OUT/machine.jsonl"

# 1. the protected model: LeNet-5, 2 epochs of Adam on MNIST
echo "fp.sh: training lenet5 (2 epochs)" >&2
OMP_NUM_THREADS=$FIRST_THREADS "$DG" train --net lenet5 --data "mnist:$MNIST" --epochs 2 --opt adam --lr 1e-3 --seed 1 \
  --backend cpu --out "$OUT/lenet5.safetensors" >"$OUT/train.jsonl" 2>"$OUT/train.log"
MODEL=$OUT/lenet5.safetensors
ISSUE=("$DG" fp issue --model "$MODEL" --net lenet5 --data "mnist:$MNIST" --conf 0.2,0.3,0.4 --retries 0 --backend cpu)

# fp issue exits 1 when some user got nothing; its JSON line is what counts
run_dg() { local rc=0; "$@" 2>>"$OUT/stderr.txt" || rc=$?; [ "$rc" -le 1 ] || { echo "fp.sh: $* failed ($rc)" >&2; exit 1; }; }

# 2. the registry (the sources of the users), and dnnguard's side of the sanity check: the paper's
#    defaults (6 binary-search steps of α × at most 1000 iterations, margin eps/2 = 0.005), no retry.
#    Without the sanity check a 1-iteration run only fixes the sources (the same ones: --seed 1).
if [ "$SANITY" = 1 ]; then
  echo "fp.sh: sanity: dnnguard fp issue with the defaults" >&2
  OMP_NUM_THREADS=$FIRST_THREADS run_dg "${ISSUE[@]}" --out "$OUT/issued" | sed 's/^{/{"impl": "dnnguard", "mode": "issue", "load": "'"$(load)"'", /' >"$OUT/sanity.jsonl"
else
  OMP_NUM_THREADS=$FIRST_THREADS run_dg "${ISSUE[@]}" --out "$OUT/issued" --search-steps 1 --iters 1 >/dev/null
fi
REGISTRY=$OUT/issued/registry.json
PT=("$PY" "$ROOT/bench/fp_torch.py" --registry "$REGISTRY" --model "$MODEL" --data "$MNIST")

# 3. the timing: N iterations at the first α on both sides. A margin of 1e-6 is never met, so no
#    item succeeds and dnnguard neither stops early nor judges 8-bit candidates (checked below with
#    its cw_iterations and cw_judge_forwards); runs interleaved, the order alternating.
#    Debian's torch calls the pthreads build of OpenBLAS, whose own pool (OPENBLAS_NUM_THREADS, else
#    OMP_NUM_THREADS threads) spins beside torch's OpenMP team: with more than one thread that
#    oversubscribes the cores, so PyTorch runs with OPENBLAS_NUM_THREADS=1 (its conv and elementwise
#    ops keep their `threads`-wide OpenMP team); "pd" is the same run with the environment left as is.
for th in $THREADS; do
  sides="dg pt"; [ "$th" -gt 1 ] && sides="dg pt pd"
  for r in $(seq 1 "$REPEATS"); do
    if [ $((r % 2)) = 1 ]; then order=$sides; else order=$(echo "$sides" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for side in $order; do
      echo "fp.sh: threads $th, repeat $r: $side" >&2
      before=$(load)
      case $side in
        dg) line=$(OMP_NUM_THREADS=$th run_dg "${ISSUE[@]}" --out "$OUT/time-$th-$r" --search-steps 1 --iters "$ITERS" --margin 1e-6)
            line="{\"impl\": \"dnnguard\", \"mode\": \"time\", ${line#\{}" ;;
        pt) line=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$th "${PT[@]}" --threads "$th" time --iters "$ITERS" --repeats 1 | sed -n 1p) ;;
        pd) line=$(OMP_NUM_THREADS=$th "${PT[@]}" --threads "$th" time --iters "$ITERS" --repeats 1 | sed -n 1p) ;;
      esac
      echo "{\"side\": \"$side\", \"threads\": $th, \"repeat\": $r, \"load_before\": \"$before\", \"load_after\": \"$(load)\", ${line#\{}" >>"$OUT/time.jsonl"
    done
  done
done

# 4. PyTorch's side of the sanity check: the same generator, same defaults, same users and sources
if [ "$SANITY" = 1 ]; then
  echo "fp.sh: sanity: pytorch with the defaults" >&2
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$FIRST_THREADS "${PT[@]}" --threads "$FIRST_THREADS" issue |
    sed 's/^{/{"load": "'"$(load)"'", /' >>"$OUT/sanity.jsonl"
fi
echo "{\"load_after\":\"$(load)\"}" >>"$OUT/machine.jsonl"

REPORT=$OUT/report.md
"$PY" - "$OUT" "$ITERS" "$REPEATS" "$FIRST_THREADS" >"$REPORT" <<'EOF'
import json, os, platform, statistics, subprocess, sys
out, iters, repeats, first_threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def lines(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
machine = {}
for m in lines("machine.jsonl"):
    machine.update(m)
model = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
              if l.startswith("Model name")), platform.processor())
train = [l for l in lines("train.jsonl") if "test_acc" in l and "out" in l]
import torch
print(f"Machine: {model}, {os.cpu_count()} logical CPUs; PyTorch {torch.__version__} (mkldnn "
      f"{'on' if torch.backends.mkldnn.enabled else 'off'}); load average (1, 5, 15 min) before/after the whole script: "
      f"{machine.get('load_before', '?')} / {machine.get('load_after', '?')}. Model: LeNet-5, 2 epochs of Adam on MNIST"
      f"{', test accuracy %.2f%%' % (100 * train[-1]['test_acc']) if train else ''}; 30 users = classes 0–9 × "
      "confidences 0.2, 0.3, 0.4, one source image each from the MNIST test split (fp issue's seeded choice).\n")

rows = lines("time.jsonl")
if rows:
    print(f"C&W iterations per second, batch of 30 (one iteration: forward + backward to the input + Adam step on δ), "
          f"{iters} iterations at α = 20 without early stop, median of {repeats} runs per side, interleaved. "
          "dnnguard: `fp issue --search-steps 1 --iters N --retries 0 --margin 1e-6`, cw_iterations / seconds "
          "(its own timer: source picking and the C&W run; no model loading); PyTorch: `fp_torch.py time` "
          "(perf_counter around the loop), OPENBLAS_NUM_THREADS=1 beside torch.set_num_threads(threads); "
          "'PyTorch, Debian default' leaves OpenBLAS's pthreads pool at `threads` too. Ratio above 1: dnnguard faster. "
          "The load column is the 1-minute load average before each run (dg / pt / pd: dnnguard / PyTorch / "
          "PyTorch default); it includes this script's own previous runs.\n")
    print("| threads | dnnguard it/s | PyTorch it/s | dnnguard / PyTorch | PyTorch, Debian default it/s | dnnguard / that | "
          "dnnguard runs | PyTorch runs | default runs | dnnguard iterations / judge forwards | load before each run |")
    print("|---:|---:|---:|---:|---:|---:|---|---|---|---|---|")
    rate = lambda r: r["cw_iterations"] / r["seconds"] if r["seconds"] > 0 else float("nan")
    for th in dict.fromkeys(r["threads"] for r in rows):
        by = {k: [rate(r) for r in rows if r["threads"] == th and r["side"] == k] for k in ("dg", "pt", "pd")}
        med = {k: statistics.median(v) if v else float("nan") for k, v in by.items()}
        runs = lambda k: ", ".join(f"{x:.1f}" for x in by[k]) or "—"
        it = ", ".join(f"{r['cw_iterations']}/{r['cw_judge_forwards']}" for r in rows if r["threads"] == th and r["side"] == "dg")
        loads = ", ".join(f"{r['side']} {r['load_before'].split()[0]}" for r in rows if r["threads"] == th)
        pd = f"{med['pd']:.1f}" if by["pd"] else "(same as PyTorch)"
        pdr = f"{med['dg'] / med['pd']:.2f}" if by["pd"] else "—"
        print(f"| {th} | {med['dg']:.1f} | {med['pt']:.1f} | **{med['dg'] / med['pt']:.2f}** | {pd} | {pdr} | {runs('dg')} | "
              f"{runs('pt')} | {runs('pd')} | {it} | {loads} |")
    short = [r for r in rows if r["side"] == "dg" and (r["cw_iterations"] != iters or r["cw_judge_forwards"])]
    if short:
        print(f"\n**Warning**: {len(short)} dnnguard run(s) stopped early or judged candidates: not the same work as PyTorch's.")
    print()

san = lines("sanity.jsonl")
if san:
    print("Sanity check (not a timing): the whole generator with dnnguard's defaults (6 binary-search steps of α in "
          "(0, 40) from 20, ≤ 1000 Adam iterations each with C&W's early abort, lr 0.005, w = 3), no retry with "
          "another source; issued = the kept 8-bit image has argmax t and |p_t − c| < 0.005. PyTorch with "
          "OPENBLAS_NUM_THREADS=1. End-to-end fingerprints/s compare speed only where both sides did the same "
          "iterations and judge forwards (a judge forward is a forward of the whole batch's 8-bit images).\n")
    print("| side | threads | issued of 30 | not issued (user ids) | mean L2 | C&W iterations | judge forwards | seconds | "
          "fingerprints/s | 1-min load at start |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for s in san:
        print(f"| {s['impl']} | {first_threads} | {s['issued']} | {s['not_issued']} | {s['mean_l2']:.3f} | {s['cw_iterations']} | "
              f"{s['cw_judge_forwards']} | {s['seconds']:.1f} | {s['fingerprints_per_s']:.3f} | {s['load'].split()[0]} |")
    print()
EOF
cat "$REPORT"

if [ "$RECORD" = 1 ]; then
  . "$ROOT/bench/record.sh"
  bench_record fp.sh "fingerprint generation" "THREADS=\"$THREADS\" REPEATS=$REPEATS ITERS=$ITERS" "$REPORT"
fi
