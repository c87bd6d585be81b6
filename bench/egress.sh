#!/usr/bin/env bash
# What a world's network costs, side by side in one run (as root):
#  1. per-world setup + teardown, interleaved iteration by iteration:
#     (a) a bare netns (the anchor), (b) + a veth pair on the bridge
#     (link::attach, release), (c) + the egress table of a 10-entry policy,
#     (d) of a 1,000-entry one. Medians and p90 in ms, ratios to (a); goal:
#     setup <= 5 ms.
#  2. TCP connect + close from a world to a host netns on the bridge (both
#     threads on one CPU), interleaved round by round: (i) no table (the
#     anchor), (ii) the host's address:port among 10 entries, (iii) among
#     1,000 of the same port spec, (iv) 1,000 entries each with its own port
#     (one rule each), (v) conntrack alone (needs `nft`). Medians in µs,
#     ratios to (i), and each difference judged against the round-by-round
#     differences; goals: the overhead within noise, 1,000 entries no
#     dearer per packet than 10.
# The program is net/examples/egress_bench.rs (an example of substrate-net,
# so `make demo` and `cargo build -p substrate-cli` never build it).
#
#   bench/egress.sh        (or `make bench`)
#
# Env: BENCH_ITERATIONS  part 1's iterations per variant (default 200)
#      BENCH_ROUNDS      part 2's rounds (default 40)
#      BENCH_CONNECTS    part 2's connects per variant and round (default 250)
#
# Everything lives on a bridge of its own (sbbenchN, 10.247.N.0/24 and
# 10.247.N+128.0/24) with its leases under a temp dir; the program removes
# them on the way out, also after an error, and this script's trap does
# again if the program was killed. World and host netns die with it.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "bench: egress.sh needs root" >&2; exit 1; }
cargo=${CARGO:-cargo}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

"$cargo" build --release -q -p substrate-net --example egress_bench
target_dir=$("$cargo" metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/release/examples/egress_bench

net=$(( $$ % 128 ))
bridge=sbbench$net
# Another run's bridge is not ours to clean up.
[ ! -e "/sys/class/net/$bridge" ] || { echo "bench: $bridge exists: another egress bench?" >&2; exit 1; }
work=$(mktemp -d /tmp/substrate-egress-bench.XXXXXX)
cleanup() {
  [ ! -e "/sys/class/net/$bridge" ] || ip link del "$bridge" 2>/dev/null || true
  nft delete table inet "substrate-nat-$bridge" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" --net "$net" --run-dir "$work/net" \
  --iterations "${BENCH_ITERATIONS:-200}" \
  --rounds "${BENCH_ROUNDS:-40}" \
  --connects "${BENCH_CONNECTS:-250}"
