#!/usr/bin/env bash
# Runs the end-to-end tests with /sys/fs/cgroup a fresh cgroup2 mount, in a
# private mount namespace, so the runtime and the tests see a "unified"
# (cgroup v2 only) host while the rest of the machine keeps its hierarchies.
#
#   tests/cgroup-v2-unshare.sh [cargo test arguments...]
#   tests/cgroup-v2-unshare.sh --test lifecycle -- --test-threads=4
#
# What this can and cannot stand in for: the cgroup2 hierarchy has only the
# controllers no v1 hierarchy holds (on a hybrid host usually none or
# hugetlb; see /sys/fs/cgroup/unified/cgroup.controllers). v2's core works
# in full (cgroup.procs, cgroup.freeze, cgroup.kill, cgroup.events), so
# detection, placement, pause/resume, kill and cleanup are tested as on a v2
# host; but memory, pids, cpu and io limits and statistics fail for want of
# their controller, which a real v2 host has. tests/cgroup-v2-vm.sh boots a
# real one.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root (mount namespaces, cgroups)" >&2
    exit 1
fi

echo "cgroup2 controllers here: $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null \
    || cat /sys/fs/cgroup/cgroup.controllers)" >&2

cargo build --workspace --bins
cargo test -p substrate-tests --no-run

exec unshare -m --propagation private -- bash -euc '
    mount -t cgroup2 none /sys/fs/cgroup
    echo "in the namespace: /sys/fs/cgroup is $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)" >&2
    exec cargo test -p substrate-tests "$@"
' bash "$@"
