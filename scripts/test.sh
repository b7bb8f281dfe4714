#!/usr/bin/env bash
# Runs every test suite of NexusLite; called by `make test` after the library is built.
# Each suite runs even when an earlier one failed; the last line counts suites as
# "N passed, M failed" and the exit status is non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

passed=0; failed=0; failures=()
suite() {
  local name="$1"; shift
  echo; echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

library_alone() {
  # A host that links only the library builds it without the CLI's crates (cargo feature `cli`)
  # or the server's (feature `server`), build dependencies included (protox, tonic-prost-build):
  # clippy compiles it that way (and lints what only that build sees) without the code
  # generation of a second release build; the C, C++ and Go suites link the shipped one.
  cargo clippy --release --no-default-features --lib -- -D warnings || return 1
  local cli_crates
  cli_crates="$(cargo tree --no-default-features -e normal,build --prefix none --format '{p}' \
                | grep -E '^(clap|clap_complete|clap_mangen|indicatif|log4rs|rustyline|anyhow|tokio|mio|pbkdf2|rustls|tokio-rustls|snap|axum|hyper|tokio-stream|tonic|tonic-prost|prost|tonic-health|tonic-reflection|protox|tonic-prost-build|h2) ' | sort -u)"
  if [[ -n "$cli_crates" ]]; then
    echo "the library without the cli feature still depends on:"; echo "$cli_crates"; return 1
  fi
  echo "library without the cli feature: no clap, clap_complete, clap_mangen, indicatif, log4rs, rustyline, anyhow, tokio, mio, pbkdf2, rustls, tokio-rustls, snap, axum, hyper, tokio-stream, tonic, tonic-prost, prost, tonic-health, tonic-reflection, protox, tonic-prost-build, h2 (ring is the library's own: AES-256-GCM)"
}

abi_check() {
  # The exported symbols of libnexus.so against the committed baseline abi/libnexus.so.abi,
  # and the proof that the check catches a removed function.
  bash scripts/check-abi.sh && bash scripts/check-abi.sh --self-test
}

# The features of the two debug-profile suites below: one set, so that one debug build of the
# crate serves both. The CLI (its tests run `nexus`) without `server`: none of these tests
# needs the server, whose dependencies (tokio, axum, tonic, protox) would double the debug
# build. The regex features as in the default build (the suites test the shipped behaviour).
DEBUG_FEATURES=(--no-default-features --features cli,fault-injection,pqc,regex-fast,regex-unicode)

fault_injection_tests() {
  # The durability tests that inject faults need the fault-injection feature, which a shipped
  # build never has; they build in the debug profile so the release artifacts the C, C++ and
  # Go suites link stay the shipped ones.
  cargo test "${DEBUG_FEATURES[@]}" \
    --test group_commit --test recovery_fault_injection --test wasp_fault_injection_crash
}

fault_injection_tests_memlog() { NEXUSLITE_STORAGE=memlog fault_injection_tests; }

pqc_tests() {
  # The post-quantum keys of the feature `pqc` (off by default, so no other suite builds it):
  # the crypto unit tests (signatures, the hybrid key slots' wrap / unwrap) and
  # tests/crypto_pqc.rs. Debug profile like the fault-injection tests, whose dependencies it
  # shares; Cargo.toml optimizes the post-quantum crates there.
  cargo test "${DEBUG_FEATURES[@]}" --lib crypto:: \
    && cargo test "${DEBUG_FEATURES[@]}" --test crypto_pqc --test encryption_pqc
}

header_unchanged() {
  # build.rs regenerated include/nexus.h during `make lib`; it must match the committed one.
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git diff --exit-code -- include/nexus.h
  else
    echo "not a git checkout: header comparison skipped"; return 1
  fi
}

suite "rustfmt"        cargo fmt --all -- --check
suite "clippy"         cargo clippy --release --all-targets -- -D warnings
suite "header"         header_unchanged
suite "abi"            abi_check
suite "library alone"  library_alone
# --release: the dependencies' check artifacts of the first clippy run serve this one too.
suite "clippy (fault-injection, pqc)" cargo clippy --release --all-targets --features fault-injection,pqc -- -D warnings
suite "rust tests"     cargo test --release
suite "rust fault injection" fault_injection_tests
suite "rust pqc"       pqc_tests
# Item 11: the whole Rust and C suites again with memlog as the engine of every new file.
# NEXUSLITE_STORAGE is a switch of the tests, not of the library: they read it and pass it on
# as the "storage" open option (tests/common/mod.rs open_options(), tests/c/test_storage.h).
# The nexus binary that tests/cli_*.rs run gets the default engine in both passes.
suite "rust tests (memlog)" env NEXUSLITE_STORAGE=memlog cargo test --release
suite "rust fault injection (memlog)" fault_injection_tests_memlog
suite "rust docs"      env RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps
suite "readme"         bash scripts/check-readme.sh
suite "readme commands" bash scripts/check-readme-commands.sh
suite "c"              bash tests/c/run.sh
suite "c (memlog)"     env NEXUSLITE_STORAGE=memlog bash tests/c/run.sh
suite "c++"            bash bindings/cpp/run_tests.sh
# The C and C++ test programs again, built with AddressSanitizer + UndefinedBehaviorSanitizer
# against the release library (flags and options: tests/sanitizers/common.sh).
suite "c (asan+ubsan)" bash tests/c/run_sanitized.sh
suite "c++ (asan+ubsan)" env NEXUS_CPPTEST_CHECKER=asan bash bindings/cpp/run_tests.sh
suite "go"             bash bindings/go/run_tests.sh
suite "python"         bash bindings/python/run_tests.sh
# `nexus serve` (MongoDB wire protocol) driven by pymongo against target/release/nexus.
suite "server (pymongo)" bash tests/server/run_tests.sh
suite "server (go driver)" bash tests/server/run_go_tests.sh
suite "server (mongosh)" bash tests/server/run_mongosh_tests.sh
# `nexus serve --http`: the Data API actions and native endpoints driven by `requests`.
suite "server (rest)" bash tests/server/run_rest_tests.sh
# `nexus serve --grpc`: a grpcio client generated from proto/nexus/v1/nexus.proto at test time.
suite "server (grpc python)" bash tests/server/run_grpc_tests.sh
suite "server (grpc go)" bash tests/server/run_grpc_go_tests.sh
suite "examples"       bash scripts/run-examples.sh
suite "install"        bash scripts/test-install.sh

echo
((failed)) && echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
((failed == 0))
