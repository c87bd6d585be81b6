#!/usr/bin/env bash
# Lifecycle benchmark: wall time of `create && start && delete -f` of a
# busybox `/bin/true` container, substrate-runtime against runc and crun.
#
#   sudo bench/lifecycle.sh [PATH-TO-substrate-runtime]      (or `make bench`)
#
# Env: SUBSTRATE_RUNTIME  binary to measure (default: `cargo build --release`
#                         and the binary under cargo's target directory)
#      BENCH_RUNS         timed rounds per pass (default 30, at least 20)
#      BENCH_WARMUP       untimed rounds first (default 2)
#
# Each round runs every runtime once, in an order that rotates from round to
# round, so drift on the host (page cache, CPU frequency, other load) falls
# evenly on all of them. Each iteration is timed by bench/timeit.rs
# (CLOCK_MONOTONIC, ns), which spawns the three commands the same way for
# every runtime.
#
# Two passes:
#  (a) the host as it stands. crun 1.8 refuses cgroup v1 "hybrid" hosts where
#      a controller (here hugetlb) sits on the cgroup2 hierarchy, so it is only
#      measured if a probe create succeeds.
#  (b) "v1 namespace": this script again, inside `unshare -m`, with the
#      hugetlb, net_cls, net_prio and perf_event v1 hierarchies mounted under
#      /sys/fs/cgroup/<name> (on a tmpfs private to that namespace, so no
#      directory appears on the host's /sys/fs/cgroup). Binding hugetlb to a
#      v1 hierarchy takes it off cgroup2 for the WHOLE HOST (controllers are
#      global) while the pass runs, so crun works.
#      Leaving the namespace does not give it back: the hierarchies are
#      unmounted explicitly, once the runtimes' dying cgroups are gone (a v1
#      root with a child cgroup, even a dying one, survives its last umount),
#      and the script then checks /proc/cgroups and cgroup2's cgroup.controllers
#      and repairs them if need be, from a trap, so also after a failure.
#
# Nothing is left behind: state roots and bundle live in one temp dir; every
# container is force-deleted, leftover cgroups named after our ids (any
# layout: /<id>, /youki/<id>, /:youki:<id>, ...) are reported and removed.
set -euo pipefail

CONTROLLERS=(hugetlb net_cls net_prio perf_event)
CG=/sys/fs/cgroup

die() { echo "bench: error: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

hier_of() { awk -v c="$1" '$1 == c { print $2 }' /proc/cgroups; }
ncgroups_of() { awk -v c="$1" '$1 == c { print $3 }' /proc/cgroups; }

# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
  local limit=$(( $1 * 20 )) i=0; shift
  until "$@"; do
    (( ++i > limit )) && return 1
    sleep 0.05
  done
}
hier_is() { [ "$(hier_of "$1")" = "$2" ]; }
only_root_cgroup() { [ "$(ncgroups_of "$1")" = 1 ]; }

# --- containers and cgroups ------------------------------------------------------

