# NexusLite build entry points (see README.md):
#   make demo   build the library, then run the C, C++ and Go examples against demo.db
#   make test   run every test suite (Rust, C, C++, Go, header, docs, lints)
#   make bench  run the benchmarks (not part of make test); results go to benchmarks/
SHELL := /bin/bash
REL := target/release
DEMO_DB ?= demo.db

.PHONY: setup lib demo test bench clean

setup:
	@bash scripts/setup.sh

lib: setup
	cargo build --release
	ln -sf libnexus.so $(REL)/libnexus.so.0
	bash scripts/gen-pc.sh

demo: lib
	@echo "== C demo";   bash examples/c/run.sh $(DEMO_DB)
	@echo "== C++ demo"; bash examples/cpp/run.sh $(DEMO_DB)
	@echo "== Go demo";  bash examples/go/run.sh $(DEMO_DB)

test: lib
	bash scripts/test.sh

bench: lib
	bash scripts/bench.sh

clean:
	cargo clean
	rm -f demo.db demo.wasp
