#!/usr/bin/env bash
# scripts/reproduce/activeguard-watermark.sh — the watermark experiments of ActiveGuard (§III-E,
# Tables III, V, VI) with dnnguard: a clean model; wm1 and wm2 embedded from scratch and wm1 by
# fine-tuning (Table III); the fine-tuning attack (Table V); the pruning attack from 0% to 90% on
# both watermarks (Table VI). Writes results.json, results.md and prune.png to --out.
#
#   scripts/reproduce/activeguard-watermark.sh                              # LeNet-5 on ../shared/data/mnist
#   scripts/reproduce/activeguard-watermark.sh --net wrn-10-4 --data cifar10:DIR \
#       --layer block1.layer.0.conv2.weight --train-opts "--opt sgd --lr 0.1 --momentum 0.9 --wd 5e-4 --schedule cosine" \
#       --epochs 200 --ft-epochs 20 --attack-epochs "30 50"                   # the WRN half (a GPU-sized run)
#   --train-subset N / --eval-limit N shrink a run to what a CPU finishes (say so when you report it).
#
# Every run is seeded; DNNGUARD (default build/dnnguard) names the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
DNNGUARD=${DNNGUARD:-$here/build/dnnguard}
net=lenet5
data="mnist:$here/../shared/data/mnist"
layer=conv2.weight
epochs=50
ft_epochs=20
attack_epochs="30 50"
attack_subset=7000
attack_split=train
lambda=0.01
train_opts="--opt adam --lr 1e-3 --batch 128"
train_subset=0
eval_limit=0
rates="0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9"
wm1=1234567890210
wm2=3876876994865
out=results/activeguard-watermark
backend=auto
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; echo "options: --net --data --layer --epochs --ft-epochs --attack-epochs \"30 50\" --attack-subset N --attack-split train|test --lambda --train-opts \"...\" --train-subset N --eval-limit N --rates \"...\" --out DIR --backend"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --net) net=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --layer) layer=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --ft-epochs) ft_epochs=$2; shift 2 ;;
        --attack-epochs) attack_epochs=$2; shift 2 ;;
        --attack-subset) attack_subset=$2; shift 2 ;;
        --attack-split) attack_split=$2; shift 2 ;;
        --lambda) lambda=$2; shift 2 ;;
        --train-opts) train_opts=$2; shift 2 ;;
        --train-subset) train_subset=$2; shift 2 ;;
        --eval-limit) eval_limit=$2; shift 2 ;;
        --rates) rates=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "activeguard-watermark.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
[ -x "$DNNGUARD" ] || { echo "activeguard-watermark.sh: no binary at $DNNGUARD (build first, or set DNNGUARD)" >&2; exit 2; }
mkdir -p "$out"
runs="$out/runs.jsonl"   # one JSON object per measurement; the report is made from it
: >"$runs"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
# shellcheck disable=SC2086  # train_opts is a list of options
# the training runs evaluate nothing: record() evaluates every model the same way
train() { "$DNNGUARD" train --net "$net" --data "$data" --backend "$backend" --eval-every 0 $train_opts \
              $( [ "$train_subset" -gt 0 ] && echo --subset "$train_subset" ) "$@"; }
record() { # record KIND NAME MODEL [extra JSON fields]: test accuracy and verification of MODEL against both keys
    local kind=$1 name=$2 model=$3 extra=${4:-}
    local ev v1 v2
    ev=$("$DNNGUARD" eval --net "$net" --model "$model" --data "$data" --backend "$backend" --limit "$eval_limit")
    v1=$("$DNNGUARD" wm verify --model "$model" --key "$out/wm1.key.json" --search key || true)
    v2=$("$DNNGUARD" wm verify --model "$model" --key "$out/wm2.key.json" --search key || true)
    echo "{\"kind\": \"$kind\", \"name\": \"$name\", \"model\": \"$model\"$extra, \"eval\": $ev, \"wm1\": $v1, \"wm2\": $v2}" >>"$runs"
}

log "clean model: $net on $data, $epochs epochs"
train --epochs "$epochs" --seed 1 --out "$out/clean.safetensors" --log "$out/clean.jsonl" >/dev/null
"$DNNGUARD" wm keygen --force --model "$out/clean.safetensors" --net "$net" --layer "$layer" --digits $wm1 --seed 7 \
    --out "$out/wm1.key.json" >/dev/null
"$DNNGUARD" wm keygen --force --model "$out/clean.safetensors" --net "$net" --layer "$layer" --digits $wm2 --seed 8 \
    --out "$out/wm2.key.json" >/dev/null
record clean clean "$out/clean.safetensors"

log "wm1 and wm2 embedded from scratch ($epochs epochs, lambda $lambda)"
for w in wm1 wm2; do
    train --epochs "$epochs" --seed 1 --wm "$out/$w.key.json" --wm-lambda "$lambda" \
        --out "$out/$w-scratch.safetensors" --log "$out/$w-scratch.jsonl" >/dev/null
    record embed "$w-scratch" "$out/$w-scratch.safetensors"
done
log "wm1 embedded by fine-tuning the clean model ($ft_epochs epochs)"
train --epochs "$ft_epochs" --seed 2 --init "$out/clean.safetensors" --wm "$out/wm1.key.json" --wm-lambda "$lambda" \
    --out "$out/wm1-ft.safetensors" --log "$out/wm1-ft.jsonl" >/dev/null
record embed wm1-ft "$out/wm1-ft.safetensors"

for w in wm1 wm2; do
    for e in $attack_epochs; do
        log "fine-tuning attack on $w-scratch: $e epochs on $attack_subset images of the $attack_split split"
        # shellcheck disable=SC2086
        "$DNNGUARD" attack finetune --model "$out/$w-scratch.safetensors" --net "$net" --data "$data" --backend "$backend" \
            $train_opts --split "$attack_split" --subset "$attack_subset" --epochs "$e" --seed 3 --eval-every 0 \
            --out "$out/$w-ft$e.safetensors" >/dev/null
        record finetune "$w-ft$e" "$out/$w-ft$e.safetensors" ", \"of\": \"$w-scratch\", \"epochs\": $e"
    done
    for r in $rates; do
        log "pruning attack on $w-scratch: rate $r"
        "$DNNGUARD" attack prune --model "$out/$w-scratch.safetensors" --rate "$r" --out "$out/$w-prune$r.safetensors" >/dev/null
        record prune "$w-prune$r" "$out/$w-prune$r.safetensors" ", \"of\": \"$w-scratch\", \"rate\": $r"
        rm -f "$out/$w-prune$r.safetensors"
    done
done

cat >"$out/settings.json" <<JSON
{"net": "$net", "data": "$data", "layer": "$layer", "epochs": $epochs, "ft_epochs": $ft_epochs,
 "attack_epochs": "$attack_epochs", "attack_subset": $attack_subset, "attack_split": "$attack_split",
 "lambda": $lambda, "train_opts": "$train_opts", "train_subset": $train_subset, "eval_limit": $eval_limit, "wm1": "$wm1", "wm2": "$wm2",
 "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "host": "$(uname -n)", "binary": $("$DNNGUARD" version --json)}
JSON
/usr/bin/python3 "$here/scripts/reproduce/watermark_report.py" "$out"
log "done: $out/results.md, $out/results.json, $out/prune.png"
