#!/usr/bin/env bash
# What the policy gate adds to an open (filesystem.deny_read, decided on
# fanotify FAN_OPEN_PERM events), timed inside the world, side by side and
# interleaved round by round:
#   untraced   SUBSTRATE_TRACE=off (the anchor)
#   sensor     traced, no policy (the eBPF sensor and fanotify's
#              notifications)
#   enforced   traced, with a policy whose deny_read glob names none of
#              these files: every open is held for the gate
# Two loops: the same file opened BENCH_OPENS times (default 200000: after
# its first open the gate lets the file through in the kernel, so this is
# the cost of an open no rule names; goal <= 100 ns over sensor), and
# BENCH_FILES distinct files (default 2000) opened once each (every open
# is a round trip to the monitor).
#
#   bench/policy-open.sh PATH-TO-substrate-cli
set -euo pipefail

cli=${1:?usage: $0 PATH-TO-substrate-cli}
runs=${BENCH_RUNS:-7}
opens=${BENCH_OPENS:-200000}
files=${BENCH_FILES:-2000}
command -v musl-gcc >/dev/null || { echo "bench: needs musl-gcc (musl-tools)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/substrate-openbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
export SUBSTRATE_STATE_DIR=$work/state
root=$work/root
here=$(cd "$(dirname "$0")" && pwd)
musl-gcc -static -O2 -o "$work/openat_loop" "$here/openat_loop.c"
echo data > "$work/file"
mkdir "$work/many"
for i in $(seq 0 $((files - 1))); do : > "$work/many/$i"; done
chmod -R a+rX "$work"
printf 'version: 1\nfilesystem:\n  deny_read: ["/nonexistent/**/id_rsa"]\n' > "$work/policy.yaml"

declare -a same_u same_s same_e many_u many_s many_e
for r in $(seq "$runs"); do
  same_u+=("$(SUBSTRATE_TRACE=off "$cli" --root "$root" run -- "$work/openat_loop" "$opens" "$work/file" 2>/dev/null)")
  same_s+=("$("$cli" --root "$root" run -- "$work/openat_loop" "$opens" "$work/file" 2>/dev/null)")
  same_e+=("$("$cli" --root "$root" run --policy "$work/policy.yaml" -- "$work/openat_loop" "$opens" "$work/file" 2>/dev/null)")
  many_u+=("$(SUBSTRATE_TRACE=off "$cli" --root "$root" run -- "$work/openat_loop" "$files" "$work/many" distinct 2>/dev/null)")
  many_s+=("$("$cli" --root "$root" run -- "$work/openat_loop" "$files" "$work/many" distinct 2>/dev/null)")
  many_e+=("$("$cli" --root "$root" run --policy "$work/policy.yaml" -- "$work/openat_loop" "$files" "$work/many" distinct 2>/dev/null)")
  "$cli" --root "$root" gc --keep-last 0 >/dev/null 2>&1 || true
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
su=$(median "${same_u[@]}"); ss=$(median "${same_s[@]}"); se=$(median "${same_e[@]}")
mu=$(median "${many_u[@]}"); ms=$(median "${many_s[@]}"); me=$(median "${many_e[@]}")
echo "open benchmark: $runs interleaved rounds, medians, ns per open+close"
printf '  %-22s %10s %10s %10s\n' "" untraced sensor enforced
printf '  %-22s %10.1f %10.1f %10.1f\n' "same file x$opens" "$su" "$ss" "$se" "$files files, once each" "$mu" "$ms" "$me"
awk -v su="$su" -v ss="$ss" -v se="$se" -v mu="$mu" -v ms="$ms" -v me="$me" 'BEGIN {
  printf "  added by the gate to an open no rule names, after the file'"'"'s first: %.1f ns (enforced - sensor; goal <= 100), %.2fx untraced\n", se - ss, se / su
  printf "  added by the gate to a file'"'"'s first open: %.1f µs (a round trip to the monitor)\n", (me - ms) / 1000
}'
