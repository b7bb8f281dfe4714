//! [`Collection`]'s MongoDB-style CRUD writes that say what happened: `update_one`,
//! `update_many` and `replace_one` (which tell an update from a replacement, and take
//! `arrayFilters`, `sort` and `hint`), `insert_many_with` (ordered or not, reporting each
//! failed document) and `bulk_write` (the drivers' write models, applied in order). They
//! run on the update machinery of `write.rs` and the insert path of `mod.rs`.
//!
//! Atomicity: each document of `insert_many_with` and each operation of `bulk_write` is
//! applied whole or not at all, in input order; a failure does not undo what came before it
//! (MongoDB's semantics). `insert_many_with` runs in one transaction (committed with the
//! documents that succeeded); `bulk_write` runs each operation as its own call, so outside
//! an explicit transaction ([`crate::Database::begin`]) each one commits by itself, and
//! inside one they all belong to it.

use super::Collection;
use crate::api::options::UpdateResult;
use crate::api::writes::{
    dispose_update, BulkWriteResult, InsertManyOptions, InsertManyResult, ModifyOptions,
    WriteError, WriteModel,
};
use crate::document::body::NewBody;
use crate::document::{now_millis, Document};
use crate::error::{Error, Result};
use crate::query::update::{Update, UpdateModifications};
use bson::{Bson, Document as BsonDocument};

/// The update of `update_one` / `update_many`: operators or a pipeline, never a replacement.
fn operator_update(update: &UpdateModifications, options: &ModifyOptions) -> Result<Update> {
    if let UpdateModifications::Document(d) = update {
        if d.keys().next().is_none_or(|k| !k.starts_with('$')) {
            return Err(Error::invalid("update document requires atomic operators"));
        }
    }
    Update::parse_with(update, options.array_filters.as_deref())
}

/// What drivers refuse before sending anything: an update model without operators, a
/// replacement with them.
fn precheck(models: &[WriteModel]) -> Result<()> {
    for (i, m) in models.iter().enumerate() {
        let checked = match m {
            WriteModel::UpdateOne {
                update: UpdateModifications::Document(d),
                ..
            }
            | WriteModel::UpdateMany {
                update: UpdateModifications::Document(d),
                ..
            } if d.keys().next().is_none_or(|k| !k.starts_with('$')) => {
                Err(Error::invalid("update document requires atomic operators"))
            }
            WriteModel::ReplaceOne { replacement, .. }
                if replacement.keys().any(|k| k.starts_with('$')) =>
            {
                Err(Error::invalid(
                    "replacement document must not contain atomic operators",
                ))
            }
            _ => Ok(()),
        };
        checked.map_err(|e| Error::invalid(format!("operation {i}: {e}")))?;
    }
    Ok(())
}

/// The update of `replace_one`: a document without operators (an empty one is allowed).
fn replacement_update(replacement: &BsonDocument, options: &ModifyOptions) -> Result<Update> {
    if replacement.keys().any(|k| k.starts_with('$')) {
        return Err(Error::invalid(
            "replacement document must not contain atomic operators",
        ));
    }
    if options.array_filters.is_some() {
        return Err(Error::invalid(
            "option 'arrayFilters' applies to updates, not to replace_one",
        ));
    }
    if replacement.is_empty() {
        return Ok(Update::Replace(BsonDocument::new()));
    }
    Update::parse_document(replacement, None)
}

