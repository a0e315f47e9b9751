# tests/test_selftest.sh — the selftest harness end to end: the CPU backend against itself agrees on
# every op with error 0 (table and JSON), an error injected into one op's output is caught on exactly
# that op (exit 1), bad options exit 2, and `--backend cuda` either runs (GPU present: must pass) or
# says in one line that it cannot (exit 2). Needs $DNNGUARD; uses python3 for the JSON checks.
set -u
DNNGUARD=${DNNGUARD:-build/dnnguard}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dg-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# 0. dnnguard version: in a CUDA build its cuda line names cuDNN, cuBLAS and the architectures
v=$("$DNNGUARD" version 2>&1)
if grep -q "^cuda: not built" <<<"$v"; then ok "version: a CPU-only build says so"
elif grep -q "^cuda: CUDA runtime .*cuDNN 9\..*cuBLAS .*built for sm_" <<<"$v"; then ok "version: $(grep '^cuda:' <<<"$v")"
else fail "version: $v"
fi

# 1. CPU against CPU: every op and both nets pass with error exactly 0
"$DNNGUARD" selftest --backend cpu --reps 1 --json "$tmp/out.json" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
if [ $rc -eq 0 ]; then ok "selftest --backend cpu exits 0"; else fail "selftest --backend cpu exits $rc: $(tail -5 "$tmp/stderr") $(grep FAIL "$tmp/stdout" | head -5)"; fi
if /usr/bin/python3 - "$tmp/out.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
rows = r["results"]
ops = {row["op"] for row in rows}
# every entry of the op table that computes (memory ops included), plus the whole-net steps
need = {"alloc", "upload", "download", "copy", "zero", "conv_fwd", "conv_bwd_data", "conv_bwd_filter",
        "bias_fwd", "bias_bwd", "linear_fwd", "linear_bwd", "relu_fwd", "relu_bwd", "maxpool_fwd",
        "maxpool_bwd", "avgpool_fwd", "avgpool_bwd", "bn_fwd_train", "bn_fwd_eval", "bn_bwd", "bn_bwd_eval",
        "dropout_fwd", "dropout_bwd", "add", "axpy", "scale", "sum_squares", "softmax_xent", "sgd_step", "adam_step", "wm_reg", "cw_box_fwd", "cw_box_bwd", "cw_logits", "lrp_ratio", "lrp_share", "lrp_maxpool", "net_step", "net_relevance"}
problems = []
if ops != need: problems.append(f"ops differ: missing {sorted(need - ops)}, extra {sorted(ops - need)}")
if not r["all_agree"] or r["failed"] != 0: problems.append("not all agree")
if r["cases"] != len(rows): problems.append("case count")
for row in rows:
    guarded = row["op"] not in ("alloc", "net_step", "net_relevance")
    if not row["pass"] or row["error"] != 0 or row["guards_ok"] is not (True if guarded else None):
        problems.append(f"{row['op']} {row['case']}: pass={row['pass']} error={row['error']} guards={row['guards_ok']}")
    if not isinstance(row["ms_reference"], (int, float)) or not isinstance(row["ms_backend"], (int, float)):
        problems.append(f"{row['op']}: timings missing")
nets = [row["case"] for row in rows if row["op"] == "net_step"]
if not any(n.startswith("lenet5") for n in nets) or not any(n.startswith("resnet18-cifar") for n in nets):
    problems.append(f"net steps: {nets}")
rel = [row["case"] for row in rows if row["op"] == "net_relevance"]
if not all(any(n.startswith(want) for n in rel) for want in ("lenet5", "vgg16-cifar", "resnet18-cifar")):
    problems.append(f"net relevance passes: {rel}")
conv = [row["case"] for row in rows if row["op"] == "conv_fwd"]
for want in (" 1x1 ", " 3x3 ", " 5x5 ", " 7x7 ", " s2 ", " p3", "n1 ", "n8 "):
    if not any(want in c + " " for c in conv): problems.append(f"no conv case with '{want.strip()}'")
if r["backend"] != "cpu" or r["reference"] != "cpu" or r["precision"] != "fp32": problems.append("header fields")
print("\n".join(problems) if problems else f"{len(rows)} cases, {len(ops)} ops, all exact")
sys.exit(1 if problems else 0)
EOF
then ok "JSON: every op covered, every case exact, guards intact"; else fail "JSON checks"; fi
grep -q "cases agree" "$tmp/stdout" && grep -q "^conv_fwd " "$tmp/stdout" && ok "table printed" || fail "table missing"

# 2. An error injected into one op's output fails exactly that op, and the run exits 1
for op in conv_bwd_data maxpool_fwd bn_bwd softmax_xent adam_step relu_fwd copy lrp_ratio lrp_share lrp_maxpool; do
  "$DNNGUARD" selftest --backend cpu --no-nets --reps 0 --inject-error "$op" --json "$tmp/inj.json" >"$tmp/inj.out" 2>&1
  rc=$?
  if [ $rc -ne 1 ]; then fail "--inject-error $op exits $rc (want 1)"; continue; fi
  if /usr/bin/python3 - "$tmp/inj.json" "$op" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
