#!/usr/bin/env bash
# scripts/reproduce/infip.sh — the InFIP experiments (Xue et al.; Tables I–VII, Figs. 3/4) with
# dnnguard on CIFAR-10: protected models (vgg16-cifar, resnet18-cifar), their relevance
# fingerprints, and ASSIM (both SSIM forms) with test accuracy for the same model, fine-tuning
# (20/50/80 epochs on 2,000 images), pruning (20/40/60%), watermark overwriting (Zhang et al.'s noise
# backdoor) and the adaptive attack (prune 40%, then fine-tune); the effect of λ and of the number
# of keys; the separation from independently trained models of the same and of other architectures
# (margin, ROC AUC, TPR at 5% FPR, a threshold calibrated on them); a sheet of key images with
# their fingerprints from the owner's, a pirated and an independent model. Writes results.json,
# results.md and fingerprints.png to --out (infip_report.py makes them from runs.jsonl).
#
#   scripts/reproduce/infip.sh                 # the CPU size: 10,000 training images, 10 epochs (about 6-7 h on 2 cores)
#   scripts/reproduce/infip.sh --full          # the paper's sizes: all 50,000 images, 100 epochs (a GPU job)
#   scripts/reproduce/infip.sh --train-subset 2000 --epochs 2 --ft-epochs "1 2" --keys 20 ...   # a smoke run
#
# Every run is seeded. A step whose output already exists is skipped, so an interrupted run
# continues where it stopped (rerun the same command). DNNGUARD (default build/dnnguard) names the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
DNNGUARD=${DNNGUARD:-$here/build/dnnguard}
PY=${PYTHON:-/usr/bin/python3}
data="cifar10:$here/../shared/data/cifar10"
owners="vgg16-cifar resnet18-cifar"
nulls="vgg16-cifar:2 vgg16-cifar:3 resnet18-cifar:2 resnet18-cifar:3 wrn-10-4:1"
train_subset=10000
epochs=10
train_opts="--opt sgd --lr 0.05 --momentum 0.9 --wd 5e-4 --schedule cosine --batch 128"
ft_subset=2000
ft_epochs="20 50 80"
ft_opts="--opt sgd --lr 0.01 --momentum 0.9 --batch 128"
prune_rates="0.2 0.4 0.6"
adaptive_rate=0.4
adaptive_epochs=20
ow_keys=100
ow_epochs=20
keys=400
lambda=5000
lambdas="500 1000 2000 5000 10000 20000 50000"
key_counts="25 50 100 200 400"
eval_limit=5000
out=results/infip
backend=auto
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --data --owners \"NETS\" --nulls \"NET:SEED ...\" --train-subset N (0: all) --epochs N --train-opts \"...\""
  echo "         --ft-subset N --ft-epochs \"20 50 80\" --ft-opts \"...\" --prune \"0.2 0.4 0.6\" --adaptive-rate R"
  echo "         --adaptive-epochs N --ow-keys N --ow-epochs N --keys N --lambda L --lambdas \"...\" --key-counts \"...\""
  echo "         --eval-limit N (0: the whole test split) --full --out DIR --backend cpu|cuda|auto"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --owners) owners=$2; shift 2 ;;
    --nulls) nulls=$2; shift 2 ;;
    --train-subset) train_subset=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --train-opts) train_opts=$2; shift 2 ;;
    --ft-subset) ft_subset=$2; shift 2 ;;
    --ft-epochs) ft_epochs=$2; shift 2 ;;
    --ft-opts) ft_opts=$2; shift 2 ;;
    --prune) prune_rates=$2; shift 2 ;;
    --adaptive-rate) adaptive_rate=$2; shift 2 ;;
    --adaptive-epochs) adaptive_epochs=$2; shift 2 ;;
    --ow-keys) ow_keys=$2; shift 2 ;;
    --ow-epochs) ow_epochs=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --lambda) lambda=$2; shift 2 ;;
    --lambdas) lambdas=$2; shift 2 ;;
    --key-counts) key_counts=$2; shift 2 ;;
    --eval-limit) eval_limit=$2; shift 2 ;;
    --full) train_subset=0; epochs=100; eval_limit=0; shift ;;
    --out) out=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "infip.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
