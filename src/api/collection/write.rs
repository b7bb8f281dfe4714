//! [`Collection`]'s changes to existing documents: replace, set a TTL, delete by `_id`,
//! update and delete by filter (with upsert), and find-one-and-update / -delete.

use super::Collection;
use crate::api::options::{FindOneAndOptions, UpdateOptions, UpdateResult};
use crate::api::writes::ModifyOptions;
use crate::document::record::{self, RecordVersion};
use crate::document::{now_millis, Document, DocumentId};
use crate::error::{Error, Result};
use crate::exec::plan::choose;
use crate::exec::scan::{first_match, live, scan_matches, scan_matching_records};
use crate::query::update::patch::{self, Patched};
use crate::query::update::UpdateModifications;
use crate::query::{filter::Filter, update::Update, FindOptions, Plan};
use crate::storage::Bytes;
use bson::Document as BsonDocument;

/// A change computed before anything is written.
struct Change {
    key: Bytes,
    value: Bytes,
}

impl Collection<'_> {
    /// Gives a document a time to live of `ttl_ms` from now, or (negative) makes it
    /// persistent again. `0` expires it at once. Bumps its version.
    pub fn set_ttl(&self, id: &DocumentId, ttl_ms: i64) -> Result<()> {
        let now = now_millis();
        let expires_at = match ttl_ms {
            t if t < 0 => None,
            t => Some(
                now.checked_add(t)
                    .ok_or_else(|| Error::invalid("ttl_ms is too large"))?,
            ),
        };
        self.db.write(|t| {
            self.require_table(t.as_read())?;
            let old = live(t.get(&self.name, id.key()), now).ok_or_else(|| self.not_found(id))?;
            let mut meta = record::decode_meta(&old)?.changed_at(now);
            if let Some(prev) = meta.expires_at {
                crate::index::expiry::unregister(t, &self.name, id.key(), prev)?;
            }
            meta.expires_at = expires_at;
            meta.ephemeral = expires_at.is_some();
            if let Some(at) = expires_at {
                crate::index::expiry::register(t, &self.name, id.key(), at)?;
            }
            let value = record::encode(&meta, record::body_bytes(&old)?, self.record_version())?;
            t.put(
                &self.name,
                Bytes::copy_from_slice(id.key()),
                Bytes::from(value),
            )
        })
    }

    /// Replaces the body of the document with this `_id` (its `_id`, creation time, TTL and
    /// history are kept; the version is bumped).
    ///
    /// Errors: [`Error::NoCollection`], [`Error::NotFound`], [`Error::InvalidArgument`] when the
    /// new body carries a different `_id`.
    pub fn replace(&self, id: &DocumentId, doc: Document) -> Result<()> {
        let mut doc = doc;
        let r = self.replace_with(id, &mut doc);
        // The document may nest any depth when it is refused: dropped without recursion.
        crate::document::dispose(std::mem::take(doc.as_bson_mut()));
        r
    }

    fn replace_with(&self, id: &DocumentId, doc: &mut Document) -> Result<()> {
        if let Some(given) = doc.as_bson_mut().remove("_id") {
            if DocumentId::new(given)?.key() != id.key() {
                return Err(Error::invalid(
                    "the replacement document's _id differs from the id being replaced",
                ));
            }
        }
        doc.as_bson_mut().insert("_id", id.as_bson().clone());
        doc.ensure_id()?;
        let body = doc.encode_checked()?;
        let now = now_millis();
        self.db.write(|t| {
            self.require_table(t.as_read())?;
            let old = live(t.get(&self.name, id.key()), now).ok_or_else(|| self.not_found(id))?;
            let meta = record::decode_meta(&old)?.changed_at(now);
            let value = record::encode(&meta, &body, self.record_version())?;
            t.put(
                &self.name,
                Bytes::copy_from_slice(id.key()),
                Bytes::from(value),
            )
        })
    }

    /// Deletes the document with this `_id`; returns whether it existed (an expired one
    /// does not count).
    pub fn delete_by_id(&self, id: &DocumentId) -> Result<bool> {
        let now = now_millis();
        self.db.write(|t| {
            self.require_table(t.as_read())?;
            let existed = live(t.get(&self.name, id.key()), now).is_some();
            t.delete(&self.name, id.key())?;
            Ok(existed)
        })
    }

    /// Updates the first match (or all with `multi`), or upserts: the combined form, where
    /// `update` is operators or a replacement document (see [`Collection::update_one`],
    /// [`Collection::update_many`] and [`Collection::replace_one`] for the forms that tell
    /// them apart and take `arrayFilters`, `sort` and `hint`).
    pub fn update(
        &self,
        filter: &BsonDocument,
        update: &BsonDocument,
        options: UpdateOptions,
    ) -> Result<UpdateResult> {
        self.update_combined(filter, Update::parse_document(update, None)?, options)
    }

    /// [`Collection::update`] of an update that may also be a pipeline (an array of
    /// stages: [`Error::Unsupported`] in this build).
    pub fn update_with(
        &self,
        filter: &BsonDocument,
        update: impl Into<UpdateModifications>,
        options: UpdateOptions,
    ) -> Result<UpdateResult> {
        self.update_combined(filter, Update::parse_with(&update.into(), None)?, options)
    }

    fn update_combined(
        &self,
        filter: &BsonDocument,
        u: Update,
        options: UpdateOptions,
    ) -> Result<UpdateResult> {
        if options.multi && u.is_replacement() {
            return Err(Error::invalid(
                "a replacement document cannot be applied to several documents (multi)",
            ));
        }
        let opts = ModifyOptions {
            upsert: options.upsert,
            ..ModifyOptions::default()
        };
        self.update_parsed(filter, &u, options.multi, &opts)
    }

    /// Applies a parsed update to the first match of `filter` (by `options.sort` when
    /// given), or to every match with `multi`, or upserts. Everything is computed before
    /// anything is written.
    pub(super) fn update_parsed(
        &self,
        filter: &BsonDocument,
        u: &Update,
        multi: bool,
        options: &ModifyOptions,
    ) -> Result<UpdateResult> {
        if let Some(sort) = &options.sort {
            // Before the copy below (copying recurses).
            crate::document::check_nesting(sort, crate::document::MAX_QUERY_NESTING, "sort")?;
        }
        let plan =
            match &options.sort {
                Some(sort) if !multi => Some(Plan::compile(
                    filter,
                    &FindOptions {
                        sort: Some(sort.clone()),
                        ..FindOptions::default()
                    },
                )?),
                Some(_) => return Err(Error::invalid(
                    "option 'sort' applies to update_one and replace_one, not to several documents",
                )),
                None => None,
            };
        let parsed;
        let f = match &plan {
            Some(p) => &p.filter,
            None => {
                parsed = Filter::parse(filter)?;
                &parsed
            }
        };
        if let Some(h) = &options.hint {
            crate::document::check_value_nesting(h, crate::document::MAX_QUERY_NESTING, "hint")?;
        }
        let version = self.record_version();
        self.db.write(|t| {
            let now = now_millis();
            let mut result = UpdateResult::default();
            let mut changes = Vec::new();
            if !options.upsert {
                self.require_table(t.as_read())?;
            }
            if let (Some(h), true) = (&options.hint, t.has_table(&self.name)) {
                // The hint is checked as find checks it (an index name, a key pattern or
                // `$natural`); the update visits its candidates in the collection's order
                // whatever the plan, so the choice itself changes no result.
                choose(t.as_read(), &self.name, f, None, None, Some(h), None)?;
            }
            if let (Some(plan), true) = (&plan, t.has_table(&self.name)) {
                if let Some((key, rec, doc)) = first_match(t.as_read(), &self.name, plan)? {
                    result.matched = 1;
                    changes.extend(updated_record(u, f, &key, &rec, &doc, now, version)?.1);
                }
            } else if t.has_table(&self.name) {
                // Single-field changes are written into the stored bytes, without decoding
                // the document (`patch`); the rest decode and apply.
                let patchable = patch::may_patch(u);
                scan_matching_records(t.as_read(), &self.name, f, |key, rec| {
                    result.matched += 1;
                    let patched = if patchable {
                        patch::patch(u, record::body_bytes(rec)?)
                    } else {
                        None
                    };
                    let change = match patched {
                        Some(Patched::Unchanged) => None,
                        Some(Patched::Body(body)) => {
                            Some(changed_record(key, rec, &body, now, version)?)
                        }
                        None => {
                            let doc = record::decode_body(rec)?.into_bson();
                            updated_record(u, f, key, rec, &doc, now, version)?.1
                        }
                    };
                    changes.extend(change);
                    Ok(multi)
                })?;
            }
            if result.matched == 0 && options.upsert {
                let mut p = [self.prepare_new(upsert_document(f, u)?.into(), now, None)?];
                self.store_new(t, &mut p, now)?;
                let [p] = p;
                result.upserted_id = Some(p.id);
                return Ok(result);
            }
            result.modified = changes.len() as u64;
            for c in changes {
                t.put(&self.name, c.key, c.value)?;
            }
            Ok(result)
        })
    }

    /// Deletes the first match (or all with `multi`); returns how many were deleted.
    pub fn delete(&self, filter: &BsonDocument, multi: bool) -> Result<u64> {
        let f = Filter::parse(filter)?;
        self.db.write(|t| {
            self.require_table(t.as_read())?;
            let mut keys = Vec::new();
            scan_matches(t.as_read(), &self.name, &f, |key, _, _| {
                keys.push(key.clone());
                Ok(multi)
            })?;
            for k in &keys {
                t.delete(&self.name, k)?;
            }
            Ok(keys.len() as u64)
        })
    }

    /// Finds one document (first by `sort`), updates it, and returns it as it was before
    /// (or after, with `return_after`). `None` when nothing matched and nothing was upserted.
    pub fn find_one_and_update(
        &self,
        filter: &BsonDocument,
        update: &BsonDocument,
        options: FindOneAndOptions,
    ) -> Result<Option<Document>> {
        let r = self.find_one_and_update_inner(
            filter,
            &UpdateModifications::Document(update.clone()),
            &options,
        );
        dispose_options(options);
        r
    }

    /// [`Collection::find_one_and_update`] of an update that may also be a pipeline (an
    /// array of stages: [`Error::Unsupported`] in this build).
    pub fn find_one_and_update_with(
        &self,
        filter: &BsonDocument,
        update: impl Into<UpdateModifications>,
        options: FindOneAndOptions,
    ) -> Result<Option<Document>> {
        let r = self.find_one_and_update_inner(filter, &update.into(), &options);
        dispose_options(options);
        r
    }

    fn find_one_and_update_inner(
        &self,
        filter: &BsonDocument,
        update: &UpdateModifications,
        options: &FindOneAndOptions,
    ) -> Result<Option<Document>> {
        let f = Filter::parse(filter)?;
        let u = Update::parse_with(update, options.array_filters.as_deref())?;
        check_option_docs(options)?;
        let plan = Plan::compile(
            filter,
            &FindOptions {
                sort: options.sort.clone(),
                projection: options.projection.clone(),
                ..FindOptions::default()
            },
        )?;
        let version = self.record_version();
        self.db.write(|t| {
            if !options.upsert {
                self.require_table(t.as_read())?;
            }
            let now = now_millis();
            let target = first_match(t.as_read(), &self.name, &plan)?;
            let (before, after) = match target {
                Some((key, rec, doc)) => {
                    let (after, change) = updated_record(&u, &f, &key, &rec, &doc, now, version)?;
                    if let Some(c) = change {
                        t.put(&self.name, c.key, c.value)?;
                    }
                    (Some(doc), Some(after))
                }
                None if options.upsert => {
                    let p = self.prepare_new(upsert_document(&f, &u)?.into(), now, None)?;
                    let stored = record::decode_body(&p.record)?.into_bson();
                    self.store_new(t, &mut [p], now)?;
                    (None, Some(stored))
                }
                None => (None, None),
            };
            let chosen = if options.return_after { after } else { before };
            Ok(chosen.map(|d| project(&plan, d)))
        })
    }

    /// Finds one document (first by `sort`), deletes it and returns it.
    pub fn find_one_and_delete(
        &self,
        filter: &BsonDocument,
        options: FindOneAndOptions,
    ) -> Result<Option<Document>> {
        let r = self.find_one_and_delete_with(filter, &options);
        dispose_options(options);
        r
    }

    fn find_one_and_delete_with(
        &self,
        filter: &BsonDocument,
        options: &FindOneAndOptions,
    ) -> Result<Option<Document>> {
        check_option_docs(options)?;
        let plan = Plan::compile(
            filter,
            &FindOptions {
                sort: options.sort.clone(),
                projection: options.projection.clone(),
                ..FindOptions::default()
            },
        )?;
        self.db.write(
            |t| match first_match(self.require_table(t.as_read())?, &self.name, &plan)? {
                Some((key, _, doc)) => {
                    t.delete(&self.name, &key)?;
                    Ok(Some(project(&plan, doc)))
                }
                None => Ok(None),
            },
        )
    }
}

