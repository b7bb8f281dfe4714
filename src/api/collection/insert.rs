//! [`Collection`]'s inserts: one document, one with a time to live, many in one
//! transaction.

use super::{check_collection_name, Collection};
use crate::document::body::NewBody;
use crate::document::{now_millis, Document, DocumentId};
use crate::error::{Error, Result};

impl Collection<'_> {
    /// Inserts one document, assigning a UUID v4 `_id` when it has none; creates the
    /// collection when missing. Returns the `_id`.
    ///
    /// Errors: [`Error::DuplicateKey`] when the `_id` exists, [`Error::InvalidArgument`] for a
    /// document over 16 MiB or an array `_id`.
    pub fn insert(&self, doc: Document) -> Result<DocumentId> {
        self.insert_expiring(NewBody::Doc(doc), None)
    }

    /// Inserts an ephemeral document that expires `ttl_ms` milliseconds from now: after that
    /// it is never returned (reads count a miss) and the sweeper deletes it. Expiry is stored
    /// as an absolute time, so it survives restarts.
    pub fn insert_ttl(&self, doc: Document, ttl_ms: u64) -> Result<DocumentId> {
        self.insert_body_ttl(NewBody::Doc(doc), ttl_ms)
    }

    /// [`Collection::insert_ttl`] of a document read by the FFI.
    pub(crate) fn insert_body_ttl(&self, body: NewBody, ttl_ms: u64) -> Result<DocumentId> {
        if ttl_ms == 0 {
            return Err(Error::invalid("ttl_ms must be at least 1"));
        }
        let ttl = i64::try_from(ttl_ms).map_err(|_| Error::invalid("ttl_ms is too large"))?;
        let at = now_millis()
            .checked_add(ttl)
            .ok_or_else(|| Error::invalid("ttl_ms is too large"))?;
        self.insert_expiring(body, Some(at))
    }

    /// Inserts a document that expires at `expires_at` (ms since the Unix epoch), or a
    /// persistent one for `None`. The FFI passes documents read straight to BSON
    /// ([`NewBody::Raw`]); everything else a [`Document`].
    pub(crate) fn insert_expiring(
        &self,
        body: NewBody,
        expires_at: Option<i64>,
    ) -> Result<DocumentId> {
        check_collection_name(&self.name)?;
        let now = now_millis();
        let mut p = [self.prepare_new(body, now, expires_at)?];
        self.db.write(|t| self.store_new(t, &mut p, now))?;
        let [p] = p;
        Ok(p.id)
    }

    /// Inserts all documents or none (one transaction).
    pub fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<DocumentId>> {
        self.insert_many_bodies(docs.into_iter().map(NewBody::Doc).collect())
    }

    /// [`Collection::insert_many`] of documents read by the FFI.
    pub(crate) fn insert_many_bodies(&self, docs: Vec<NewBody>) -> Result<Vec<DocumentId>> {
        check_collection_name(&self.name)?;
        let now = now_millis();
        let mut prepared = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                self.prepare_new(d, now, None).map_err(|e| match e {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("document {i}: {m}"))
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.db.write(|t| self.store_new(t, &mut prepared, now))?;
        Ok(prepared.into_iter().map(|p| p.id).collect())
    }
}