[ -x "$DNNGUARD" ] || { echo "infip.sh: no binary at $DNNGUARD (build first, or set DNNGUARD)" >&2; exit 2; }
mkdir -p "$out/models" "$out/refs" "$out/fps" "$out/logs"
runs="$out/runs.jsonl"   # one JSON object per measurement (appended; the report keeps the last of each)
touch "$runs"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
record() { echo "$1" >>"$runs"; }
dg() { "$DNNGUARD" "$@" --backend "$backend"; }
subset_opt() { [ "$1" -gt 0 ] && echo "--subset $1" || true; }

cat >"$out/settings.json" <<EOF
{"data": "$data", "owners": "$owners", "nulls": "$nulls", "train_subset": $train_subset, "epochs": $epochs,
 "train_opts": "$train_opts", "ft_subset": $ft_subset, "ft_epochs": "$ft_epochs", "ft_opts": "$ft_opts",
 "prune_rates": "$prune_rates", "adaptive_rate": $adaptive_rate, "adaptive_epochs": $adaptive_epochs,
 "ow_keys": $ow_keys, "ow_epochs": $ow_epochs, "keys": $keys, "lambda": $lambda, "lambdas": "$lambdas",
 "key_counts": "$key_counts", "eval_limit": $eval_limit, "backend": "$backend",
 "machine": "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores",
 "commit": "$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo none)", "binary": $("$DNNGUARD" version --json)}
EOF

# a model's test accuracy, once
evaluate() { # name net file
  local name=$1 net=$2 file=$3
  if [ ! -f "$out/logs/eval-$name.json" ]; then # written whole or not at all: a rerun redoes a failed one
    dg eval --net "$net" --model "$file" --data "$data" \
        $( [ "$eval_limit" -gt 0 ] && echo "--limit $eval_limit" ) >"$out/logs/eval-$name.json.part"
    mv "$out/logs/eval-$name.json.part" "$out/logs/eval-$name.json"
  fi
  record "{\"kind\": \"eval\", \"model\": \"$name\", \"net\": \"$net\", \"eval\": $(cat "$out/logs/eval-$name.json")}"
}
# ASSIM of a suspect against an owner's reference: one relevance pass, both SSIM forms (its "forms")
verify() { # owner role name net file [ref] [tag] [fps-dir]
  local owner=$1 role=$2 name=$3 net=$4 file=$5 ref=${6:-$out/refs/$1} tag=${7:-main} fps=${8:-}
  local f="$out/logs/verify-$owner-$tag-$name.json"
  if [ ! -s "$f" ]; then
    dg infip verify --model "$file" --net "$net" --reference "$ref" --mode global --threshold 0.85 \
        $( [ -n "$fps" ] && echo "--out $fps" ) >"$f" || [ $? -eq 1 ]
  fi
  record "{\"kind\": \"verify\", \"owner\": \"$owner\", \"role\": \"$role\", \"suspect\": \"$name\", \"tag\": \"$tag\", \"verify\": $(cat "$f")}"
}

