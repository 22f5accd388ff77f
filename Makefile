# Warden's top-level build: host tests (`make test`), the aarch64 no_std check, and the Microkit system image.
#
# Targets:
#   test          deps, the fresh-machine check, fmt check, clippy, host tests (release), loom
#                 tests, sim-test, supervision-test, a 200-fault soak, check-target
#   check-target  build $(TARGET_CRATES) for aarch64-unknown-none with -Zbuild-std
#   deps          check/install the toolchains (scripts/ensure-deps.sh)
#   bench         the board parser's and warden-manager-core's benchmarks (BOARD_DTBS=DIR: also
#                 time every .dtb under DIR, e.g. a Debian arm64 kernel's /usr/lib/linux-image-*)
#   bench-host    the host platform's IPC against raw eventfd and futex round trips (host-ipc: …)
#   fuzz          the protocol's, the board parser's and the SDF parser's fuzzers
#                 (components/lib/*/fuzz/run.sh)
#   sim           a system on the host platform (warden-host run), until Ctrl-C
#   sim-test      the same, with the expected story checked (part of test)
#   all, qemu     the Microkit system image and running it (need MICROKIT_SDK)
#   clean         remove build outputs
#
# Toolchains: host steps use `cargo` from PATH (rustup stable). check-target uses a rustup
# nightly with rust-src when there is one, else Debian's /usr/bin/rustc + /usr/bin/cargo with
# RUSTC_BOOTSTRAP=1 (rustup cannot download rust-src here). Debian's rustc has sysroot /usr, so
# -Zbuild-std finds the library source at /usr/lib/rustlib/src/rust/library (-> /usr/src/
# rustc-<version>/library, package rust-web-src) by itself: no __CARGO_TESTS_ONLY_SRC_ROOT or
# --sysroot setting is needed. See scripts/check-target.sh.

# --- Microkit conventions (the SDK's example Makefiles use the same names) -----------------
MICROKIT_SDK ?=
MICROKIT_BOARD ?= qemu_virt_aarch64
MICROKIT_CONFIG ?= debug
BUILD_DIR ?= build
# Real device trees for `make bench` to time (a directory searched for .dtb files).
BOARD_DTBS ?=

# --- Rust ----------------------------------------------------------------------------------
HOST_CARGO ?= cargo
# The no_std crates that run on seL4: each must build for the bare-metal target (CRATE+FEATURES:
# again with those features — the restart demo's driver).
TARGET_CRATES ?= warden-vocabulary warden-manager-core warden-protocol warden-services warden-registers warden-microkit warden-board warden-pci \
	warden-virtio warden-dma warden-driver warden-device-manager demo-driver pl011-driver pl031-driver \
	meson-uart-driver virtio-mmio-driver pci-host-driver virtio-blk-driver virtio-rng-driver \
	warden-demo-client warden-shell warden-log-printer timer-driver demo-driver+crash-once \
	demo-driver+hang-once
TARGET ?= aarch64-unknown-none
# Kept apart from the host build in target/ so neither clobbers the other.
TARGET_CARGO_TARGET_DIR ?= target/aarch64
# Rustflags for the target build's own units (space-separated; empty allows warnings).
TARGET_RUSTFLAGS ?= -Dwarnings
LOOM_TEST := components/lib/protocol/tests/loom.rs
FUZZ_SCRIPTS := components/lib/protocol/fuzz/run.sh components/lib/board/fuzz/run.sh \
	components/lib/system/fuzz/run.sh

