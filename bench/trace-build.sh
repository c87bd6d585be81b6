#!/usr/bin/env bash
# Tracing macro benchmark: a real build (a generated C project, `make -j2 -B`)
# in a host-rootfs world, traced (the kernel-event monitor on, the default)
# against the same world untraced (SUBSTRATE_TRACE=off), and against the bare
# host, interleaved round by round. Prints medians and ratios.
#
#   bench/trace-build.sh [PATH-TO-substrate-cli]     (or `make bench`)
# Env: BENCH_RUNS (default 7), BENCH_FILES (C files, default 60)
set -euo pipefail

cli=${1:-${SUBSTRATE_CLI:-}}
[ -n "$cli" ] || { echo "usage: $0 PATH-TO-substrate-cli" >&2; exit 2; }
command -v gcc >/dev/null && command -v make >/dev/null || { echo "bench: needs gcc and make" >&2; exit 1; }
runs=${BENCH_RUNS:-7}
files=${BENCH_FILES:-60}

# The project lives on the root filesystem, so a host-rootfs world sees it.
work=$(mktemp -d /var/tmp/substrate-tracebench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SUBSTRATE_STATE_DIR=$work/state
root=$work/root
src=$work/src
mkdir -p "$src"
for i in $(seq "$files"); do
  {
    echo "#include <stdio.h>"
    for f in $(seq 20); do
      echo "int f${i}_${f}(int x) { int s = 0; for (int k = 0; k < x; k++) s += k * ${f} ^ (s >> 3); return s; }"
    done
    echo "int unit${i}(void) { return f${i}_1(10) + f${i}_20(20); }"
  } > "$src/u$i.c"
done
{
  printf 'int main(void) { return 0; }\n'
} > "$src/main.c"
cat > "$src/Makefile" <<'MAKE'
SRCS := $(wildcard *.c)
OBJS := $(SRCS:.c=.o)
prog: $(OBJS)
	gcc -o $@ $^
%.o: %.c
	gcc -O2 -c -o $@ $<
MAKE
cp -a "$src" "$work/bare"

now() { date +%s%N; }
declare -a traced nosensor untraced bare
for r in $(seq "$runs"); do
  for mode in traced nosensor untraced bare; do
    t0=$(now)
    case $mode in
      traced) "$cli" --root "$root" run -- make -s -C "$src" -j2 -B >"$work/log" 2>&1 ;;
      nosensor) SUBSTRATE_SENSOR=off "$cli" --root "$root" run -- make -s -C "$src" -j2 -B >"$work/log" 2>&1 ;;
      untraced) SUBSTRATE_TRACE=off "$cli" --root "$root" run -- make -s -C "$src" -j2 -B >"$work/log" 2>&1 ;;
      bare) make -s -C "$work/bare" -j2 -B >"$work/log" 2>&1 ;;
    esac
    t1=$(now)
    ms=$(( (t1 - t0) / 1000000 ))
    case $mode in traced) traced+=("$ms") ;; nosensor) nosensor+=("$ms") ;; untraced) untraced+=("$ms") ;; bare) bare+=("$ms") ;; esac
  done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m_traced=$(median "${traced[@]}"); m_nosensor=$(median "${nosensor[@]}"); m_untraced=$(median "${untraced[@]}"); m_bare=$(median "${bare[@]}")
first=$(ls "$SUBSTRATE_STATE_DIR/worlds" | head -n1)
execs=$(grep -c '"kind":"exec"' "$SUBSTRATE_STATE_DIR/worlds/$first/trace.jsonl" 2>/dev/null || echo "?")
file_spans=$(grep -c '"kind":"file"' "$SUBSTRATE_STATE_DIR/worlds/$first/trace.jsonl" 2>/dev/null || echo "?")
echo
echo "== traced build: make -j2 -B of $((files + 1)) C files ($execs exec and $file_spans file spans per build), $runs interleaved rounds, median ms =="
printf '%-22s %8s\n' "bare host" "$m_bare" "world, untraced" "$m_untraced" "world, traced" "$m_traced" "traced, sensor off" "$m_nosensor"
awk -v t="$m_traced" -v u="$m_untraced" -v b="$m_bare" -v n="$m_nosensor" 'BEGIN {
  printf "traced/untraced: %.3f (goal <= 1.05)   traced/bare: %.3f   sensor on/off: %.3f\n", t / u, t / b, t / n }'
