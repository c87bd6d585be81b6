#!/usr/bin/env bash
# Runs the end-to-end tests on a real cgroup v2 host: a qemu VM booting
# Debian 12's own kernel (linux-image-amd64) with cgroup_no_v1=all and
# /sys/fs/cgroup a cgroup2 mount holding every controller, as on a Debian 12
# or Kubernetes node. Its root filesystem is this machine's, shared read-only
# over virtio-9p under a tmpfs overlay, so the VM runs the binaries, test
# programs, containerd and podman built and installed here.
#
#   tests/cgroup-v2-vm.sh                      every test binary of substrate-tests
#   tests/cgroup-v2-vm.sh lifecycle spec       only these (names of tests/tests/*.rs)
#   TEST_ARGS='--test-threads=1 pause' tests/cgroup-v2-vm.sh lifecycle
#
# Results: the console shows each binary's output; the log and a summary are
# left in $V2VM_DIR/out/ (default /var/tmp/substrate-v2vm/out/). Exits 0 when
# every binary passed.
#
# Knobs: V2VM_DIR, V2VM_MEM (MiB, default 6144), V2VM_CPUS (default: nproc),
# V2VM_ACCEL (default tcg: a nested KVM that only runs PVM guest kernels, as
# on some cloud sandboxes, hangs a stock kernel), TEST_ARGS (default
# --test-threads=2), V2VM_TIMEOUT (seconds for the whole run, default 5400),
# SUBSTRATE_BIN_DIR (binaries to test other than this workspace's, as for
# the tests themselves; passed into the VM).
#
# Needs root, and Debian's qemu-system-x86, busybox-static and kmod (installed
# here if missing). Under TCG everything runs 5-20 times slower than on the
# host: a test that fails only here on a timeout is not evidence of a v2 bug
# until it also fails with more time.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKSPACE=$(pwd)

WORK=${V2VM_DIR:-/var/tmp/substrate-v2vm}
MEM=${V2VM_MEM:-6144}
CPUS=${V2VM_CPUS:-$(nproc)}
ACCEL=${V2VM_ACCEL:-tcg}
TEST_ARGS=${TEST_ARGS:---test-threads=2}
TIMEOUT=${V2VM_TIMEOUT:-5400}

if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root" >&2
    exit 1
fi

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# Debian 12's kernel, unpacked (not installed): vmlinuz and its modules.
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
KVER=${kpkg#linux-image-}
KDIR=$WORK/kernel-$KVER
if [ ! -e "$KDIR/boot/vmlinuz-$KVER" ]; then
    rm -rf "$KDIR" "$WORK"/*.deb
    (cd "$WORK" && apt-get download "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    dpkg-deb -x "$WORK/${kpkg}"_*.deb "$KDIR"
    depmod -b "$KDIR" "$KVER"
fi

# The binaries and the test bundles, built here so the VM only runs them.
cargo build --workspace --bins
mapfile -t tests < <(cargo test -p substrate-tests --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and "substrate-tests" in m["package_id"] and "test" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
')
bins=${SUBSTRATE_BIN_DIR:-$(dirname "$(dirname "${tests[0]#* }")")}
if [ ! -e "$bins/test-bundles/pause-image.tar" ]; then
    tmp=$(mktemp -d "$bins/.test-bundles-XXXXXX")
    bash bundles/build.sh "$tmp" >/dev/null
    rm -rf "$bins/test-bundles"
    mv "$tmp" "$bins/test-bundles"
fi
selected=()
for t in "${tests[@]}"; do
    name=${t%% *}
    if [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qx "$name"; then
        selected+=("$t")
    fi
done
[ ${#selected[@]} -gt 0 ] || { echo "$0: no test binary named $*" >&2; exit 1; }

# The initramfs: busybox and what mounts the shared root (virtio-pci, 9p,
# overlay).
IRD=$WORK/initramfs
rm -rf "$IRD"
mkdir -p "$IRD"/{bin,proc,sys,dev,lower,rw,newroot,modules}
cp /bin/busybox "$IRD/bin/"
for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$IRD/modules/"
    basename "$ko" >>"$IRD/modules/order"
done
cat >"$IRD/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "/modules/$m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay root -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot /bin/bash "$(cat /newroot/proc/cmdline | tr ' ' '\n' | sed -n 's/^v2vm.script=//p')"
EOF
chmod +x "$IRD/init"
(cd "$IRD" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$WORK/initramfs.gz")

# What the VM runs once its root is this machine's.
OUT=$WORK/out
rm -rf "$OUT"
mkdir -p "$OUT"
printf '%s\n' "${selected[@]}" >"$WORK/tests.list"
cat >"$WORK/guest.sh" <<EOF
#!/bin/bash
# Written by tests/cgroup-v2-vm.sh; runs inside the VM as its init.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue /mnt/out /lib/modules/$KVER
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount --bind $KDIR/lib/modules/$KVER /lib/modules/$KVER
mount -t 9p -o trans=virtio,version=9p2000.L out /mnt/out
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
ip link set lo up
modprobe loop 2>/dev/null || true
hostname "\$(cat /etc/hostname)"
{
    echo "kernel \$(uname -r); /sys/fs/cgroup: \$(stat -f -c %T /sys/fs/cgroup)"
    echo "controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
    grep cgroup /proc/mounts
} | tee /mnt/out/env.txt
${SUBSTRATE_BIN_DIR:+export SUBSTRATE_BIN_DIR=$SUBSTRATE_BIN_DIR}
cd $WORKSPACE/tests
status=0
while read -r name exe; do
    echo "=== \$name" | tee -a /mnt/out/log
    \$exe $TEST_ARGS 2>&1 | tee -a /mnt/out/log
    rc=\${PIPESTATUS[0]}
    echo "=== \$name exit \$rc" | tee -a /mnt/out/log
    echo "\$name \$rc" >>/mnt/out/status
    [ \$rc = 0 ] || status=1
done <$WORK/tests.list
echo \$status >/mnt/out/done
sync
echo o >/proc/sysrq-trigger
sleep 60
EOF

accel=(-accel "$ACCEL")
[ "$ACCEL" = tcg ] && accel=(-accel tcg,thread=multi -cpu max)
[ "$ACCEL" = kvm ] && accel=(-accel kvm -cpu host)
timeout "$TIMEOUT" qemu-system-x86_64 "${accel[@]}" -m "$MEM" -smp "$CPUS" \
    -nographic -no-reboot -nic none \
    -kernel "$KDIR/boot/vmlinuz-$KVER" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 v2vm.script=$WORK/guest.sh" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$OUT",mount_tag=out,security_model=none </dev/null || true

echo
if [ ! -e "$OUT/done" ]; then
    echo "$0: the VM stopped before the tests ended; see the console above and $OUT/log" >&2
    exit 1
fi
echo "cgroup v2 VM: $(head -2 "$OUT/env.txt" | tr '\n' ' ')"
grep -E '^test result|^=== .* exit' "$OUT/log" | sed 's/^/  /'
exit "$(cat "$OUT/done")"