# Force-deletes every container still in one of our state roots.
delete_leftover_containers() {
  local st name id
  for st in "$BENCH_TMP"/state-*; do
    [ -d "$st" ] || continue
    name=${st##*/state-}
    for id in "$st"/*/; do
      [ -d "$id" ] || continue
      id=$(basename "$id")
      case $id in "$BENCH_PREFIX"*) ;; *) continue ;; esac
      note "deleting leftover container $name/$id"
      "${RT[$name]}" --root "$st" delete -f "$id" >/dev/null 2>&1 || true
    done
  done
}

# Lists, then removes, cgroup dirs named after our ids under $1 (default all
# of /sys/fs/cgroup). Returns 1 if there were any.
remove_leftover_cgroups() {
  local base=${1:-$CG} found
  found=$(find "$base" -mindepth 1 -maxdepth 5 -depth -type d -name "*$BENCH_PREFIX*" 2>/dev/null || true)
  [ -z "$found" ] && return 0
  note "leftover cgroups (removing):"
  sed 's/^/bench:   /' <<<"$found" >&2
  while IFS= read -r d; do rmdir "$d" 2>/dev/null || note "cannot rmdir $d"; done <<<"$found"
  return 1
}

# Gives controller $1, whose v1 hierarchy is mounted at $2 in this mount
# namespace, back to cgroup2: wait for its dying cgroups to go, umount, and
# check the kernel released the hierarchy (tries again if it did not).
release_v1() {
  local c=$1 mnt=$2 try
  for try in 1 2 3; do
    remove_leftover_cgroups "$mnt" || true
    wait_until 10 only_root_cgroup "$c" || note "$c: $(( $(ncgroups_of "$c") - 1 )) child cgroup(s) still there"
    umount "$mnt"
    wait_until 3 hier_is "$c" 0 && return 0
    note "$c: hierarchy $(hier_of "$c") survived umount (a child cgroup was still dying); remounting to retry"
    mount -t cgroup -o "$c" cgroup "$mnt"
  done
  umount "$mnt" || true
  return 1
}

# v2_disable, v2_restore: taking a controller off cgroup2 and back.
# shellcheck source=tests/cgroup2-controllers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/cgroup2-controllers.sh"

# --- timing ----------------------------------------------------------------------

# time_lifecycle NAME ID: one create/start/delete; prints "total create start
# delete" in ns.
time_lifecycle() {
  local rt=${RT[$1]} st=$BENCH_TMP/state-$1 id=$2
  if [ -n "$BENCH_TIMEIT" ]; then
    "$BENCH_TIMEIT" "$rt" --root "$st" create -b "$BENCH_BUNDLE" "$id" ';;' \
      "$rt" --root "$st" start "$id" ';;' "$rt" --root "$st" delete -f "$id"
  else # no rustc: same shape with date(1), whose own exec is then included
    local t0 t1 t2 t3
    t0=$(date +%s%N); "$rt" --root "$st" create -b "$BENCH_BUNDLE" "$id" </dev/null >/dev/null || return 1
    t1=$(date +%s%N); "$rt" --root "$st" start "$id" </dev/null >/dev/null || return 1
    t2=$(date +%s%N); "$rt" --root "$st" delete -f "$id" </dev/null >/dev/null || return 1
    t3=$(date +%s%N)
    echo "$(( t3 - t0 )) $(( t1 - t0 )) $(( t2 - t1 )) $(( t3 - t2 ))"
  fi
}

# probe NAME TAG: can this runtime run the bundle here? Prints its error if not.
probe() {
  local err
  if err=$(time_lifecycle "$1" "${BENCH_PREFIX}probe-$2-$1" 2>&1 >/dev/null); then
    return 0
  fi
  delete_leftover_containers
  echo "$err" | grep -v '^timeit:' | tail -n 1
  return 1
}

# stats FILE COLUMN: "median min p90" in ms (p90 by nearest rank).
stats() {
  sort -n -k "$2,$2" "$1" | awk -v k="$2" '
    { v[NR] = $k }
    END {
      n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      i = int(0.9 * n); if (i < 0.9 * n) i++
      printf "%.2f %.2f %.2f\n", med / 1e6, v[1] / 1e6, v[i] / 1e6
    }'
}

# run_pass TAG TITLE NAME...: warm-up, then BENCH_RUNS interleaved rounds.
run_pass() {
  local tag=$1 title=$2; shift 2
  local names=("$@") k=$# r i name id out
  local total=$(( BENCH_WARMUP + BENCH_RUNS ))
  note "pass $tag: ${names[*]}: $BENCH_WARMUP warm-up + $BENCH_RUNS timed rounds"
  for name in "${names[@]}"; do : >"$BENCH_TMP/res-$tag-$name"; done
  for (( r = 0; r < total; r++ )); do
    for (( i = 0; i < k; i++ )); do
      name=${names[$(( (i + r) % k ))]}
      id=$BENCH_PREFIX$tag-$r-$name
      out=$(time_lifecycle "$name" "$id") || die "pass $tag: $name failed on round $r (id $id)"
      (( r < BENCH_WARMUP )) || echo "$out" >>"$BENCH_TMP/res-$tag-$name"
    done
  done

  local med min p90 c s d
  declare -A median
  {
    echo
    echo "== ($tag) $title: $BENCH_RUNS rounds, interleaved =="
    printf '%-10s %9s %9s %9s   %9s %9s %9s\n' runtime "median" "min" "p90" "create" "start" "delete"
    printf '%-10s %9s %9s %9s   %9s %9s %9s\n' "" "ms" "ms" "ms" "med ms" "med ms" "med ms"
    for name in "${names[@]}"; do
      read -r med min p90 < <(stats "$BENCH_TMP/res-$tag-$name" 1)
      read -r c _ < <(stats "$BENCH_TMP/res-$tag-$name" 2)
      read -r s _ < <(stats "$BENCH_TMP/res-$tag-$name" 3)
      read -r d _ < <(stats "$BENCH_TMP/res-$tag-$name" 4)
      median[$name]=$med
      printf '%-10s %9s %9s %9s   %9s %9s %9s\n' "$name" "$med" "$min" "$p90" "$c" "$s" "$d"
    done
    for name in runc crun; do
      [ -n "${median[$name]:-}" ] || continue
      awk -v a="${median[substrate]}" -v b="${median[$name]}" -v n="$name" \
        'BEGIN { printf "ratio of medians substrate/%s: %.2f\n", n, a / b }'
    done
  } | tee -a "$BENCH_TMP/report"
}

# runtimes_for TAG: substrate, runc, and crun if its probe passes.
runtimes_for() {
  local why
  NAMES=(substrate runc)
  if [ -z "${RT[crun]:-}" ]; then
    echo "crun: not installed, not measured" >>"$BENCH_TMP/skipped-$1"
  elif why=$(probe crun "$1"); then
    NAMES+=(crun)
  else
    echo "crun: not measured: probe create failed: $why" >>"$BENCH_TMP/skipped-$1"
  fi
}

# --- pass (b), inside `unshare -m --propagation private` -----------------------------

inner_cleanup() {
  local rc=$? c
  trap - EXIT
  delete_leftover_containers
  remove_leftover_cgroups || rc=1
  for c in "${MOUNTED[@]}"; do
    release_v1 "$c" "$CG/$c" || { note "$c: could not give the controller back to cgroup2"; rc=1; }
    v2_restore "$c" || rc=1
  done
  for c in "${MADE_DIRS[@]}"; do rmdir "$CG/$c" 2>/dev/null || true; done
  exit "$rc"
}

# Gives this mount namespace its own /sys/fs/cgroup tmpfs, with the host's
# hierarchies moved onto it, so that the mount points made below exist only
# here. (The host's /sys/fs/cgroup is one tmpfs shared by every namespace: a
# directory made there shows up on the host, where other tools take it for a
# cgroup hierarchy and write into it.)
private_cgroupfs() {
  local new=$BENCH_TMP/cgroupfs d name
  mkdir "$new"
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$new"
  for d in "$CG"/*; do
    name=${d##*/}
    if [ -L "$d" ]; then cp -P "$d" "$new/$name"; continue; fi
    [ -d "$d" ] || continue
    mkdir "$new/$name"
    if mountpoint -q "$d"; then mount --move "$d" "$new/$name"; fi
  done
  mount --move "$new" "$CG"
}

