#!/usr/bin/env bash
# scripts/reproduce/activeguard-fingerprints.sh — the fingerprint experiments of ActiveGuard
# (§III-B to §III-D, Tables II and IV, Figs. 3 and 5) with dnnguard, LeNet-5 on MNIST: a protected
# model; 30 users' fingerprints (10 classes × 3 confidences); Table II (fresh fingerprints per
# user, the share that authenticates) with the paper's generator settings and with dnnguard's
# tuned ones; Table IV (clean, FGSM and C&W fakes); Fig. 5 (accuracy with and without a
# fingerprint); a sheet of sources, fingerprints and amplified differences (Fig. 3).
# Writes results.json, results.md and fingerprints.png to --out.
#
#   scripts/reproduce/activeguard-fingerprints.sh                       # the paper's sizes (CPU: about an hour)
#   scripts/reproduce/activeguard-fingerprints.sh --per-user 20 --cw-n 1000   # a shorter run
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
DNNGUARD=${DNNGUARD:-$here/build/dnnguard}
data="mnist:$here/../shared/data/mnist"
model=""
epochs=20
confs=0.2,0.3,0.4
eps=0.01
per_user=100
cw_n=10000
out=results/activeguard-fingerprints
backend=auto
tuned="--lr 0.02 --alpha-max 400"
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; echo "options: --data --model (skip training) --epochs --conf --eps --per-user --cw-n --tuned \"...\" --out --backend"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --data) data=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --conf) confs=$2; shift 2 ;;
        --eps) eps=$2; shift 2 ;;
        --per-user) per_user=$2; shift 2 ;;
        --cw-n) cw_n=$2; shift 2 ;;
        --tuned) tuned=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "activeguard-fingerprints.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
[ -x "$DNNGUARD" ] || { echo "activeguard-fingerprints.sh: no binary at $DNNGUARD (build first, or set DNNGUARD)" >&2; exit 2; }
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

if [ -z "$model" ]; then
    log "the protected model: LeNet-5, $epochs epochs, Adam 1e-3 with a cosine schedule"
    "$DNNGUARD" train --net lenet5 --data "$data" --epochs "$epochs" --opt adam --lr 1e-3 --schedule cosine --seed 1 \
        --backend "$backend" --eval-every 0 --out "$out/model.safetensors" >/dev/null
    model="$out/model.safetensors"
fi
log "30 users' fingerprints (classes 0-9 × confidences $confs, eps $eps)"
rm -rf "$out/fps"
"$DNNGUARD" fp issue --model "$model" --net lenet5 --data "$data" --conf "$confs" --eps "$eps" --out "$out/fps" \
    --backend "$backend" >"$out/issue.json"
auth_ok=0
for png in "$out"/fps/user-*.png; do
    # exit 0 authenticates and 1 refuses; anything else (2: bad input) is a failure of the run, not a refusal
    rc=0
    "$DNNGUARD" fp auth --model "$model" --registry "$out/fps/registry.json" --input "$png" --strict \
        --backend "$backend" >/dev/null || rc=$?
    case $rc in
        0) auth_ok=$((auth_ok + 1)) ;;
        1) ;;
        *) echo "activeguard-fingerprints.sh: fp auth of $png failed (exit $rc)" >&2; exit "$rc" ;;
    esac
done
echo "{\"issued_pngs\": $(ls "$out"/fps/user-*.png | wc -l), \"authenticated_strict\": $auth_ok}" >"$out/auth.json"

log "Table II with the paper's generator settings: $per_user fresh fingerprints per user"
"$DNNGUARD" fp eval --model "$model" --registry "$out/fps/registry.json" --per-user "$per_user" --backend "$backend" \
    >"$out/table2-paper.json"
log "Table II with dnnguard's tuned settings ($tuned)"
# shellcheck disable=SC2086  # tuned is a list of options
"$DNNGUARD" fp eval --model "$model" --registry "$out/fps/registry.json" --per-user "$per_user" --backend "$backend" \
    $tuned >"$out/table2-tuned.json"

log "Table IV: forgery with clean images, FGSM and untargeted C&W"
"$DNNGUARD" attack forge --model "$model" --registry "$out/fps/registry.json" --method clean --n 10000 \
    --backend "$backend" >"$out/forge-clean.json"
"$DNNGUARD" attack forge --model "$model" --registry "$out/fps/registry.json" --method fgsm --n 10000 \
    --backend "$backend" >"$out/forge-fgsm.json"
"$DNNGUARD" attack forge --model "$model" --registry "$out/fps/registry.json" --method cw --n "$cw_n" \
    --search-steps 1 --iters 300 --backend "$backend" >"$out/forge-cw.json"

log "Fig. 5: the control layer with and without a fingerprint"
"$DNNGUARD" predict --model "$model" --net lenet5 --data "$data" --backend "$backend" >"$out/predict-none.json"
"$DNNGUARD" predict --model "$model" --net lenet5 --data "$data" --fingerprint "$out/fps/user-07.png" \
    --registry "$out/fps/registry.json" --backend "$backend" >"$out/predict-user07.json"

cat >"$out/settings.json" <<JSON
{"data": "$data", "model": "$model", "epochs": $epochs, "confidences": "$confs", "eps": $eps, "per_user": $per_user,
 "cw_n": $cw_n, "tuned": "$tuned", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "host": "$(uname -n)",
 "binary": $("$DNNGUARD" version --json)}
JSON
/usr/bin/python3 "$here/scripts/reproduce/fingerprint_report.py" "$out"
log "done: $out/results.md, $out/results.json, $out/fingerprints.png"
