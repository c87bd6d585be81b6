#!/usr/bin/env bash
# Kubernetes' CRI validation (critest) against Substrate, with runc as the
# anchor, in one private containerd.
#
#   sudo tests/critest.sh
#
# What it needs:
#   - critest (cri-tools >= 1.36): $CRITEST, default
#     /var/tmp/cri-tools/build/bin/linux/amd64/critest. cri-tools builds from
#     its vendored modules, without a module proxy:
#       cd /var/tmp/cri-tools   # a checkout of kubernetes-sigs/cri-tools v1.36.0
#       GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off make critest crictl
#   - the workspace's binaries: `cargo build --workspace --bins` (the shim
#     containerd-shim-substrate-v1 is taken from $SUBSTRATE_BIN_DIR, default
#     target/debug of this checkout);
#   - Debian packages containerd (1.6), runc, containernetworking-plugins,
#     busybox-static, docker-registry, skopeo, gcc, python3, iptables (the
#     missing ones are installed).
#
# What it does: starts a containerd of its own (--root, --state, socket and
# config in a temp dir; CRI runtime handlers `runc` (io.containerd.runc.v2)
# and `substrate` (io.containerd.substrate.v1, worlds in the temp dir); CNI
# bridge + portmap), Debian's docker-registry on 127.0.0.1:5000 with
# stand-ins of the images critest pulls (busybox-based: busybox, an "nginx"
# and "httpd" that are busybox httpd, hostnet-nginx on port 12003, the image
# user/group images, nonewprivs, the pause image; see build_images), which
# containerd reaches as registry.k8s.io, k8s.gcr.io, gcr.io and docker.io
# (registry mirrors), then runs critest once per handler, one after the
# other, and prints per-handler totals and the specs that pass with runc and
# fail with substrate (with their errors). Everything is removed at the end
# (pods, containerd, its shims, the registry, mounts, the bridge, the temp
# dir).
#
# Environment:
#   CRITEST            critest binary
#   CRICTL             crictl binary (for the cleanup; default beside critest)
#   HANDLERS           handlers to run, default "runc substrate"
#   CRITEST_FOCUS      a ginkgo focus regexp (default: every spec)
#   CRITEST_SKIP       a ginkgo skip regexp (default: none)
#   CRITEST_KEEP=1     keep the temp dir (logs, reports) after the run
#   CRITEST_OUT        where the reports and logs are copied to (default
#                      /var/tmp/substrate-critest/<date>)
#
# Known limits of the stand-ins (fail with every handler, not Substrate's):
#   - test-image-digest is pulled by the digest of the real image, which a
#     stand-in cannot have.
#   - containerd 1.6 answers StopContainer and StopPodSandbox of an unknown
#     id with NotFound (the Idempotence specs; containerd >= 1.7 does not).
# Exit status: 0 when no spec passes with runc and fails with substrate.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
CRITEST=${CRITEST:-/var/tmp/cri-tools/build/bin/linux/amd64/critest}
CRICTL=${CRICTL:-$(dirname "$CRITEST")/crictl}
HANDLERS=${HANDLERS:-runc substrate}
BIN_DIR=${SUBSTRATE_BIN_DIR:-$repo/target/debug}
REGISTRY_ADDR=127.0.0.1:5000

