#!/usr/bin/env bash
# Under load (acceptance 3 of issue 14): two CPU-burning processes for the whole run, then
# `make demo` RUNS times and one CLI backup of a 5,000-file tree. Prints one line per run and a
# summary; exits 0 only if every run passed. The burners are always killed (trap), by their pids.
#
#   flock /tmp/seawall-heavy.lock bash bench/load_check.sh [RUNS]      (default 5; record in bench/CLI.md)
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
WORK=$(mktemp -d /tmp/seawall-load-check-XXXXXX)
burners=()
cleanup() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  wait "${burners[@]}" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Prefect settings of this shell must not leak in: the demo is what a newcomer runs (no API).
unset PREFECT_API_URL PREFECT_PROFILE
export PREFECT_HOME="$WORK/prefect-home"

for _ in 1 2; do
  yes > /dev/null &
  burners+=($!)
done
echo "load check: 2 burners (pids ${burners[*]}), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

passed=0
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  if make demo > "$WORK/demo-$i.log" 2>&1; then
    result=passed; passed=$((passed + 1))
  else
    result="FAILED: $(grep -m1 'seawall: error' "$WORK/demo-$i.log" || tail -n 3 "$WORK/demo-$i.log" | tr '\n' ' ')"
  fi
  printf 'make demo %d/%d: %s in %.0f s (load %s)\n' "$i" "$RUNS" "$result" \
    "$(echo "$(date +%s.%N) - $start" | bc)" "$(cut -d' ' -f1 /proc/loadavg)"
done

# One CLI backup (and a no-change re-backup) of the benchmark's 5,000-file tree, still under load.
export SEAWALL_PASSPHRASE="load check passphrase"
.venv/bin/python -c "from bench.cli_bench import make_tree; from pathlib import Path; make_tree(Path('$WORK/tree'))"
backup_ok=0
if .venv/bin/seawall init "file://$WORK/vault" > /dev/null; then
  for label in first re-backup; do
    start=$(date +%s.%N)
    if out=$(.venv/bin/seawall backup files "$WORK/tree" --vault "file://$WORK/vault" 2>&1); then
      backup_ok=$((backup_ok + 1))
    fi
    printf 'CLI backup (%s): %s in %.1f s\n' "$label" "$out" "$(echo "$(date +%s.%N) - $start" | bc)"
  done
fi

echo "summary: make demo passed $passed of $RUNS; CLI backups completed $backup_ok of 2"
[ "$passed" -eq "$RUNS" ] && [ "$backup_ok" -eq 2 ]
