#!/usr/bin/env bash
# The shim against containerd's own runc shim, side by side in one
# containerd (its own root, state and socket in a temp dir, CRI off):
#   - `ctr run --rm` of /bin/true, BENCH_RUNS (default 21) interleaved
#     rounds, wall time medians and the ratio;
#   - memory per shim while one container sleeps: RSS and PSS of the shim
#     process (ours runs its one-shot helpers only during create/exec).
#
#   bench/shim.sh DIR-WITH-containerd-shim-substrate-v1 IMAGE-ARCHIVE [PRELOAD-LIBRARY]
set -euo pipefail
usage="usage: $0 DIR-WITH-containerd-shim-substrate-v1 IMAGE-ARCHIVE [PRELOAD-LIBRARY]"
bin=${1:?$usage}
archive=${2:?$usage}
export SUBSTRATE_PRELOAD=${3:+$(realpath "$3")}
runs=${BENCH_RUNS:-21}
image=localhost/substrate-busybox:latest

work=$(mktemp -d /tmp/substrate-shimbench.XXXXXX)
cat > "$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
EOF
PATH=$bin:$PATH SUBSTRATE_STATE_DIR=$work/worlds SUBSTRATE_ROOT=$work/substrate \
  containerd --config "$work/config.toml" </dev/null >"$work/containerd.log" 2>&1 &
ctd=$!
cleanup() {
  for t in $(ctr -a "$work/c.sock" task ls -q 2>/dev/null); do ctr -a "$work/c.sock" task kill -s SIGKILL "$t" || true; ctr -a "$work/c.sock" task delete -f "$t" >/dev/null 2>&1 || true; done
  for c in $(ctr -a "$work/c.sock" containers ls -q 2>/dev/null); do ctr -a "$work/c.sock" containers rm "$c" || true; done
  kill "$ctd" 2>/dev/null; wait "$ctd" 2>/dev/null || true
  grep "$work" /proc/self/mountinfo | awk '{print $5}' | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ctr="ctr -a $work/c.sock"
for i in $(seq 100); do $ctr version >/dev/null 2>&1 && break; sleep 0.1; done
$ctr images import "$archive" >/dev/null

now() { date +%s%N; }
declare -a sub runc
for r in $(seq $((runs + 2))); do
  for rt in substrate runc; do
    case $rt in substrate) runtime=io.containerd.substrate.v1 ;; runc) runtime=io.containerd.runc.v2 ;; esac
    t0=$(now)
    $ctr run --rm --runtime $runtime $image bench-$rt-$r /bin/true
    t1=$(now)
    # The first two rounds warm caches and are not counted.
    [ "$r" -le 2 ] && continue
    ms=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", d / 1e6}')
    case $rt in substrate) sub+=("$ms") ;; runc) runc+=("$ms") ;; esac
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ms=$(median "${sub[@]}"); mr=$(median "${runc[@]}")

# Memory: five sleeping containers per runtime, one shim each. RSS counts
# the shared pages of the binary and libc in full in every shim; PSS shares
# them out (what N shims cost together is N x PSS).
shims=5
for i in $(seq $shims); do
  $ctr run -d --runtime io.containerd.substrate.v1 $image mem-substrate-$i sleep 60
  $ctr run -d --runtime io.containerd.runc.v2 $image mem-runc-$i sleep 60
done
sleep 1
kb() { awk -v k="$2" '$1 == k":" {s += $2} END {print s + 0}' "/proc/$1/$3"; }
mem() {  # pids... -> "mean_rss_kb mean_pss_kb"
  local rss=0 pss=0 n=0
  for p in "$@"; do rss=$((rss + $(kb "$p" VmRSS status))); pss=$((pss + $(kb "$p" Pss smaps_rollup))); n=$((n + 1)); done
  [ "$n" -gt 0 ] && echo "$((rss / n)) $((pss / n))" || echo "0 0"
}
ours=$(pgrep -f "containerd-shim-substrate-v1 .*-id mem-substrate-" || true)
theirs=$(pgrep -f "containerd-shim-runc-v2 .*-id mem-runc-" || true)
read -r ours_rss ours_pss <<<"$(mem $ours)"
read -r runc_rss runc_pss <<<"$(mem $theirs)"

echo "== containerd shim: ctr run --rm /bin/true, $runs interleaved rounds, median ms =="
printf '  %-32s %8s ms\n' "io.containerd.substrate.v1" "$ms" "io.containerd.runc.v2 (runc)" "$mr"
awk -v s="$ms" -v r="$mr" 'BEGIN {printf "  substrate/runc shim: %.2f (goal <= 0.8)\n", s / r}'
echo "== memory per shim, $shims shims each with a sleeping container, mean (kB) =="
printf '  %-32s RSS %6s  PSS %6s\n' "substrate shim" "$ours_rss" "$ours_pss" "runc shim (Go)" "$runc_rss" "$runc_pss"
echo "  (goal: <= 3 MB RSS per shim)"
