//! [`Collection`]: the document operations of the Rust API, run through a [`Database`]
//! connection's transaction helpers, one file per kind of operation: `insert.rs` (insert,
//! insert with a TTL, insert many), `read.rs` (get by `_id`, find, count, distinct),
//! `write.rs` (replace, set a TTL, update, delete, find-one-and-modify), `modify.rs`
//! (update_one / update_many / replace_one, insert_many_with, bulk_write) and `indexes.rs`
//! (create, drop, list, explain). This file holds what they share: the collection name
//! rule and the path of a new document into storage. Every write computes and validates all
//! of its changes before applying any, so a failing call changes nothing.

mod aggregate;
mod indexes;
mod insert;
mod modify;
pub(crate) mod read;
mod vector;
mod write;

use super::database::Database;
use crate::document::body::NewBody;
use crate::document::record::{self, RecordVersion};
use crate::document::{DocumentId, Metadata};
use crate::error::{Error, Result};
use crate::storage::{Bytes, ReadView, WriteTxn};

/// A collection reached through a connection. Cheap to create; holds no resources.
pub struct Collection<'db> {
    pub(crate) db: &'db Database,
    pub(crate) name: String,
}

/// A new document ready to store (its key is its id's).
pub(super) struct Prepared {
    pub(super) id: DocumentId,
    pub(super) record: Vec<u8>,
    expires_at: Option<i64>,
    /// No record at all under the key (set by `store_new`'s checks).
    absent: bool,
}

impl Collection<'_> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn record_version(&self) -> RecordVersion {
        self.db.engine().record_version()
    }

    /// Prepares a new document for storage: `_id` and the checked body bytes
    /// ([`NewBody::finish`]), then the record; `expires_at` makes it ephemeral.
    pub(super) fn prepare_new(
        &self,
        body: NewBody,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<Prepared> {
        let (id, body) = body.finish()?;
        self.prepare_body(id, &body, now, expires_at)
    }

    /// The record of a new document whose `_id` and checked body bytes are known.
    pub(super) fn prepare_body(
        &self,
        id: DocumentId,
        body: &[u8],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<Prepared> {
        let meta = Metadata {
            expires_at,
            ephemeral: expires_at.is_some(),
            ..Metadata::new_at(now)
        };
        Ok(Prepared {
            record: record::encode(&meta, body, self.record_version())?,
            id,
            expires_at,
            absent: false,
        })
    }

    /// `NoCollection` unless the collection exists in `v`; returns `v` for chaining.
    pub(super) fn require_table<'v>(&self, v: &'v dyn ReadView) -> Result<&'v dyn ReadView> {
        if v.has_table(&self.name) {
            Ok(v)
        } else {
            Err(Error::NoCollection(self.name.clone()))
        }
    }

    /// Creates the collection unless it exists (documents are kept clustered by record id).
    pub(super) fn ensure_table(&self, t: &mut dyn WriteTxn) -> Result<()> {
        if !t.has_table(&self.name) {
            check_collection_name(&self.name)?;
            t.create_clustered(&self.name, "{}")?;
        }
        Ok(())
    }

    /// Writes new documents inside `t`: duplicate checks (an expired document no longer
    /// counts), TTL registration, and the collection's bound. All checks come first; each
    /// record is taken out of `prepared` as it is written.
    pub(super) fn store_new(
        &self,
        t: &mut dyn WriteTxn,
        prepared: &mut [Prepared],
        now: i64,
    ) -> Result<()> {
        self.ensure_table(t)?;
        // Per document: no record at all under its key (an expired one may be replaced).
        for p in prepared.iter_mut() {
            let old = t.get(&self.name, p.id.key());
            if old.as_ref().is_some_and(|old| record::is_live(old, now)) {
                return Err(duplicate_id(&self.name, &p.id));
            }
            p.absent = old.is_none();
        }
        // Repeated `_id`s within the batch (a single insert has none to compare).
        if prepared.len() > 1 {
            let mut seen = std::collections::HashSet::with_capacity(prepared.len());
            if let Some(p) = prepared.iter().find(|p| !seen.insert(p.id.key())) {
                return Err(duplicate_id(&self.name, &p.id));
            }
        }
        // A bounded collection must not evict the documents this write adds.
        let engine = self.db.engine();
        let bounded = engine.coll_options(&self.name).bound.is_bounded();
        for p in prepared.iter_mut() {
            let key = p.id.key();
            if let Some(at) = p.expires_at {
                crate::index::expiry::register(t, &self.name, key, at)?;
            }
            let record = std::mem::take(&mut p.record);
            if p.absent {
                t.put_absent(&self.name, key, &record)?;
            } else {
                let key = Bytes::copy_from_slice(key);
                t.put(&self.name, key, Bytes::from(record))?;
            }
        }
        if bounded {
            let fresh: Vec<Bytes> = prepared
                .iter()
                .map(|p| Bytes::copy_from_slice(p.id.key()))
                .collect();
            engine.enforce_bound(t, &self.name, &fresh)?;
        }
        Ok(())
    }

    pub(super) fn not_found(&self, id: &DocumentId) -> Error {
        Error::NotFound(format!(
            "no document with _id {} in '{}'",
            id.to_text(),
            self.name
        ))
    }
}

fn duplicate_id(coll: &str, id: &DocumentId) -> Error {
    Error::DuplicateKey(format!(
        "duplicate key: a document with _id {} already exists in '{coll}'",
        crate::document::json::bson_to_json_text(id.as_bson())
    ))
}

/// Checks a collection name: non-empty, at most 255 bytes, no `$` or NUL, not reserved.
pub(crate) fn check_collection_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("collection name must not be empty"));
    }
    if name.len() > 255 {
        return Err(Error::invalid("collection name is longer than 255 bytes"));
    }
    if name.starts_with('_') {
        return Err(Error::invalid(format!(
            "collection name '{name}' is reserved: names starting with '_' belong to NexusLite"
        )));
    }
    if name.contains('$') || name.contains('\0') {
        return Err(Error::invalid(format!(
            "collection name '{name}' must not contain '$' or NUL"
        )));
    }
    Ok(())
}