# --- QEMU (for `make qemu`, once the image exists) -------------------------------------------
# The machine (its options shape the DTB the manager embeds), its devices and the boot are
# defined once, in scripts/qemu-virt.sh; QEMU overrides the binary, QEMU_EXTRA adds options
# (e.g. QEMU_EXTRA="-s -S" to wait for gdb).
QEMU ?= qemu-system-aarch64
QEMU_EXTRA ?=
SYSTEM_IMAGE := $(BUILD_DIR)/loader.img
# The disk the block client checks (it writes sector 1).
DISK_IMAGE ?= $(BUILD_DIR)/disk.img
# The disk `make qemu` offers for hot-plug (QEMU's drive `pcidisk`), and its QMP socket.
PCI_DISK_IMAGE ?= $(BUILD_DIR)/pci-disk.img
QMP_SOCKET ?= $(BUILD_DIR)/qmp.sock
# The board's device tree blob, which the device manager embeds: QEMU's own (dumped from the
# machine `make qemu` boots) or a board description under platform/ (scripts/board-dtb.sh).
BOARD_DTB = $(BUILD_DIR)/board/$(MICROKIT_BOARD).dtb

# Host steps must not see nightly features unlocked by a stray RUSTC_BOOTSTRAP; check-target
# sets it itself where it needs it.
unexport RUSTC_BOOTSTRAP

banner = @printf '\n==> %s\n' "$(1)"

.DEFAULT_GOAL := all
.PHONY: all qemu system-image sdk-check test deps fresh-machine-check fmt-check system system-check clippy host-test loom \
	check-target bench bench-host fuzz sim sim-test tree-svg supervision-test soak clean board-dtb

# --- Microkit system image ------------------------------------------------------------------
# Every PD binary is built for $(TARGET) and linked by rust-lld against the SDK's libmicrokit.a
# and Warden's C shim (components/lib/microkit/build.rs compiles it with $(CROSS_CC) and the SDK's
# headers), with the SDK's microkit.ld; the microkit tool then packs them with the board's
# system description into $(SYSTEM_IMAGE).
BOARD_DIR = $(MICROKIT_SDK)/board/$(MICROKIT_BOARD)/$(MICROKIT_CONFIG)
CROSS_CC ?= aarch64-linux-gnu-gcc
CROSS_AR ?= aarch64-linux-gnu-ar
# Which system of the board: `warden` (the drivers, the client and the shell) or, on QEMU virt,
# `restart-demo` (a driver that crashes in its first probe and is restarted) or `sddf-serial`
# (the console's client in sDDF's serial protocol). Building the demo
# driver with its fault injection (PD_FEATURES=demo-driver/crash-once) chooses the restart demo,
# the only system that has that driver.
SYSTEM ?= $(if $(filter demo-driver/%,$(PD_FEATURES)),restart-demo,warden)
# Per board and system: the description, and the PD crates and binaries (program_image
# NAME.elf) it runs.
SYSTEM_FILE_qemu_virt_aarch64_warden := system.xml
PD_CRATES_qemu_virt_aarch64_warden := warden-device-manager pl011-driver pl031-driver \
	virtio-mmio-driver pci-host-driver virtio-blk-driver virtio-rng-driver warden-demo-client \
	warden-shell warden-log-printer timer-driver
PD_BINARIES_qemu_virt_aarch64_warden := device_manager pl011_driver pl031_driver \
	virtio_mmio_driver pci_host_driver virtio_blk_driver virtio_rng_driver demo_client shell \
	log_printer generic_timer_driver
SYSTEM_FILE_qemu_virt_aarch64_restart-demo := platform/qemu_virt_aarch64/restart_demo.xml
PD_CRATES_qemu_virt_aarch64_restart-demo := warden-device-manager demo-driver warden-log-printer \
	timer-driver
PD_BINARIES_qemu_virt_aarch64_restart-demo := device_manager demo_driver log_printer \
	generic_timer_driver
SYSTEM_FILE_qemu_virt_aarch64_sddf-serial := platform/qemu_virt_aarch64/sddf_serial.xml
PD_CRATES_qemu_virt_aarch64_sddf-serial := warden-device-manager pl011-driver warden-demo-client \
	warden-log-printer timer-driver
PD_BINARIES_qemu_virt_aarch64_sddf-serial := device_manager pl011_driver serial_client log_printer \
	generic_timer_driver
