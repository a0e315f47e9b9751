#!/usr/bin/env bash
# tests/test_nccl_cuda.sh — `--dist nccl` as far as this machine allows. Without the CUDA backend
# or NCCL, and on a machine without a GPU: one line on stderr naming the reason, exit 2, nothing
# written. With G ≥ 1 GPUs (never run yet; docs/distributed.md): one NCCL rank, which runs every
# reduction as many ranks do (its buckets, side stream, events and the watchdog's polling), writes
# the weights of a run without --dist bit for bit under --deterministic (after two such runs are
# checked to agree with each other); LeNet-5 over min(G, 2) NCCL ranks trains, logs its ranks and
# all-reduce time, and reaches the accuracy of a one-rank CUDA run.
set -uo pipefail
dnnguard=${DNNGUARD:?the binary}
data=mnist:${DG_SHARED_DATA:?the shared data folder}/mnist
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { if eval "$1"; then passed=$((passed + 1)); echo "ok   $2"; else failed=$((failed + 1)); echo "FAIL $2"; fi; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

train=(train --net lenet5 --data "$data" --subset 4000 --epochs 1 --batch 64 --opt adam --lr 2e-3 --seed 2)
"$dnnguard" "${train[@]}" --backend cuda --dist nccl --deterministic --log "$tmp/n1.jsonl" --out "$tmp/n.st" \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
lines=$(grep -c . "$tmp/err")
if grep -q "built without MPI\|built without the CUDA backend\|no usable CUDA device" "$tmp/err"; then
  check '[ $rc = 2 ] && [ "$lines" = 1 ] && [ ! -s "$tmp/out" ] && [ ! -e "$tmp/n.st" ]' \
    "--dist nccl refused with one line, exit 2: $(cat "$tmp/err")"
else
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  ranks=$((gpus < 2 ? gpus : 2))
  check '[ $rc = 0 ]' "one NCCL rank trains (exit $rc) $(tail -c 300 "$tmp/err")"
  ms=$(sed -n 's/.*"allreduce_ms_per_step": \([0-9.]*\).*/\1/p' "$tmp/n1.jsonl" | tail -1)
  check 'awk -v m="$ms" "BEGIN { exit !(m > 0) }"' "... and its reductions ran on the device ($ms ms per step)"
  "$dnnguard" "${train[@]}" --backend cuda --deterministic --out "$tmp/d1.st" >/dev/null 2>&1
  "$dnnguard" "${train[@]}" --backend cuda --deterministic --out "$tmp/d2.st" >/dev/null 2>&1
  check 'cmp -s "$tmp/d1.st" "$tmp/d2.st"' "two --deterministic CUDA runs write the same weights bit for bit"
  check 'cmp -s "$tmp/d1.st" "$tmp/n.st"' "one NCCL rank writes the weights of the run without --dist bit for bit"
  "$dnnguard" "${train[@]}" --backend cuda --out "$tmp/one.st" >"$tmp/one.json" 2>/dev/null
  mpirun -np "$ranks" "$dnnguard" "${train[@]}" --backend cuda --dist nccl --log "$tmp/n.jsonl" \
    --out "$tmp/nn.st" >"$tmp/nn.json" 2>"$tmp/nn.err"
  rc=$?
  check '[ $rc = 0 ] && grep -q "\"ranks\": $ranks" "$tmp/n.jsonl" && grep -q allreduce_ms_per_step "$tmp/n.jsonl"' \
    "$ranks NCCL ranks train and log ranks and all-reduce time (exit $rc) $(tail -c 300 "$tmp/nn.err")"
  acc() { sed -n 's/.*"test_acc": \([0-9.]*\).*/\1/p' "$1"; }
  check 'awk -v a="$(acc "$tmp/one.json")" -v b="$(acc "$tmp/nn.json")" "BEGIN { exit !(a > 0.8 && b > a - 0.03) }"' \
    "the NCCL run's test accuracy $(acc "$tmp/nn.json") is within 0.03 of one rank's $(acc "$tmp/one.json")"
fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