die() { echo "critest.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"
[ -x "$CRITEST" ] || die "no critest at $CRITEST (see the top of $0 for how to build it)"
[ -x "$BIN_DIR/containerd-shim-substrate-v1" ] ||
  die "no $BIN_DIR/containerd-shim-substrate-v1: cargo build --workspace --bins"
if ss -ltn 2>/dev/null | grep -q "$REGISTRY_ADDR "; then
  die "$REGISTRY_ADDR is taken"
fi

need=()
for p in containerd runc containernetworking-plugins busybox-static docker-registry skopeo gcc python3 iptables libc6-dev; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

dir=$(mktemp -d /tmp/substrate-critest-XXXXXX)
sock=$dir/c.sock
bridge=sct$(( $$ % 100000 ))
subnet=10.232.$(( $$ % 200 )).0/24
ctd_pid=
registry_pid=
out=${CRITEST_OUT:-/var/tmp/substrate-critest/$(date +%Y%m%d-%H%M%S)}

cleanup() {
  set +e
  trap - EXIT INT TERM
  echo "== cleaning up"
  if [ -n "$ctd_pid" ] && [ -S "$sock" ] && [ -x "$CRICTL" ]; then
    for h in 1 2; do
      timeout 120 "$CRICTL" -r "unix://$sock" rmp -fa >/dev/null 2>&1
    done
    timeout 60 "$CRICTL" -r "unix://$sock" rm -fa >/dev/null 2>&1
  fi
  [ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null
  # Shims of this containerd (runc's and ours), then anything left that
  # names the temp dir.
  for pid in $(pgrep -f "containerd-shim" 2>/dev/null); do
    if tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q -- "$sock" ||
       tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -q -- "$dir"; then
      kill -9 "$pid" 2>/dev/null
    fi
  done
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  # Mounts under the temp dir, deepest first.
  grep -F " $dir" /proc/self/mountinfo | awk '{print $5}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  ip link del "$bridge" 2>/dev/null
  if [ -d "$dir" ]; then
    mkdir -p "$out"
    cp -a "$dir"/report-*.json "$dir"/critest-*.log "$dir"/containerd.log "$out"/ 2>/dev/null
    if [ "${CRITEST_KEEP:-}" = 1 ]; then
      echo "== kept $dir"
    else
      rm -rf "$dir"
    fi
  fi
  echo "== reports and logs in $out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- images ---------------------------------------------------------------------
# The busybox rootfs of bundles/build.sh, then a layer per image.
echo "== building stand-in images"
bash "$repo/bundles/build.sh" "$dir/bundles" >/dev/null
base=$dir/base
cp -a "$dir/bundles/busybox/rootfs" "$base"
# The busybox image has its applets as hard links of one busybox, and its
# shell runs them from $PATH (MaskedPaths masks /bin/ls alone, and `sh -c ls`
# then fails). Debian's busybox-static prefers its applets to $PATH, so the
# stand-in is Debian's dynamic busybox (with its libraries), its applets hard
# links.
( cd "$dir" && apt-get download -qq busybox >/dev/null 2>&1 ) ||
  die "cannot download Debian's busybox package"
dpkg -x "$dir"/busybox_*.deb "$dir/busybox-deb"
find "$base/bin" "$base/sbin" "$base/usr/bin" "$base/usr/sbin" -type l -delete
cp "$dir/busybox-deb/bin/busybox" "$base/bin/busybox"
for applet in $("$base/bin/busybox" --list); do
  [ -e "$base/bin/$applet" ] || ln "$base/bin/busybox" "$base/bin/$applet"
done
for lib in $(ldd "$base/bin/busybox" | grep -o '/[^ ]*'); do
  mkdir -p "$base$(dirname "$lib")"
  cp -L "$lib" "$base$lib"
done
# What critest runs that neither busybox has.
cat > "$base/usr/bin/pgrep" <<'EOF'
#!/bin/sh
# stand-in for `pgrep PATTERN`: the pids of the processes whose name matches
for d in /proc/[0-9]*; do
  read -r comm 2>/dev/null < "$d/comm" || continue
  echo "$comm" | grep -qE -- "$1" && echo "${d#/proc/}"
done
exit 0
EOF
cat > "$base/usr/bin/ipcs" <<'EOF'
#!/bin/sh
# stand-in for `ipcs -m`: the shared memory segments of this IPC namespace
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
  echo "$key $shmid $uid $perms $size $nattch"
done
EOF
chmod 755 "$base/usr/bin/pgrep" "$base/usr/bin/ipcs"
# busybox's own image's users and groups.
cat > "$base/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
cat > "$base/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOF
mkdir -p "$base/var/run" "$base/var/www" "$base/home" "$base/usr/share/nginx/html" "$base/usr/local/bin"
echo '<html><body>stand-in web server</body></html>' > "$base/usr/share/nginx/html/index.html"
# nginx (and httpd): busybox httpd under a shell named nginx, which writes
# nginx's pid file and leaves on SIGTERM (as nginx does); `pidof nginx`
# finds it, and its command line says "master process" as nginx's does.
cat > "$base/usr/sbin/nginx" <<'EOF'
#!/bin/sh
echo $$ > /var/run/nginx.pid
echo "nginx/httpd stand-in: busybox httpd on port ${NGINX_PORT:-80}"
httpd -f -p "${NGINX_PORT:-80}" -h /usr/share/nginx/html &
trap 'kill $!; exit 0' TERM INT QUIT
wait
EOF
chmod 755 "$base/usr/sbin/nginx"
# nonewprivs: a setuid-root program that says its effective uid.
printf '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("Effective uid: %%d\\n", geteuid());return 0;}\n' > "$dir/nnp.c"

tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix)
# oci_image ROOTFS LAYOUT CONFIG-FRAGMENT: an OCI image layout of ROOTFS as
# one layer, with CONFIG-FRAGMENT as its config.
oci_image() {
  local rootfs=$1 layout=$2 config=$3
  local blobs=$layout/blobs/sha256 t=$dir/tmp-image
  mkdir -p "$blobs" "$t"
  tar "${tarflags[@]}" -C "$rootfs" -cf "$t/layer.tar" .
  local diff_id; diff_id=$(sha256sum "$t/layer.tar" | cut -d' ' -f1)
  gzip -n -1 < "$t/layer.tar" > "$t/layer.tar.gz"
  local ld; ld=$(sha256sum "$t/layer.tar.gz" | cut -d' ' -f1)
  local ls; ls=$(stat -c %s "$t/layer.tar.gz")
  mv "$t/layer.tar.gz" "$blobs/$ld"
  printf '%s' '{"architecture":"amd64","os":"linux","config":'"$config"',"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}' > "$t/config.json"
  local cd; cd=$(sha256sum "$t/config.json" | cut -d' ' -f1)
  local cs; cs=$(stat -c %s "$t/config.json")
  mv "$t/config.json" "$blobs/$cd"
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$cd"'","size":'"$cs"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$ld"'","size":'"$ls"'}]}' > "$t/manifest.json"
  local md; md=$(sha256sum "$t/manifest.json" | cut -d' ' -f1)
  local ms; ms=$(stat -c %s "$t/manifest.json")
  mv "$t/manifest.json" "$blobs/$md"
  printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$md"'","size":'"$ms"'}]}' > "$layout/index.json"
  printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  rm -rf "$t"
}