SYSTEM_FILE_odroidc4_warden := platform/odroidc4/system.xml
PD_CRATES_odroidc4_warden := warden-device-manager meson-uart-driver warden-shell \
	warden-log-printer timer-driver
PD_BINARIES_odroidc4_warden := device_manager meson_uart_driver shell log_printer \
	meson_timer_driver
SYSTEM_FILE ?= $(SYSTEM_FILE_$(MICROKIT_BOARD)_$(SYSTEM))
PD_CRATES ?= $(PD_CRATES_$(MICROKIT_BOARD)_$(SYSTEM))
PD_BINARIES ?= $(PD_BINARIES_$(MICROKIT_BOARD)_$(SYSTEM))
SYSTEM_REPORT := $(BUILD_DIR)/report.txt
# Release for the image: the PDs' debug output is kept (log records, panics) either way.
PD_PROFILE ?= release
# Cargo features for the PD build, e.g. PD_FEATURES=demo-driver/crash-once (restart demo).
PD_FEATURES ?=
PD_PROFILE_DIR = $(if $(filter dev,$(PD_PROFILE)),debug,$(PD_PROFILE))

all: system-image

system-image: sdk-check
	@if [ -z "$(SYSTEM_FILE)" ]; then \
		echo "error: no system '$(SYSTEM)' for MICROKIT_BOARD=$(MICROKIT_BOARD) (Warden has SYSTEM=warden on qemu_virt_aarch64 and odroidc4, SYSTEM=restart-demo and SYSTEM=sddf-serial on qemu_virt_aarch64)." >&2; \
		exit 2; \
	fi
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory board-dtb
	$(call banner,image: PD binaries for $(TARGET) ($(MICROKIT_BOARD)/$(MICROKIT_CONFIG)))
	@mkdir -p "$(BUILD_DIR)"
	@WARDEN_BOARD_DTB="$(abspath $(BOARD_DTB))" WARDEN_SYSTEM_FILE="$(abspath $(SYSTEM_FILE))" \
		MICROKIT_BOARD_DIR="$(abspath $(BOARD_DIR))" WARDEN_CC="$(CROSS_CC)" WARDEN_AR="$(CROSS_AR)" \
		TARGET="$(TARGET)" CARGO_TARGET_DIR="$(TARGET_CARGO_TARGET_DIR)" PROFILE="$(PD_PROFILE)" \
		LINK_SCRIPT="$(abspath $(BOARD_DIR))/lib/microkit.ld" PD_FEATURES="$(PD_FEATURES)" \
		bash scripts/build-pds.sh $(PD_CRATES)
	@for binary in $(PD_BINARIES); do \
		cp "$(TARGET_CARGO_TARGET_DIR)/$(TARGET)/$(PD_PROFILE_DIR)/$$binary" "$(BUILD_DIR)/$$binary.elf" || exit 1; \
	done
	$(call banner,image: $(MICROKIT_SDK)/bin/microkit $(SYSTEM_FILE))
	"$(MICROKIT_SDK)/bin/microkit" "$(SYSTEM_FILE)" --search-path "$(BUILD_DIR)" \
		--board "$(MICROKIT_BOARD)" --config "$(MICROKIT_CONFIG)" \
		-o "$(SYSTEM_IMAGE)" -r "$(SYSTEM_REPORT)"
	@echo "image: $(SYSTEM_IMAGE) (report: $(SYSTEM_REPORT))"

qemu: system-image $(DISK_IMAGE) $(PCI_DISK_IMAGE)
	@if [ "$(MICROKIT_BOARD)" != qemu_virt_aarch64 ]; then \
		echo "error: make qemu boots MICROKIT_BOARD=qemu_virt_aarch64, not $(MICROKIT_BOARD)." >&2; exit 2; \
	fi
	QEMU_SYSTEM="$(QEMU)" QMP="$(QMP_SOCKET)" bash scripts/qemu-virt.sh boot "$(SYSTEM_IMAGE)" \
		"$(DISK_IMAGE)" -drive "file=$(PCI_DISK_IMAGE),if=none,format=raw,id=pcidisk" $(QEMU_EXTRA)

