//! [`Collection`]: the document operations of the Rust API (insert, get, replace, find,
//! count, distinct, update, delete, find-one-and-modify), run through a [`Database`]
//! connection's transaction helpers. Every write computes and validates all of its changes
//! before applying any, so a failing call changes nothing.

use crate::db::{check_collection_name, Database, FindOneAndOptions, UpdateOptions, UpdateResult};
use crate::document::{now_millis, record, Document, DocumentId, Metadata};
use crate::error::{Error, Result};
use crate::query::{filter::Filter, update::Update, FindOptions, Plan};
use crate::storage::{Bytes, ReadView, WriteTxn};
use crate::Cursor;
use bson::{Bson, Document as BsonDocument};

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

fn parse_filter_json(text: &str) -> Result<BsonDocument> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(BsonDocument::new());
    }
    crate::document::json::json_to_document(
        crate::document::json::parse_json(t, "filter")?,
        "filter",
    )
}

impl Collection<'_> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Prepares a new document for storage: `_id`, size check, record bytes.
    fn prepare_new(doc: Document, now: i64) -> Result<(DocumentId, Change)> {
        let mut doc = doc;
        let id = doc.ensure_id()?;
        let body = doc.encode_checked()?;
        let value = record::encode(&Metadata::new_at(now), &body)?;
        Ok((
            id.clone(),
            Change {
                key: Bytes::from(id.key()),
                value: Bytes::from(value),
            },
        ))
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

    /// Inserts one document, assigning a UUID v4 `_id` when it has none; creates the
    /// collection when missing. Returns the `_id`.
    ///
    /// Errors: [`Error::DuplicateKey`] when the `_id` exists, [`Error::InvalidArgument`] for a
    /// document over 16 MiB or an array `_id`.
    pub fn insert(&self, doc: Document) -> Result<DocumentId> {
        check_collection_name(&self.name)?;
        let (id, change) = Self::prepare_new(doc, now_millis())?;
        self.db.write(|t| {
            self.ensure_table(t)?;
            if t.get(&self.name, &change.key).is_some() {
                return Err(duplicate_id(&self.name, &id));
            }
            t.put(&self.name, change.key, change.value)?;
            Ok(id)
        })
    }

    /// Inserts all documents or none (one transaction).
    pub fn insert_many(&self, docs: Vec<Document>) -> Result<Vec<DocumentId>> {
        check_collection_name(&self.name)?;
        let now = now_millis();
        let prepared = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                Self::prepare_new(d, now).map_err(|e| match e {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("document {i}: {m}"))
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.db.write(|t| {
            self.ensure_table(t)?;
            let mut seen = std::collections::HashSet::new();
            for (id, c) in &prepared {
                if !seen.insert(c.key.clone()) || t.get(&self.name, &c.key).is_some() {
                    return Err(duplicate_id(&self.name, id));
                }
            }
            let mut ids = Vec::with_capacity(prepared.len());
            for (id, c) in prepared {
                t.put(&self.name, c.key, c.value)?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Resolves the text form of an `_id` (see [`DocumentId::text_candidates`]) to the id of an
    /// existing document, or to the string reading when none exists.
    pub fn resolve_text_id(&self, text: &str) -> Result<DocumentId> {
        let candidates = DocumentId::text_candidates(text);
        let found = self.db.read(|v| {
            Ok(candidates
                .iter()
                .find(|id| v.get(&self.name, id.key()).is_some())
                .cloned())
        })?;
        match found {
            Some(id) => Ok(id),
            None => DocumentId::from_str_id(text),
        }
    }

    /// The document with this `_id`, or `None`.
    pub fn get(&self, id: &DocumentId) -> Result<Option<Document>> {
        self.db.read(|v| {
            self.require_table(v)?;
            v.get(&self.name, id.key())
                .map(|r| record::decode_body(&r))
                .transpose()
        })
    }

    /// The metadata of the document with this `_id`, or `None`.
    pub fn get_meta(&self, id: &DocumentId) -> Result<Option<Metadata>> {
        self.db.read(|v| {
            self.require_table(v)?;
            v.get(&self.name, id.key())
                .map(|r| record::decode_meta(&r))
                .transpose()
        })
    }

    /// Replaces the body of the document with this `_id` (its `_id`, creation time and
    /// history are kept; the version is bumped).
    ///
    /// Errors: [`Error::NoCollection`], [`Error::NotFound`], [`Error::InvalidArgument`] when the
    /// new body carries a different `_id`.
    pub fn replace(&self, id: &DocumentId, doc: Document) -> Result<()> {
        let mut doc = doc;
        if let Some(given) = doc.as_bson_mut().remove("_id") {
            if DocumentId::new(given)?.key() != id.key() {
                return Err(Error::invalid(
                    "the replacement document's _id differs from the id being replaced",
                ));
            }
        }
        doc.as_bson_mut().insert("_id", id.as_bson().clone());
        let mut doc = doc;
        doc.ensure_id()?;
        let body = doc.encode_checked()?;
        self.db.write(|t| {
            if !t.has_table(&self.name) {
                return Err(Error::NoCollection(self.name.clone()));
            }
            let old = t.get(&self.name, id.key()).ok_or_else(|| {
                Error::NotFound(format!(
                    "no document with _id {} in '{}'",
                    id.to_text(),
                    self.name
                ))
            })?;
            let meta = record::decode_meta(&old)?.changed_at(now_millis());
            let value = record::encode(&meta, &body)?;
            t.put(&self.name, Bytes::from(id.key()), Bytes::from(value))
        })
    }

    /// Deletes the document with this `_id`; returns whether it existed.
    pub fn delete_by_id(&self, id: &DocumentId) -> Result<bool> {
        self.db.write(|t| {
            if !t.has_table(&self.name) {
                return Err(Error::NoCollection(self.name.clone()));
            }
            t.delete(&self.name, id.key())
        })
    }

    /// Runs a query; the cursor reads the snapshot taken now.
    pub fn find(&self, filter: &BsonDocument, options: FindOptions) -> Result<Cursor> {
        let plan = Plan::compile(filter, &options)?;
        let snap = self.db.snapshot()?;
        Ok(Cursor::new(
            snap,
            self.name.clone(),
            plan,
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
            return self.db.read(|v| Ok(v.count(&self.name)));
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
                    if let Some(c) = updated_record(&u, &f, key, rec, doc, now)?.1 {
                        changes.push(c);
                    }
                    Ok(options.multi)
                })?;
            }
            if result.matched == 0 && options.upsert {
                let (id, change) = Self::prepare_new(upsert_document(&f, &u)?, now)?;
                self.ensure_table(t)?;
                if t.get(&self.name, &change.key).is_some() {
                    return Err(duplicate_id(&self.name, &id));
                }
                t.put(&self.name, change.key, change.value)?;
                result.upserted_id = Some(id);
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
        let f = Filter::parse(filter)?;
        let u = Update::parse(update)?;
        let plan = Plan::compile(
            filter,
            &FindOptions {
                sort: options.sort.clone(),
                projection: options.projection.clone(),
                ..FindOptions::default()
            },
        )?;
        self.db.write(|t| {
            if !options.upsert {
                self.require_table(t.as_read())?;
            }
            let now = now_millis();
            let target = first_match(t.as_read(), &self.name, &plan)?;
            let (before, after) = match target {
                Some((key, rec, doc)) => {
                    let (after, change) = updated_record(&u, &f, &key, &rec, &doc, now)?;
                    if let Some(c) = change {
                        t.put(&self.name, c.key, c.value)?;
                    }
                    (Some(doc), Some(after))
                }
                None if options.upsert => {
                    let (id, change) = Self::prepare_new(upsert_document(&f, &u)?, now)?;
                    self.ensure_table(t)?;
                    if t.get(&self.name, &change.key).is_some() {
                        return Err(duplicate_id(&self.name, &id));
                    }
                    let stored = record::decode_body(&change.value)?.into_bson();
                    t.put(&self.name, change.key, change.value)?;
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
) -> Result<(BsonDocument, Option<Change>)> {
    let new_body = u.apply(doc, f, false)?;
    if &new_body == doc {
        return Ok((new_body, None));
    }
    let bytes = Document::from(new_body.clone()).encode_checked()?;
    let meta = record::decode_meta(rec)?.changed_at(now);
    let change = Change {
        key: key.clone(),
        value: Bytes::from(record::encode(&meta, &bytes)?),
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

/// Calls `f(key, record, body)` for every matching document in `_id` order while it returns
/// `Ok(true)`.
pub(crate) fn scan_matches(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
    mut f: impl FnMut(&Bytes, &Bytes, &BsonDocument) -> Result<bool>,
) -> Result<()> {
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(table, after.as_deref(), 256);
        if batch.is_empty() {
            return Ok(());
        }
        for (k, rec) in &batch {
            if !filter.matches_bytes(record::body_bytes(rec)?)? {
                continue;
            }
            let doc = record::decode_body(rec)?.into_bson();
            if !f(k, rec, &doc)? {
                return Ok(());
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

/// How many documents of `table` match, evaluated on the stored bytes (no document is
/// decoded).
fn count_matches(view: &dyn ReadView, table: &str, filter: &Filter) -> Result<u64> {
    let mut n = 0;
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(table, after.as_deref(), 256);
        if batch.is_empty() {
            return Ok(n);
        }
        for (_, rec) in &batch {
            if filter.matches_bytes(record::body_bytes(rec)?)? {
                n += 1;
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
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