# variant NAME: a copy of the base rootfs to change.
variant() { rm -rf "$dir/rootfs-$1"; cp -a "$base" "$dir/rootfs-$1"; echo "$dir/rootfs-$1"; }
# push LAYOUT REPO:TAG...
push() {
  local layout=$1; shift
  for ref in "$@"; do
    skopeo copy -q --dest-tls-verify=false "oci:$layout" "docker://$REGISTRY_ADDR/$ref" >/dev/null
  done
}

# --- registry -------------------------------------------------------------------
mkdir -p "$dir/registry"
cat > "$dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
docker-registry serve "$dir/registry.yml" > "$dir/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break
  kill -0 "$registry_pid" 2>/dev/null || die "docker-registry exited: $(cat "$dir/registry.log")"
  sleep 0.1
done
curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || die "docker-registry does not answer on $REGISTRY_ADDR"

cfg() { printf '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"%s],"Cmd":%s%s}' "$1" "$2" "$3"; }
build_images() {
  local r l
  oci_image "$base" "$dir/oci/busybox" "$(cfg '' '["sh"]' '')"
  push "$dir/oci/busybox" e2e-test-images/busybox:1.29-2
  oci_image "$base" "$dir/oci/nginx" \
    "$(cfg '' '["/usr/sbin/nginx","nginx: master process nginx -g daemon off;"]' ',"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGTERM"')"
  push "$dir/oci/nginx" e2e-test-images/nginx:1.14-2 e2e-test-images/httpd:2.4.39-4
  oci_image "$base" "$dir/oci/hostnet-nginx" \
    "$(cfg ',"NGINX_PORT=12003"' '["/usr/sbin/nginx","nginx: master process nginx -g daemon off;"]' ',"ExposedPorts":{"12003/tcp":{}}')"
  push "$dir/oci/hostnet-nginx" k8s-staging-cri-tools/hostnet-nginx-amd64:latest
  local -A users=([test-image-user-uid]=1002 [test-image-user-username]=www-data
    [test-image-user-uid-group]=1003:1004 [test-image-user-username-group]=www-data:1004)
  for image in "${!users[@]}"; do
    oci_image "$base" "$dir/oci/$image" "$(cfg '' '["sh"]' ',"User":"'"${users[$image]}"'"')"
    push "$dir/oci/$image" "k8s-staging-cri-tools/$image:latest"
  done
  r=$(variant predefined-group)
  echo 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' >> "$r/etc/passwd"
  printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >> "$r/etc/group"
  mkdir -p "$r/home/default-user"
  oci_image "$r" "$dir/oci/predefined-group" "$(cfg '' '["sh"]' ',"User":"1000"')"
  push "$dir/oci/predefined-group" k8s-staging-cri-tools/test-image-predefined-group:latest
  r=$(variant nonewprivs)
  gcc -static -O2 -o "$r/usr/local/bin/nnp" "$dir/nnp.c"
  chmod 4755 "$r/usr/local/bin/nnp"
  oci_image "$r" "$dir/oci/nonewprivs" "$(cfg '' '["/usr/local/bin/nnp"]' '')"
  push "$dir/oci/nonewprivs" e2e-test-images/nonewprivs:1.3
  # Images that differ by a file named after them (images/image-test).
  for image in test-image-1 test-image-2 test-image-3 test-image-latest test-image-digest; do
    r=$(variant "$image"); : > "$r/$image"
    oci_image "$r" "$dir/oci/$image" "$(cfg '' '["sh"]' '')"
    push "$dir/oci/$image" "k8s-staging-cri-tools/$image:latest"
  done
  r=$(variant same-image); : > "$r/same-image"
  oci_image "$r" "$dir/oci/same-image" "$(cfg '' '["sh"]' '')"
  push "$dir/oci/same-image" k8s-staging-cri-tools/test-image-tags:1 \
    k8s-staging-cri-tools/test-image-tags:2 k8s-staging-cri-tools/test-image-tags:3
  for tag in test all; do
    r=$(variant "tag-$tag"); : > "$r/$tag"
    oci_image "$r" "$dir/oci/tag-$tag" "$(cfg '' '["sh"]' '')"
    push "$dir/oci/tag-$tag" "k8s-staging-cri-tools/test-image-tag:$tag"
  done
  # The pause image of bundles/build.sh, as registry.k8s.io/pause:3.9 (and
  # k8s.gcr.io's, the same path on the mirror).
  skopeo copy -q --dest-tls-verify=false "docker-archive:$dir/bundles/pause-image.tar" \
    "docker://$REGISTRY_ADDR/pause:3.9" >/dev/null
}
build_images
rm -rf "$dir"/rootfs-* "$dir/oci"