/// Drops `find_one_and_*`'s options without recursion (their documents may nest any depth
/// when they are refused).
fn dispose_options(options: FindOneAndOptions) {
    let FindOneAndOptions {
        sort,
        projection,
        array_filters,
        ..
    } = options;
    sort.into_iter()
        .chain(projection)
        .chain(array_filters.into_iter().flatten())
        .for_each(crate::document::dispose);
}

/// The nesting of `find_one_and_*`'s sort and projection, checked before they are copied
/// (copying recurses).
fn check_option_docs(options: &FindOneAndOptions) -> Result<()> {
    for (doc, what) in [(&options.sort, "sort"), (&options.projection, "projection")] {
        if let Some(d) = doc {
            crate::document::check_nesting(d, crate::document::MAX_QUERY_NESTING, what)?;
        }
    }
    Ok(())
}

fn project(plan: &Plan, doc: BsonDocument) -> Document {
    match &plan.projection {
        Some(p) => Document::from(p.apply(&doc)),
        None => Document::from(doc),
    }
}

/// The updated body of a matched document and its new record (`None` when the update
/// changes nothing).
fn updated_record(
    u: &Update,
    f: &Filter,
    key: &Bytes,
    rec: &[u8],
    doc: &BsonDocument,
    now: i64,
    version: RecordVersion,
) -> Result<(BsonDocument, Option<Change>)> {
    let new_body = u.apply(doc, f, false)?;
    if &new_body == doc {
        return Ok((new_body, None));
    }
    let bytes = Document::from(new_body.clone()).encode_checked()?;
    let change = changed_record(key, rec, &bytes, now, version)?;
    Ok((new_body, Some(change)))
}

