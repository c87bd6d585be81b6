#!/usr/bin/env bash
# Trace fidelity under host load: short worlds whose processes live about a
# millisecond (`ls | wc`, a static busybox, a nested sh), run on a quiet host
# and beside one busy loop per CPU and a half (host processes at the
# world's priority), interleaved. Counts the exec spans whose world pid and
# argv came from /proc (read by the monitor when it handles the exec event:
# a monitor that gets the CPU after the process exited finds nothing, and
# the span says only what the kernel and the preload said). The kernel
# sensor (eBPF at exec) is what makes these 100%; this measures how close
# the proc connector monitor gets.
#
#   bench/trace-under-load.sh [PATH-TO-substrate-cli]     (or `make bench`)
# Env: BENCH_WORLDS (per condition, default 30)
set -euo pipefail

cli=${1:-${SUBSTRATE_CLI:-}}
[ -n "$cli" ] || { echo "usage: $0 PATH-TO-substrate-cli" >&2; exit 2; }
worlds=${BENCH_WORLDS:-30}
cpus=$(nproc)
loops=$(( cpus * 3 / 2 > 0 ? cpus * 3 / 2 : 1 ))

work=$(mktemp -d /var/tmp/substrate-loadbench.XXXXXX)
busy=()
cleanup() {
  (( ${#busy[@]} )) && kill "${busy[@]}" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export SUBSTRATE_STATE_DIR=$work/state
root=$work/root
script="ls / | wc -l >/dev/null; /bin/busybox true; sh -c 'exit 3'; exit 0"

declare -A total=() pid=() argv=()
for cond in quiet loaded; do total[$cond]=0 pid[$cond]=0 argv[$cond]=0; done

run_world() { # COND N
  local name=$1-$2 trace
  "$cli" --root "$root" run --name "$name" -- sh -c "$script" >/dev/null 2>&1
  trace=$SUBSTRATE_STATE_DIR/worlds/$name/trace.jsonl
  total[$1]=$(( total[$1] + $(grep -c '"kind":"exec"' "$trace") ))
  pid[$1]=$(( pid[$1] + $(grep '"kind":"exec"' "$trace" | grep -c '"world_pid"' || true) ))
  # argv read from /proc: present and not filled in by the preload.
  argv[$1]=$(( argv[$1] + $(grep '"kind":"exec"' "$trace" | grep '"argv"' | grep -vc '"filled_by"' || true) ))
  "$cli" --root "$root" rm "$name" >/dev/null
}

for n in $(seq "$worlds"); do
  run_world quiet "$n"
  for _ in $(seq "$loops"); do sh -c 'while :; do :; done' & busy+=("$!"); done
  run_world loaded "$n"
  kill "${busy[@]}"; wait "${busy[@]}" 2>/dev/null || true; busy=()
done

echo
echo "== trace under load: $worlds short worlds per condition (6 execs each), $cpus CPUs, loaded = $loops busy loops =="
printf '%-8s %10s %22s %22s\n' condition "exec spans" "world_pid from /proc" "argv from /proc"
for cond in quiet loaded; do
  awk -v c="$cond" -v t="${total[$cond]}" -v p="${pid[$cond]}" -v a="${argv[$cond]}" 'BEGIN {
    printf "%-8s %10d %15d (%3.0f%%) %15d (%3.0f%%)\n", c, t, p, 100 * p / t, a, 100 * a / t }'
done