inner_main() {
  trap 'exit 130' INT TERM
  declare -gA RT=([substrate]=$BENCH_SUBSTRATE [runc]=$BENCH_RUNC)
  [ -n "$BENCH_CRUN" ] && RT[crun]=$BENCH_CRUN
  MOUNTED=() MADE_DIRS=()
  trap inner_cleanup EXIT
  private_cgroupfs
  local c
  for c in "${CONTROLLERS[@]}"; do
    mountpoint -q "$CG/$c" && continue
    # Only controllers on cgroup2 (hierarchy 0): one bound to another v1
    # hierarchy cannot be mounted alone, and is not ours to unbind.
    [ "$(hier_of "$c")" = 0 ] || { note "$c: on v1 hierarchy $(hier_of "$c") but not at $CG/$c; left alone"; continue; }
    if [ ! -d "$CG/$c" ]; then mkdir "$CG/$c"; MADE_DIRS+=("$c"); fi
    v2_disable "$c"
    # The kernel lets go of the controller's cgroup2 csses asynchronously:
    # until then the mount fails (EBUSY, reported as "already mounted").
    wait_until 10 mount -t cgroup -o "$c" cgroup "$CG/$c" 2>/dev/null ||
      { v2_restore "$c"; die "$c: cannot mount its v1 hierarchy"; }
    MOUNTED+=("$c")
  done
  note "v1 namespace: mounted ${MOUNTED[*]:-nothing}; cgroup2 controllers now: '$(cat "$CG/unified/cgroup.controllers" 2>/dev/null)'"
  runtimes_for b
  run_pass b "v1 namespace (hugetlb, net_cls, net_prio, perf_event on cgroup v1)" "${NAMES[@]}"
}

