//! Secondary indexes.
//!
//! - [`key`]: the order-preserving key encoding of BSON values (`docs/FORMAT.md`, "Index
//!   keys").
//! - The catalog: one entry per index in the hidden collection `_indexes`, key
//!   `COLL \0 NAME`, value the definition as BSON ([`IndexDef`]). Each index's entries live in
//!   their own table `_ix$COLL$NAME` (`$` cannot appear in collection or index names): key
//!   `encoded values ++ the document's _id key`, value the `_id` key's length and, for a
//!   document with one key, its indexed fields ([`covered`]; covered queries read them).
//! - [`def`]: a definition, parsed and checked, and the entries it gives a document
//!   ([`direct`] reads them straight from a document's BSON bytes).
//! - Maintenance ([`maintain`]): called by the engine's tracked transaction for every put
//!   and delete on a collection that has indexes, inside the same transaction, so documents
//!   and entries commit (or vanish) together. Unique checks run before anything is written.
//! - [`build`]: a new index over existing documents (external sort in chunks).
//! - [`check`]: the integrity check of entries against documents.
//! - [`expiry`]: the registry of ephemeral documents by expiry time (`_tempDocuments`).
//! - [`vector`]: vector indexes (`{"field": "hnsw"}`): an HNSW graph stored in the index's
//!   table, maintained by the same calls, and the vector searches over it.
//!
//! Choosing an index for a query, scanning it and `explain` are execution (`crate::exec`).

pub(crate) mod build;
pub(crate) mod catalog;
pub(crate) mod check;
pub(crate) mod covered;
mod def;
mod direct;
pub(crate) mod expiry;
pub(crate) mod key;
mod maintain;
#[cfg(test)]
mod tests;
pub(crate) mod vector;

pub(crate) use build::build;
pub(crate) use catalog::{
    all_defs, defs_for, drop_def, forget_collection, release_caches, rename_collection, save_def,
};
pub(crate) use def::{new_def, IndexDef};
pub(crate) use maintain::{entry_key, on_write};

pub(crate) use covered::{covered_values, entry_id, entry_record_id, with_record_id};

/// The hidden catalog collection of index definitions.
pub(crate) const CATALOG: &str = "_indexes";
/// Name of the primary index MongoDB lists first.
pub(crate) const ID_INDEX: &str = "_id_";