# 1. the protected models and the independent ones
models=""
for net in $owners; do models="$models $net:1"; done
for spec in $nulls; do models="$models $spec"; done
for spec in $models; do
  net=${spec%%:*} seed=${spec##*:} name="${spec%%:*}-${spec##*:}" file="$out/models/${spec%%:*}-${spec##*:}.safetensors"
  if [ ! -f "$file" ]; then
    log "train $name ($epochs epochs, $( [ "$train_subset" -gt 0 ] && echo "$train_subset" || echo all) images)"
    # shellcheck disable=SC2086
    dg train --net "$net" --data "$data" --epochs "$epochs" $train_opts $(subset_opt "$train_subset") --seed "$seed" \
        --eval-every 0 --log "$out/logs/train-$name.jsonl" --out "$file" >/dev/null
  fi
  evaluate "$name" "$net" "$file"
done

for owner_net in $owners; do
  owner="$owner_net-1" ofile="$out/models/$owner_net-1.safetensors"
  # 2. the owner's reference (one a rerun finds must have this run's keys and λ: its results would
  #    otherwise stand beside settings.json's λ without being made with it)
  if [ -f "$out/refs/$owner/manifest.json" ] && ! "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1])); sys.exit(len(m["keys"]) != int(sys.argv[2]) or m["lambda"] != float(sys.argv[3]))' \
      "$out/refs/$owner/manifest.json" "$keys" "$lambda"; then
    echo "infip.sh: $out/refs/$owner was extracted with other --keys or --lambda: remove it, or use another --out" >&2
    exit 2
  fi
  if [ ! -f "$out/refs/$owner/manifest.json" ]; then
    log "$owner: infip extract ($keys keys, lambda $lambda)"
    dg infip extract --model "$ofile" --net "$owner_net" --keys "$data" --n "$keys" --seed 3 --lambda "$lambda" \
        --out "$out/refs/$owner" --force >"$out/logs/extract-$owner.json"
  fi
  record "{\"kind\": \"extract\", \"owner\": \"$owner\", \"extract\": $(cat "$out/logs/extract-$owner.json")}"
  verify "$owner" same "$owner" "$owner_net" "$ofile" "" main "$out/fps/$owner-same"

  # 3. pirated copies: fine-tuning (one run, a snapshot at each listed epoch)
  last=$(echo "$ft_epochs" | tr ' ' '\n' | sort -n | tail -1)
  ft="$out/models/$owner-ft.safetensors"
  if [ ! -f "$ft" ]; then
    log "$owner: fine-tuning attack, $last epochs on $ft_subset images (snapshots at $ft_epochs)"
    # shellcheck disable=SC2086
    dg attack finetune --model "$ofile" --net "$owner_net" --data "$data" --subset "$ft_subset" --epochs "$last" \
        $ft_opts --save-epochs "$(echo "$ft_epochs" | tr ' ' ',')" --seed 11 --eval-every 0 \
        --log "$out/logs/ft-$owner.jsonl" --out "$ft" >/dev/null
  fi
  for e in $ft_epochs; do
    f="$out/models/$owner-ft.epoch$e.safetensors"
    [ "$e" = "$last" ] && [ ! -f "$f" ] && cp "$ft" "$f"
    evaluate "$owner-ft$e" "$owner_net" "$f"
    verify "$owner" "finetune-$e" "$owner-ft$e" "$owner_net" "$f" "" main "$( [ "$e" = "$last" ] && echo "$out/fps/$owner-ft$e")"
  done
  # pruning
  for r in $prune_rates; do
    f="$out/models/$owner-prune$r.safetensors"
    [ -f "$f" ] || "$DNNGUARD" attack prune --model "$ofile" --rate "$r" --out "$f" >"$out/logs/prune-$owner-$r.json"
    evaluate "$owner-prune$r" "$owner_net" "$f"
    verify "$owner" "prune-$r" "$owner-prune$r" "$owner_net" "$f"
  done
  # watermark overwriting (the pirate's own noise backdoor, mixed into fine-tuning)
  f="$out/models/$owner-overwrite.safetensors"
  if [ ! -f "$f" ]; then
    log "$owner: overwriting attack ($ow_keys backdoor keys, $ow_epochs epochs on $ft_subset images)"
    # shellcheck disable=SC2086
    dg attack overwrite --model "$ofile" --net "$owner_net" --data "$data" --subset "$ft_subset" --keys "$ow_keys" \
        --epochs "$ow_epochs" $ft_opts --seed 12 --eval-every 0 --limit "$eval_limit" --out "$f" >"$out/logs/overwrite-$owner.json"
  fi
  if [ -s "$out/logs/overwrite-$owner.json" ]; then
    record "{\"kind\": \"overwrite\", \"owner\": \"$owner\", \"overwrite\": $(cat "$out/logs/overwrite-$owner.json")}"
  else # a model made elsewhere (a reused models/ folder): its backdoor figures are not known here
    log "$owner: no logs/overwrite-$owner.json beside the existing $f: the backdoor's accuracy is left out" \
        "(delete the model to measure it)"
  fi
  evaluate "$owner-overwrite" "$owner_net" "$f"
  verify "$owner" overwrite "$owner-overwrite" "$owner_net" "$f"
  # adaptive: prune, then fine-tune
  p="$out/models/$owner-adaptive-pruned.safetensors" f="$out/models/$owner-adaptive.safetensors"
  [ -f "$p" ] || "$DNNGUARD" attack prune --model "$ofile" --rate "$adaptive_rate" --out "$p" >/dev/null
  if [ ! -f "$f" ]; then
    log "$owner: adaptive attack (prune $adaptive_rate, fine-tune $adaptive_epochs epochs)"
    # shellcheck disable=SC2086
    dg attack finetune --model "$p" --net "$owner_net" --data "$data" --subset "$ft_subset" --epochs "$adaptive_epochs" \
        $ft_opts --seed 13 --eval-every 0 --out "$f" >/dev/null
  fi
  evaluate "$owner-adaptive" "$owner_net" "$f"
  verify "$owner" adaptive "$owner-adaptive" "$owner_net" "$f"

  # 4. independent models (the null pairs): every other trained model
  for spec in $models; do
    name="${spec%%:*}-${spec##*:}"
    [ "$name" = "$owner" ] && continue
    verify "$owner" independent "$name" "${spec%%:*}" "$out/models/$name.safetensors" "" main "$out/fps/$owner-indep-$name"
  done

  # 5. λ (Table II) and the number of keys (Table III): the fine-tuned copy of the first snapshot
  #    and the first independent model, against references made with other settings
  first_ft=$(echo "$ft_epochs" | tr ' ' '\n' | sort -n | head -1)
  first_null=$(echo "$models" | tr ' ' '\n' | grep . | grep -v "^$owner_net:1$" | head -1)
  for l in $lambdas; do
    ref="$out/refs/$owner-lambda$l"
    [ -f "$ref/manifest.json" ] || dg infip extract --model "$ofile" --net "$owner_net" --keys "$data" --n "$keys" \
        --seed 3 --lambda "$l" --out "$ref" --force >"$out/logs/extract-$owner-lambda$l.json"
    record "{\"kind\": \"extract\", \"owner\": \"$owner\", \"tag\": \"lambda$l\", \"extract\": $(cat "$out/logs/extract-$owner-lambda$l.json")}"
    verify "$owner" "finetune-$first_ft" "$owner-ft$first_ft" "$owner_net" "$out/models/$owner-ft.epoch$first_ft.safetensors" "$ref" "lambda$l"
    verify "$owner" independent "${first_null%%:*}-${first_null##*:}" "${first_null%%:*}" \
        "$out/models/${first_null%%:*}-${first_null##*:}.safetensors" "$ref" "lambda$l"
  done
  for n in $key_counts; do
    ref="$out/refs/$owner-keys$n"
    [ -f "$ref/manifest.json" ] || dg infip extract --model "$ofile" --net "$owner_net" --keys "$data" --n "$n" \
        --seed 3 --lambda "$lambda" --out "$ref" --force >"$out/logs/extract-$owner-keys$n.json"
    verify "$owner" "finetune-$first_ft" "$owner-ft$first_ft" "$owner_net" "$out/models/$owner-ft.epoch$first_ft.safetensors" "$ref" "keys$n"
    verify "$owner" independent "${first_null%%:*}-${first_null##*:}" "${first_null%%:*}" \
        "$out/models/${first_null%%:*}-${first_null##*:}.safetensors" "$ref" "keys$n"
  done
done

log "report"
"$PY" "$here/scripts/reproduce/infip_report.py" "$out"
log "done: $out/results.md"