impl Collection<'_> {
    /// Updates the first document matching `filter` (the first by `options.sort` when
    /// given), or upserts. `update` is operators (`{"$set": ...}`) or a pipeline.
    ///
    /// Errors: [`Error::InvalidArgument`] "update document requires atomic operators" for a
    /// document without operators; [`Error::Parse`] for a bad update or `arrayFilters`
    /// (checked before anything is read), or a pipeline stage an update may not use;
    /// [`Error::NoCollection`] without `upsert` when the collection is missing.
    pub fn update_one(
        &self,
        filter: &BsonDocument,
        update: impl Into<UpdateModifications>,
        options: ModifyOptions,
    ) -> Result<UpdateResult> {
        let update = update.into();
        let r = operator_update(&update, &options)
            .and_then(|u| self.update_parsed(filter, &u, false, &options));
        dispose_update(update);
        options.dispose();
        r
    }

    /// Updates every document matching `filter`, or upserts one. As
    /// [`Collection::update_one`]; `options.sort` is refused.
    pub fn update_many(
        &self,
        filter: &BsonDocument,
        update: impl Into<UpdateModifications>,
        options: ModifyOptions,
    ) -> Result<UpdateResult> {
        let update = update.into();
        let r = operator_update(&update, &options)
            .and_then(|u| self.update_parsed(filter, &u, true, &options));
        dispose_update(update);
        options.dispose();
        r
    }

    /// Replaces the body of the first document matching `filter` (the first by
    /// `options.sort`), keeping its `_id`, or upserts.
    ///
    /// Errors: [`Error::InvalidArgument`] "replacement document must not contain atomic
    /// operators", or for `arrayFilters`; otherwise as [`Collection::update_one`].
    pub fn replace_one(
        &self,
        filter: &BsonDocument,
        replacement: &BsonDocument,
        options: ModifyOptions,
    ) -> Result<UpdateResult> {
        let r = replacement_update(replacement, &options)
            .and_then(|u| self.update_parsed(filter, &u, false, &options));
        options.dispose();
        r
    }

    /// Inserts documents in order, each whole or not at all. Ordered (the default) stops at
    /// the first document that fails; unordered tries every one. The documents inserted
    /// before a failure stay inserted (MongoDB's semantics). Per-document failures
    /// (duplicate `_id`, an oversized document) are reported in
    /// [`InsertManyResult::write_errors`], not as `Err`; `Err` means nothing was written
    /// (a storage failure, a read-only connection).
    pub fn insert_many_with(
        &self,
        docs: Vec<Document>,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult> {
        self.insert_bodies_with(docs.into_iter().map(NewBody::Doc).collect(), options)
    }

    /// [`Collection::insert_many_with`] of documents read by the FFI.
    pub(crate) fn insert_bodies_with(
        &self,
        docs: Vec<NewBody>,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult> {
        super::check_collection_name(&self.name)?;
        let now = now_millis();
        let mut result = InsertManyResult::default();
        let mut prepared = Vec::with_capacity(docs.len());
        for (i, d) in docs.into_iter().enumerate() {
            match self.prepare_new(d, now, None) {
                Ok(p) => prepared.push((i, Some(p))),
                Err(e) if WriteError::is_per_write(&e) => {
                    result.write_errors.push(WriteError::new(i, e));
                    prepared.push((i, None));
                }
                Err(e) => return Err(e),
            }
        }
        let ordered = options.ordered;
        let inserted = self.db.write(|t| {
            let mut inserted = Vec::new();
            let mut errors = Vec::new();
            for (i, p) in &mut prepared {
                let Some(p) = p.take() else {
                    // Refused while being prepared.
                    if ordered {
                        break;
                    }
                    continue;
                };
                let mut one = [p];
                match self.store_new(t, &mut one, now) {
                    Ok(()) => {
                        let [p] = one;
                        inserted.push((*i, p.id));
                    }
                    Err(e) if WriteError::is_per_write(&e) => {
                        errors.push(WriteError::new(*i, e));
                        if ordered {
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((inserted, errors))
        })?;
        let (inserted, errors) = inserted;
        result.inserted_ids.extend(inserted);
        result.write_errors.extend(errors);
        result.write_errors.sort_by_key(|e| e.index);
        if ordered {
            // Only the first failure counts: nothing after it was tried.
            result.write_errors.truncate(1);
            if let Some(first) = result.write_errors.first() {
                let stop = first.index;
                result.inserted_ids.retain(|i, _| *i < stop);
            }
        }
        Ok(result)
    }

    /// Applies the write models in order; ordered (the default) stops at the first failing
    /// operation, unordered tries every one. Each operation is applied whole or not at all
    /// and a failure does not undo the operations before it. Per-operation failures are in
    /// [`BulkWriteResult::write_errors`]; `Err` is a failure of the whole call (a storage
    /// failure ends it, keeping the operations already applied outside a transaction).
    ///
    /// Before anything runs every model is checked for what a driver checks: an update
    /// without operators, a replacement with operators ([`Error::InvalidArgument`]).
    pub fn bulk_write(
        &self,
        models: Vec<WriteModel>,
        options: InsertManyOptions,
    ) -> Result<BulkWriteResult> {
        if let Err(e) = precheck(&models) {
            models.into_iter().for_each(WriteModel::dispose);
            return Err(e);
        }
        let mut result = BulkWriteResult::default();
        let mut models = models.into_iter().enumerate();
        for (i, m) in models.by_ref() {
            match self.apply_model(m, i, &mut result) {
                Ok(()) => {}
                Err(e) if WriteError::is_per_write(&e) => {
                    result.write_errors.push(WriteError::new(i, e));
                    if options.ordered {
                        break;
                    }
                }
                Err(e) => {
                    models.for_each(|(_, m)| m.dispose());
                    return Err(e);
                }
            }
        }
        models.for_each(|(_, m)| m.dispose());
        Ok(result)
    }

    fn apply_model(&self, m: WriteModel, i: usize, result: &mut BulkWriteResult) -> Result<()> {
        let mut count_update = |r: UpdateResult| {
            result.matched_count += r.matched;
            result.modified_count += r.modified;
            if let Some(id) = r.upserted_id {
                result.upserted_ids.insert(i, id);
            }
        };
        // Filters and replacements are dropped without recursion: they may nest any depth
        // when they are refused.
        let dispose = crate::document::dispose;
        match m {
            WriteModel::InsertOne { document } => {
                let id = self.insert(document)?;
                result.inserted_count += 1;
                result.inserted_ids.insert(i, id);
            }
            WriteModel::UpdateOne {
                filter,
                update,
                options,
            } => {
                let r = self.update_one(&filter, update, options);
                dispose(filter);
                count_update(r?);
            }
            WriteModel::UpdateMany {
                filter,
                update,
                options,
            } => {
                let r = self.update_many(&filter, update, options);
                dispose(filter);
                count_update(r?);
            }
            WriteModel::ReplaceOne {
                filter,
                replacement,
                options,
            } => {
                let r = self.replace_one(&filter, &replacement, options);
                dispose(filter);
                dispose(replacement);
                count_update(r?);
            }
            WriteModel::DeleteOne { filter, hint } => {
                let r = self.delete_hinted(&filter, false, hint.as_ref());
                dispose(filter);
                hint.into_iter().for_each(crate::document::dispose_value);
                result.deleted_count += r?;
            }
            WriteModel::DeleteMany { filter, hint } => {
                let r = self.delete_hinted(&filter, true, hint.as_ref());
                dispose(filter);
                hint.into_iter().for_each(crate::document::dispose_value);
                result.deleted_count += r?;
            }
        }
        Ok(())
    }

    /// [`Collection::delete`] with a `hint` checked first (as `find` checks it).
    fn delete_hinted(
        &self,
        filter: &BsonDocument,
        multi: bool,
        hint: Option<&Bson>,
    ) -> Result<u64> {
        if let Some(h) = hint {
            crate::document::check_value_nesting(h, crate::document::MAX_QUERY_NESTING, "hint")?;
            let f = crate::query::filter::Filter::parse(filter)?;
            let snap = self.db.snapshot()?;
            if snap.has_table(&self.name) {
                crate::exec::plan::choose(&*snap, &self.name, &f, None, None, Some(h), None)?;
            }
        }
        self.delete(filter, multi)
    }
}
