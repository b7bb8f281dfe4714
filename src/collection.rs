//! [`Collection`]: the document operations of the Rust API (insert, get, replace, find,
//! count, distinct, update, delete, find-one-and-modify), run through a [`Database`]
//! connection's transaction helpers. Every write computes and validates all of its changes
//! before applying any, so a failing call changes nothing.

use crate::db::{check_collection_name, Database, FindOneAndOptions, UpdateOptions, UpdateResult};
use crate::document::record::{self, RecordVersion};
use crate::document::{body::NewBody, now_millis, Document, DocumentId, Metadata};
use crate::error::{Error, Result};
use crate::query::{filter::Filter, update::Update, FindOptions, Plan};
use crate::storage::{Bytes, ReadView, WriteTxn};
use crate::Cursor;
use bson::{Bson, Document as BsonDocument};
use std::sync::Arc;

/// A collection reached through a connection. Cheap to create; holds no resources.
pub struct Collection<'db> {
    pub(crate) db: &'db Database,
    pub(crate) name: String,
}

/// A change computed before anything is written.
struct Change {
    key: Bytes,
    value: Bytes,
}

/// A new document ready to store (its key is its id's).
struct Prepared {
    id: DocumentId,
    record: Vec<u8>,
    expires_at: Option<i64>,
    /// No record at all under the key (set by `store_new`'s checks).
    absent: bool,
}

/// The record, unless it has expired at `now`.
fn live(rec: Option<Bytes>, now: i64) -> Option<Bytes> {
    rec.filter(|r| record::is_live(r, now))
}

pub(crate) fn parse_filter_json(text: &str) -> Result<BsonDocument> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(BsonDocument::new());
    }
    crate::document::json::parse_json_document(t, "filter")
}

