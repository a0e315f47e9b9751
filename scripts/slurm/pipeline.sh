#!/usr/bin/env bash
# scripts/slurm/pipeline.sh — ActiveGuard end to end as Slurm jobs with dependencies (run it on a
# login node; it submits and returns, or waits with --wait):
#   train ─▶ keygen ─▶ embed ─┬▶ fingerprints (fp issue, users split across the ranks) ─▶ auth
#                             ├▶ prune[rate]   (job array) ─▶ verify-prune[rate]   (array, aftercorr)
#                             └▶ finetune[E]   (job array) ─▶ verify-finetune[E]   (array, aftercorr)
#   everything ─▶ report (OUT/report.json: every stage's JSON; exit 0 when all of them produced one)
# Training jobs (train, embed, finetune) are preemption-safe (scripts/slurm/run-step.sh).
#   scripts/slurm/pipeline.sh --data fashion-mnist --out runs/p1 [--net lenet5] [--epochs 20]
#       [--wm-epochs 10] [--ranks 1] [--backend cpu|cuda|auto] [--subset N] [--batch 128] [--lr 1e-3]
#       [--prune-rates 0.2,0.4,0.6,0.8] [--finetune-epochs 1,5] [--layer conv2.weight]
#       [--digits 1234567890210] [--wm-lambda 0.01] [--users 10] [--conf 0.5] [--fp "more fp issue options"]
#       [--seed 1] [--sbatch "options for every job"] [--wait]
#   scripts/slurm/pipeline.sh --report OUT      (what the report job runs)
# Prints {"jobs": {stage: id}, "out": OUT} on stdout. Exit: 0 submitted (with --wait: 0 when the
# report found every stage's result, 1 when not), 2 bad usage or a failed submission (the stages
# submitted before it are cancelled). A run into an OUT used before starts with its results/ and
# report cleared, so the report never counts an earlier run's JSON.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "pipeline.sh: $*" >&2; exit 2; }

# ---- the report: every stage's JSON result in one document ----
json_of() { # the last line of a result file that is a JSON object, or null
  local line
  line=$(grep -h '^{' "$1" 2>/dev/null | tail -1 || true)
  echo "${line:-null}"
}
results_of() { # OUT STAGE V0,V1,...: {"V0": result of task 0, ...}
  local v i=0 sep="" vals
  IFS=, read -ra vals <<<"$3"
  printf '{'
  for v in "${vals[@]}"; do
    printf '%s"%s": %s' "$sep" "$v" "$(json_of "$1/results/$2-$i.json")"
    sep=", " i=$((i + 1))
  done
  printf '}'
}
report() {
  local out=$1 missing=0 f auth="" rates ft
  rates=$(cat "$out/prune-rates") ft=$(cat "$out/finetune-epochs")
  for f in train embed verify-embedded fingerprints; do
    grep -q '^{' "$out/results/$f.json" 2>/dev/null || missing=$((missing + 1))
  done
  for ((i = 0; i < $(tr ',' '\n' <<<"$rates" | wc -l); i++)); do
    grep -q '^{' "$out/results/verify-prune-$i.json" 2>/dev/null || missing=$((missing + 1))
  done
  for ((i = 0; i < $(tr ',' '\n' <<<"$ft" | wc -l); i++)); do
    grep -q '^{' "$out/results/verify-finetune-$i.json" 2>/dev/null || missing=$((missing + 1))
  done
  # one auth result per issued user, each a JSON object (a crashed fp auth leaves an empty file)
  local issued n_auth=0
  issued=$(grep -ho '"issued": *[0-9]*' "$out/results/fingerprints.json" 2>/dev/null | tail -1 | tr -dc 0-9 || true)
  for f in "$out"/results/auth-*.json; do
    [ -e "$f" ] || continue
    grep -q '^{' "$f" && n_auth=$((n_auth + 1)) || missing=$((missing + 1))
    auth+="${auth:+, }$(json_of "$f")"
  done
  [ -z "$issued" ] || [ "$n_auth" -ge "$issued" ] || missing=$((missing + issued - n_auth))
  {
    printf '{"train": %s,\n' "$(json_of "$out/results/train.json")"
    printf ' "embed": %s,\n' "$(json_of "$out/results/embed.json")"
    printf ' "verify_embedded": %s,\n' "$(json_of "$out/results/verify-embedded.json")"
    printf ' "fingerprints": %s,\n' "$(json_of "$out/results/fingerprints.json")"
    printf ' "auth": [%s],\n' "$auth"
    printf ' "verify_pruned": %s,\n' "$(results_of "$out" verify-prune "$rates")"
    printf ' "verify_finetuned": %s,\n' "$(results_of "$out" verify-finetune "$ft")"
    printf ' "missing": %d, "complete": %s}\n' "$missing" "$([ $missing = 0 ] && echo true || echo false)"
  } >"$out/report.json.tmp"
  mv "$out/report.json.tmp" "$out/report.json"
  cat "$out/report.json"
  [ $missing = 0 ]
}

