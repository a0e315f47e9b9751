#!/usr/bin/env bash
# tests/test_gpu_bench_script.sh — bench/gpu.sh's own logic, which a GPU session has no time to debug:
# on a machine without a GPU it refuses in one line (exit 2); with DEVICE=cpu it runs the same
# comparison on the CPU (dg_bench_train beside torch_peer.py) and its table holds both sides' figures
# and their ratio; a run that fails is a "failed" cell and a line under "Failed runs", and the exit is 1.
set -u
root=${DG_SOURCE_DIR:?the source folder}
bench=$(dirname "${DNNGUARD:?the binary}")/bench/dg_bench_train
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dg-gpu-bench-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
export TMPDIR=$tmp

if [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" = 0 ]; then
  "$root/bench/gpu.sh" --nets lenet5 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc = 2 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "no NVIDIA GPU" "$tmp/err" && [ ! -s "$tmp/out" ]; then
    ok "no GPU: one line, exit 2: $(cat "$tmp/err")"
  else
    fail "no GPU: exit $rc, stderr: $(head -3 "$tmp/err")"
  fi
else
  echo "skip the no-GPU refusal: this machine has a GPU"
fi

DEVICE=cpu PYTHON=/usr/bin/python3 DG_BENCH_TRAIN=$bench BATCH=32 "$root/bench/gpu.sh" --nets lenet5 --steps 3 --warmup 1 \
  >"$tmp/report.md" 2>"$tmp/err"
rc=$?
row=$(grep '^| lenet5 |' "$tmp/report.md" | head -1)
if [ $rc = 0 ] && /usr/bin/python3 - "$row" <<'EOF'
import sys
cells = [c.strip() for c in sys.argv[1].strip("|").split("|")]
net, shape, prec, dg, pt, ptb, ratio = cells[:7]
dg, pt, ratio = float(dg), float(pt), float(ratio.strip("*"))
assert net == "lenet5" and prec == "fp32" and ptb == "—", cells
assert dg > 0 and pt > 0 and abs(ratio - dg / pt) <= 0.01 + 0.02 * dg / pt, (dg, pt, ratio)  # cells are rounded
EOF
then ok "DEVICE=cpu: both sides measured, ratio = dnnguard / PyTorch: $row"
else fail "DEVICE=cpu: exit $rc, row '$row', stderr $(tail -3 "$tmp/err")"
fi
grep -q "^| lenet5 | fp32 | [0-9.]* / [0-9.]* / [0-9.]* | [0-9.]* / " "$tmp/report.md" && ok "phase table" || fail "phase table missing"

DEVICE=cpu PYTHON=/usr/bin/python3 DG_BENCH_TRAIN=$bench BATCH=32 "$root/bench/gpu.sh" --nets no-such-net --steps 1 --warmup 0 \
  >"$tmp/report2.md" 2>"$tmp/err2"
rc=$?
if [ $rc = 1 ] && grep -q '^| no-such-net | .* | failed | failed |' "$tmp/report2.md" &&
  grep -q "^- dnnguard no-such-net fp32 .*unknown net" "$tmp/report2.md"; then
  ok "a failed run is reported as such, exit 1"
else
  fail "failed run: exit $rc: $(cat "$tmp/report2.md" | tail -5)"
fi

DEVICE=cpu "$root/bench/gpu.sh" --nets lenet5 --precision fp16 >/dev/null 2>"$tmp/err3"
rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$tmp/err3")" = 1 ] && ok "bad --precision: one line, exit 2" || fail "bad --precision: exit $rc"

echo "$failures failed"
[ $failures = 0 ]