impl Collection<'_> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn record_version(&self) -> RecordVersion {
        self.db.engine().record_version()
    }

    /// Prepares a new document for storage: `_id` and the checked body bytes
    /// ([`NewBody::finish`]), then the record; `expires_at` makes it ephemeral.
    fn prepare_new(&self, body: NewBody, now: i64, expires_at: Option<i64>) -> Result<Prepared> {
        let (id, body) = body.finish()?;
        self.prepare_body(id, &body, now, expires_at)
    }

    /// The record of a new document whose `_id` and checked body bytes are known.
    fn prepare_body(
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
    fn require_table<'v>(&self, v: &'v dyn ReadView) -> Result<&'v dyn ReadView> {
        if v.has_table(&self.name) {
            Ok(v)
        } else {
            Err(Error::NoCollection(self.name.clone()))
        }
    }

    fn ensure_table(&self, t: &mut dyn WriteTxn) -> Result<()> {
        if !t.has_table(&self.name) {
            check_collection_name(&self.name)?;
            t.create_table(&self.name, "{}")?;
        }
        Ok(())
    }

    /// Writes new documents inside `t`: duplicate checks (an expired document no longer
    /// counts), TTL registration, and the collection's bound. All checks come first; each
    /// record is taken out of `prepared` as it is written.
    fn store_new(&self, t: &mut dyn WriteTxn, prepared: &mut [Prepared], now: i64) -> Result<()> {
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
                crate::engine::ttl::register(t, &self.name, key, at)?;
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
                crate::engine::ttl::unregister(t, &self.name, id.key(), prev)?;
            }
            meta.expires_at = expires_at;
            meta.ephemeral = expires_at.is_some();
            if let Some(at) = expires_at {
                crate::engine::ttl::register(t, &self.name, id.key(), at)?;
            }
            let value = record::encode(&meta, record::body_bytes(&old)?, self.record_version())?;
            t.put(
                &self.name,
                Bytes::copy_from_slice(id.key()),
                Bytes::from(value),
            )
        })
    }

    fn not_found(&self, id: &DocumentId) -> Error {
        Error::NotFound(format!(
            "no document with _id {} in '{}'",
            id.to_text(),
            self.name
        ))
    }

    /// Resolves the text form of an `_id` (see [`DocumentId::text_candidates`]) to the id of an
    /// existing document, or to the string reading when none exists.
    pub fn resolve_text_id(&self, text: &str) -> Result<DocumentId> {
        let candidates = DocumentId::text_candidates(text);
        let now = now_millis();
        let found = self.db.read(|v| {
            Ok(candidates
                .iter()
                .find(|id| live(v.get(&self.name, id.key()), now).is_some())
                .cloned())
        })?;
        match found {
            Some(id) => Ok(id),
            None => DocumentId::from_str_id(text),
        }
    }

    /// [`Collection::get`] by the text form of an `_id` (see
    /// [`DocumentId::text_candidates`]): the string reading first, then the JSON one.
    pub fn get_by_text(&self, text: &str) -> Result<Option<Document>> {
        Ok(self
            .get_shared_by_text(text)?
            .map(|d| Document::from(BsonDocument::clone(&d))))
    }

    /// Like [`Collection::get_by_text`], sharing the cached document instead of copying it.
    pub(crate) fn get_shared_by_text(&self, text: &str) -> Result<Option<Arc<BsonDocument>>> {
        for id in DocumentId::text_candidates(text) {
            if let Some(doc) = self.get_shared(&id)? {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }

    /// The document with this `_id`, or `None` (also once it has expired). Outside a
    /// transaction the document cache serves it when it can; hits, misses and latency are
    /// counted in `stats`.
    pub fn get(&self, id: &DocumentId) -> Result<Option<Document>> {
        Ok(self
            .get_shared(id)?
            .map(|d| Document::from(BsonDocument::clone(&d))))
    }

    fn get_shared(&self, id: &DocumentId) -> Result<Option<Arc<BsonDocument>>> {
        let started = std::time::Instant::now();
        let now = now_millis();
        let engine = self.db.engine();
        let key = Bytes::copy_from_slice(id.key());
        let r = if self.db.txn_open() {
            self.db.read(|v| {
                self.require_table(v)?;
                live(v.get(&self.name, &key), now)
                    .map(|r| Ok(Arc::new(record::decode_body(&r)?.into_bson())))
                    .transpose()
            })
        } else {
            self.get_cached(&key, now)
        };
        if matches!(r, Ok(Some(_))) {
            engine.touch(&self.name, &key);
        }
        engine
            .cache
            .metrics
            .record_get(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        r
    }

    fn get_cached(&self, key: &Bytes, now: i64) -> Result<Option<Arc<BsonDocument>>> {
        use crate::cache::Lookup;
        let cache = &self.db.engine().cache;
        match cache.get(&self.name, key, now) {
            Lookup::Hit(doc) => return Ok(Some(doc)),
            Lookup::Expired => return Ok(None),
            Lookup::Miss => {}
        }
        let epoch = cache.epoch();
        self.db.read(|v| {
            self.require_table(v)?;
            let Some(rec) = v.get(&self.name, key) else {
                return Ok(None);
            };
            if !record::is_live(&rec, now) {
                crate::cache::metrics::bump(&cache.metrics.expired_reads, 1);
                return Ok(None);
            }
            let doc = Arc::new(record::decode_body(&rec)?.into_bson());
            let fill = crate::cache::Fill {
                coll: &self.name,
                key: key.clone(),
                doc: Arc::clone(&doc),
                size: rec.len() as u64,
                expires_at: record::expires_at(&rec),
            };
            cache.admit(fill, epoch, now);
            Ok(Some(doc))
        })
    }

    /// The metadata of the document with this `_id`, or `None` (also once it has expired).
    pub fn get_meta(&self, id: &DocumentId) -> Result<Option<Metadata>> {
        let now = now_millis();
        self.db.read(|v| {
            self.require_table(v)?;
            live(v.get(&self.name, id.key()), now)
                .map(|r| record::decode_meta(&r))
                .transpose()
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

    /// Runs a query; the cursor reads the snapshot taken now.
    pub fn find(&self, filter: &BsonDocument, options: FindOptions) -> Result<Cursor> {
        let r = self.find_with(filter, &options);
        options.dispose();
        r
    }

    fn find_with(&self, filter: &BsonDocument, options: &FindOptions) -> Result<Cursor> {
        let plan = Plan::compile(filter, options)?;
        let snap = self.db.snapshot()?;
        let choice = crate::index::plan::choose_for(&*snap, &self.name, &plan)?;
        Ok(Cursor::with_access(
            snap,
            self.name.clone(),
            plan,
            choice.access,
            self.db.closed_flag(),
        ))
    }

    /// [`Collection::find`] with the filter as JSON text.
    pub fn find_json(&self, filter: &str, options: FindOptions) -> Result<Cursor> {
        self.find(&parse_filter_json(filter)?, options)
    }

    /// The first match, in `_id` order.
    pub fn find_one(&self, filter: &BsonDocument) -> Result<Option<Document>> {
        let opts = FindOptions {
            limit: 1,
            ..FindOptions::default()
        };
        self.find(filter, opts)?.next().transpose()
    }

    /// Number of matching documents (0 for a missing collection).
    pub fn count(&self, filter: &BsonDocument) -> Result<u64> {
        let f = Filter::parse(filter)?;
        if filter.is_empty() {
            // Without ephemeral documents every stored document is live: count in O(1).
            let fast = self.db.read(|v| {
                Ok((!v.has_table(crate::engine::ttl::TEMP_TABLE)
                    || v.count(crate::engine::ttl::TEMP_TABLE) == 0)
                    .then(|| v.count(&self.name)))
            })?;
            if let Some(n) = fast {
                return Ok(n);
            }
        }
        self.db.read(|v| count_matches(v, &self.name, &f))
    }

    /// [`Collection::count`] with the filter as JSON text.
    pub fn count_json(&self, filter: &str) -> Result<u64> {
        self.count(&parse_filter_json(filter)?)
    }

    /// Distinct values of `field` (dotted path) among matching documents, array values
    /// flattened, sorted in MongoDB's order.
    pub fn distinct(&self, field: &str, filter: &BsonDocument) -> Result<Vec<Bson>> {
        crate::query::path::check_limits("distinct", field)?;
        if field.is_empty() || field.starts_with('$') {
            return Err(Error::invalid(format!(
                "invalid field path '{field}' for distinct"
            )));
        }
        let f = Filter::parse(filter)?;
        let mut out: Vec<Bson> = Vec::new();
        self.db.read(|v| {
            scan_matches(v, &self.name, &f, |_, _, doc| {
                let mut values = Vec::new();
                crate::query::path::lookup(doc, field, &mut values);
                for val in values {
                    let items: Vec<&Bson> = match val {
                        Bson::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        if !out.iter().any(|o| crate::query::compare::equal(o, item)) {
                            out.push(item.clone());
                        }
                    }
                }
                Ok(true)
            })
        })?;
        out.sort_by(crate::query::compare::compare);
        Ok(out)
    }

    /// Updates the first match (or all with `multi`), or upserts.
    pub fn update(
        &self,
        filter: &BsonDocument,
        update: &BsonDocument,
        options: UpdateOptions,
    ) -> Result<UpdateResult> {
        let f = Filter::parse(filter)?;
        let u = Update::parse(update)?;
        if options.multi && u.is_replacement() {
            return Err(Error::invalid(
                "a replacement document cannot be applied to several documents (multi)",
            ));
        }
        let version = self.record_version();
        self.db.write(|t| {
            let now = now_millis();
            let mut result = UpdateResult::default();
            let mut changes = Vec::new();
            if !options.upsert {
                self.require_table(t.as_read())?;
            }
            if t.has_table(&self.name) {
                scan_matches(t.as_read(), &self.name, &f, |key, rec, doc| {
                    result.matched += 1;
                    if let Some(c) = updated_record(&u, &f, key, rec, doc, now, version)?.1 {
                        changes.push(c);
                    }
                    Ok(options.multi)
                })?;
            }
            if result.matched == 0 && options.upsert {
                let mut p = [self.prepare_new(upsert_document(&f, &u)?.into(), now, None)?];
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
        let r = self.find_one_and_update_with(filter, update, &options);
        dispose_options(options);
        r
    }

    fn find_one_and_update_with(
        &self,
        filter: &BsonDocument,
        update: &BsonDocument,
        options: &FindOneAndOptions,
    ) -> Result<Option<Document>> {
        let f = Filter::parse(filter)?;
        let u = Update::parse(update)?;
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
        sort, projection, ..
    } = options;
    sort.into_iter()
        .chain(projection)
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

fn duplicate_id(coll: &str, id: &DocumentId) -> Error {
    Error::DuplicateKey(format!(
        "duplicate key: a document with _id {} already exists in '{coll}'",
        crate::document::json::bson_to_json_text(id.as_bson())
    ))
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
    let meta = record::decode_meta(rec)?.changed_at(now);
    let change = Change {
        key: key.clone(),
        value: Bytes::from(record::encode(&meta, &bytes, version)?),
    };
    Ok((new_body, Some(change)))
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
        Update::Ops(_) => u.apply(&seed, f, true)?,
    };
    Ok(Document::from(body))
}

/// Calls `f(key, record)` for every live (unexpired) record of `table` in `_id` order while
/// it returns `Ok(true)`.
fn scan_live(
    view: &dyn ReadView,
    table: &str,
    mut f: impl FnMut(&Bytes, &Bytes) -> Result<bool>,
) -> Result<()> {
    let now = now_millis();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(table, after.as_deref(), 256);
        if batch.is_empty() {
            return Ok(());
        }
        for (k, rec) in &batch {
            if record::is_live(rec, now) && !f(k, rec)? {
                return Ok(());
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

/// When the filter pins one `_id` ([`Filter::id_equality`]): the live record under it, if
/// any (`Some(None)`: the answer is "nothing"); `None` when a scan is needed.
pub(crate) fn point_lookup(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
) -> Option<Option<(Bytes, Bytes)>> {
    let id = DocumentId::new(filter.id_equality()?.clone()).ok()?;
    let key = Bytes::copy_from_slice(id.key());
    Some(
        view.get(table, &key)
            .filter(|rec| record::is_live(rec, now_millis()))
            .map(|rec| (key, rec)),
    )
}

/// Calls `f(key, record)` for the live records that can match `filter`: the one a point
/// lookup finds, or every record in `_id` order, while `f` returns `Ok(true)`.
fn scan_candidates(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
    mut f: impl FnMut(&Bytes, &Bytes) -> Result<bool>,
) -> Result<()> {
    match point_lookup(view, table, filter) {
        Some(Some((k, rec))) => return f(&k, &rec).map(|_| ()),
        Some(None) => return Ok(()),
        None => {}
    }
    let choice = crate::index::plan::choose(view, table, filter, None, None, None, None)?;
    let crate::index::plan::Access::Index(ix) = choice.access else {
        return scan_live(view, table, f);
    };
    // The candidates are visited in `_id` order, as without the index, so that "the first
    // match" of an update, delete or find-one-and-modify does not depend on the plan.
    let mut scan = crate::index::scan::IndexScan::new(&ix);
    let mut stats = crate::index::scan::ExecStats::default();
    let mut ids = Vec::new();
    loop {
        let batch = scan.next_ids(view, 256, &mut stats);
        if batch.is_empty() {
            break;
        }
        ids.extend(batch);
    }
    ids.sort();
    ids.dedup();
    let now = now_millis();
    for id in ids {
        if let Some(rec) = view.get(table, &id) {
            if record::is_live(&rec, now) && !f(&id, &rec)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Calls `f(key, record, body)` for every live matching document in `_id` order while it
/// returns `Ok(true)`. The filter runs on the stored bytes; only matches are decoded.
pub(crate) fn scan_matches(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
    mut f: impl FnMut(&Bytes, &Bytes, &BsonDocument) -> Result<bool>,
) -> Result<()> {
    scan_candidates(view, table, filter, |k, rec| {
        if !filter.matches_bytes(record::body_bytes(rec)?)? {
            return Ok(true);
        }
        let doc = record::decode_body(rec)?.into_bson();
        f(k, rec, &doc)
    })
}

/// How many live documents of `table` match, evaluated on the stored bytes (no document is
/// decoded).
fn count_matches(view: &dyn ReadView, table: &str, filter: &Filter) -> Result<u64> {
    let mut n = 0;
    scan_candidates(view, table, filter, |_, rec| {
        if filter.matches_bytes(record::body_bytes(rec)?)? {
            n += 1;
        }
        Ok(true)
    })?;
    Ok(n)
}

/// A document's sort key (see `SortSpec::key_of`).
type SortKey = Vec<Option<Bson>>;

/// The first match of `plan` (by its sort, else `_id` order), unprojected.
fn first_match(
    view: &dyn ReadView,
    table: &str,
    plan: &Plan,
) -> Result<Option<(Bytes, Bytes, BsonDocument)>> {
    let mut best: Option<(SortKey, (Bytes, Bytes, BsonDocument))> = None;
    scan_matches(view, table, &plan.filter, |k, rec, doc| {
        let Some(sort) = &plan.sort else {
            best = Some((Vec::new(), (k.clone(), rec.clone(), doc.clone())));
            return Ok(false);
        };
        let key = sort.key_of(doc);
        let better = match &best {
            None => true,
            Some((b, _)) => sort.compare_keys(&key, b) == std::cmp::Ordering::Less,
        };
        if better {
            best = Some((key, (k.clone(), rec.clone(), doc.clone())));
        }
        Ok(true)
    })?;
    Ok(best.map(|(_, m)| m))
}
