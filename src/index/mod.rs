//! Secondary indexes: the order-preserving key encoding ([`key`]), index definitions kept in
//! the hidden catalog collection, maintenance inside the writing transaction, the planner
//! and `explain`.
//!
//! Skeleton: the Rust API below is the shape the C functions, bindings and CLI call; the
//! bodies arrive with the indexes issue and return [`Error::Unsupported`] until then.

pub(crate) mod key;

use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::query::FindOptions;
use bson::Document as BsonDocument;

fn not_yet(what: &str) -> Error {
    Error::unsupported(format!(
        "{what}: secondary indexes are not in this build yet"
    ))
}

impl Collection<'_> {
    /// Creates a secondary index and builds it over the existing documents; returns its
    /// name. `keys` is a key pattern such as `{"user.email": 1}` or `{"a": 1, "b": -1}`;
    /// `options` may hold `unique`, `sparse`, `name`, `partialFilterExpression` and
    /// `expireAfterSeconds`. Creating an index that exists with the same keys and options
    /// returns its name and changes nothing.
    ///
    /// Errors: [`Error::DuplicateKey`] when a unique index meets duplicates in the existing
    /// data (nothing is created), [`Error::InvalidArgument`] for a bad key pattern or option.
    pub fn create_index(&self, keys: &BsonDocument, options: &BsonDocument) -> Result<String> {
        let _ = (keys, options, &self.name);
        Err(not_yet("create_index"))
    }

    /// [`Collection::create_index`] with JSON text (`options` `None` or empty: defaults).
    pub fn create_index_json(&self, keys: &str, options: Option<&str>) -> Result<String> {
        let _ = (keys, options);
        Err(not_yet("create_index"))
    }

    /// Drops the index called `name` (`"*"` drops every secondary index).
    ///
    /// Errors: [`Error::NotFound`] when there is no such index.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(not_yet("drop_index"))
    }

    /// The collection's indexes as MongoDB lists them: `{"v": 2, "key": {...}, "name": ...}`
    /// plus the options that are set; the `_id` index first.
    pub fn list_indexes(&self) -> Result<Vec<BsonDocument>> {
        Err(not_yet("list_indexes"))
    }

    /// Runs the query the way `find` would and reports the plan: `queryPlanner`
    /// (`winningPlan`, `rejectedPlans`) and `executionStats` (`nReturned`,
    /// `totalKeysExamined`, `totalDocsExamined`), in MongoDB's explain shape.
    pub fn explain(&self, filter: &BsonDocument, options: FindOptions) -> Result<BsonDocument> {
        let _ = (filter, options);
        Err(not_yet("explain"))
    }
}
