#!/usr/bin/env bash
# Builds Substrate's test inputs from Debian's busybox-static and nothing else:
#   $OUT/busybox/               an OCI runtime bundle (config.json + rootfs/)
#   $OUT/busybox-image.tar      an image archive in both the OCI layout
#                               (index.json) and docker's (manifest.json), which
#                               `ctr images import` and `podman load` accept,
#                               named localhost/substrate-busybox:latest.
#   $OUT/pause-image.tar        the same for a pod sandbox's pause process
#                               (bundles/pause.c, static), named
#                               localhost/substrate-pause:latest.
# No image is pulled from anywhere. Output is reproducible (fixed mtimes, owners
# and ordering), so the image digest is the same on every machine.
set -euo pipefail

OUT=${1:-$(dirname "$0")/out}
BUSYBOX=${BUSYBOX:-/bin/busybox}
IMAGE_NAME=localhost/substrate-busybox:latest
PAUSE_IMAGE_NAME=localhost/substrate-pause:latest

[ -x "$BUSYBOX" ] || { echo "bundles: $BUSYBOX not found: apt-get install busybox-static" >&2; exit 1; }
"$BUSYBOX" true || { echo "bundles: $BUSYBOX does not run" >&2; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "bundles: $BUSYBOX is dynamically linked: install busybox-static" >&2; exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- rootfs -------------------------------------------------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,etc,tmp,proc,sys,dev,root,var/tmp,usr/bin,usr/sbin}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp "$BUSYBOX" "$rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo substrate > "$rootfs/etc/hostname"
: > "$rootfs/etc/hosts"
: > "$rootfs/etc/resolv.conf"

# --- runtime bundle -------------------------------------------------------------
# The sample bundle a user tries first, so its root is writable and /tmp is
# part of it (no tmpfs): `substrate-cli run --bundle` puts every write in the
# world's upper layer and `substrate-cli diff` shows it. Run in place (runc,
# or substrate-runtime without SUBSTRATE_ROOTFS=overlay) a world writes into
# rootfs/ itself, as with any bundle. The tests' bundles (tests/src/lib.rs)
# start from this config and make the shared rootfs read-only again.
bundle=$OUT/busybox
rm -rf "$bundle"
mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
cat > "$bundle/config.json" <<'CONFIG'
{
  "ociVersion": "1.2.0",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": ["sh", "-c", "echo \"hello from world $(hostname): pid $$, uid $(id -u)\"; ls /"],
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "HOME=/root"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD"]
    },
    "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": false },
  "hostname": "substrate",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }
  ],
  "linux": {
    "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
    "namespaces": [
      { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }
    ],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
CONFIG

# --- image archives ---------------------------------------------------------------
tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)

# image_archive ROOTFS NAME CONFIG-JSON-FRAGMENT OUTPUT
image_archive() {
  local rootfs=$1 name=$2 config=$3 output=$4
  local image=$work/image-$(basename "$output" .tar)
  local blobs=$image/blobs/sha256
  mkdir -p "$blobs"
  tar "${tarflags[@]}" -C "$rootfs" -cf "$work/layer.tar" .
  local diff_id layer_digest layer_size config_digest config_size manifest_digest manifest_size
  diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  gzip -n -9 < "$work/layer.tar" > "$work/layer.tar.gz"
  layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$work/layer.tar.gz")
  mv "$work/layer.tar.gz" "$blobs/$layer_digest"

  printf '%s' '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":'"$config"',"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"substrate bundles/build.sh"}]}' > "$work/config.json"
  config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$blobs/$config_digest"

  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_digest"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer_digest"'","size":'"$layer_size"'}]}' > "$work/manifest.json"
  manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$blobs/$manifest_digest"

  printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$image/oci-layout"
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest_digest"'","size":'"$manifest_size"',"annotations":{"io.containerd.image.name":"'"$name"'","org.opencontainers.image.ref.name":"latest"}}]}' > "$image/index.json"
  # docker-archive view of the same blobs, which podman load reads with the name.
  printf '%s' '[{"Config":"blobs/sha256/'"$config_digest"'","RepoTags":["'"$name"'"],"Layers":["blobs/sha256/'"$layer_digest"'"]}]' > "$image/manifest.json"

  tar "${tarflags[@]}" -C "$image" -cf "$output" .
  echo "bundles: $output ($name, manifest sha256:$manifest_digest)"
}

image_archive "$rootfs" "$IMAGE_NAME" '{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"}' "$OUT/busybox-image.tar"

command -v gcc >/dev/null || { echo "bundles: gcc is needed for the pause image" >&2; exit 1; }
pause_rootfs=$work/pause-rootfs
mkdir -p "$pause_rootfs"
gcc -static -O2 -o "$pause_rootfs/pause" "$(dirname "$0")/pause.c"
strip "$pause_rootfs/pause"
image_archive "$pause_rootfs" "$PAUSE_IMAGE_NAME" '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/pause"],"WorkingDir":"/"}' "$OUT/pause-image.tar"
echo "bundles: $bundle (config.json + rootfs)"