/// The change writing `body` (BSON) over the record `rec` of `key`: its metadata marked as
/// changed at `now`.
fn changed_record(
    key: &Bytes,
    rec: &[u8],
    body: &[u8],
    now: i64,
    version: RecordVersion,
) -> Result<Change> {
    let meta = record::decode_meta(rec)?.changed_at(now);
    Ok(Change {
        key: key.clone(),
        value: Bytes::from(record::encode(&meta, body, version)?),
    })
}

/// The document an upsert inserts: the filter's equalities, then the update.
fn upsert_document(f: &Filter, u: &Update) -> Result<Document> {
    let mut seed = BsonDocument::new();
    let mut eqs = Vec::new();
    f.equalities(&mut eqs);
    for (path, v) in eqs {
        if path.split('.').next().is_some_and(|p| p.starts_with('$')) {
            continue;
        }
        crate::query::update::set_path(&mut seed, &path, v)?;
    }
    let body = match u {
        Update::Replace(r) => {
            let mut out = BsonDocument::new();
            if let Some(id) = r.get("_id").or_else(|| seed.get("_id")) {
                out.insert("_id", id.clone());
            }
            for (k, v) in r {
                if k != "_id" {
                    out.insert(k.clone(), v.clone());
                }
            }
            out
        }
        Update::Ops(..) | Update::Pipeline(_) => u.apply(&seed, f, true)?,
    };
    Ok(Document::from(body))
}
