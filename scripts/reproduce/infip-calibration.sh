#!/usr/bin/env bash
# scripts/reproduce/infip-calibration.sh — does `infip calibrate` keep its promise? An owner's
# LeNet-5 and its InFIP reference; --calibrate independently trained LeNet-5s (seeds 2, 3, ...) set
# the threshold; as many again (--held-out, the next seeds), never seen by the calibration, measure
# the false positives it lets through, beside the paper's 0.85; pirated copies (fine-tuned, pruned,
# overwritten, the adaptive attack) measure what it still catches. Both SSIM forms. Writes settings.json,
# results.json and results.md to --out (a rerun into an --out made with other settings is refused).
#
#   scripts/reproduce/infip-calibration.sh                   # 19 + 20 independent models, about 2 minutes on 2 cores
#   scripts/reproduce/infip-calibration.sh --calibrate 4 --held-out 4 --epochs 1 --keys 50   # a smoke run
#
# Every run is seeded; a model that exists is not trained again. DNNGUARD (default build/dnnguard) names the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
DNNGUARD=${DNNGUARD:-$here/build/dnnguard}
PY=${PYTHON:-/usr/bin/python3}
data="mnist:$here/../shared/data/mnist"
net=lenet5
n_cal=19
n_held=20
train_subset=20000
epochs=3
train_opts="--opt adam --lr 1e-3 --schedule cosine --batch 128"
keys=400
lambda=5000
out=results/infip-calibration
backend=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --net) net=$2; shift 2 ;;
    --calibrate) n_cal=$2; shift 2 ;;
    --held-out) n_held=$2; shift 2 ;;
    --train-subset) train_subset=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --train-opts) train_opts=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --lambda) lambda=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      echo "options: --data SPEC --net NET --calibrate N --held-out N --train-subset N --epochs N --train-opts \"...\""
      echo "         --keys N --lambda L --out DIR --backend cpu|cuda|auto"; exit 0 ;;
    *) echo "infip-calibration.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
for v in "$n_cal" "$n_held" "$train_subset" "$epochs" "$keys"; do
  case "$v" in ''|*[!0-9]*) echo "infip-calibration.sh: counts must be whole numbers, not '$v'" >&2; exit 2 ;; esac
done
[ "$n_cal" -ge 1 ] && [ "$n_held" -ge 1 ] || { echo "infip-calibration.sh: --calibrate and --held-out need 1 or more" >&2; exit 2; }
[ -n "$out" ] || { echo "infip-calibration.sh: --out needs a folder" >&2; exit 2; }
[ -x "$DNNGUARD" ] || { echo "infip-calibration.sh: no dnnguard at $DNNGUARD (build it, or set DNNGUARD)" >&2; exit 2; }
dg() { "$DNNGUARD" "$@"; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
mkdir -p "$out/models" "$out/logs"
# the settings the models and the reference are made with: a rerun into the same --out reuses what
# exists, so it must be made the same way (else remove it, or use another --out)
made_with=$("$PY" -c 'import json, sys
print(json.dumps(dict(zip(["data", "net", "train_subset", "epochs", "train_opts", "keys", "lambda"],
                          [sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]),
                           float(sys.argv[7])]))))' "$data" "$net" "$train_subset" "$epochs" "$train_opts" "$keys" "$lambda")
if [ -f "$out/settings.json" ] && ! "$PY" -c 'import json, sys
old = json.load(open(sys.argv[1])); new = json.loads(sys.argv[2])
sys.exit(any(old.get(k) != v for k, v in new.items()))' "$out/settings.json" "$made_with"; then
  echo "infip-calibration.sh: $out was made with other settings ($out/settings.json): remove it, or use another --out" >&2
  exit 2
fi
"$PY" -c 'import json, sys
s = json.loads(sys.argv[1]); s.update(calibrate=int(sys.argv[2]), held_out=int(sys.argv[3]), backend=sys.argv[4],
                                      machine=sys.argv[5], commit=sys.argv[6])
json.dump(s, open(sys.argv[7], "w"), indent=1)' "$made_with" "$n_cal" "$n_held" "$backend" \
  "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores" \
  "$(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)" "$out/settings.json"
: >"$out/logs/train.log"
: >"$out/logs/attacks.log"
m="$out/models"
train() { # seed file
  [ -f "$2" ] && return 0
  # shellcheck disable=SC2086
  dg train --net "$net" --data "$data" --epochs "$epochs" $train_opts --subset "$train_subset" --seed "$1" \
      --eval-every 0 --backend "$backend" --out "$2" >/dev/null 2>>"$out/logs/train.log"
}

log "train the owner and $((n_cal + n_held)) independent models ($epochs epochs on $train_subset images each)"
train 1 "$m/owner.safetensors"
case "$m" in *,*) echo "infip-calibration.sh: --out must not hold a comma (--independent is a comma list)" >&2; exit 2 ;; esac
cal_list="" held=()
for i in $(seq 1 $((n_cal + n_held))); do
  f="$m/indep-$((i + 1)).safetensors"
  train $((i + 1)) "$f"
  if [ "$i" -le "$n_cal" ]; then cal_list="$cal_list${cal_list:+,}$f"; else held+=("$f"); fi
done

