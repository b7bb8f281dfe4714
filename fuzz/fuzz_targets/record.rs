//! `nexus::fuzzing::record`: see its documentation for the checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nexus::fuzzing::record(data));
