# Substrate: build, install, demo, test, bench.
# Every target that needs Debian packages installs the missing ones first.

CARGO        ?= cargo
PREFIX       ?= /usr/local
TARGET_DIR   := $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
BUNDLES      := $(TARGET_DIR)/bundles

# What the build, the tests and the benchmarks use from Debian.
DEB_PACKAGES := pkg-config libseccomp-dev busybox-static procps iproute2 \
                runc crun podman uidmap fuse-overlayfs gcc make \
                musl-tools strace python3 containerd bsdutils \
                protobuf-compiler containernetworking-plugins libc6-dev \
                libelf-dev e2fsprogs clang linux-libc-dev zlib1g-dev \
                libnftnl-dev libmnl-dev dnsmasq-base nftables \
                libclang-dev librocksdb-dev graphviz

.PHONY: all deps build release bundles demo test fuzz bench install clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The preload tracer is its own workspace (a no_std cdylib needs
# panic = "abort"); it lands beside the binaries, where the runtime looks.
PRELOAD := CARGO_TARGET_DIR=$(TARGET_DIR) $(CARGO) build --manifest-path preload/Cargo.toml

build: deps
	$(CARGO) build --workspace --bins
	$(PRELOAD)

release: deps
	$(CARGO) build --release --workspace --bins
	$(CARGO) build --profile shim -p containerd-shim-substrate-v1
	$(PRELOAD) --release

bundles: deps
	bash bundles/build.sh $(BUNDLES)

# The main job: a command in a world whose lower layer is this host's own
# root filesystem (no image), then what it changed. The host is untouched.
# Only what the demo runs is built (substrate-cli and the preload tracer),
# in the dev profile: the quickest to build from nothing, and the one
# `make test` builds too, so nothing is built twice; the demo's world runs
# in well under a second either way.
demo: deps
	@echo "== building substrate-cli and the preload tracer (dev profile)"
	$(CARGO) build -p substrate-cli
	$(PRELOAD)
	@cli=$(TARGET_DIR)/debug/substrate-cli; world=demo-$$(date +%s); \
	echo "== substrate-cli doctor: can this host run a world?"; $$cli doctor || exit 1; set -x; \
	$$cli run --name $$world -- sh -c 'echo "hello from $$(hostname), pid $$$$"; echo hi > /tmp/x; rm -f /etc/motd; echo >> /etc/hostname' && \
	$$cli diff $$world && \
	$$cli trace $$world && \
	ls /tmp/x /etc/motd 2>&1 | sed 's/^/host: /'; \
	set +x; echo "== the world's record stays: substrate-cli rm $$world removes it"

test: build
	$(CARGO) test --workspace -- --test-threads=$${TEST_THREADS:-4}
	# The tracing suites again with the kernel sensor off: the fallback
	# (proc connector and preload) a host that refuses BPF gets.
	SUBSTRATE_SENSOR=off $(CARGO) test -p substrate-tests --test trace --test preload --test procevents -- --test-threads=$${TEST_THREADS:-4}
	CARGO_TARGET_DIR=$(TARGET_DIR) $(CARGO) test --manifest-path preload/Cargo.toml

# The property tests of every parser of untrusted input (trace lines, hello
# messages, rings, proc connector datagrams, config.json, process,
# resources, record and diff files), FUZZ_CASES cases each; `make test` runs
# them at 256 as part of `cargo test`. Optimised, with overflow checks and
# debug assertions kept, in a target dir of their own. A case that panics
# fails its test with the input, shrunk; a case that hangs is killed after
# 20 s and fails the same way.
FUZZ_CASES   ?= 1000000
FUZZ_CRATES  := -p substrate-trace -p substrate-ring -p substrate-sensor -p substrate-runtime

fuzz: deps
	@start=$$(date +%s); \
	PROPTEST_CASES=$(FUZZ_CASES) CARGO_TARGET_DIR=$(TARGET_DIR)/fuzz \
	CARGO_PROFILE_DEV_OPT_LEVEL=2 CARGO_PROFILE_DEV_DEBUG=line-tables-only \
	$(CARGO) test $(FUZZ_CRATES) --lib proptest_ -- --test-threads=$${TEST_THREADS:-2}; \
	status=$$?; echo "make fuzz: $(FUZZ_CASES) cases per property, $$(( $$(date +%s) - start )) s"; exit $$status

bench: release bundles
	SUBSTRATE_RUNTIME=$(TARGET_DIR)/release/substrate-runtime bash bench/lifecycle.sh
	$(CARGO) run --release -q -p substrate-bench-fsdiff
	bash bench/trace-build.sh $(TARGET_DIR)/release/substrate-cli
	bash bench/trace-under-load.sh $(TARGET_DIR)/release/substrate-cli
	bash bench/preload-calls.sh $(TARGET_DIR)/release/substrate-cli $(TARGET_DIR)/release/libsubstrate_preload.so
	bash bench/sensor-exec.sh $(TARGET_DIR)/release/substrate-cli
	bash bench/shim.sh $(TARGET_DIR)/shim $(BUNDLES)/busybox-image.tar $(TARGET_DIR)/release/libsubstrate_preload.so
	CARGO=$(CARGO) bash bench/egress.sh
	CARGO=$(CARGO) bash bench/graph.sh

install: release
	install -D -m 0755 $(TARGET_DIR)/release/substrate-runtime $(DESTDIR)$(PREFIX)/bin/substrate-runtime
	install -D -m 0755 $(TARGET_DIR)/release/substrate-cli $(DESTDIR)$(PREFIX)/bin/substrate-cli
	install -D -m 0755 $(TARGET_DIR)/release/substrate-graph $(DESTDIR)$(PREFIX)/bin/substrate-graph
	install -D -m 0755 $(TARGET_DIR)/release/substrate-export $(DESTDIR)$(PREFIX)/bin/substrate-export
	install -D -m 0755 $(TARGET_DIR)/shim/containerd-shim-substrate-v1 $(DESTDIR)$(PREFIX)/bin/containerd-shim-substrate-v1
	install -D -m 0644 $(TARGET_DIR)/release/libsubstrate_preload.so $(DESTDIR)$(PREFIX)/lib/substrate/libsubstrate_preload.so

clean:
	$(CARGO) clean