log "pirated copies: fine-tuned 20 and 80 epochs, pruned 40% and 60%, overwritten, prune 40% + fine-tune 20"
ft() { # model epochs out
  [ -f "$3" ] || dg attack finetune --model "$1" --net "$net" --data "$data" --split test --subset 2000 --epochs "$2" \
      --opt adam --lr 1e-3 --eval-every 0 --backend "$backend" --out "$3" >/dev/null 2>>"$out/logs/attacks.log"
}
ft "$m/owner.safetensors" 20 "$m/ft20.safetensors"
ft "$m/owner.safetensors" 80 "$m/ft80.safetensors"
for rate in 0.4 0.6; do
  [ -f "$m/prune$rate.safetensors" ] || dg attack prune --model "$m/owner.safetensors" --rate "$rate" \
      --out "$m/prune$rate.safetensors" >/dev/null 2>>"$out/logs/attacks.log"
done
[ -f "$m/overwrite.safetensors" ] || dg attack overwrite --model "$m/owner.safetensors" --net "$net" --data "$data" \
    --subset 2000 --keys 100 --epochs 20 --opt adam --lr 1e-3 --eval-every 0 --backend "$backend" \
    --out "$m/overwrite.safetensors" >/dev/null 2>>"$out/logs/attacks.log"
ft "$m/prune0.4.safetensors" 20 "$m/adaptive.safetensors"

log "the owner's reference ($keys keys, lambda $lambda) and its calibration on $n_cal models"
rm -rf "$out/ref"
dg infip extract --model "$m/owner.safetensors" --net "$net" --keys "$data" --n "$keys" --seed 3 --lambda "$lambda" \
    --backend "$backend" --out "$out/ref" >"$out/logs/extract.json"
dg infip calibrate --reference "$out/ref" --independent "$cal_list" --backend "$backend" \
    >"$out/logs/calibrate.json" 2>"$out/logs/calibrate.stderr"

log "verify the held-out independent models and the copies against the calibrated threshold and 0.85"
: >"$out/logs/verify.jsonl"
: >"$out/logs/verify.stderr"
for f in "${held[@]}" "$m"/ft20.safetensors "$m"/ft80.safetensors "$m"/prune0.4.safetensors "$m"/prune0.6.safetensors \
         "$m"/overwrite.safetensors "$m"/adaptive.safetensors; do
  role=pirated
  case "$(basename "$f")" in indep-*) role=independent ;; esac
  for mode in global gaussian; do
    # exit 1 is a verdict ("not pirated"); 2 stops the script, its reason in logs/verify.stderr
    v=$(dg infip verify --model "$f" --reference "$out/ref" --mode "$mode" --backend "$backend" \
        2>>"$out/logs/verify.stderr" || [ $? -eq 1 ])
    p=$(dg infip verify --model "$f" --reference "$out/ref" --mode "$mode" --threshold 0.85 --backend "$backend" \
        2>>"$out/logs/verify.stderr" || [ $? -eq 1 ])
    echo "{\"role\": \"$role\", \"name\": \"$(basename "$f" .safetensors)\", \"verify\": $v, \"at_085\": $p}" \
        >>"$out/logs/verify.jsonl"
  done
done

"$PY" - "$out" "$n_cal" "$n_held" <<'EOF'
import json, sys
out, n_cal, n_held = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cal = json.load(open(f"{out}/logs/calibrate.json"))
runs = [json.loads(l) for l in open(f"{out}/logs/verify.jsonl")]
res = {"calibration_models": n_cal, "held_out_models": n_held, "false_positive_bound": cal["false_positive_bound"],
       "forms": {}}
lines = [f"# infip calibrate: {n_cal} independent models set the threshold, {n_held} held out\n",
         "| form | calibrated threshold | held-out independent called pirated | pirated copies called pirated | "
         "held-out called pirated at 0.85 | copies called pirated at 0.85 | highest held-out | lowest pirated |",
         "|---|---|---|---|---|---|---|---|"]
for mode in ("global", "gaussian"):
    rs = [r for r in runs if r["verify"]["mode"] == mode]
    ind = [r["verify"]["assim"] for r in rs if r["role"] == "independent"]
    pir = {r["name"]: r["verify"]["assim"] for r in rs if r["role"] == "pirated"}
    t = cal["thresholds"][mode]
    assert all(r["verify"]["threshold"] == t for r in rs), "verify did not use the calibrated threshold"
    # the verdicts as verify gave them, calibrated and at the paper's 0.85
    called = lambda role, key: sum(r[key]["pirated"] for r in rs if r["role"] == role)
    f = {"threshold": t, "calibration_assim": [z["assim_" + mode] for z in cal["models"]], "held_out_assim": ind,
         "pirated_assim": pir, "held_out_false_positives": called("independent", "verify"),
         "pirated_detected": called("pirated", "verify"), "held_out_at_0.85": called("independent", "at_085"),
         "pirated_at_0.85": called("pirated", "at_085")}
    res["forms"][mode] = f
    lines.append(f"| {mode} | {t:.4f} | {f['held_out_false_positives']} of {len(ind)} | {f['pirated_detected']} of "
                 f"{len(pir)} | {f['held_out_at_0.85']} of {len(ind)} | {f['pirated_at_0.85']} of {len(pir)} | "
                 f"{max(ind):.4f} | {min(pir.values()):.4f} |")
lines.append(f"\nThe bound the calibration states: 1/({n_cal} + 1) = {cal['false_positive_bound']:.3f}. "
             "Pirated copies: " + ", ".join(f"{k} {v:.4f}" for k, v in res["forms"]["global"]["pirated_assim"].items())
             + " (global form).")
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
