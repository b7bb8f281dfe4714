//! The integration tests that need no process of their own, in one test binary
//! (`cargo test --release --test integration`; one module a former `tests/NAME.rs`, run one
//! with `--test integration NAME::`). One binary links the crate and its dependencies once
//! instead of once a file, which was most of the suite's build time.
//!
//! A test file stays a binary of its own (`tests/NAME.rs`) when it re-executes its binary as
//! a child process (`common::procs`, `current_exe()`), measures its process (RSS), forks, or
//! needs a cargo feature (`[[test]]` entries in Cargo.toml).

#[path = "../common/mod.rs"]
mod common;

mod aggregate_fast_paths;
mod aggregate_pipeline;
mod aggregate_spill;
mod cache_and_ttl;
mod cli_check_repair;
mod cli_completions;
mod cli_refuses_database_outputs;
mod cli_shell_stdin;
mod cli_subcommands;
mod crud_writes_atomicity;
mod crypto_openssl;
mod documents_nesting_limit;
mod encryption_at_rest;
mod ffi_import_export;
mod ffi_version_and_symbols;
mod ffi_write_results;
mod format_versions;
mod fuzz_regressions;
mod indexes;
mod io_bad_input;
mod io_round_trip;
mod io_skip_errors_sidecar;
mod layers;
mod prop_collection_model;
mod query_and_transactions;
mod query_conformance;
mod query_id_point_lookup;
mod query_raw_vs_owned;
mod read_transactions;
mod sort_limit_topk;
mod stack_bounded_paths;
mod vector_search;
mod wasp_corruption_concurrency_memory;
mod wasp_log_laps;
