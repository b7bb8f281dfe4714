//! NexusLite: an embedded document database with SQLite's deployment model (one library, one
//! database file plus its side log, no server), MongoDB's data model and query language, and
//! (as it grows) Redis's cache and TTL behaviour.
//!
//! The Rust API is the real API: [`Database`] (a connection), [`Collection`], [`Cursor`],
//! [`Document`]. The C ABI (`include/nexus.h`, module `ffi`) is a thin translation of it.
//! See `docs/ARCHITECTURE.md` for the layers.
//!
//! ```
//! use nexus::{Database, Document, FindOptions, UpdateOptions};
//! use bson::doc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("app.db");
//! {
//!     let db = Database::open(&path, Default::default()).unwrap();
//!     let people = db.collection("people");
//!     people.insert(Document::from_json(r#"{"_id": "ada", "born": 1815}"#).unwrap()).unwrap();
//!     people
//!         .update(&doc! {"_id": "ada"}, &doc! {"$set": {"field": "computing"}}, UpdateOptions::default())
//!         .unwrap();
//!     db.close().unwrap();
//! }
//! let db = Database::open(&path, Default::default()).unwrap();
//! let ada = db.collection("people").find_one(&doc! {"born": {"$lt": 1900}}).unwrap().unwrap();
//! assert_eq!(ada.to_json(), r#"{"_id":"ada","born":1815,"field":"computing"}"#);
//! ```
//!
//! # Limits
//!
//! Documents nest at most [`MAX_NESTING`] levels and hold at most [`MAX_DOCUMENT_BYTES`];
//! filters, updates, projections, sorts, index keys, options and any JSON text nest at most
//! [`MAX_QUERY_NESTING`] levels; dotted paths have at most [`MAX_PATH_COMPONENTS`]
//! components and [`MAX_PATH_BYTES`] bytes; `$and`, `$or`, `$nor`, `$not` and `$elemMatch`
//! nest at most [`MAX_FILTER_DEPTH`] levels. Each limit is checked before anything recursive
//! reads the input, and a violation is [`Error::InvalidArgument`] naming it; the library's
//! recursion is bounded by these limits, so it runs on a 256 KiB thread stack.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod cache;
pub mod crypto;
pub mod document;
mod engine;
mod error;
mod exec;
#[allow(unsafe_code)]
pub mod ffi;
/// Entry points for the fuzz targets in `fuzz/`; only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hash;
mod index;
pub mod io;
mod options;
#[allow(unsafe_code)]
mod prefetch;
mod process;
#[cfg(test)]
mod prop_support;
mod query;
mod scratch;
mod storage;

pub use api::{
    AggregateOptions, BulkWriteResult, Collection, Cursor, Database, FindOneAndOptions,
    InsertManyOptions, InsertManyResult, ModifyOptions, OpenOptions, UpdateOptions, UpdateResult,
    WriteError, WriteModel,
};
pub use cache::{Admission, CacheConfig, EvictionMode};
pub use document::{
    Document, DocumentBuilder, DocumentId, Metadata, MAX_DOCUMENT_BYTES, MAX_NESTING,
    MAX_QUERY_NESTING,
};
pub use engine::sweeper::SweeperConfig;
pub use error::{Error, Result};
pub use query::update::UpdateModifications;
pub use query::{FindOptions, MAX_FILTER_DEPTH, MAX_PATH_BYTES, MAX_PATH_COMPONENTS};
/// Fault injection for durability tests; only in builds with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use storage::fault::FaultPlan;
pub use storage::{LogRecovery, StorageEngine, SyncMode};

/// Hooks for the benchmarks in `benches/`; not part of the API and not covered by semver.
#[doc(hidden)]
pub mod bench_hooks {
    use crate::query::filter::Filter;

    /// A compiled filter.
    pub struct CompiledFilter(Filter);

    impl CompiledFilter {
        /// Compiles a query document.
        pub fn new(query: &bson::Document) -> crate::Result<Self> {
            Filter::parse(query).map(Self)
        }

        /// Evaluates over a document's BSON bytes as the scans do: on the bytes, decoding
        /// only the values the filter's paths reach.
        pub fn matches_bytes(&self, body: &[u8]) -> bool {
            self.0.matches_bytes(body).unwrap_or(false)
        }

        /// Evaluates by first decoding the whole document (what scans did before).
        pub fn matches_decoded(&self, body: &[u8]) -> bool {
            bson::Document::from_reader(body).is_ok_and(|d| self.0.matches(&d))
        }
    }
}

/// The library version, equal to `Cargo.toml`'s.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
