# NexusLite build entry points (see README.md):
#   make demo   build the library, then run the C, C++ and Go examples against demo.db
#   make test   run every test suite (Rust incl. the CLI, C, C++, Go, Python, header, docs, lints)
#   make bench  run the benchmarks (cache, import, ...); reports go to benchmarks/
#   make soak   the long durability runs: SOAK_ROUNDS (default 1000) rounds of the SIGKILL loop
#               with a mixed workload and a reader process, the disk-full and fsync failure
#               tests; writes benchmarks/reliability-soak.md
#   make install [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=lib]
#               the library (.so with its SONAME links, .a), nexus.h + nexus.hpp, nexus.pc, the
#               CMake package (find_package(nexus CONFIG)), the nexus CLI, its man page and
#               shell completions; `make uninstall` with the same variables removes them
#   make dist   target/dist/nexuslite-VERSION-linux-ARCH.tar.gz: what `make install` puts in place
#   make abi    compare libnexus.so's exported symbols with the baseline abi/libnexus.so.abi
#   make fuzz   run every fuzz target of fuzz/ for FUZZ_SECONDS (default 60) each (cargo-fuzz,
#               nightly; skipped with a message without a nightly toolchain); not in make test
SHELL := /bin/bash
REL := target/release
DEMO_DB ?= demo.db
PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= lib
INSTALL_VARS = PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" LIBDIR="$(LIBDIR)"

.PHONY: setup lib lib-small demo test bench soak fuzz clean install uninstall dist abi

setup:
	@bash scripts/setup.sh

lib: setup
	cargo build --release
	ln -sf libnexus.so $(REL)/libnexus.so.0
	bash scripts/gen-pc.sh

# The size-tuned library for firmware and game hosts (target/release-small/libnexus.so; see
# scripts/build-small.sh). Not part of `make lib`.
lib-small: setup
	bash scripts/build-small.sh

demo: lib
	@echo "== C demo";   bash examples/c/run.sh $(DEMO_DB)
	@echo "== C++ demo"; bash examples/cpp/run.sh $(DEMO_DB)
	@echo "== Go demo";  bash examples/go/run.sh $(DEMO_DB)

test: lib
	bash scripts/test.sh

bench: lib
	bash bench/run.sh

soak:
	bash scripts/soak.sh

install: lib
	$(INSTALL_VARS) bash scripts/install.sh install

uninstall:
	$(INSTALL_VARS) bash scripts/install.sh uninstall

dist: lib
	$(INSTALL_VARS) bash scripts/install.sh dist

abi: lib
	bash scripts/check-abi.sh

fuzz:
	bash scripts/fuzz.sh

clean:
	cargo clean
	rm -f demo.db demo.wasp
