//! The integration tests in one test binary
//! (`cargo test --release --test integration`; one module a former `tests/NAME.rs`, run one
//! with `--test integration NAME::`). One binary links the crate and its dependencies once
//! instead of once a file, which was most of the suite's build time.
//!
//! Tests that run one of their own test functions as a child process (`common::procs`,
//! `current_exe()`) name it with `common::test_name`, which adds the module here. A test file
//! stays a binary of its own (`tests/NAME.rs`) when it measures its process (RSS), forks, or
//! needs a cargo feature (`[[test]]` entries in Cargo.toml).

#[path = "../common/mod.rs"]
mod common;

mod aggregate_fast_paths;
mod aggregate_pipeline;
mod aggregate_spill;
mod cache_and_ttl;
mod cli_beside_a_writer;
mod cli_check_repair;
mod cli_completions;
mod cli_refuses_database_outputs;
mod cli_shell_stdin;
mod cli_subcommands;
mod crash_recovery_sigkill;
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
mod isolation_list_append;
mod layers;
mod multiprocess;
mod open_refuses_foreign_files;
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
mod wasp_crash_sigkill;
mod wasp_log_laps;
mod wasp_resource_faults;
mod wasp_space_at_close;