# --- containerd -----------------------------------------------------------------
mkdir -p "$dir/cni" "$dir/worlds" "$dir/substrate"
cat > "$dir/cni/10-critest.conflist" <<EOF
{"cniVersion":"0.4.0","name":"substrate-critest","plugins":[
 {"type":"bridge","bridge":"$bridge","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"$subnet"}]],"dataDir":"$dir/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}
EOF
mirrors=""
for host in registry.k8s.io k8s.gcr.io gcr.io docker.io; do
  mirrors+="[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"$host\"]
  endpoint = [\"http://$REGISTRY_ADDR\"]
"
done
cat > "$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$sock"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.substrate]
  runtime_type = "io.containerd.substrate.v1"
  pod_annotations = ["io.substrate.*"]
  container_annotations = ["io.substrate.*"]
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/cni"
$mirrors
EOF
echo "== containerd $(containerd --version | awk '{print $3}') at $sock (logs: $dir/containerd.log)"
PATH="$BIN_DIR:$PATH" SUBSTRATE_STATE_DIR="$dir/worlds" SUBSTRATE_ROOT="$dir/substrate" \
  containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 300); do
  [ -S "$sock" ] && ctr -a "$sock" version >/dev/null 2>&1 && break
  kill -0 "$ctd_pid" 2>/dev/null || die "containerd exited: $(tail -20 "$dir/containerd.log")"
  sleep 0.1
done
ctr -a "$sock" version >/dev/null || die "containerd does not answer at $sock"

# --- critest --------------------------------------------------------------------
ginkgo_args=(--ginkgo.no-color --ginkgo.succinct)
[ -n "${CRITEST_FOCUS:-}" ] && ginkgo_args+=(--ginkgo.focus "$CRITEST_FOCUS")
[ -n "${CRITEST_SKIP:-}" ] && ginkgo_args+=(--ginkgo.skip "$CRITEST_SKIP")
for handler in $HANDLERS; do
  echo "== critest, runtime handler $handler (log: $dir/critest-$handler.log)"
  start=$(date +%s)
  # critest fails when a spec fails: that is what the report is for.
  "$CRITEST" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" \
    --runtime-handler "$handler" --ginkgo.json-report "$dir/report-$handler.json" \
    "${ginkgo_args[@]}" > "$dir/critest-$handler.log" 2>&1 || true
  echo "   took $(( $(date +%s) - start ))s"
  # What each handler left behind is removed before the next one runs.
  timeout 120 "$CRICTL" -r "unix://$sock" rmp -fa >/dev/null 2>&1 || true
done

# --- results --------------------------------------------------------------------
python3 - "$dir" $HANDLERS <<'EOF'
import json, os, sys

dir, handlers = sys.argv[1], sys.argv[2:]

def specs(handler):
    path = os.path.join(dir, f"report-{handler}.json")
    if not os.path.exists(path):
        return None
    result = {}
    for suite in json.load(open(path)):
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                if spec.get("State") not in ("passed", "skipped"):
                    name = spec.get("LeafNodeType")
                    result[name] = (spec["State"], (spec.get("Failure") or {}).get("Message", ""))
                continue
            name = " ".join(spec.get("ContainerHierarchyTexts") or []) + " " + spec["LeafNodeText"]
            message = (spec.get("Failure") or {}).get("Message", "")
            location = (spec.get("Failure") or {}).get("Location", {})
            if location:
                message += f"\n      at {location.get('FileName', '')}:{location.get('LineNumber', '')}"
            result[name] = (spec["State"], message)
    return result

by_handler = {}
for h in handlers:
    s = specs(h)
    by_handler[h] = s
    if s is None:
        print(f"{h}: no report (critest did not run: see critest-{h}.log)")
        continue
    counts = {}
    for state, _ in s.values():
        counts[state] = counts.get(state, 0) + 1
    total = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"{h}: {len(s)} specs: {total}")
    for name, (state, _) in sorted(s.items()):
        if state not in ("passed", "skipped"):
            print(f"   {state}: {name}")

status = 0
if "runc" in by_handler and "substrate" in by_handler and by_handler["runc"] and by_handler["substrate"] is not None:
    runc, sub = by_handler["runc"], by_handler["substrate"]
    only = [n for n, (st, _) in runc.items() if st == "passed" and sub.get(n, ("missing", ""))[0] != "passed"]
    print(f"passing with runc, not with substrate: {len(only)}")
    for n in sorted(only):
        st, msg = sub.get(n, ("missing", ""))
        print(f" - [{st}] {n}")
        for line in msg.strip().splitlines()[:12]:
            print(f"     {line}")
    if only:
        status = 1
    extra = [n for n, (st, _) in sub.items() if st == "passed" and runc.get(n, ("missing", ""))[0] != "passed"]
    if extra:
        print(f"passing with substrate, not with runc: {len(extra)}")
        for n in sorted(extra):
            print(f" - {n}")
elif any(v is None for v in by_handler.values()):
    status = 1
sys.exit(status)
EOF