# The board's DTB (see BOARD_DTB); always regenerated, it takes a fraction of a second.
board-dtb:
	@mkdir -p "$(dir $(BOARD_DTB))"
	@bash scripts/board-dtb.sh "$(MICROKIT_BOARD)" "$(BOARD_DTB)"

$(DISK_IMAGE):
	@mkdir -p "$(dir $@)"
	truncate -s 1M "$@"

# Larger than the boot disk, so the client, which checks each disk it is given, tells them apart.
$(PCI_DISK_IMAGE):
	@mkdir -p "$(dir $@)"
	truncate -s 2M "$@"

sdk-check:
	@if [ -z "$(MICROKIT_SDK)" ]; then \
		echo "error: MICROKIT_SDK is not set." >&2; \
		echo "       Set it to an unpacked Microkit SDK, e.g. make MICROKIT_SDK=/path/to/microkit-sdk-2.3.0" >&2; \
		echo "       The SDK is downloaded from the seL4 Microkit releases (seL4/microkit), not from any package registry." >&2; \
		exit 2; \
	fi
	@if [ ! -x "$(MICROKIT_SDK)/bin/microkit" ]; then \
		echo "error: MICROKIT_SDK=$(MICROKIT_SDK) has no bin/microkit: it is not an unpacked Microkit SDK." >&2; \
		echo "       Set it to one, e.g. make MICROKIT_SDK=/path/to/microkit-sdk-2.3.0" >&2; \
		echo "       The SDK is downloaded from the seL4 Microkit releases (seL4/microkit), not from any package registry." >&2; \
		exit 2; \
	fi
	@if [ ! -d "$(MICROKIT_SDK)/board/$(MICROKIT_BOARD)/$(MICROKIT_CONFIG)" ]; then \
		echo "error: the SDK has no board/$(MICROKIT_BOARD)/$(MICROKIT_CONFIG); set MICROKIT_BOARD / MICROKIT_CONFIG." >&2; \
		echo "       boards in this SDK: $$(ls "$(MICROKIT_SDK)/board" 2>/dev/null | tr '\n' ' ')" >&2; \
		exit 2; \
	fi

# --- Host checks ------------------------------------------------------------------------------
# Each step is a sub-make, one per recipe line, so the order holds even under `make -j` and
# the first failing step stops `make test`.
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory fresh-machine-check
	@$(MAKE) --no-print-directory fmt-check
	@$(MAKE) --no-print-directory system-check
	@$(MAKE) --no-print-directory clippy
	@$(MAKE) --no-print-directory host-test
	@$(MAKE) --no-print-directory loom
	@$(MAKE) --no-print-directory sim-test
	@$(MAKE) --no-print-directory supervision-test
	@$(MAKE) --no-print-directory soak SOAK_FAULTS=200
	@$(MAKE) --no-print-directory check-target
	@printf '\n==> make test: all steps passed\n'

deps:
	$(call banner,deps: toolchains (scripts/ensure-deps.sh))
	@bash scripts/ensure-deps.sh