if [ "${1:-}" = --report ]; then
  [ -n "${2:-}" ] || die "--report OUT"
  report "$2"
  exit $?
fi

# ---- options ----
data="" out="" net=lenet5 epochs=20 wm_epochs=10 ranks=1 backend=auto subset="" batch=128 lr=1e-3
rates=0.2,0.4,0.6,0.8 ft_epochs=1,5 layer=conv2.weight digits=1234567890210 wm_lambda=0.01 users=10 conf=0.5 fp_extra=""
seed=1 sbatch_extra="" wait=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wait) wait=1; shift; continue ;;
    --data|--out|--net|--epochs|--wm-epochs|--ranks|--backend|--subset|--batch|--lr|--prune-rates|\
    --finetune-epochs|--layer|--digits|--wm-lambda|--users|--conf|--fp|--seed|--sbatch)
      [ $# -ge 2 ] || die "$1 needs a value" ;;
    *) die "unknown option '$1' (see the head of this script)" ;;
  esac
  case "$1" in
    --data) data=$2 ;; --out) out=$2 ;; --net) net=$2 ;; --epochs) epochs=$2 ;; --wm-epochs) wm_epochs=$2 ;;
    --ranks) ranks=$2 ;; --backend) backend=$2 ;; --subset) subset=$2 ;; --batch) batch=$2 ;; --lr) lr=$2 ;;
    --prune-rates) rates=$2 ;; --finetune-epochs) ft_epochs=$2 ;; --layer) layer=$2 ;; --digits) digits=$2 ;;
    --wm-lambda) wm_lambda=$2 ;;
    --users) users=$2 ;; --conf) conf=$2 ;; --fp) fp_extra=$2 ;; --seed) seed=$2 ;; --sbatch) sbatch_extra=$2 ;;
  esac
  shift 2