op = sys.argv[2]
failed = {row["op"] for row in r["results"] if not row["pass"]}
ours = [row for row in r["results"] if row["op"] == op]
ok = failed == {op} and ours and all(not row["pass"] for row in ours) and r["all_agree"] is False
print(f"failed ops {sorted(failed)}; {op}: {len(ours)} cases")
sys.exit(0 if ok else 1)
EOF
  then ok "--inject-error $op: exactly $op fails, exit 1"; else fail "--inject-error $op: wrong set of failures"; fi
done

# 2a. The ops that do not run through the per-op cases (alloc, the whole-net step and relevance),
# and download, whose host buffer both sides share: an injected error fails them too
for op in alloc net_step net_relevance download; do
  "$DNNGUARD" selftest --backend cpu --reps 0 --only "$op" --inject-error "$op" --json "$tmp/inj.json" >"$tmp/inj.out" 2>&1
  rc=$?
  if [ $rc -eq 1 ] && /usr/bin/python3 -c "import json,sys; r=json.load(open('$tmp/inj.json')); rows=r['results']; sys.exit(0 if rows and all(not x['pass'] and x['op']=='$op' for x in rows) else 1)"; then
    ok "--inject-error $op: every $op case fails, exit 1"; else fail "--inject-error $op (exit $rc): $(tail -2 "$tmp/inj.out")"; fi
done

# 2b. A write just past an op's output is caught by the guard words
"$DNNGUARD" selftest --backend cpu --no-nets --reps 0 --inject-stray bias_bwd --json "$tmp/stray.json" >"$tmp/stray.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && /usr/bin/python3 - "$tmp/stray.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
bad = [row for row in r["results"] if not row["pass"]]
ok = bad and all(row["op"] == "bias_bwd" and not row["guards_ok"] and "guard" in row["worst"] for row in bad)
ok = ok and len(bad) == sum(1 for row in r["results"] if row["op"] == "bias_bwd")
print(f"{len(bad)} failing rows: {[(row['op'], row['worst']) for row in bad][:3]}")
sys.exit(0 if ok else 1)
EOF
then ok "--inject-stray bias_bwd: guards catch it on exactly bias_bwd, exit 1"; else fail "--inject-stray bias_bwd (exit $rc)"; fi

# 3. Bad options: one line on stderr, exit 2 (tf32 on the CPU backend too: it computes in FP32 only)
for args in "--inject-error no_such_op" "--inject-error" "--only no_such_op" "--precision fp16" "--precision tf32" "--backend tpu" "--reps -1" "--inject-stray net_step" "--inject-error --only zero" "--json /nonexistent/dir/x.json"; do
  # shellcheck disable=SC2086
  "$DNNGUARD" selftest --backend cpu $args >"$tmp/bad.out" 2>"$tmp/bad.err"
  rc=$?
  lines=$(grep -c . "$tmp/bad.err")
  if [ $rc -eq 2 ] && [ "$lines" -eq 1 ]; then ok "selftest $args: exit 2, one line"; else fail "selftest $args: exit $rc, $lines stderr lines"; fi
done

# 4. --only runs one op's cases
"$DNNGUARD" selftest --backend cpu --only bn_bwd --reps 0 --json "$tmp/only.json" >/dev/null 2>&1
rc=$?
if [ $rc -eq 0 ] && /usr/bin/python3 -c "import json,sys; r=json.load(open('$tmp/only.json')); sys.exit(0 if {x['op'] for x in r['results']}=={'bn_bwd'} else 1)"; then
  ok "--only bn_bwd runs only bn_bwd"; else fail "--only bn_bwd (exit $rc)"; fi

# 5. The CUDA backend: exit 2 with one line when it cannot run here; on a GPU machine it must pass
"$DNNGUARD" selftest --backend cuda --json "$tmp/cuda.json" >"$tmp/cuda.out" 2>"$tmp/cuda.err"
rc=$?
if [ $rc -eq 2 ]; then
  # only the two reasons a machine has for no CUDA: any other exit 2 (a failed allocation on the
  # device, say) is a broken backend, not a missing one
  lines=$(grep -c . "$tmp/cuda.err")
  if [ "$lines" -eq 1 ] && grep -qE "no CUDA device is present|built without the CUDA backend" "$tmp/cuda.err"; then
    ok "no CUDA here: exit 2 with one line ($(cat "$tmp/cuda.err"))"
  else fail "selftest --backend cuda exits 2 ($lines stderr lines): $(tail -3 "$tmp/cuda.err")"; fi
elif [ $rc -eq 0 ]; then
  ok "selftest --backend cuda passes on this machine's GPU"
else
  fail "selftest --backend cuda exits $rc: $(grep -E 'FAIL|agree' "$tmp/cuda.out" | head -20) $(tail -3 "$tmp/cuda.err")"
fi

echo "test_selftest: $failures failed"
[ $failures -eq 0 ]
