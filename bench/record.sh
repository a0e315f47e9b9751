# bench/record.sh — sourced by the bench scripts: bench_record SCRIPT TITLE SETTINGS REPORT appends
# REPORT to bench/RESULTS.md under a dated heading naming the machine, the script's settings and
# the commit measured (with " + local changes" when the tree differs from it).
bench_record() {
  local script=$1 title=$2 settings=$3 report=$4 root results cpu commit
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  results=$root/bench/RESULTS.md
  [ -f "$results" ] || printf '# Benchmark results\n\nAppended by the bench scripts with --record; see bench/README.md for what each figure means.\n' >"$results"
  cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
  commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'none')$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' + local changes')"
  {
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — ${title:+$title, }$cpu, $(nproc) cores"
    echo
    echo "\`bench/$script --record\` ($settings); commit $commit."
    echo
    cat "$report"
  } >>"$results"
  echo "$script: appended to bench/RESULTS.md" >&2
}