done
[ -n "$data" ] && [ -n "$out" ] || die "--data SPEC and --out DIR are required"
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || die "--ranks must be a positive integer, not '$ranks'"
command -v sbatch >/dev/null || die "sbatch is not on PATH (run this on a Slurm login node)"
mkdir -p "$out"/{results,logs,models}
out=$(cd "$out" && pwd)
rm -f "$out"/results/*.json "$out/report.json" # an earlier run's results must not stand in for this one's
echo "$rates" >"$out/prune-rates"
echo "$ft_epochs" >"$out/finetune-epochs"
n_rates=$(tr ',' '\n' <<<"$rates" | wc -l)
n_ft=$(tr ',' '\n' <<<"$ft_epochs" | wc -l)
m=$out/models
read -ra extra <<<"$sbatch_extra"
read -ra fp_more <<<"$fp_extra"
subset_opt=()
[ -z "$subset" ] || subset_opt=(--subset "$subset")
common=(--net "$net" --data "$data" --backend "$backend" --batch "$batch" --opt adam --lr "$lr" --seed "$seed"
        "${subset_opt[@]}")

# submit NAME DEPENDENCY SBATCH-OPTIONS... -- SCRIPT ARGS...: the job id. Every job's stdout (the
# command's JSON) goes to results/NAME.json, its stderr to logs/NAME.err; a job whose dependency
# can no longer be met is cancelled rather than left pending.
submit() {
  local name=$1 dep=$2 opts=()
  shift 2
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  local o="$out/results/$name.json" e="$out/logs/$name.err"
  case " ${opts[*]} " in *" --array="*) o="$out/results/$name-%a.json" e="$out/logs/$name-%a.err" ;; esac
  [ -z "$dep" ] || opts+=(--dependency="$dep" --kill-on-invalid-dep=yes)
  DG_SLURM_DIR=$here sbatch --parsable --job-name="dg-$name" --output="$o" --error="$e" --export=ALL \
    "${opts[@]}" "${extra[@]}" "$@" | cut -d';' -f1
}
# stage VAR NAME DEPENDENCY ...: submit (as above) and set VAR to the id; a failed submission
# cancels the stages already submitted and stops the script (exit 2)
submitted=()
train="" keygen="" embed="" verify_wm="" fps="" auth="" prune="" finetune="" vprune="" vft=""
stage() {
  local var=$1 name=$2 id
  shift
  if ! id=$(submit "$@") || ! [[ "$id" =~ ^[0-9]+$ ]]; then
    [ ${#submitted[@]} = 0 ] || scancel "${submitted[@]}" 2>/dev/null || true
    die "submitting stage '$name' failed${submitted[*]:+; cancelled the stages submitted before it (${submitted[*]})}"
  fi
  submitted+=("$id")
  printf -v "$var" %s "$id"
}
step=$here/run-step.sh
wrap() { printf '%q ' bash "$step" "$@"; } # a run-step.sh command line for --wrap

stage train train "" -n "$ranks" -- "$here/train.sbatch" "${common[@]}" --epochs "$epochs" \
  --out "$m/clean.safetensors"
stage keygen keygen "afterok:$train" -n 1 -- --wrap "$(wrap wm keygen --model "$m/clean.safetensors" \
  --net "$net" --layer "$layer" --digits "$digits" --seed "$seed" --out "$m/owner.wmkey.json")"
stage embed embed "afterok:$keygen" -n "$ranks" -- "$here/train.sbatch" "${common[@]}" --epochs "$wm_epochs" \
  --init "$m/clean.safetensors" --wm "$m/owner.wmkey.json" --wm-lambda "$wm_lambda" --out "$m/wm.safetensors"
stage verify_wm verify-embedded "afterok:$embed" -n 1 -- --wrap "$(wrap wm verify --model "$m/wm.safetensors" \
  --key "$m/owner.wmkey.json")"
stage fps fingerprints "afterok:$embed" -n "$ranks" -- --wrap "$(wrap fp issue --model "$m/wm.safetensors" \
  --net "$net" --data "$data" --conf "$conf" --users "$users" --backend "$backend" --out "$m/fps" \
  "${fp_more[@]}")"
# auth: every issued user's PNG against the watermarked model, one JSON file per user
auth_cmd="for f in $(printf %q "$m/fps")/user-*.png; do [ -e \"\$f\" ] || continue; u=\$(basename \"\$f\" .png); $(wrap fp auth --model \
  "$m/wm.safetensors" --registry "$m/fps/registry.json" --backend "$backend") --input \"\$f\" \
  >$(printf %q "$out/results")/auth-\$u.json || true; done"
stage auth auth "afterany:$fps" -n 1 -- --wrap "$auth_cmd"
stage prune prune "afterok:$embed" -n 1 --array="0-$((n_rates - 1))" -- "$here/sweep.sbatch" "$rates" \
  attack prune --model "$m/wm.safetensors" --rate {} --out "$m/pruned-{}.safetensors"
stage finetune finetune "afterok:$embed" -n 1 --array="0-$((n_ft - 1))" -- "$here/sweep.sbatch" "$ft_epochs" \
  attack finetune --model "$m/wm.safetensors" "${common[@]}" --epochs {} --out "$m/finetuned-{}.safetensors"
# a verify task exits 1 when the watermark is not found: that is a result, not a failure, so the
# report waits on them with afterany (and aftercorr runs verify task i once prune or finetune task i
# succeeded). auth waits with afterany too: it runs on whatever fp issue issued, which may be fewer
# users than asked (fp issue exits 1 then), and the report counts one result per issued user
stage vprune verify-prune "aftercorr:$prune" -n 1 --array="0-$((n_rates - 1))" -- "$here/sweep.sbatch" "$rates" \
  wm verify --model "$m/pruned-{}.safetensors" --key "$m/owner.wmkey.json"
stage vft verify-finetune "aftercorr:$finetune" -n 1 --array="0-$((n_ft - 1))" -- "$here/sweep.sbatch" \
  "$ft_epochs" wm verify --model "$m/finetuned-{}.safetensors" --key "$m/owner.wmkey.json"
all="afterany:$train:$keygen:$embed:$verify_wm:$fps:$auth:$prune:$finetune:$vprune:$vft"
wait_opt=()
[ $wait = 0 ] || wait_opt=(--wait)
printf '{"jobs": {"train": %s, "keygen": %s, "embed": %s, "verify_embedded": %s, "fingerprints": %s, "auth": %s, ' \
  "$train" "$keygen" "$embed" "$verify_wm" "$fps" "$auth"
printf '"prune": %s, "finetune": %s, "verify_pruned": %s, "verify_finetuned": %s, ' "$prune" "$finetune" "$vprune" "$vft"
# the report job is submitted last; with --wait, sbatch returns when it ends, with its exit code
report_rc=0
DG_SLURM_DIR=$here sbatch --parsable --job-name=dg-report --output="$out/logs/report.out" --error="$out/logs/report.err" \
  --dependency="$all" -n 1 "${extra[@]}" "${wait_opt[@]}" --wrap "$(printf '%q ' bash "$here/pipeline.sh" --report "$out")" \
  >"$out/logs/report.id" || report_rc=$?
report_id=$(cut -d';' -f1 <"$out/logs/report.id" | head -1)
[[ "$report_id" =~ ^[0-9]+$ ]] || report_id=null
printf '"report": %s}, "out": "%s"}\n' "$report_id" "$out"
if [ $wait = 1 ]; then
  [ $report_rc = 0 ] && exit 0 || exit 1
fi
[ $report_rc = 0 ] || exit 2
