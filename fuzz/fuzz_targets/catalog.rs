//! `nexus::fuzzing::catalog`: see its documentation for the input layout and the checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nexus::fuzzing::catalog(data));
