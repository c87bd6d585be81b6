#!/usr/bin/env bash
# What the kernel sensor adds to an exec: a static program forks and execs a
# static `true` BENCH_EXECS times (default 2000), timed inside the world,
# side by side and interleaved round by round:
#   untraced   SUBSTRATE_TRACE=off (the anchor)
#   connector  traced, eBPF sensor off (SUBSTRATE_SENSOR=off): the proc
#              connector and /proc
#   sensor     traced, eBPF sensor on (the default)
#   gated      as sensor, with a policy whose commands rule (none matches)
#              puts the exec gate in front of every exec (fanotify
#              FAN_OPEN_EXEC_PERM answered by the monitor)
#   argv       as gated, the rule on the arguments (`argv: [git, push]`):
#              the gate reads each held exec's argv from the process
# Prints medians in µs per exec, what each adds (goal: the sensor adds
# <= 10 µs), and how many of the execs' spans have their argv.
#
#   bench/sensor-exec.sh PATH-TO-substrate-cli
set -euo pipefail

cli=${1:?usage: $0 PATH-TO-substrate-cli}
runs=${BENCH_RUNS:-7}
execs=${BENCH_EXECS:-2000}
command -v musl-gcc >/dev/null || { echo "bench: needs musl-gcc (musl-tools)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/substrate-execbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
export SUBSTRATE_STATE_DIR=$work/state
# The graph's ingest of each world as it ends would run beside the next
# world's execs.
export SUBSTRATE_GRAPH=off
root=$work/root
here=$(cd "$(dirname "$0")" && pwd)
musl-gcc -static -O2 -o "$work/exec_loop" "$here/exec_loop.c"
printf 'int main(void) { return 0; }\n' > "$work/true.c"
musl-gcc -static -O2 -o "$work/true" "$work/true.c"

printf 'version: 1\ncommands:\n  rules:\n    - match: { name: no-such-program }\n      action: deny\n' > "$work/policy.yaml"
printf 'version: 1\ncommands:\n  rules:\n    - match: { argv: [git, push] }\n      action: deny\n' > "$work/argv.yaml"

declare -a untraced connector sensor gated argv with_argv_c with_argv_s
gate_ns=() argv_ns=()
argv_of() { grep '"kind":"exec"' "$SUBSTRATE_STATE_DIR/worlds/$1/trace.jsonl" | grep -c "\"argv\":\[\"$work/true\",\"x\"\]" || true; }
# The gate thread's own time per exec (event read to answer), from the
# world's policy spans.
latency_of() { grep -o '"latency_ns":[0-9]*' "$SUBSTRATE_STATE_DIR/worlds/$1/trace.jsonl" | cut -d: -f2; }
for r in $(seq "$runs"); do
  untraced+=("$(SUBSTRATE_TRACE=off "$cli" --root "$root" run -- "$work/exec_loop" "$execs" "$work/true" 2>/dev/null)")
  connector+=("$(SUBSTRATE_SENSOR=off "$cli" --root "$root" run --name "c$r" -- "$work/exec_loop" "$execs" "$work/true" 2>/dev/null)")
  sensor+=("$("$cli" --root "$root" run --name "s$r" -- "$work/exec_loop" "$execs" "$work/true" 2>/dev/null)")
  gated+=("$("$cli" --root "$root" run --name "g$r" --policy "$work/policy.yaml" -- "$work/exec_loop" "$execs" "$work/true" 2>/dev/null)")
  argv+=("$("$cli" --root "$root" run --name "a$r" --policy "$work/argv.yaml" -- "$work/exec_loop" "$execs" "$work/true" 2>/dev/null)")
  with_argv_c+=("$(argv_of "c$r")")
  with_argv_s+=("$(argv_of "s$r")")
  mapfile -t -O "${#gate_ns[@]}" gate_ns < <(latency_of "g$r")
  mapfile -t -O "${#argv_ns[@]}" argv_ns < <(latency_of "a$r")
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mu=$(median "${untraced[@]}"); mc=$(median "${connector[@]}"); ms=$(median "${sensor[@]}"); mg=$(median "${gated[@]}"); ma=$(median "${argv[@]}")
echo "exec benchmark: $execs fork+exec+wait of a static program per world, $runs interleaved rounds, medians"
printf '  %-10s %8.1f µs/exec\n' untraced "$mu" connector "$mc" sensor "$ms" gated "$mg" argv "$ma"
awk -v u="$mu" -v c="$mc" -v s="$ms" -v g="$mg" -v a="$ma" 'BEGIN {
  printf "  added by tracing with the sensor: %.1f µs/exec (sensor - untraced; goal <= 10)\n", s - u
  printf "  added by the sensor over the connector alone: %.1f µs/exec\n", s - c
  printf "  added by the exec gate: %.1f µs/exec (gated - sensor; goal <= 10), %.2fx sensor\n", g - s, g / s
  printf "  added by reading argv for a rule on the arguments: %.1f µs/exec (argv - gated)\n", a - g
}'
echo "  the gate's own time per exec (policy spans' latency_ns, median of all): $(median "${gate_ns[@]}" | awk '{printf "%.1f", $1 / 1000}') µs, $(median "${argv_ns[@]}" | awk '{printf "%.1f", $1 / 1000}') µs reading argv"
echo "  spans with their argv: sensor $(median "${with_argv_s[@]}") of $execs, connector alone $(median "${with_argv_c[@]}") of $execs"