# Gives controllers back to cgroup2 from a fresh namespace (when pass (b)'s
# own cleanup could not: killed, or a cgroup still dying at its umount).
repair_main() {
  local c rc=0 mnt
  for c in "$@"; do
    [ "$(hier_of "$c")" = 0 ] && continue
    mnt=$BENCH_TMP/repair-$c
    mkdir -p "$mnt"
    mount -t cgroup -o "$c" cgroup "$mnt" || { rc=1; continue; }
    release_v1 "$c" "$mnt" || rc=1
    rmdir "$mnt"
  done
  return "$rc"
}

case ${1:-} in
  __v1_inner) inner_main; exit 0 ;;
  __v1_repair) shift; repair_main "$@"; exit ;;
esac

# --- main ---------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (containers with cgroups and namespaces)"
BENCH_RUNS=${BENCH_RUNS:-30}
BENCH_WARMUP=${BENCH_WARMUP:-2}
[[ $BENCH_RUNS =~ ^[0-9]+$ ]] && (( BENCH_RUNS >= 20 )) || die "BENCH_RUNS must be a number >= 20 (got '$BENCH_RUNS')"
[[ $BENCH_WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number"
command -v unshare >/dev/null && command -v mountpoint >/dev/null || die "needs util-linux (unshare, mountpoint)"

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
repo=$(dirname "$(dirname "$self")")

substrate=${1:-${SUBSTRATE_RUNTIME:-}}
if [ -z "$substrate" ]; then
  command -v cargo >/dev/null || die "cargo not found: put it on PATH, or pass the binary (SUBSTRATE_RUNTIME=... or an argument)"
  (cd "$repo" && cargo build --release -p substrate-runtime --quiet) || die "cargo build failed"
  # cargo's target directory, wherever CARGO_TARGET_DIR or a config puts it.
  target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
  [ -n "$target_dir" ] || die "cannot find cargo's target directory"
  substrate=$target_dir/release/substrate-runtime
fi
[ -x "$substrate" ] || die "$substrate: not an executable"
substrate=$(realpath "$substrate")
runc=$(command -v runc) || die "runc not found (apt-get install runc)"
crun=$(command -v crun || true)
declare -A RT=([substrate]=$substrate [runc]=$runc)
[ -n "$crun" ] && RT[crun]=$crun

BENCH_TMP=$(mktemp -d /tmp/substrate-bench.XXXXXX)
# World records (diffs, uppers) go to the temp dir too, not /var/lib/substrate.
export SUBSTRATE_STATE_DIR=$BENCH_TMP/worlds
BENCH_PREFIX=sbench$$-
INITIAL_V2=$(cat "$CG/unified/cgroup.controllers" 2>/dev/null || true)
ON_V2=() # controllers on cgroup2 now, to find there again at the end
for c in "${CONTROLLERS[@]}"; do [ "$(hier_of "$c")" = 0 ] && ON_V2+=("$c"); done

outer_cleanup() {
  local rc=$? c bad=()
  trap - EXIT INT TERM
  delete_leftover_containers
  remove_leftover_cgroups || rc=1
  for c in "${ON_V2[@]}"; do [ "$(hier_of "$c")" = 0 ] || bad+=("$c"); done
  if (( ${#bad[@]} )); then
    note "repairing: ${bad[*]} still bound to a v1 hierarchy"
    unshare -m --propagation private -- "$BASH" "$self" __v1_repair "${bad[@]}" || true
  fi
  for c in "${ON_V2[@]}"; do
    [ "$(hier_of "$c")" = 0 ] || { note "$c is NOT back on cgroup2 (/proc/cgroups hierarchy $(hier_of "$c"))"; rc=1; }
  done
  for c in $INITIAL_V2; do
    grep -qw "$c" "$CG/unified/cgroup.controllers" ||
      { note "$c missing from $CG/unified/cgroup.controllers"; rc=1; }
  done
  rm -rf "$BENCH_TMP"
  if (( rc == 0 )); then
    note "clean: no containers, cgroups or temp files left; cgroup2 controllers: '$INITIAL_V2' as before"
  fi
  exit "$rc"
}
trap outer_cleanup EXIT
trap 'exit 130' INT TERM

# Bundle: busybox, running /bin/true, rootfs by absolute path, ociVersion that
# crun 1.8 accepts.
"$repo/bundles/build.sh" "$BENCH_TMP/out" >/dev/null
BENCH_BUNDLE=$BENCH_TMP/bundle
mkdir "$BENCH_BUNDLE"
if command -v python3 >/dev/null; then
  python3 - "$BENCH_TMP/out/busybox" "$BENCH_BUNDLE/config.json" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
with open(os.path.join(src, "config.json")) as f:
    c = json.load(f)
c["ociVersion"] = "1.0.2"
c["process"]["args"] = ["/bin/true"]
c["root"]["path"] = os.path.join(src, "rootfs")
with open(dst, "w") as f:
    json.dump(c, f, indent=2)
PY
elif command -v jq >/dev/null; then
  jq --arg root "$BENCH_TMP/out/busybox/rootfs" \
    '.ociVersion = "1.0.2" | .process.args = ["/bin/true"] | .root.path = $root' \
    "$BENCH_TMP/out/busybox/config.json" >"$BENCH_BUNDLE/config.json"
else
  die "needs python3 or jq to write the bundle's config.json"
fi

BENCH_TIMEIT=
if command -v rustc >/dev/null && rustc -O --edition 2021 -o "$BENCH_TMP/timeit" "$repo/bench/timeit.rs" 2>"$BENCH_TMP/rustc.log"; then
  BENCH_TIMEIT=$BENCH_TMP/timeit
else
  note "rustc unavailable or failed: timing with date +%s%N (adds one exec of date per step)"
fi
export CGROUP2_SAVED=$BENCH_TMP
export BENCH_TMP BENCH_PREFIX BENCH_BUNDLE BENCH_TIMEIT BENCH_RUNS BENCH_WARMUP
export BENCH_SUBSTRATE=$substrate BENCH_RUNC=$runc BENCH_CRUN=$crun

{
  echo "substrate-runtime: $substrate ($("$substrate" --version 2>/dev/null | head -n 1))"
  echo "runc: $runc ($("$runc" --version | head -n 1)); crun: ${crun:-none} (${crun:+$("$crun" --version | head -n 1)})"
  echo "kernel $(uname -r), $(nproc) CPUs; bundle: busybox /bin/true, $BENCH_WARMUP warm-up rounds"
} | tee "$BENCH_TMP/report"

runtimes_for a
run_pass a "host as it stands" "${NAMES[@]}"
[ -f "$BENCH_TMP/skipped-a" ] && tee -a "$BENCH_TMP/report" <"$BENCH_TMP/skipped-a"

unshare -m --propagation private -- "$BASH" "$self" __v1_inner || die "pass (b) failed"
[ -f "$BENCH_TMP/skipped-b" ] && tee -a "$BENCH_TMP/report" <"$BENCH_TMP/skipped-b"
exit 0
