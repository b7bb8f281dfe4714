//! The public Rust API: [`Database`] (a connection), [`Collection`] and the option types.
//! [`Cursor`] is the execution layer's, re-exported here. `ffi` and `io` are written over
//! this API.

pub(crate) mod collection;
pub(crate) mod database;
pub(crate) mod options;

pub use crate::exec::Cursor;
pub use collection::Collection;
pub use database::Database;
pub use options::{AggregateOptions, FindOneAndOptions, OpenOptions, UpdateOptions, UpdateResult};
