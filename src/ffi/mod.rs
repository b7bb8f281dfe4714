//! The C ABI (`include/nexus.h`, generated from this module by cbindgen): a thin, total
//! translation of the Rust API. Layout follows rustls-ffi: one file per C object family
//! ([`db`], [`collection`], [`document`], [`writes`], [`cursor`], [`txn`], [`io`],
//! [`maintenance`]) plus the
//! plumbing every entry point uses: [`status`] (codes, `nexus_errmsg`), `panic` (the
//! `ffi_boundary` that turns errors into codes and panics into `NEXUS_INTERNAL`) and
//! `handle` (NULL-checked pointer and string conversion, library-owned allocations).
//!
//! Every exported function: checks its pointers, checks UTF-8, never unwinds into C, never
//! prints, and on failure leaves its out-pointers untouched and sets the thread's error
//! message.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

pub mod collection;
pub mod crypto;
pub mod cursor;
pub mod db;
pub mod document;
pub(crate) mod handle;
pub mod io;
pub mod maintenance;
pub(crate) mod panic;
pub mod status;
pub mod txn;
pub mod writes;
