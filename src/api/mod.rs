//! The public Rust API: [`Database`] (a connection), [`Collection`] and the option types.
//! `writes` holds the options and results of the MongoDB-style write calls (`update_one`,
//! `insert_many_with`, `bulk_write`). [`Cursor`] is the execution layer's, re-exported here. `ffi` and `io` are written over
//! this API.

pub(crate) mod collection;
pub(crate) mod database;
pub(crate) mod options;
pub(crate) mod writes;

pub use crate::exec::Cursor;
pub use collection::Collection;
pub use database::Database;
pub use options::{AggregateOptions, FindOneAndOptions, OpenOptions, UpdateOptions, UpdateResult};
pub use writes::{
    BulkWriteResult, InsertManyOptions, InsertManyResult, ModifyOptions, WriteError, WriteModel,
};
