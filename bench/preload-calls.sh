#!/usr/bin/env bash
# Per-call cost of the preload tracer: an openat loop (bench/openat_loop.c,
# BENCH_CALLS calls, default 1M) timed inside the process, side by side and
# interleaved round by round:
#   bare      on the host, nothing loaded
#   inert     on the host with the library preloaded but no world (each
#             hook is a pass-through: the cost of being there)
#   untraced  in a host-rootfs world, SUBSTRATE_TRACE=off (the anchor)
#   traced    in a host-rootfs world, every call recorded into the ring
#             (the eBPF sensor on, the default)
#   nosensor  the same with the eBPF sensor off (SUBSTRATE_SENSOR=off)
#   strace    `strace -f` on the host (BENCH_STRACE_CALLS, default 20k)
# Prints medians in ns per call, the added cost per traced call and how
# many of the traced world's calls reached its trace (the rest are counted
# as lost when the monitor cannot keep up; never silently).
#
#   bench/preload-calls.sh PATH-TO-substrate-cli PATH-TO-libsubstrate_preload.so
set -euo pipefail

cli=${1:?usage: $0 PATH-TO-substrate-cli PATH-TO-libsubstrate_preload.so}
lib=${2:?usage: $0 PATH-TO-substrate-cli PATH-TO-libsubstrate_preload.so}
runs=${BENCH_RUNS:-5}
calls=${BENCH_CALLS:-1000000}
strace_calls=${BENCH_STRACE_CALLS:-20000}
command -v strace >/dev/null || { echo "bench: needs strace" >&2; exit 1; }

work=$(mktemp -d /var/tmp/substrate-callbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SUBSTRATE_STATE_DIR=$work/state
root=$work/root
here=$(cd "$(dirname "$0")" && pwd)
gcc -O2 -o "$work/openat_loop" "$here/openat_loop.c"
loop=$work/openat_loop

declare -a bare inert untraced traced nosensor strace_ns recorded lost
for r in $(seq "$runs"); do
  bare+=("$("$loop" "$calls")")
  inert+=("$(LD_PRELOAD=$lib "$loop" "$calls")")
  # Each traced world writes ~300 MB of trace: the last round's are removed
  # and flushed first, or the kernel's writeback of them competes for the
  # CPU with this round's monitor (on 2 cores, the losses then grow round
  # by round: that measures the disk, not the monitor).
  "$cli" --root "$root" rm "calls-$((r - 1))" "nosensor-$((r - 1))" >/dev/null 2>&1 || true
  sync
  untraced+=("$(SUBSTRATE_TRACE=off "$cli" --root "$root" run -- "$loop" "$calls" 2>/dev/null)")
  name=calls-$r
  traced+=("$("$cli" --root "$root" run --name "$name" -- "$loop" "$calls" 2>/dev/null)")
  nosensor+=("$(SUBSTRATE_SENSOR=off "$cli" --root "$root" run --name "nosensor-$r" -- "$loop" "$calls" 2>/dev/null)")
  world=$(grep '"kind":"world"' "$SUBSTRATE_STATE_DIR/worlds/$name/trace.jsonl")
  recorded+=("$(sed -n 's/.*"file":\([0-9]*\).*/\1/p' <<<"$world")")
  lost+=("$(sed -n 's/.*"lost":\([0-9]*\).*/\1/p' <<<"$world")")
  strace_ns+=("$(strace -f -qq -o /dev/null "$loop" "$strace_calls")")
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mb=$(median "${bare[@]}"); mi=$(median "${inert[@]}"); mu=$(median "${untraced[@]}")
mt=$(median "${traced[@]}"); ms=$(median "${strace_ns[@]}"); mn=$(median "${nosensor[@]}")
mr=$(median "${recorded[@]}"); ml=$(median "${lost[@]:-0}")
echo "per-call benchmark: openat loop, $calls calls ($strace_calls under strace), $runs interleaved rounds, medians"
printf '  %-9s %9.1f ns/call\n' bare "$mb" inert "$mi" untraced "$mu" traced "$mt" nosensor "$mn" "strace -f" "$ms"
awk -v t="$mt" -v u="$mu" -v i="$mi" -v b="$mb" -v s="$ms" -v n="$mn" 'BEGIN {
  printf "  added per traced call: %.1f ns (traced - untraced, sensor and preload; goal <= 150)\n", t - u
  printf "  added by the sensor: %.1f ns (traced - nosensor)\n", t - n
  printf "  added by an inert hook: %.1f ns (inert - bare)\n", i - b
  printf "  strace -f / traced: %.0fx\n", s / t
}'
echo "  traced world: ${mr:-0} of $calls calls in the trace (+ the program's own start-up opens), ${ml:-0} counted lost (median; by round: ${lost[*]:-0})"