# ensure-deps.sh's trials again, with every optional package of Warden's tools hidden, as on a
# machine that never installed them (scripts/fresh-machine-check.sh).
fresh-machine-check:
	$(call banner,fresh-machine: the tools' trials with their optional packages hidden)
	@bash scripts/fresh-machine-check.sh

# The generated files (system.xml, platform/odroidc4/system.xml, the warden-interface crate)
# from the descriptions in systems/ (warden-sysgen; systems/README.md). `make system` writes
# them; `make system-check` fails when a committed one differs from what systems/ makes.
system:
	$(call banner,system: warden-sysgen writes the files systems/ describes)
	$(HOST_CARGO) run --quiet -p warden-sysgen --

system-check:
	$(call banner,system-check: the committed system descriptions are what systems/ makes)
	$(HOST_CARGO) run --quiet -p warden-sysgen -- --check

fmt-check:
	$(call banner,fmt: cargo fmt --all -- --check)
	$(HOST_CARGO) fmt --all -- --check

clippy:
	$(call banner,clippy: cargo clippy --workspace --all-targets -- -D warnings)
	$(HOST_CARGO) clippy --workspace --all-targets -- -D warnings

# Release: the model checker and the property tests are far faster optimised.
host-test:
	$(call banner,test: cargo test --workspace --release)
	$(HOST_CARGO) test --workspace --release

loom:
	$(call banner,loom: warden-protocol's loom tests)
	@if [ -f "$(LOOM_TEST)" ]; then \
		echo 'RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(HOST_CARGO) test -p warden-protocol --release --test loom'; \
		RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(HOST_CARGO) test -p warden-protocol --release --test loom; \
	else \
		echo "skipped: $(LOOM_TEST) does not exist yet"; \
	fi

check-target:
	$(call banner,check-target: $(TARGET_CRATES) for $(TARGET) with -Zbuild-std)
	@TARGET="$(TARGET)" CARGO_TARGET_DIR="$(TARGET_CARGO_TARGET_DIR)" \
		TARGET_RUSTFLAGS="$(TARGET_RUSTFLAGS)" bash scripts/check-target.sh $(TARGET_CRATES)

# --- Benchmarks and fuzzing ------------------------------------------------------------------
bench:
	$(call banner,bench: cargo bench -p warden-board --bench board; -p warden-manager-core --bench core)
	WARDEN_BOARD_DTBS="$(BOARD_DTBS)" $(HOST_CARGO) bench -p warden-board --bench board
	$(HOST_CARGO) bench -p warden-manager-core --bench core

# The host platform's IPC (platform/host/bench): raw eventfd and futex round trips between two
# plain processes, then notify, PPC and probe round trips between PDs under warden-host; the last
# line is `host-ipc: …`, with each figure's ratio to the raw eventfd round trip.
bench-host:
	$(call banner,bench-host: cargo bench -p warden-host-bench --bench ipc)
	$(HOST_CARGO) build --release -p warden-host -p warden-host-bench -p demo-driver --bins
	$(HOST_CARGO) bench -p warden-host-bench --bench ipc

fuzz:
	$(call banner,fuzz: $(FUZZ_SCRIPTS))
	@status=0; for script in $(FUZZ_SCRIPTS); do bash "$$script" || status=1; done; exit $$status

# --- Host simulation -------------------------------------------------------------------------
# A system on the host platform: one process per PD, the launcher playing the Microkit kernel
# (platform/host/launcher), the board's devices modelled, standard input the console. It runs until Ctrl-C
# (which stops every PD and removes the run's files), or for SIM_TIMEOUT seconds if set. The
# system is MICROKIT_BOARD's SYSTEM, as for the image: on QEMU virt SYSTEM=warden (system.xml,
# with the disk image and an entropy source plugged in as `make qemu` does) or
# SYSTEM=restart-demo; MICROKIT_BOARD=odroidc4 runs the Odroid C4's. While it runs,
# `target/debug/warden-host control $(BUILD_DIR)/control.sock plug blk=IMAGE` (or `unplug
# 0xa000000`, `devices`) hot-plugs a virtio device on QEMU virt.
SIM_TIMEOUT ?=
# The build profile of the PDs it runs (sim-test reuses its release build).
SIM_PROFILE ?= debug
SIM_PROFILE_DIR = $(if $(filter dev debug,$(SIM_PROFILE)),debug,$(SIM_PROFILE))
SIM_FEATURES = $(if $(filter restart-demo,$(SYSTEM)),$(or $(PD_FEATURES),demo-driver/crash-once),$(PD_FEATURES))
SIM_VIRTIO = $(if $(filter qemu_virt_aarch64,$(MICROKIT_BOARD)),--virtio blk=$(DISK_IMAGE) --virtio rng)
sim: $(DISK_IMAGE)
	$(call banner,sim: $(SYSTEM_FILE) on the host platform ($(MICROKIT_BOARD)))
	@if [ -z "$(SYSTEM_FILE)" ]; then \
		echo "error: no system '$(SYSTEM)' for MICROKIT_BOARD=$(MICROKIT_BOARD) (SYSTEM=warden on qemu_virt_aarch64 and odroidc4, SYSTEM=restart-demo and SYSTEM=sddf-serial on qemu_virt_aarch64)." >&2; \
		exit 2; \
	fi
	@$(MAKE) --no-print-directory board-dtb
	$(HOST_CARGO) build --workspace --bins $(if $(filter debug,$(SIM_PROFILE)),,--profile $(SIM_PROFILE)) \
		$(if $(SIM_FEATURES),--features $(SIM_FEATURES))
	@rm -f "$(BUILD_DIR)/control.sock"
	target/$(SIM_PROFILE_DIR)/warden-host run $(SYSTEM_FILE) --board $(BOARD_DTB) \
		$(SIM_VIRTIO) --control $(BUILD_DIR)/control.sock $(if $(SIM_TIMEOUT),--timeout $(SIM_TIMEOUT)) \
		$(if $(SIM_TRACE),--trace $(SIM_TRACE))

# The running system's device tree as a picture: system.xml on the host platform, the shell's
# `tree --dot` rendered by Graphviz to build/tree.svg (scripts/tree-svg.sh).
tree-svg:
	$(call banner,tree-svg: the device tree of system.xml on the host platform, to $(BUILD_DIR)/tree.svg)
	@$(MAKE) --no-print-directory deps
	@scripts/tree-svg.sh $(BUILD_DIR)/tree.svg

# The same run, with its story checked (part of make test).
sim-test:
	$(call banner,sim-test: system.xml on the host platform tells the expected story)
	@scripts/sim-test.sh release

# Hostile driver PDs, one per way a driver could take a device, a driver or a data path away
# for good (scripts/supervision-test.sh): each must be survived.
supervision-test:
	$(call banner,supervision-test: hostile driver PDs in system.xml on the host platform)
	@scripts/supervision-test.sh release

# The fault-injection soak (warden-host soak): system.xml on the host platform with the soak
# client (blocks written and verified without pause) in the client's place, SOAK_FAULTS random
# faults (kill, hang, panic, corrupt ring slot, notify flood) injected into random driver PDs
# one at a time, each recovered before the next. The last line gives the figures; it fails
# unless every fault was recovered with no request lost and no data mismatch. SOAK_SEED makes
# the draw reproducible; SOAK_LOG keeps every line of the run. The disk is a scratch image.
SOAK_FAULTS ?= 200
SOAK_SEED ?=
SOAK_LOG ?=
SOAK_DISK = $(BUILD_DIR)/soak.img
soak:
	$(call banner,soak: $(SOAK_FAULTS) faults into system.xml's driver PDs on the host platform)
	@$(MAKE) --no-print-directory board-dtb MICROKIT_BOARD=qemu_virt_aarch64
	$(HOST_CARGO) build --workspace --bins --release
	@mkdir -p "$(BUILD_DIR)" && rm -f "$(SOAK_DISK)" && truncate -s 1M "$(SOAK_DISK)"
	target/release/warden-host soak system.xml --board $(BUILD_DIR)/board/qemu_virt_aarch64.dtb \
		--virtio blk=$(SOAK_DISK) --virtio rng --faults $(SOAK_FAULTS) \
		$(if $(SOAK_SEED),--seed $(SOAK_SEED)) $(if $(SOAK_LOG),--log $(SOAK_LOG))

# --- Cleaning --------------------------------------------------------------------------------
# `cargo clean` removes target/, including target/aarch64 and target/loom.
clean:
	$(HOST_CARGO) clean
	rm -rf "$(BUILD_DIR)"
